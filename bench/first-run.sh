#!/usr/bin/env bash
# The first run: the README's first command on a cold build, timed until the demo page answers.
#
# The command is read from the README itself (the first `sh` block under "## The two
# commands"), so the bench times what a newcomer types. Each run starts it in an empty target
# directory of its own, on a free port (JOBCAST_PORT), and polls http://127.0.0.1:PORT/ until
# it serves the demo page; the whole process group is then stopped. The baseline is the same,
# with the README and the tree of BASELINE (default 9cf78e1, before issue 16) in a git
# worktree; and this tree once more with its dependencies at opt-level 1, as the `dev`
# profile had them before. Crates are fetched before the clock starts (`cargo fetch`): a cold build, not a
# cold download. Runs alternate, this tree first.
#
#   bench/first-run.sh [--runs N] [--no-baseline] [--dry-run]
#
# --dry-run prints the two commands it would time, and fails unless each is a `cargo run` of
# jobcast-local (the smoke run in the test command: a cold build takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

baseline="${BASELINE:-9cf78e1}"
runs=1
with_baseline=true
dry_run=false
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --no-baseline) with_baseline=false; shift ;;
    --dry-run) dry_run=true; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# The first line of the first ```sh block after "## The two commands" in README text on stdin.
first_command() {
  awk '/^## The two commands/ {section = 1}
       section && /^```sh/ {block = 1; next}
       block {print; exit}'
}

head_command="$(first_command < README.md)"
if git cat-file -e "$baseline:README.md" 2>/dev/null; then
  baseline_command="$(git show "$baseline:README.md" | first_command)"
elif $dry_run; then
  # A shallow clone has no baseline to read; the dry run still checks this tree's command.
  baseline_command="$head_command"
else
  echo "$baseline is not in this clone (git fetch --unshallow)" >&2
  exit 1
fi
for command in "$head_command" "$baseline_command"; do
  case "$command" in
    "cargo run "*"-p jobcast-local"*) ;;
    *) echo "not a cargo run of jobcast-local: '$command'" >&2; exit 1 ;;
  esac
done
if $dry_run; then
  printf 'this tree: %s\nbaseline (%s): %s\n' "$head_command" "$baseline" "$baseline_command"
  exit 0
fi

work="$(mktemp -d)"
cleanup() {
  # A run still going (Ctrl-C): its cargo or server is in a session of its own.
  if [ -f "$work/running" ]; then kill -- "-$(cat "$work/running")" 2>/dev/null || true; fi
  if [ -d "$work/baseline" ]; then git worktree remove --force "$work/baseline" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
if $with_baseline; then
  git worktree add --detach --quiet "$work/baseline" "$baseline"
  (cd "$work/baseline" && cargo fetch --locked --quiet)
fi
cargo fetch --locked --quiet

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Times one cold first run in directory $1 with command $2; prints "BUILD_S TOTAL_S", where
# BUILD_S is cargo's own "Finished … in" figure and TOTAL_S runs to the first demo page.
time_run() {
  local dir="$1" command="$2"
  local target="$work/target" log="$work/log" port
  rm -rf "$target"
  port="$(free_port)"
  local start="$EPOCHREALTIME"
  (cd "$dir" && CARGO_TARGET_DIR="$target" JOBCAST_PORT="$port" exec setsid bash -c "exec $command") \
    > "$log" 2>&1 &
  local pid=$!
  echo "$pid" > "$work/running"
  local total=""
  while kill -0 "$pid" 2>/dev/null; do
    if curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null | grep -q "Start a demo job"; then
      total="$(awk -v now="$EPOCHREALTIME" -v start="$start" 'BEGIN {print now - start}')"
      break
    fi
    sleep 0.2
  done
  kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$work/running"
  if [ -z "$total" ]; then
    echo "the first run in $dir never served the demo page; its output:" >&2
    tail -20 "$log" >&2
    return 1
  fi
  local build
  build="$(grep -o 'Finished .* in .*' "$log" | sed -E 's/.* in //' | tail -1)"
  printf '%s %.1f\n' "${build// /}" "$total"
}

# Stamped before the runs: writing the results below makes the tree dirty.
stamp="Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)), $(rustc --version | cut -d' ' -f1-2)."
# The same command with the dev profile's dependencies at opt-level 1.
opt1_command="cargo run --config 'profile.dev.package.\"*\".opt-level=1' ${head_command#cargo run }"
rows=()
# One timed run as a row of the table; a run that never serves the page stops the bench.
record() {
  local run="$1" tree="$2" dir="$3" command="$4" measured total
  measured="$(time_run "$dir" "$command")" || exit 1
  read -r build total <<< "$measured"
  [ "$tree" = "this tree" ] && total="**$total s**" || total="$total s"
  rows+=("| $run | $tree | \`$command\` | $build | $total |")
  echo "${rows[-1]}"
}
for run in $(seq 1 "$runs"); do
  record "$run" "this tree" . "$head_command"
  record "$run" "this tree, dependencies at opt-level 1" . "$opt1_command"
  if $with_baseline; then
    record "$run" "baseline ($baseline)" "$work/baseline" "$baseline_command"
  fi
done

mkdir -p bench/results
{
  echo "## First run (bench/first-run.sh)"
  echo
  echo "$stamp"
  echo "The README's first command, as the README writes it, in an empty target directory (crates"
  echo "already fetched), until http://127.0.0.1:PORT/ serves the demo page. \"Build\" is cargo's own"
  echo "figure; \"to the demo page\" runs from typing the command to the page. Goal: 2 minutes."
  echo
  echo "| run | tree | command | build | to the demo page |"
  echo "|---|---|---|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > bench/results/first-run.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
