#!/usr/bin/env bash
# Fan-out throughput on jobcast-local: jobcast's sender beside boto3 (plain loop, 32 threads)
# and wrk's raw POST ceiling, for 100, 1,000 and 10,000 real WebSocket subscribers; the quota
# case; resident memory per connection. Prints the table and records it in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# The baselines' tools: boto3 from PyPI in a venv of our own, wrk from Debian.
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
fi
bench/.venv/bin/pip install --quiet --disable-pip-version-check 'boto3>=1.34,<2'
if ! command -v wrk >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y wrk >/dev/null 2>&1 || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y wrk >/dev/null; }
fi

# Up to 10,000 sockets on each side.
ulimit -n "$(ulimit -Hn)"

cargo build --quiet --release --locked -p jobcast-local -p jobcast-bench
out="$(target/release/fan-out --local-bin target/release/jobcast-local --python bench/.venv/bin/python "$@")"
echo "$out"
mkdir -p bench/results
{
  echo "## Fan-out throughput (bench/fan-out.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git describe --always --dirty=-dirty) on $(nproc) cores ($(uname -m)). Everything shares the machine: jobcast-local"
  echo "(release), the benchmark's WebSocket clients, and the sender under test. jobcast's sender is the"
  echo "real handler and delivery engine posting SigV4-signed requests to jobcast-local's \`@connections\`"
  echo "over HTTP, as it does in AWS; the boto3 baselines post the same payload to the same connection"
  echo "ids. Latency is from the start of the fan-out to each client's receipt; delivered/s is what the"
  echo "clients counted over the time to the last delivery."
  echo
  echo "$out"
} > bench/results/fan-out.md
bench/collect.sh
echo "recorded in bench/RESULTS.md"
