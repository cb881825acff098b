-- Up Migration

-- A task submitted with a route instead of an agent id: `route` holds {capabilities, strategy} on the
-- original task, `route_status` its outcome across attempts (routing, completed, failed, cancelled).
-- A retry or reassignment is a new task row pointing at the original (`routed_from`), numbered `attempt`.
ALTER TABLE tasks
  ADD COLUMN route jsonb,
  ADD COLUMN route_status text CHECK (route_status IN ('routing', 'completed', 'failed', 'cancelled')),
  ADD COLUMN routed_from uuid,
  ADD COLUMN attempt int NOT NULL DEFAULT 1;
CREATE INDEX tasks_routed_from ON tasks (routed_from, attempt) WHERE routed_from IS NOT NULL;

-- Round-robin turns, one counter per organisation and set of required capabilities (sorted, comma-joined).
CREATE TABLE route_turns (
  org_id         text NOT NULL,
  capability_key text NOT NULL,
  turn           bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (org_id, capability_key)
);

-- Down Migration
DROP TABLE route_turns;
DROP INDEX tasks_routed_from;
ALTER TABLE tasks DROP COLUMN attempt, DROP COLUMN routed_from, DROP COLUMN route_status, DROP COLUMN route;
