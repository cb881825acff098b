#!/bin/sh
# Registers the orchestrator's custom search attributes (all Keyword) on one Temporal namespace.
#
# Idempotent: an attribute that already exists as Keyword is skipped. One that exists with another
# type is an error, because Temporal cannot change the type of a search attribute in place.
# Keep the list in sync with contract/search-attributes.ts.
#
# Needs only the `temporal` CLI and a POSIX shell (awk, sleep). Used once by the
# `temporal-admin-tools` service in docker-compose.yml; works against any self-hosted cluster:
#   TEMPORAL_ADDRESS=temporal.example:7233 TEMPORAL_NAMESPACE=agents sh temporal/register-search-attributes.sh
# Other TEMPORAL_* variables the CLI understands (TEMPORAL_TLS_*, TEMPORAL_API_KEY) pass through.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
ATTEMPTS="${WAIT_ATTEMPTS:-90}"
SLEEP_SECONDS="${WAIT_SLEEP_SECONDS:-2}"
ATTRIBUTES="AgentId AgentName AgentStatus AgentType OrgId CrewId TaskId"

# retry <description> <command...>: runs the command until it succeeds, at most ATTEMPTS times.
retry() {
  what="$1"
  shift
  i=1
  while ! out="$("$@" 2>&1)"; do
    if [ "$i" -ge "$ATTEMPTS" ]; then
      echo "Gave up waiting for $what after $ATTEMPTS attempts. Last output:" >&2
      echo "$out" >&2
      return 1
    fi
    echo "Waiting for $what ($i/$ATTEMPTS)..."
    i=$((i + 1))
    sleep "$SLEEP_SECONDS"
  done
}

# Prints "Name INDEXED_VALUE_TYPE_..." for every custom attribute of the namespace.
# Protobuf JSON omits an empty customAttributes map, so no output means none exist yet.
list_custom() {
  json="$(temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" --output json)" || return 1
  printf '%s\n' "$json" | awk '
    /"customAttributes"[[:space:]]*:[[:space:]]*\{[[:space:]]*\}/ { next }
    /"customAttributes"/ { inside = 1; next }
    inside && /\}/ { inside = 0 }
    inside { gsub(/[",]/, ""); sub(/:/, ""); print $1, $2 }'
}

type_of() {
  printf '%s\n' "$1" | awk -v n="$2" '$1 == n { print $2 }'
}

echo "Registering search attributes on namespace '$NAMESPACE' at $ADDRESS"
retry "the Temporal frontend at $ADDRESS" temporal operator cluster health --address "$ADDRESS"
# temporalio/auto-setup creates the default namespace in the background after the server is up.
retry "namespace '$NAMESPACE'" temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE"

existing="$(list_custom)"
missing=""
for name in $ATTRIBUTES; do
  type="$(type_of "$existing" "$name")"
  case "$type" in
    "") missing="$missing $name" ;;
    INDEXED_VALUE_TYPE_KEYWORD) echo "  $name: already registered (Keyword), skipped" ;;
    *)
      echo "ERROR: $name exists with type $type, expected Keyword. Remove it or use another namespace." >&2
      exit 1
      ;;
  esac
done

for name in $missing; do
  echo "  $name: creating (Keyword)"
  # A failure here (e.g. a concurrent run created it first) is judged by the check below.
  temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" \
    --name "$name" --type Keyword || echo "  $name: create failed, checking whether it exists anyway" >&2
done

# The new attributes can take a moment to show up; wait until all of them are listed as Keyword.
all_present() {
  current="$(list_custom)" || return 1
  for name in $ATTRIBUTES; do
    [ "$(type_of "$current" "$name")" = INDEXED_VALUE_TYPE_KEYWORD ] || { echo "$name not listed yet"; return 1; }
  done
}
retry "all search attributes to be listed" all_present
echo "Search attributes ready on '$NAMESPACE': $ATTRIBUTES"
