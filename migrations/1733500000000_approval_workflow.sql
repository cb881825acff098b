-- Up Migration

-- The workflow waiting for a decision: an agent runs its goals inline in its own workflow, a crew's
-- member work runs in the task's workflow. Requests opened before this column name no workflow; their
-- task runs in `task-<taskId>`.
ALTER TABLE approvals ADD COLUMN workflow_id text;

-- Down Migration
ALTER TABLE approvals DROP COLUMN workflow_id;
