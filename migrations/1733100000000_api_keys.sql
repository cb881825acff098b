-- Up Migration

-- API keys. Only a SHA-256 hash of each key is stored (keys are 256-bit random, so a plain hash is
-- enough); the prefix is kept to recognise a key in listings. Every key belongs to one organisation.
CREATE TABLE api_keys (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id      text NOT NULL,
  name        text NOT NULL DEFAULT '',
  prefix      text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at);

-- Down Migration
DROP TABLE api_keys;
