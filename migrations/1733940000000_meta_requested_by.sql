-- Up Migration

-- A meta run started by an agent (the meta_orchestrate tool) names it and its task: the combined result goes
-- back to that agent as a response message. `keep_agents` false: the team is archived when the run ends.
ALTER TABLE meta_runs
  ADD COLUMN requested_by_agent_id uuid,
  ADD COLUMN requested_by_task_id uuid,
  ADD COLUMN keep_agents boolean NOT NULL DEFAULT true;

-- Down Migration
ALTER TABLE meta_runs DROP COLUMN keep_agents, DROP COLUMN requested_by_task_id, DROP COLUMN requested_by_agent_id;
