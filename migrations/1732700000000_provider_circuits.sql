-- Up Migration

-- Circuit breaker state of each LLM provider as each worker process sees it, for /health and operators.
CREATE TABLE provider_circuits (
  worker     text NOT NULL,
  provider   text NOT NULL,
  state      text NOT NULL,
  last_error text,
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (worker, provider)
);

-- Down Migration
DROP TABLE provider_circuits;
