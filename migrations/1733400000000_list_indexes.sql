-- Up Migration

-- The list endpoints page through an org's rows in creation order (GET /agents oldest first,
-- GET /tasks newest first, ties by id). These indexes return a page in that order without sorting
-- every row of the org on each request.
CREATE INDEX agents_org_created ON agents (org_id, created_at, id);
CREATE INDEX tasks_org_created ON tasks (org_id, created_at DESC, id);

-- Down Migration
DROP INDEX tasks_org_created;
DROP INDEX agents_org_created;
