"""Fixtures: a real jobcast-local (started once per test session on a free port, stopped by its
PID), boto3 clients pointed at it, WebSocket clients, and stubbed clients for the tests that
need no server."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import threading
import uuid
from contextlib import ExitStack
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import boto3
import pytest
from botocore.response import StreamingBody
from mypy_boto3_lambda.client import LambdaClient
from mypy_boto3_sqs.client import SQSClient
from websockets.sync.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[3]
REGION = "us-east-1"
#: jobcast-local checks no signature: any credentials do.
KEY_ID = SECRET = "test"


def _binary() -> Path | None:
    named = os.environ.get("JOBCAST_LOCAL_BIN")
    if named:
        return Path(named)
    # The test command's build first (scripts/test.sh builds in the `tests` profile).
    for profile in ("tests", "debug", "release"):
        candidate = REPO / "target" / profile / "jobcast-local"
        if candidate.is_file():
            return candidate
    return None


@dataclass
class Local:
    """A running jobcast-local."""

    ws_url: str
    http_url: str
    pid: int

    def lambda_client(self) -> LambdaClient:
        """A boto3 Lambda client for jobcast-local's Invoke API (any credentials do)."""
        return boto3.client(
            "lambda",
            endpoint_url=self.http_url,
            region_name=REGION,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )


def _drain(stream: IO[bytes], lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line.decode(errors="replace"))


@pytest.fixture(scope="session")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    binary = _binary()
    if binary is None or not binary.is_file():
        reason = (
            f"jobcast-local not found ({binary or 'target/{tests,debug,release}/jobcast-local'}): "
            "build it (cargo build -p jobcast-local) or set JOBCAST_LOCAL_BIN"
        )
        if os.environ.get("JOBCAST_LOCAL_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    log = tmp_path_factory.mktemp("jobcast-local") / "stderr.log"
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [str(binary), "--port", "0"], stdout=subprocess.PIPE, stderr=stderr, env=env
        )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    # Keeps reading stdout for the server's whole life, so it never blocks on a full pipe.
    threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True).start()
    ws_url = None
    seen = ""
    try:
        while ws_url is None:
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                raise RuntimeError(f"jobcast-local did not start in 30 s: {seen}") from None
            seen += line
            match = re.search(r"listening on (ws://\S+)", line)
            if match:
                ws_url = match.group(1)
    except BaseException:
        process.kill()
        process.wait()
        raise
    try:
        yield Local(ws_url=ws_url, http_url="http" + ws_url[2:], pid=process.pid)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def lambda_client(local: Local) -> LambdaClient:
    return local.lambda_client()


@pytest.fixture
def job_id() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def user_id() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


class Socket:
    """A WebSocket client of jobcast-local, connected as one user (``--auth none``)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send(self, **frame: object) -> None:
        self.connection.send(json.dumps(frame))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame = json.loads(self.connection.recv(timeout=timeout))
        assert isinstance(frame, dict), frame
        return frame

    def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        frame = self.recv(timeout)
        assert frame["type"] == kind, frame
        return frame

    def subscribe(self, job_id: str) -> dict[str, Any]:
        """Subscribes from the job's current state: ``subscribed``, then ``job_status``."""
        self.send(action="subscribe", job_id=job_id)
        subscribed = self.expect("subscribed")
        self.expect("job_status")
        return subscribed

    def assert_quiet(self, seconds: float = 0.3) -> None:
        """Nothing more arrives within ``seconds``."""
        try:
            frame = self.connection.recv(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")


OpenSocket = Callable[[str], Socket]


@pytest.fixture
def sockets(local: Local) -> Iterator[OpenSocket]:
    """Opens sockets as ``sockets(user_id)``; closes them after the test."""
    with ExitStack() as opened:

        def open_socket(user: str) -> Socket:
            url = f"{local.ws_url}/?user_id={quote(user)}"
            return Socket(opened.enter_context(connect(url, open_timeout=5)))

        yield open_socket


# ---- stubbed clients (no server) ------------------------------------------------------------


def stub_lambda() -> LambdaClient:
    """A Lambda client that never reaches the network (wrap it in a botocore Stubber)."""
    return boto3.client(
        "lambda", region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
    )


def stub_sqs() -> SQSClient:
    """An SQS client that never reaches the network (wrap it in a botocore Stubber)."""
    return boto3.client(
        "sqs", region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
    )


def invoke_response(answer: object, function_error: str | None = None) -> dict[str, Any]:
    """What Lambda's Invoke answers, for ``Stubber.add_response("invoke", ...)``."""
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    response: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(body), len(body)),
    }
    if function_error is not None:
        response["FunctionError"] = function_error
    return response
