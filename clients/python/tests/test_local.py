"""End to end against a real jobcast-local: the package invokes the sender through boto3's
Lambda client (jobcast-local serves the Lambda Invoke API), and real WebSocket clients, connected
as the job's owner, receive what it publishes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from conftest import KEY_ID, REGION, SECRET, Local, OpenSocket
from mypy_boto3_lambda.client import LambdaClient

from jobcast import (
    Alert,
    Delivered,
    FailureDetail,
    Forbidden,
    InvalidRequest,
    JobFailed,
    JobFinished,
    MessageIgnored,
    Notification,
    PayloadTooLarge,
    ProjectPayload,
    ProjectProgress,
    Published,
    Publisher,
    Registered,
    TransportError,
)


@pytest.fixture
def publisher(lambda_client: LambdaClient) -> Publisher:
    return Publisher("sender", lambda_client=lambda_client)


def published(result: object) -> Published:
    assert isinstance(result, Published), result
    return result


def test_progress_and_completion_reach_the_owner_in_order(
    publisher: Publisher, sockets: OpenSocket, job_id: str, user_id: str
) -> None:
    registered = publisher.register(job_id, user_id)
    assert registered == Registered(job_id=job_id, created=True, status="pending")
    socket = sockets(user_id)
    assert socket.subscribe(job_id)["after_seq"] == 0

    results = [
        publisher.progress(
            job_id, "crawl", 10, "1 of 10 pages", estimated_seconds_remaining=90,
            correlation_id="run-7",
        ),
        publisher.progress(job_id, "crawl", 55.5, "5 of 10 pages"),
        publisher.stage_complete(job_id, "crawl", {"pages": 10}),
        publisher.progress(job_id, "summarise", 90),
        publisher.complete(job_id, {"summary": "s3://bucket/summary.json"}),
    ]
    answers = [published(result) for result in results]
    assert [a.seq for a in answers] == [1, 2, 3, 4, 5]
    assert all(a.job_id == job_id and not a.duplicate for a in answers)
    assert all(a.delivery.delivered == 1 and a.delivery.complete for a in answers)
    assert len({a.event_id for a in answers}) == 5

    frames = [socket.recv() for _ in range(5)]
    assert [(f["type"], f["seq"], f["job_id"]) for f in frames] == [
        ("progress_update", 1, job_id),
        ("progress_update", 2, job_id),
        ("stage_complete", 3, job_id),
        ("progress_update", 4, job_id),
        ("job_complete", 5, job_id),
    ]
    first = frames[0]
    assert (first["stage"], first["progress"], first["message"]) == ("crawl", 10, "1 of 10 pages")
    assert first["estimated_seconds_remaining"] == 90
    assert first["correlation_id"] == "run-7"
    assert frames[1]["progress"] == 55.5 and "correlation_id" not in frames[1]
    assert frames[2]["results"] == {"pages": 10}
    assert frames[4]["results"] == {"summary": "s3://bucket/summary.json"}
    socket.assert_quiet()

    job = publisher.get_job(job_id)
    assert job is not None
    assert (job.status, job.last_seq, job.cancel_requested, job.finished) == (
        "completed", 5, False, True,
    )
    assert job.updated_at.tzinfo is not None

    # A finished job takes no more events: the pipeline is told to stop.
    with pytest.raises(JobFinished) as refused:
        publisher.progress(job_id, "late", 99)
    assert refused.value.code == "job_finished" and refused.value.job_id == job_id
    assert refused.value.event_id is not None
    socket.assert_quiet()


def test_a_failure_reaches_the_owner(
    publisher: Publisher, sockets: OpenSocket, job_id: str, user_id: str
) -> None:
    publisher.register(job_id, user_id)
    socket = sockets(user_id)
    socket.subscribe(job_id)
    publisher.progress(job_id, "fetch", 20, "fetching")
    answer = published(
        publisher.fail(
            job_id, "upstream_timeout", "The site did not answer.",
            suggested_action="Try again in an hour.", stage="fetch",
        )
    )
    assert answer.seq == 2
    socket.expect("progress_update")
    failed = socket.expect("job_failed")
    assert failed["seq"] == 2 and failed["stage"] == "fetch"
    assert failed["error"] == {
        "code": "upstream_timeout",
        "message": "The site did not answer.",
        "suggested_action": "Try again in an hour.",
    }
    job = publisher.get_job(job_id)
    assert job is not None and job.status == "failed"
    # The typed event works as well as the shortcut; the job is final either way.
    with pytest.raises(JobFinished):
        publisher.publish(job_id, JobFailed(FailureDetail("again", "again")))


def test_the_pipeline_sees_a_cancel_sent_from_the_websocket(
    publisher: Publisher, sockets: OpenSocket, job_id: str, user_id: str
) -> None:
    publisher.register(job_id, user_id)
    socket = sockets(user_id)
    socket.subscribe(job_id)
    publisher.progress(job_id, "crawl", 30, "3 of 10")
    assert socket.expect("progress_update")["seq"] == 1
    assert publisher.is_cancelled(job_id) is False

    socket.send(action="cancel_job", job_id=job_id, reason="not needed any more")
    frames = {frame["type"]: frame for frame in (socket.recv(), socket.recv())}
    assert set(frames) == {"job_status", "job_cancelled"}
    assert frames["job_cancelled"]["seq"] == 2
    assert frames["job_status"]["status"] == "cancelled"

    assert publisher.is_cancelled(job_id) is True
    job = publisher.get_job(job_id)
    assert job is not None
    assert (job.status, job.cancel_requested, job.last_seq) == ("cancelled", True, 2)
    assert job.stage == "crawl" and job.progress == 30
    with pytest.raises(JobFinished):
        publisher.progress(job_id, "crawl", 40, "4 of 10")
    socket.assert_quiet()


def test_questions_about_a_job_that_does_not_exist(publisher: Publisher, job_id: str) -> None:
    assert publisher.get_job(job_id) is None
    # As in the Rust publisher: nobody is left to report to, so the pipeline stops.
    assert publisher.is_cancelled(job_id) is True


def test_an_automatic_event_id_makes_a_retried_invoke_count_once(
    local: Local, sockets: OpenSocket, job_id: str, user_id: str
) -> None:
    client = local.lambda_client()
    tries: list[int] = []

    def retry_the_first_invoke(attempts: int, **_: Any) -> Any:
        """As if the first answer had been lost: boto3 sends the same request again."""
        tries.append(attempts)
        return 0 if attempts == 1 else None

    publisher = Publisher("sender", lambda_client=client)
    publisher.register(job_id, user_id)
    socket = sockets(user_id)
    socket.subscribe(job_id)
    client.meta.events.register_first("needs-retry.lambda.Invoke", retry_the_first_invoke)
    answer = published(publisher.progress(job_id, "crawl", 10, "once"))
    client.meta.events.unregister("needs-retry.lambda.Invoke", retry_the_first_invoke)
    assert tries == [1, 2], "boto3 sent the invocation twice"
    # The second invocation carried the same (automatic) event id: no new seq.
    assert (answer.seq, answer.duplicate) == (1, True)
    first = socket.expect("progress_update")
    assert first["seq"] == 1
    job = publisher.get_job(job_id)
    assert job is not None and job.last_seq == 1
    # The retry may reach the subscriber again under the same seq (clients keep the first);
    # nothing else follows it.
    published(publisher.progress(job_id, "crawl", 20, "next"))
    frames = [socket.recv()]
    if frames[0]["seq"] == 1:
        frames.append(socket.recv())
    assert frames[-1]["seq"] == 2 and frames[-1]["message"] == "next"


def test_a_caller_retry_with_the_same_event_id_is_recorded_once(
    publisher: Publisher, job_id: str, user_id: str
) -> None:
    publisher.register(job_id, user_id)
    first = published(publisher.progress(job_id, "crawl", 10, "a", event_id="page-1"))
    again = published(publisher.progress(job_id, "crawl", 10, "a", event_id="page-1"))
    assert (first.seq, first.duplicate) == (1, False)
    assert (again.seq, again.duplicate, again.event_id) == (1, True, "page-1")
    second = published(publisher.progress(job_id, "crawl", 20, "b", event_id="page-2"))
    assert second.seq == 2
    # A late retry of an earlier event (a redelivered batch) takes no new seq either.
    late = published(publisher.progress(job_id, "crawl", 10, "a", event_id=first.event_id))
    assert (late.seq, late.duplicate) == (1, True)
    job = publisher.get_job(job_id)
    assert job is not None and job.last_seq == 2 and job.progress == 20


def test_ownership_refusals_are_typed(
    publisher: Publisher, sockets: OpenSocket, job_id: str, user_id: str
) -> None:
    assert publisher.register(job_id, user_id) == Registered(job_id, True, "pending")
    assert publisher.register(job_id, user_id) == Registered(job_id, False, "pending")
    with pytest.raises(Forbidden) as refused:
        publisher.register(job_id, "somebody-else")
    assert refused.value.code == "forbidden"
    with pytest.raises(Forbidden):
        publisher.progress(job_id, "crawl", 10, user_id="somebody-else")
    # Naming the owner is fine.
    assert published(publisher.progress(job_id, "crawl", 10, user_id=user_id)).seq == 1
    # The other user cannot follow the job.
    intruder = sockets("somebody-else")
    intruder.send(action="subscribe", job_id=job_id)
    assert intruder.expect("error")["code"] == "forbidden"


def test_sender_function_errors_are_typed(publisher: Publisher, job_id: str) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        publisher.request(
            {"job_id": job_id, "event": {"type": "progress_update", "stage": "s", "progress": 101}}
        )
    assert invalid.value.error_type == "InvalidRequest"
    assert "event.progress" in invalid.value.message
    with pytest.raises(InvalidRequest, match="action"):
        publisher.request({"action": "launch_rockets", "job_id": job_id})
    with pytest.raises(InvalidRequest, match="event.type|unknown event type"):
        publisher.request({"job_id": job_id, "event": {"type": "job_paused"}})
    # Too large for API Gateway as a frame: refused before it takes a seq.
    with pytest.raises(PayloadTooLarge) as too_large:
        publisher.progress(job_id, "crawl", 10, "x" * 140_000)
    assert too_large.value.event_id is not None and not too_large.value.retryable
    assert publisher.get_job(job_id) is None


def test_a_failed_invocation_is_a_transport_error(lambda_client: LambdaClient) -> None:
    with pytest.raises(TransportError) as failed:
        Publisher("not-the-right-function", lambda_client=lambda_client).get_job("j")
    assert failed.value.code == "ResourceNotFoundException"


def test_the_publisher_can_make_its_own_client(local: Local, job_id: str, user_id: str) -> None:
    session = boto3.session.Session(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name=REGION
    )
    arn = "arn:aws:lambda:us-east-1:123456789012:function:jobcast-SenderFunction-AbC123"
    publisher = Publisher(arn, session=session, endpoint_url=local.http_url)
    registered = publisher.register(job_id, user_id)
    assert isinstance(registered, Registered) and registered.created
    assert publisher.function_name == arn and publisher.queue_url is None


def test_user_messages_reach_every_connection_of_the_user(
    publisher: Publisher, sockets: OpenSocket, user_id: str
) -> None:
    tab, phone = sockets(user_id), sockets(user_id)
    stranger = sockets(user_id + "-other")

    sent = publisher.notify(
        user_id, Notification("Export ready", "Your CSV is ready.", "success"),
        correlation_id="export-9",
    )
    assert isinstance(sent, Delivered)
    assert (sent.user_id, sent.message_type, sent.delivery.delivered) == (
        user_id, "notification", 2,
    )
    for socket in (tab, phone):
        frame = socket.expect("notification")
        assert (frame["title"], frame["message"], frame["level"]) == (
            "Export ready", "Your CSV is ready.", "success",
        )
        assert frame["message_id"] == sent.message_id
        assert frame["correlation_id"] == "export-9"

    alert = publisher.notify(user_id, Alert("Quota", "90 % used", "high"), message_id="quota-90")
    assert isinstance(alert, Delivered) and alert.message_id == "quota-90"
    for socket in (tab, phone):
        frame = socket.expect("alert")
        assert (frame["severity"], frame["message_id"]) == ("high", "quota-90")

    payload = ProjectPayload("site-audit-7", "CRAWLING", total=120, done=48, errors=2,
                             progress_percent=40.0)
    at = datetime(2026, 11, 24, 8, 0, 0, 250_000, tzinfo=timezone.utc)
    publisher.notify(user_id, ProjectProgress(payload, at))
    frame = tab.expect("project_progress")
    assert frame["payload"] == {
        "project_id": "site-audit-7", "status": "CRAWLING", "total": 120, "done": 48,
        "errors": 2, "progress_percent": 40.0,
    }
    assert frame["timestamp"] == "2026-11-24T08:00:00.250Z"
    phone.expect("project_progress")

    # A hub publisher's message, as the JSON string it puts on its channel.
    hub = json.dumps({"type": "project_completed", "timestamp": 1_790_000_000_123,
                      "payload": {**frame["payload"], "status": "DONE", "done": 120,
                                  "progress_percent": 100.0}})
    publisher.notify(user_id, hub)
    assert tab.expect("project_completed")["timestamp"] == "2026-09-21T14:13:20.123Z"
    phone.expect("project_completed")

    with pytest.raises(MessageIgnored) as ignored:
        publisher.notify(user_id, {"type": "confetti"})
    assert ignored.value.message_type == "confetti"
    with pytest.raises(InvalidRequest, match="message.payload.status"):
        publisher.notify(user_id, {"type": "project_progress", "timestamp": 0,
                                   "payload": {**frame["payload"], "status": "SLEEPING"}})
    stranger.assert_quiet()
    tab.assert_quiet(0.1)
