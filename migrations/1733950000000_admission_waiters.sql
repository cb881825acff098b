-- Up Migration
-- Workflows sleeping on a durable timer until a step slot or token budget frees: whoever frees one
-- (a step releasing its slot, a call settling below its estimate) signals the next of them, so a long wait
-- costs a few events per wake-up rather than one round every few seconds.
CREATE TABLE admission_waiters (
  workflow_id  text NOT NULL,
  -- 'budget', or the step slot pool ('step:<task queue>', as in slot_leases)
  kind         text NOT NULL,
  priority     int NOT NULL DEFAULT 0,
  since        timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (workflow_id, kind)
);
CREATE INDEX admission_waiters_next ON admission_waiters (kind, priority DESC, since);

-- Down Migration
DROP TABLE admission_waiters;
