#!/usr/bin/env bash
# DynamoDB reads per fan-out, jobcast beside the Scan baseline, on DynamoDB Local. Prints the
# table and records it in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r pid JOBCAST_DYNAMODB_ENDPOINT < <(scripts/dynamodb-local.sh)
trap 'kill "$pid" 2>/dev/null || true' EXIT
export JOBCAST_DYNAMODB_ENDPOINT
out="$(cargo run --quiet -p jobcast-bench --bin store-reads)"
mkdir -p bench/results
echo "$out"
{
  echo "## DynamoDB reads per fan-out (bench/store-reads.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on DynamoDB Local (the official engine); read capacity as DynamoDB Local"
  echo "reports it. Each subscriber of the measured job also holds 3 other jobs' subscriptions, so the"
  echo "table holds 4 subscription items and 1 connection item per subscriber. The Query's last request"
  echo "is DynamoDB's empty page when the count is a multiple of the page size. Item sizes: the items"
  echo "as the store wrote them, read back and sized by DynamoDB's rules (bench/src/store_reads.rs);"
  echo "an index copy adds DynamoDB's 100 bytes of overhead."
  echo
  echo "$out"
} > bench/results/store-reads.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
