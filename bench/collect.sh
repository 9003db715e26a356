#!/usr/bin/env bash
# Rebuilds bench/RESULTS.md from the parts each benchmark writes in bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
for part in bench/results/*.md; do cat "$part"; echo; done > bench/RESULTS.md
