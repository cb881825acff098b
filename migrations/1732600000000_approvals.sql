-- Up Migration

-- Per-agent approval and notification settings.
ALTER TABLE agents
  ADD COLUMN approval_required_tools text[] NOT NULL DEFAULT '{}',
  ADD COLUMN approval_timeout_hours double precision,
  ADD COLUMN on_approval_timeout text NOT NULL DEFAULT 'fail',
  ADD COLUMN notify jsonb NOT NULL DEFAULT '{"type":"log"}';

-- The approvals inbox. One request per gated tool call, unique per (task, step, call) so a retried
-- activity never opens a second request for the same action.
CREATE TABLE approvals (
  id              uuid PRIMARY KEY,
  task_id         uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  agent_id        uuid NOT NULL REFERENCES agents (id),
  org_id          text NOT NULL,
  step            int NOT NULL,
  call_index      int NOT NULL,
  title           text NOT NULL,
  proposed_action jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending',
  decided_by      text,
  decision_reason text,
  edited_action   jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  decided_at      timestamptz,
  expires_at      timestamptz NOT NULL,
  UNIQUE (task_id, step, call_index)
);
CREATE INDEX approvals_org_status ON approvals (org_id, status, created_at);
CREATE INDEX approvals_agent ON approvals (agent_id, created_at);

-- Every notification sent (approval needed/decided/expired, autopilot actions), with its delivery state.
CREATE TABLE notifications (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  idempotency_key text NOT NULL UNIQUE,
  org_id          text NOT NULL,
  agent_id        uuid NOT NULL,
  task_id         uuid,
  event           text NOT NULL,
  payload         jsonb NOT NULL,
  target          jsonb NOT NULL,
  delivered_at    timestamptz,
  attempts        int NOT NULL DEFAULT 0,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_agent ON notifications (agent_id, created_at);

-- Down Migration
DROP TABLE notifications;
DROP TABLE approvals;
ALTER TABLE agents DROP COLUMN notify, DROP COLUMN on_approval_timeout, DROP COLUMN approval_timeout_hours,
  DROP COLUMN approval_required_tools;
