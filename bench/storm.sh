#!/usr/bin/env bash
# The reconnect storm: 5,000 WebSocket clients subscribe to one job at once (last_seq 0) against
# jobcast-local under --throttle-rps 10000 (AWS's account quota); those that hear nothing in 3 s
# subscribe again; then the pipeline sends one event (again, as jobcast::publish does, while the
# sender reports subscribers it may still reach), and the run counts the subscribed clients that
# never receive it. The baseline is jobcast-local built from the commit before the fix
# (22263f5, where issue 13 measured 869 of 5,000 missing), in a git worktree. Records the table
# in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline_commit=22263f5
ulimit -n "$(ulimit -Hn)"
target_dir="$(scripts/target-dir.sh)"

baseline_bin="$(bench/baseline-bin.sh "$baseline_commit")"
# Two commands: `--bin storm` would leave jobcast-local's own binary out.
cargo build --quiet --release --locked -p jobcast-local
cargo build --quiet --release --locked -p jobcast-bench --bin storm

out="$("$target_dir/release/storm" --clients "${CLIENTS:-5000}" \
  --baseline-bin "$baseline_bin" \
  --local-bin "$target_dir/release/jobcast-local")"
echo "$out"
mkdir -p bench/results
{
  echo "## Reconnect storm (bench/storm.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)). jobcast-local (release, in-memory store) under"
  echo "\`--throttle-rps 10000\` (burst 5,000); ${CLIENTS:-5000} real WebSocket clients on the same machine send"
  echo "\`subscribe {last_seq: 0}\` at once (each is answered with \`subscribed\` and a replay of the job's 5"
  echo "events); a client that hears nothing for 3 s subscribes again, and one whose connection the server"
  echo "closes reconnects and resumes from its last seq. Once all have heard \`subscribed\`"
  echo "(or 20 s passed) and 2 s more, the pipeline sends event 6 through the sender, and sends it again"
  echo "(same event id; after 0.25, 0.5, 1, 2 s) while the report says subscribers may still be reached, as"
  echo "\`jobcast::publish\` does. The baseline is"
  echo "the same storm against jobcast-local built from commit $baseline_commit, before the fix."
  echo
  echo "$out"
} > bench/results/storm.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
