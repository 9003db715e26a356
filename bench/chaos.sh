#!/usr/bin/env bash
# The long chaos check: 1,000 seeded schedules on the in-memory store and 100 on DynamoDB Local
# (started here, stopped by PID), each with pipelines publishing directly and through a simulated
# SQS that redelivers, clients that drop and resume, and faults in posts and store calls. Records
# the table in bench/RESULTS.md. `bench/chaos.sh --seed N` replays one schedule's plan in memory.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release --locked -p jobcast-bench --bin chaos
if [ $# -gt 0 ]; then
  exec target/release/chaos "$@"
fi
read -r dynamodb_pid endpoint < <(scripts/dynamodb-local.sh)
trap 'kill "$dynamodb_pid" 2>/dev/null || true' EXIT
memory="$(target/release/chaos --schedules 1000 --first-seed 1)"
dynamodb="$(target/release/chaos --schedules 100 --first-seed 100001 --dynamodb "$endpoint")"
mkdir -p bench/results
{
  echo "## Chaos check (bench/chaos.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)). Each schedule (tests/support/chaos.rs)"
  echo "draws from its seed 2–4 jobs of 8–24 events (even jobs invoke the sender and resend while its"
  echo "report says someone was missed; odd jobs go through a simulated SQS FIFO queue that redelivers"
  echo "what is handed back and, up to 20 % of the time, a whole batch), 30–90 clients that drop up to"
  echo "3 % of the time and resume from their last seq, posts failing 0–15 % with 429, 0–5 % with 500"
  echo "and 0–5 % with a 500 after delivery, store calls failing 0–5 % (throttled or unavailable, before"
  echo "or after their work), and in 30 % of schedules a client cancelling a job half-way. A violation"
  echo "is a live subscription still behind its job once all is quiet, a resume from another seq than"
  echo "asked, or a pipeline or client that never finishes. \"Held\" counts events that arrived ahead of"
  echo "an earlier seq still on its way (a cancel racing the pipeline), which the clients hold until it"
  echo "comes."
  echo
  echo "| store | schedules | events | event frames delivered | duplicates dropped | held for an earlier seq | subscribes | told (\`recovered: false\`) | violations | time |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "$memory"
  echo "$dynamodb"
} > bench/results/chaos.md
bench/collect.sh
cat bench/results/chaos.md
echo "recorded in bench/RESULTS.md"
