-- Up Migration

-- The OpenTelemetry trace a task was submitted in (32 hex digits): its spans, from the API request to the
-- provider calls, are found under this id in the trace backend. Null when tracing was off.
ALTER TABLE tasks ADD COLUMN trace_id text CHECK (trace_id ~ '^[0-9a-f]{32}$');

-- Down Migration
ALTER TABLE tasks DROP COLUMN trace_id;
