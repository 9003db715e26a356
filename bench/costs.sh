#!/usr/bin/env bash
# The cost table: DynamoDB requests and capacity units per operation, counted on the wire
# against DynamoDB Local, beside each operation's ceiling; then `jobcast cost` for one traffic
# shape. Prints both and records them in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r pid JOBCAST_DYNAMODB_ENDPOINT < <(scripts/dynamodb-local.sh)
trap 'kill "$pid" 2>/dev/null || true' EXIT
export JOBCAST_DYNAMODB_ENDPOINT
# Two builds: `--bin costs` would narrow the CLI's build to a binary it does not have.
cargo build --quiet --locked -p jobcast-bench --bin costs
cargo build --quiet --locked -p jobcast-cli
table="$(target/debug/costs "$@")"
shape=(--connections 10000 --subscriptions-per-connection 50 --events 10000000 --subscribers-per-event 5)
bill="$(target/debug/jobcast cost "${shape[@]}")"
echo "$table"
echo "$bill"
mkdir -p bench/results
{
  echo "## What each operation costs the store (bench/costs.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty), on DynamoDB Local. Every request between the store"
  echo "and DynamoDB Local passes a counting tap (tests/support/dynamo_tap.rs) that asks for"
  echo "\`ReturnConsumedCapacity: TOTAL\` and adds up what DynamoDB Local reports; a refused conditional"
  echo "write counts one write unit, as DynamoDB bills it. Client operations go through jobcast-local"
  echo "with real WebSocket clients; events go through the sender's handler to subscribers put straight"
  echo "into the store. The ceilings are \`jobcast::cost\`; \`tests/costs.rs\` fails when one is exceeded."
  echo
  echo "$table"
  echo
  echo "\`jobcast cost ${shape[*]}\`:"
  echo
  echo '```text'
  echo "$bill"
  echo '```'
} > bench/results/costs.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
