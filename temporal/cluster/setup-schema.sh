#!/bin/sh
# Creates or upgrades Temporal's two PostgreSQL databases (persistence and visibility) to the schema
# shipped with the server version: create-database, setup-schema -v 0.0, update-schema. Every step is
# idempotent, so this runs before every start; a database at the newest version is left as it is.
#
# Used by `npm start -- --cluster` (temporal/cluster.ts, with the pinned temporal-sql-tool) and by the
# temporal-schema job in docker-compose.yml (temporalio/admin-tools). The connection comes from the same
# TEMPORAL_DB_* variables that temporal/cluster/cluster.yaml reads:
#   TEMPORAL_DB_HOST (127.0.0.1) TEMPORAL_DB_PORT (5432) TEMPORAL_DB_USER (postgres) TEMPORAL_DB_PASSWORD
#   TEMPORAL_DB_NAME (temporal) TEMPORAL_VISIBILITY_DB_NAME (temporal_visibility) TEMPORAL_DB_TLS (false)
# plus SQL_TOOL (temporal-sql-tool) and SCHEMA_DIR (/etc/temporal/schema/postgresql/v12, as in admin-tools).
# The user needs CREATEDB, or create both databases beforehand.
set -eu

SQL_TOOL="${SQL_TOOL:-temporal-sql-tool}"
SCHEMA_DIR="${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"

# temporal-sql-tool reads these; the password stays off the command line.
export SQL_PLUGIN=postgres12
export SQL_HOST="${TEMPORAL_DB_HOST:-127.0.0.1}"
export SQL_PORT="${TEMPORAL_DB_PORT:-5432}"
export SQL_USER="${TEMPORAL_DB_USER:-postgres}"
export SQL_PASSWORD="${TEMPORAL_DB_PASSWORD:-}"
export SQL_TLS="${TEMPORAL_DB_TLS:-false}"

setup() {
  database="$1"
  versioned="$SCHEMA_DIR/$2/versioned"
  [ -d "$versioned" ] || { echo "ERROR: no schema directory $versioned" >&2; exit 1; }
  echo "Database $database ($2 schema) on $SQL_HOST:$SQL_PORT"
  "$SQL_TOOL" --db "$database" create-database
  "$SQL_TOOL" --db "$database" setup-schema -v 0.0
  "$SQL_TOOL" --db "$database" update-schema -d "$versioned"
}

setup "${TEMPORAL_DB_NAME:-temporal}" temporal
setup "${TEMPORAL_VISIBILITY_DB_NAME:-temporal_visibility}" visibility
echo "Temporal schemas ready"
