-- Up Migration

-- An organisation's changes to the agent-type catalogue (lib/agent-types.ts holds the eight types and their
-- defaults). A row exists once a type was changed and then holds every setting of that type for the org;
-- a type without a row has its defaults.
CREATE TABLE agent_types (
  org_id         text NOT NULL,
  agent_type     text NOT NULL,
  name           text NOT NULL,
  autonomy_level text NOT NULL CHECK (autonomy_level IN ('manual', 'copilot', 'autopilot')),
  is_enabled     boolean NOT NULL DEFAULT true,
  allowed_skills text[] NOT NULL DEFAULT '{}',
  config         jsonb NOT NULL DEFAULT '{}',
  system_prompt  text,
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, agent_type)
);

-- The skill a task is to be executed with (seed AgentTask.skillId); null when none was named.
ALTER TABLE tasks ADD COLUMN skill_id text;

-- Down Migration
ALTER TABLE tasks DROP COLUMN skill_id;
DROP TABLE agent_types;
