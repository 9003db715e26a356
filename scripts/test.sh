#!/usr/bin/env bash
# Runs every check and every test: the README's test command. It installs what the tests need
# first (cargo-nextest from crates.io, DynamoDB Local from npm, a JRE from Debian if java is
# missing), so it works on a fresh machine with the Rust toolchain, Node.js and Python.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "tools"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo fmt --version >/dev/null
cargo clippy --version >/dev/null

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "DynamoDB Local"
# The official engine, from the npm package pinned in scripts/dynamodb-local/; stopped by PID on exit.
read -r dynamodb_pid JOBCAST_DYNAMODB_ENDPOINT < <(scripts/dynamodb-local.sh)
trap 'kill "$dynamodb_pid" 2>/dev/null || true' EXIT
export JOBCAST_DYNAMODB_ENDPOINT
echo "DynamoDB Local (pid $dynamodb_pid) at $JOBCAST_DYNAMODB_ENDPOINT"

step "tests"
cargo nextest run --workspace --locked --no-fail-fast
