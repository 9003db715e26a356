#!/usr/bin/env bash
# The long fuzz: tests/fuzz.rs with a million random and mutated client frames and a million
# sender requests (the test command runs 60,000 and 40,000) through the real handlers, in the
# test command's `tests` profile. Records the result in bench/RESULTS.md. `bench/fuzz.sh N` runs N of each.
set -euo pipefail
cd "$(dirname "$0")/.."

cases="${1:-1000000}"
started=$(date +%s)
if JOBCAST_FUZZ_CASES="$cases" cargo test --quiet --locked --profile tests -p jobcast-tests --test end_to_end fuzz:: \
  > /tmp/jobcast-fuzz.log 2>&1; then
  outcome="**0 failures**: no panic, every client frame answered with a frame the contract describes, every sender request with an outcome or a typed refusal"
else
  outcome="**FAILED** (see the test's output)"
  cat /tmp/jobcast-fuzz.log
fi
elapsed=$(( $(date +%s) - started ))
mkdir -p bench/results
{
  echo "## Fuzz (bench/fuzz.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)):"
  echo "tests/fuzz.rs with $cases client frames and $cases sender requests, each drawn from a seed:"
  echo "one of the repository's example frames (\`events/\`) mutated as JSON (fields removed, replaced"
  echo "with hostile values — huge strings and numbers, bidi and zero-width characters, deep nesting —"
  echo "or added), mutated as text (bytes flipped, inserted, deleted, cut, repeated), or random; 1 in 97"
  echo "client frames sent as binary. Each goes through the real handlers on the embedded store."
  echo
  echo "Result: $outcome; $elapsed s including the build."
} > bench/results/fuzz.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
