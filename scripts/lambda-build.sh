#!/usr/bin/env bash
# Builds release Lambda bootstraps with cargo lambda, as `sam build` does: arm64 when this
# toolchain has the target (nothing is downloaded at run time), else the host's x86_64.
# Arguments go to `cargo lambda build` (e.g. `-p sender`). Also the one place the pinned
# PyPI tools are installed, into .tools/: cfn-lint, the SAM CLI and cargo lambda (with zig).
#   scripts/lambda-build.sh --tools-only      # install the tools, build nothing
#   scripts/lambda-build.sh --check -p …      # the `lambda-check` profile: the same build path,
#                                             # without the release profile's size work
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .tools/bin/cargo-lambda ] || [ ! -x .tools/bin/cfn-lint ] || [ ! -x .tools/bin/sam ]; then
  python3 -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check \
    cfn-lint==1.58.0 aws-sam-cli==1.170.0 cargo-lambda==1.9.2
fi
[ "${1:-}" = "--tools-only" ] && exit 0

lambda_arch=()
if rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  lambda_arch=(--arm64)
fi
profile=(--release)
if [ "${1:-}" = "--check" ]; then
  shift
  profile=(--profile lambda-check --disable-optimizations)
fi
PATH="$PWD/.tools/bin:$PATH" exec cargo lambda build "${profile[@]}" --locked "${lambda_arch[@]}" "$@"
