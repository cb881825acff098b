-- Up Migration

-- A task's output check (docs/agents.md "Checked output"): {expectedOutput?, acceptanceCriteria?, maxAttempts}.
-- While the answer is checked the task is `validating`.
ALTER TABLE tasks ADD COLUMN validation jsonb;
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
  CHECK (status IN ('queued', 'planning', 'awaiting_approval', 'running', 'waiting_for_budget', 'validating', 'completed', 'failed', 'cancelled'));

-- A model call is a step's (`step`) or the review of its answer (`review`): both are counted, once each.
ALTER TABLE llm_calls ADD COLUMN purpose text NOT NULL DEFAULT 'step' CHECK (purpose IN ('step', 'review'));
ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_pkey;
ALTER TABLE llm_calls ADD PRIMARY KEY (task_id, step, purpose);

-- Down Migration
DELETE FROM llm_calls WHERE purpose <> 'step';
ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_pkey;
ALTER TABLE llm_calls ADD PRIMARY KEY (task_id, step);
ALTER TABLE llm_calls DROP COLUMN purpose;
UPDATE tasks SET status = 'running' WHERE status = 'validating';
ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
  CHECK (status IN ('queued', 'planning', 'awaiting_approval', 'running', 'waiting_for_budget', 'completed', 'failed', 'cancelled'));
ALTER TABLE tasks DROP COLUMN validation;
