#!/usr/bin/env bash
# The test command's own time: a fresh clone of a commit (HEAD by default) runs `.ci/run` with
# CI=true and a cold target directory of its own, as CI does, each output line stamped with
# the time; the steps' durations go to bench/results/test-command.md. Takes as long as CI
# (20-30 minutes on 2 cores) and both cores.
#   bench/test-command.sh [COMMIT]
#   bench/test-command.sh --from-log LOG COMMIT   # the table from a stamped log already made
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

if [ "${1:-}" = "--from-log" ]; then
  log="$2"
  commit="$3"
else
  commit="$(git rev-parse --short "${1:-HEAD}")"
  work="$(mktemp -d)"
  git clone -q "$repo" "$work/jobcast"
  git -C "$work/jobcast" checkout -q "$commit"
  log="$work/log"
  (cd "$work/jobcast" && CI=true CARGO_TARGET_DIR="$work/target" bash .ci/run 2>&1 |
    while IFS= read -r line; do printf '%s %s\n' "$(date +%s)" "$line"; done > "$log"
    echo "$(date +%s) ==> end (rc=${PIPESTATUS[0]})" >> "$log")
fi

mkdir -p bench/results
{
  echo "## The test command (bench/test-command.sh)"
  echo
  first="$(awk 'NR==1 { print $1 }' "$log")"
  started=""
  if [ "$first" -gt 1000000000 ] 2>/dev/null; then
    started="$(date -u -d "@$first" +%Y-%m-%dT%H:%MZ)"
  fi
  echo "Run ${started:-on $(date -u +%Y-%m-%d)} on $(nproc) cores ($(uname -m)): a fresh clone of $commit, \`.ci/run\`"
  echo "with CI=true and an empty target directory (the cargo, npm and pip caches warm, as on CI)."
  echo
  echo "| step | minutes |"
  echo "|---|---:|"
  awk '/ ==> /{ t=$1; $1=""; sub(/^ ==> /,""); if (name!="") printf "| %s | %.1f |\n", name, (t-start)/60; if (first=="") first=t; name=$0; start=t } END { printf "| **total** | **%.1f** |\n", (start-first)/60 }' "$log"
} > bench/results/test-command.md
bench/collect.sh
cat bench/results/test-command.md
