-- Up Migration

-- Messages between agents are typed (status, request, response, handoff), may answer another message
-- (reply_to), may have been published to a topic, and are read once the recipient's model has seen them.
ALTER TABLE agent_messages
  ADD COLUMN type text NOT NULL DEFAULT 'status' CHECK (type IN ('status', 'request', 'response', 'handoff')),
  ADD COLUMN reply_to uuid,
  ADD COLUMN topic text,
  ADD COLUMN status text NOT NULL DEFAULT 'delivered' CHECK (status IN ('delivered', 'read')),
  ADD COLUMN read_at timestamptz;
CREATE INDEX agent_messages_from ON agent_messages (from_agent_id, created_at DESC, id);
CREATE INDEX agent_messages_to_page ON agent_messages (to_agent_id, created_at DESC, id);

-- Topic subscriptions: publish delivers one message to every subscriber of the topic in the organisation.
CREATE TABLE agent_topic_subscriptions (
  org_id     text NOT NULL,
  topic      text NOT NULL,
  agent_id   uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, topic, agent_id)
);
CREATE INDEX agent_topic_subscriptions_agent ON agent_topic_subscriptions (agent_id);

-- Down Migration
DROP TABLE agent_topic_subscriptions;
DROP INDEX agent_messages_to_page;
DROP INDEX agent_messages_from;
ALTER TABLE agent_messages DROP COLUMN read_at, DROP COLUMN status, DROP COLUMN topic, DROP COLUMN reply_to, DROP COLUMN type;
