#!/bin/sh
# Starts one Temporal service with the configuration in this directory (cluster.yaml). The entry point
# of the temporal-* services in docker-compose.yml, and how `npm start -- --cluster` starts each of its
# four processes (temporal/cluster.ts), so both run the same command.
#
#   TEMPORAL_SERVICE=history sh temporal/cluster/start-service.sh
#
# TEMPORAL_SERVICE: frontend, history, matching or worker.
# TEMPORAL_SERVER_BIN: the temporal-server binary (default: temporal-server on PATH, as in temporalio/server).
# TEMPORAL_BROADCAST_ADDRESS: the address other services reach this one on; default: this host's first
#   address (the container's IP in compose). Everything else comes from cluster.yaml's variables.
set -eu

: "${TEMPORAL_SERVICE:?set TEMPORAL_SERVICE to frontend, history, matching or worker}"
if [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
  # shellcheck disable=SC2046 # split into words on purpose: the first address wins
  set -- $(hostname -i)
  TEMPORAL_BROADCAST_ADDRESS="$1"
  export TEMPORAL_BROADCAST_ADDRESS
fi

dir="$(cd "$(dirname "$0")" && pwd)"
# --config is relative to --root; the server reads <config>/cluster.yaml (--env cluster).
exec "${TEMPORAL_SERVER_BIN:-temporal-server}" --root "$(dirname "$dir")" --config "$(basename "$dir")" \
  --env cluster --allow-no-auth start --service "$TEMPORAL_SERVICE"
