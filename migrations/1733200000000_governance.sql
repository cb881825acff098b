-- Resource governance: token budgets, concurrency slots, resource buckets, AI priority scores.
-- Every check is one transaction under an advisory lock, so concurrent workers never race.

-- One row per LLM call's reservation: the estimate until the call settles, then the real usage.
-- Budgets are sliding windows over reserved_at.
CREATE TABLE token_ledger (
  id           text PRIMARY KEY,
  org_id       text NOT NULL,
  agent_id     text NOT NULL,
  task_id      text,
  purpose      text NOT NULL,
  estimate     int NOT NULL,
  tokens       int NOT NULL,
  reserved_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  settled_at   timestamptz
);
CREATE INDEX token_ledger_reserved ON token_ledger (reserved_at);
CREATE INDEX token_ledger_org_reserved ON token_ledger (org_id, reserved_at);
CREATE INDEX token_ledger_agent_reserved ON token_ledger (agent_id, reserved_at);

-- Slot leases (kind 'agent': agents RUNNING; kind 'step': LLM/tool steps in flight). Rows are kept
-- after release so limits can be audited from recorded start and end times.
CREATE TABLE slot_leases (
  id           bigserial PRIMARY KEY,
  kind         text NOT NULL,
  holder       text NOT NULL,
  priority     int NOT NULL,
  acquired_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at   timestamptz NOT NULL,
  released_at  timestamptz
);
CREATE UNIQUE INDEX slot_leases_open ON slot_leases (kind, holder) WHERE released_at IS NULL;
CREATE INDEX slot_leases_kind_acquired ON slot_leases (kind, acquired_at);

-- Who is waiting for a slot, so a freed slot goes to the highest priority (then the longest waiting).
CREATE TABLE slot_waiters (
  kind      text NOT NULL,
  holder    text NOT NULL,
  priority  int NOT NULL,
  since     timestamptz NOT NULL DEFAULT clock_timestamp(),
  seen_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (kind, holder)
);

-- Named shared resources (an external API, a database) as token buckets.
CREATE TABLE resource_buckets (
  name               text PRIMARY KEY,
  capacity           double precision NOT NULL CHECK (capacity > 0),
  refill_per_second  double precision NOT NULL CHECK (refill_per_second > 0),
  tokens             double precision NOT NULL,
  updated_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
  granted_total      bigint NOT NULL DEFAULT 0,
  waits_total        bigint NOT NULL DEFAULT 0
);

-- AI-scored priorities: a cache keyed by the task's key concepts, and one row per scoring.
CREATE TABLE priority_cache (
  agent_id      text NOT NULL,
  concept_hash  text NOT NULL,
  concepts      text NOT NULL,
  score         int NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, concept_hash)
);
CREATE TABLE priority_scores (
  task_id       text PRIMARY KEY,
  agent_id      text NOT NULL,
  concept_hash  text NOT NULL,
  score         int NOT NULL,
  source        text NOT NULL CHECK (source IN ('model', 'cache', 'fallback')),
  duration_ms   int NOT NULL,
  error         text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX priority_scores_created ON priority_scores (created_at);

ALTER TABLE agents ADD COLUMN token_budget_per_minute int;
ALTER TABLE tasks ADD COLUMN priority_score int;
