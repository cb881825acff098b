-- Up Migration

-- The statuses and enums a row may hold, as the contract lists them (contract/definitions.ts). A value
-- outside the list is a bug, refused at the write instead of surfacing in a listing. test/vocabulary.test.ts
-- checks that these lists and the contract's arrays agree.
ALTER TABLE agents ADD CONSTRAINT agents_status_check
  CHECK (status IN ('IDLE', 'RUNNING', 'PAUSED', 'ERROR', 'ARCHIVED'));
ALTER TABLE agents ADD CONSTRAINT agents_autonomy_check
  CHECK (autonomy IN ('manual', 'copilot', 'autopilot'));
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
  CHECK (status IN ('queued', 'planning', 'awaiting_approval', 'running', 'waiting_for_budget', 'completed', 'failed', 'cancelled'));
ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
  CHECK (status IN ('pending', 'approved', 'rejected', 'expired'));
ALTER TABLE crews ADD CONSTRAINT crews_status_check
  CHECK (status IN ('idle', 'planning', 'running', 'completed', 'failed', 'stopped'));
ALTER TABLE crews ADD CONSTRAINT crews_process_check
  CHECK (process IN ('sequential', 'parallel', 'hierarchical', 'consensus'));
ALTER TABLE crews ADD CONSTRAINT crews_assignment_check
  CHECK (assignment IN ('capability', 'least-loaded', 'round-robin'));
ALTER TABLE meta_runs ADD CONSTRAINT meta_runs_status_check
  CHECK (status IN ('planning', 'creating_team', 'running', 'completed', 'failed'));

-- Down Migration
ALTER TABLE agents DROP CONSTRAINT agents_status_check;
ALTER TABLE agents DROP CONSTRAINT agents_autonomy_check;
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE approvals DROP CONSTRAINT approvals_status_check;
ALTER TABLE crews DROP CONSTRAINT crews_status_check;
ALTER TABLE crews DROP CONSTRAINT crews_process_check;
ALTER TABLE crews DROP CONSTRAINT crews_assignment_check;
ALTER TABLE meta_runs DROP CONSTRAINT meta_runs_status_check;
