#!/bin/sh
# Creates the Temporal namespace unless it exists: a self-hosted server creates none by itself.
# Used by the temporal-admin-tools job in docker-compose.yml before temporal/register-search-attributes.sh
# (`npm start -- --cluster` does the same through the API in temporal/cluster.ts). Needs the `temporal` CLI.
#   TEMPORAL_ADDRESS (temporal-frontend:7233) TEMPORAL_NAMESPACE (default) TEMPORAL_NAMESPACE_RETENTION (72h)
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal-frontend:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-72h}"
ATTEMPTS="${WAIT_ATTEMPTS:-90}"

i=1
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  [ "$i" -lt "$ATTEMPTS" ] || { echo "Gave up waiting for the Temporal frontend at $ADDRESS" >&2; exit 1; }
  echo "Waiting for the Temporal frontend at $ADDRESS ($i/$ATTEMPTS)..."
  i=$((i + 1))
  sleep 2
done

if temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "Namespace '$NAMESPACE' exists"
else
  # A concurrent run may create it first; describe again decides.
  temporal operator namespace create --address "$ADDRESS" --namespace "$NAMESPACE" --retention "$RETENTION" ||
    temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null
  echo "Namespace '$NAMESPACE' created (retention $RETENTION)"
fi

# The services learn of a new namespace when they next refresh their namespace cache (a few seconds);
# until then calls such as listing its search attributes answer "not found".
i=1
until temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
  [ "$i" -lt "$ATTEMPTS" ] || { echo "Gave up waiting for namespace '$NAMESPACE' to be served" >&2; exit 1; }
  i=$((i + 1))
  sleep 1
done
echo "Namespace '$NAMESPACE' is served"
