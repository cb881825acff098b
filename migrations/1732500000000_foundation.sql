-- Up Migration

-- Agents: a queryable projection of each AgentWorkflow. The workflow is the source of truth;
-- activities keep this row current, ordered by state_version so a retried write never goes back in time.
CREATE TABLE agents (
  id              uuid PRIMARY KEY,
  org_id          text NOT NULL,
  name            text NOT NULL,
  objective       text NOT NULL,
  type            text NOT NULL,
  capabilities    text[] NOT NULL DEFAULT '{}',
  autonomy        text NOT NULL,
  priority        int NOT NULL,
  status          text NOT NULL,
  allowed_tools   text[] NOT NULL DEFAULT '{}',
  system_prompt   text,
  provider        text,
  model           text,
  settings        jsonb NOT NULL DEFAULT '{}',
  current_task_id uuid,
  queue_length    int NOT NULL DEFAULT 0,
  state_version   bigint NOT NULL DEFAULT 0,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_active     timestamptz,
  archived_at     timestamptz
);
CREATE INDEX agents_org_status ON agents (org_id, status);

CREATE TABLE tasks (
  id                  uuid PRIMARY KEY,
  org_id              text NOT NULL,
  agent_id            uuid NOT NULL REFERENCES agents (id),
  title               text NOT NULL,
  task_type           text NOT NULL DEFAULT 'general',
  priority            int NOT NULL,
  status              text NOT NULL,
  input               jsonb NOT NULL DEFAULT '{}',
  output              jsonb,
  error               text,
  parent_task_id      uuid,
  delegation_depth    int NOT NULL DEFAULT 0,
  steps               int NOT NULL DEFAULT 0,
  input_tokens        int NOT NULL DEFAULT 0,
  output_tokens       int NOT NULL DEFAULT 0,
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  completed_at        timestamptz,
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_agent_created ON tasks (agent_id, created_at);
CREATE INDEX tasks_org_status ON tasks (org_id, status);

-- The reasoning trace: one row per decision, unique per (task, step, seq) so retried activities
-- write each decision once.
CREATE TABLE decisions (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  task_id       uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  step          int NOT NULL,
  seq           int NOT NULL,
  decision_type text NOT NULL,
  reasoning     text NOT NULL DEFAULT '',
  action        jsonb NOT NULL DEFAULT '{}',
  result        jsonb,
  confidence    real,
  created_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (task_id, step, seq)
);

-- Token usage of every LLM call, keyed by the call so a retry that succeeds is counted once.
CREATE TABLE llm_calls (
  task_id       uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  step          int NOT NULL,
  provider      text NOT NULL,
  model         text NOT NULL,
  input_tokens  int NOT NULL,
  output_tokens int NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task_id, step)
);

-- Shared state. scope is 'org' (visible to every agent of the org) or an agent id (private to it).
CREATE TABLE memory (
  org_id     text NOT NULL,
  scope      text NOT NULL,
  key        text NOT NULL,
  value      jsonb NOT NULL,
  version    int NOT NULL DEFAULT 1,
  updated_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, scope, key)
);

-- Idempotency ledger: a side-effecting tool call applies only if its key is new here, in the same
-- transaction as the side effect itself.
CREATE TABLE side_effects (
  idempotency_key text PRIMARY KEY,
  tool            text NOT NULL,
  task_id         uuid,
  result          jsonb NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Agent-to-agent messages (send_message).
CREATE TABLE agent_messages (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id          text NOT NULL,
  from_agent_id   uuid,
  to_agent_id     uuid NOT NULL,
  task_id         uuid,
  content         text NOT NULL,
  idempotency_key text UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_messages_to ON agent_messages (to_agent_id, created_at);

-- Down Migration
DROP TABLE agent_messages;
DROP TABLE side_effects;
DROP TABLE memory;
DROP TABLE llm_calls;
DROP TABLE decisions;
DROP TABLE tasks;
DROP TABLE agents;
