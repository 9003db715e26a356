#!/usr/bin/env bash
# Runs every check and every test. Installs what the tests need first, so it works on a fresh
# machine with only the Rust toolchain: the README's test command.
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

step "tests"
cargo nextest run --workspace --locked --no-fail-fast
