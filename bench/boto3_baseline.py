"""The baseline fan-out of AWS's WebSocket chat sample: boto3's apigatewaymanagementapi
post_to_connection over a list of connection ids, in a plain loop or a thread pool.

With the same warm-up and repetitions as jobcast's sender: one unmeasured fan-out, then a
line "ready" on stdout; each line on stdin then starts one fan-out, answered with
{"started_micros", "finished_micros", "posted", "errors"} as a JSON line. The benchmark's
clients count what arrives."""

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--ids-file", required=True)
    parser.add_argument("--mode", choices=["loop", "pool"], required=True)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--payload", required=True)
    args = parser.parse_args()

    with open(args.ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    payload = args.payload.encode()
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        # As many pooled HTTP connections as threads, or the pool serialises on them.
        config=Config(max_pool_connections=max(args.threads, 10), retries={"max_attempts": 3}),
    )
    def post(connection_id: str) -> bool:
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=payload)
            return True
        except Exception as err:  # noqa: BLE001 - counted, like the sample's try/except
            print(f"post failed: {err}", file=sys.stderr)
            return False

    pool = ThreadPoolExecutor(max_workers=args.threads)

    def fan_out() -> int:
        if args.mode == "loop":
            return sum(not post(connection_id) for connection_id in ids)
        return sum(not ok for ok in pool.map(post, ids))

    fan_out()
    print("ready", flush=True)
    for _ in sys.stdin:
        started = time.time_ns() // 1000
        errors = fan_out()
        finished = time.time_ns() // 1000
        print(
            json.dumps(
                {"started_micros": started, "finished_micros": finished, "posted": len(ids), "errors": errors}
            ),
            flush=True,
        )
    pool.shutdown()


if __name__ == "__main__":
    main()
