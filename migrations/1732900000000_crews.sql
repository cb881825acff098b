-- Up Migration

-- Crews: teams of agents working on one goal. The row's definition is written at creation (no workflow
-- runs yet); from the start on, only the CrewWorkflow's activities change status and result.
CREATE TABLE crews (
  id          uuid PRIMARY KEY,
  org_id      text NOT NULL,
  name        text NOT NULL,
  goal        text NOT NULL,
  process     text NOT NULL,
  assignment  text NOT NULL,
  members     jsonb NOT NULL,
  input       jsonb NOT NULL DEFAULT '{}',
  status      text NOT NULL DEFAULT 'idle',
  result      jsonb,
  error       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  completed_at timestamptz,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crews_org_created ON crews (org_id, created_at);

-- The crew's message log, in the order the crew workflow received the messages (seq), unique so a
-- retried write stores each message once.
CREATE TABLE crew_messages (
  crew_id       uuid NOT NULL REFERENCES crews (id) ON DELETE CASCADE,
  seq           int NOT NULL,
  message_id    text NOT NULL,
  from_agent_id uuid,
  to_agent_id   uuid,
  type          text NOT NULL,
  content       text NOT NULL,
  sent_at       timestamptz NOT NULL,
  PRIMARY KEY (crew_id, seq)
);

-- Member work is an ordinary task of the member agent, tagged with its crew.
ALTER TABLE tasks ADD COLUMN crew_id uuid;
CREATE INDEX tasks_crew ON tasks (crew_id, created_at) WHERE crew_id IS NOT NULL;

-- Down Migration
DROP INDEX tasks_crew;
ALTER TABLE tasks DROP COLUMN crew_id;
DROP TABLE crew_messages;
DROP TABLE crews;
