#!/usr/bin/env bash
# Cold start of every function's release bootstrap (built by cargo lambda, as `sam build` does),
# beside a bare lambda_runtime echo, against a local Lambda Runtime API stub that serves one
# event; the functions' DynamoDB is DynamoDB Local. Prints the table and records it in
# bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Two builds: `--bin` would narrow the first to that one binary.
scripts/lambda-build.sh -p authorizer -p connect -p disconnect -p default -p sender
scripts/lambda-build.sh -p jobcast-bench --bin lambda-hello
cargo build --quiet --release --locked -p jobcast-bench --bin cold-start
target_dir="$(scripts/target-dir.sh)"

read -r dynamodb_pid dynamodb_endpoint < <(scripts/dynamodb-local.sh)
trap 'kill "$dynamodb_pid" 2>/dev/null || true' EXIT

out="$("$target_dir/release/cold-start" --lambda-dir "$target_dir/lambda" --dynamodb-endpoint "$dynamodb_endpoint" "$@")"
echo "$out"
mkdir -p bench/results
{
  echo "## Cold start (bench/cold-start.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)); 20 starts per function after one"
  echo "unmeasured start. Each bootstrap is the stripped release binary cargo lambda builds for SAM, started"
  echo "with Lambda's environment against a local stub of the Runtime API that serves one event. \"init\" is"
  echo "process start to the runtime's first \`next\` call: settings, tracing, the AWS SDK configuration and"
  echo "clients, all built before the first event. \"First answer\" adds the first invocation: the event from"
  echo "\`events/\`, with its DynamoDB calls to DynamoDB Local (the authorizer and the baseline make none)."
  echo
  echo "$out"
} > bench/results/cold-start.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
