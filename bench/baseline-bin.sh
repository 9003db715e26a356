#!/usr/bin/env bash
# Prints the path of jobcast-local (release) built from commit $1, building it the first time
# in a git worktree with a target directory of its own: cargo fingerprints workspace sources by
# their paths relative to the workspace, so a baseline built into the shared one would pass for
# this tree's build.
set -euo pipefail
cd "$(dirname "$0")/.."

commit="$1"
target_dir="$(scripts/target-dir.sh)"
bin="$target_dir/release/jobcast-local-$commit"
if [ ! -x "$bin" ]; then
  worktree="$(mktemp -d)/jobcast-baseline"
  git worktree add --detach --quiet "$worktree" "$commit"
  (cd "$worktree" && CARGO_TARGET_DIR="$target_dir/baseline" cargo build --quiet --release -p jobcast-local) >&2
  cp "$target_dir/baseline/release/jobcast-local" "$bin"
  git worktree remove --force "$worktree"
fi
echo "$bin"
