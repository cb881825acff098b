-- Up Migration

-- Chat history. A turn (user message, assistant answer) is written in one transaction when the
-- assistant has finished, so a session never holds half an answer.
CREATE TABLE chat_messages (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      text NOT NULL,
  session_id  uuid NOT NULL,
  turn_id     uuid NOT NULL,
  seq         int NOT NULL,
  role        text NOT NULL,
  content     text NOT NULL,
  agent_id    uuid,
  agent_type  text,
  metadata    jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (turn_id, seq)
);
CREATE INDEX chat_messages_session ON chat_messages (org_id, session_id, created_at, seq);

-- Down Migration
DROP TABLE chat_messages;
