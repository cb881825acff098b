-- Up Migration

-- Reminders: recurring or one-shot goals for an agent. Each row has a Temporal schedule
-- `reminder-<id>`, which decides when it fires (and whether it is paused); this table lists them.
-- A removed reminder (deleted, or its agent archived) stays as a tombstone, so a repeated delete is a 404.
CREATE TABLE reminders (
  id             uuid PRIMARY KEY,
  org_id         text NOT NULL,
  agent_id       uuid NOT NULL REFERENCES agents (id),
  title          text NOT NULL,
  schedule       jsonb NOT NULL,
  -- What each fire submits: {input, priority, taskType, delegationDepth}.
  task_template  jsonb NOT NULL DEFAULT '{}',
  status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'removed')),
  created_by     text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  removed_at     timestamptz
);
CREATE INDEX reminders_agent_active ON reminders (agent_id, created_at) WHERE status = 'active';

-- Down Migration
DROP TABLE reminders;
