-- Up Migration

-- Meta supervisor runs: an objective the supervisor turns into a team of new agents and a hierarchical
-- crew of them. The row is written at creation; from then on only the MetaSupervisorWorkflow's activities
-- change it (team, plan, crew, status, result).
CREATE TABLE meta_runs (
  id           uuid PRIMARY KEY,
  org_id       text NOT NULL,
  name         text NOT NULL,
  objective    text NOT NULL,
  max_agents   int NOT NULL,
  status       text NOT NULL DEFAULT 'planning',
  -- [{agentId, name, role, objective, capabilities}], once the team is created.
  team         jsonb NOT NULL DEFAULT '[]',
  -- The sub-task DAG handed to the crew: [{id, title, capabilities, dependsOn}].
  plan         jsonb NOT NULL DEFAULT '[]',
  crew_id      uuid,
  result       jsonb,
  error        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meta_runs_org_created ON meta_runs (org_id, created_at);

-- Down Migration
DROP TABLE meta_runs;
