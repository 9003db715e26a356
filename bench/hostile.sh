#!/usr/bin/env bash
# Hostile clients: 500 ordinary subscribers (one user's connections) follow a job while a
# pipeline publishes 100 events at 20 a second, quiet and then under a flood from 500 attacker
# connections of 2 other users (junk, binary and 8 KB frames, refused actions on the readers'
# job, pings, and subscribes with last_seq 0 to their own job of 1,200 logged events; an attacker
# whose connection is closed connects again at once). Runs on the embedded store against this
# build and against a baseline built from 574019e (before issue 14), then on DynamoDB Local
# (started here, stopped by PID) with 25 attackers and every DynamoDB request counted on the
# wire. Records the tables in bench/RESULTS.md. `bench/hostile.sh --smoke` runs a small flood
# against a debug build and fails if a reader missed an event.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="$(scripts/target-dir.sh)"
if [ "${1:-}" = "--smoke" ]; then
  # The test command runs the same smoke flood as bench/tests/smoke.rs.
  # With DynamoDB, as the test command builds it: target/tests/jobcast-local serves its tests too.
  cargo build --quiet --locked --profile tests -p jobcast-local --features dynamodb
  cargo build --quiet --locked --profile tests -p jobcast-bench --bin hostile
  exec "$target_dir/tests/hostile" --readers 20 --attackers 20 --events 20 --check \
    --local-bin "$target_dir/tests/jobcast-local"
fi

baseline_commit=574019e
ulimit -n "$(ulimit -Hn)"
baseline_bin="$(bench/baseline-bin.sh "$baseline_commit")"
# Two commands: `--bin hostile` would leave jobcast-local's own binary out.
cargo build --quiet --release --locked -p jobcast-local --features dynamodb
cargo build --quiet --release --locked -p jobcast-bench --bin hostile
bench="$target_dir/release/hostile"
local_bin="$target_dir/release/jobcast-local"

mkdir -p bench/results
out=bench/results/hostile.md
{
  echo "## Hostile clients (bench/hostile.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)),"
  echo "everything on this machine: jobcast-local (release, \`--auth jwt\`), the WebSocket clients and"
  echo "the pipeline, in one benchmark process. 500 readers (one user's connections) follow a job"
  echo "while the pipeline publishes 100 events to it at 20 a second (50,000 deliveries), first quiet,"
  echo "then under a flood: attacker connections of 2 other users, each sending 20 frames a second"
  echo "(junk text, binary frames, 8 KB frames, unknown actions, \`subscribe\`, \`request_status\` and"
  echo "\`cancel_job\` on the readers' job, pings, and \`subscribe {last_seq: 0}\` to their own job of"
  echo "1,200 logged events); an attacker whose connection is closed connects again at once. Latency"
  echo "is from the pipeline's send to the reader's receipt. The baseline is jobcast-local built"
  echo "from $baseline_commit, before issue 14, under the same flood."
  echo
  echo "### Baseline ($baseline_commit), embedded store, 500 attackers"
  echo
  "$bench" --local-bin "$baseline_bin" || echo "(the run failed)"
  echo
  echo "### This build, embedded store, 500 attackers"
  echo
  "$bench" --local-bin "$local_bin" || echo "(the run failed)"
  echo
} > "$out"

read -r dynamodb_pid endpoint < <(scripts/dynamodb-local.sh)
trap 'kill "$dynamodb_pid" 2>/dev/null || true' EXIT
{
  echo "### This build, DynamoDB Local, 25 attackers"
  echo
  echo "DynamoDB Local (one Java process on the same 2 cores) serves a few thousand requests a"
  echo "second, for the pipeline's appends and the flood together; more attackers measure it, not"
  echo "jobcast (at 100, publishing the 100 events took over 2 minutes)."
  echo
  "$bench" --local-bin "$local_bin" --dynamodb "$endpoint" --attackers 25 || echo "(the run failed)"
} >> "$out"
bench/collect.sh
echo "recorded in bench/RESULTS.md"
