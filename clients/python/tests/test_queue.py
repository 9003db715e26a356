"""The SQS FIFO transport. jobcast-local has no SQS, so these check, with botocore's Stubber,
exactly what ``send_message`` receives: the body the sender will parse (the same request as a
direct invocation), the message group (the job, or the user) and the deduplication id (the
event or message id)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from conftest import invoke_response, stub_lambda, stub_sqs
from mypy_boto3_sqs.client import SQSClient

from jobcast import (
    Alert,
    InvokeRequired,
    JobCancelled,
    JobComplete,
    Notification,
    Publisher,
    Queued,
    Registered,
    TransportError,
    ValidationError,
)

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobcast-EventQueue-X.fifo"
SENT = {"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274", "SequenceNumber": "18849496460467696128"}


@pytest.fixture
def sqs() -> Iterator[tuple[SQSClient, Stubber]]:
    client = stub_sqs()
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_send(stubber: Stubber, body: dict[str, Any], group: str, dedup: str) -> None:
    stubber.add_response(
        "send_message",
        SENT,
        {
            "QueueUrl": QUEUE,
            "MessageBody": json.dumps(body, separators=(",", ":")),
            "MessageGroupId": group,
            "MessageDeduplicationId": dedup,
        },
    )


def capture_sends(client: SQSClient) -> list[dict[str, Any]]:
    """Records the parameters of every send_message call (for ids chosen by the package)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    client.meta.events.register("provide-client-params.sqs.SendMessage", record)
    return calls


def test_a_job_event_goes_to_the_jobs_message_group(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    body = {
        "job_id": "crawl-42",
        "event_id": "crawl-42:page-4",
        "event": {"type": "progress_update", "stage": "crawl", "progress": 40,
                  "message": "4 of 10 pages", "estimated_seconds_remaining": 30},
        "user_id": "ana",
        "correlation_id": "run-7",
    }
    expect_send(stubber, body, group="crawl-42", dedup="crawl-42:page-4")
    receipt = publisher.progress(
        "crawl-42", "crawl", 40, "4 of 10 pages", estimated_seconds_remaining=30,
        event_id="crawl-42:page-4", user_id="ana", correlation_id="run-7",
    )
    assert receipt == Queued(
        message_id=SENT["MessageId"], sequence_number=SENT["SequenceNumber"],
        group_id="crawl-42", deduplication_id="crawl-42:page-4",
    )


def test_every_event_type_has_the_senders_shape(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    events = [
        {"type": "stage_complete", "stage": "crawl", "results": {"pages": 10}},
        {"type": "job_complete", "results": [1, 2]},
        {"type": "job_failed", "error": {"code": "timeout", "message": "too slow",
                                         "suggested_action": "retry"}, "stage": "crawl"},
        {"type": "job_cancelled", "reason": "by the pipeline"},
        {"type": "job_cancelled"},
        {"type": "job_complete", "results": None},
    ]
    for n, event in enumerate(events):
        expect_send(stubber, {"job_id": "j", "event_id": f"e{n}", "event": event}, "j", f"e{n}")
    publisher.stage_complete("j", "crawl", {"pages": 10}, event_id="e0")
    publisher.complete("j", [1, 2], event_id="e1")
    publisher.fail("j", "timeout", "too slow", suggested_action="retry", stage="crawl",
                   event_id="e2")
    publisher.cancel("j", "by the pipeline", event_id="e3")
    publisher.publish("j", JobCancelled(), event_id="e4")
    publisher.publish("j", JobComplete(), event_id="e5")


def test_the_automatic_event_id_is_the_deduplication_id(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    calls = capture_sends(client)
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    for _ in range(2):
        stubber.add_response("send_message", SENT, {
            "QueueUrl": QUEUE, "MessageBody": ANY, "MessageGroupId": "j",
            "MessageDeduplicationId": ANY,
        })
    first = publisher.progress("j", "s", 1)
    second = publisher.progress("j", "s", 2)
    assert isinstance(first, Queued) and isinstance(second, Queued)
    bodies = [json.loads(call["MessageBody"]) for call in calls]
    assert [b["event_id"] for b in bodies] == [c["MessageDeduplicationId"] for c in calls]
    assert [b["event_id"] for b in bodies] == [first.deduplication_id, second.deduplication_id]
    assert first.deduplication_id != second.deduplication_id
    assert len(first.deduplication_id) == 36  # a UUID


def test_a_user_message_goes_to_the_users_message_group(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    body = {
        "user_id": "ana",
        "message": {"type": "notification", "title": "Export ready",
                    "message": "Your CSV is ready.", "level": "success"},
        "message_id": "export-9",
        "correlation_id": "run-7",
    }
    expect_send(stubber, body, group="ana", dedup="export-9")
    receipt = publisher.notify(
        "ana", Notification("Export ready", "Your CSV is ready.", "success"),
        message_id="export-9", correlation_id="run-7",
    )
    assert isinstance(receipt, Queued) and receipt.group_id == "ana"

    # An automatic message id is the deduplication id too.
    calls = capture_sends(client)
    stubber.add_response("send_message", SENT, {
        "QueueUrl": QUEUE, "MessageBody": ANY, "MessageGroupId": "ana",
        "MessageDeduplicationId": ANY,
    })
    receipt = publisher.notify("ana", Alert("Quota", "90 % used", "high"))
    assert isinstance(receipt, Queued)
    assert json.loads(calls[0]["MessageBody"])["message_id"] == receipt.deduplication_id


def test_a_user_id_sqs_cannot_take_as_a_group_is_hashed(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    user = "anaïs-日本"  # valid for jobcast, not for a MessageGroupId (printable ASCII only)
    group = "user-sha256:" + hashlib.sha256(user.encode()).hexdigest()
    body = {"user_id": user, "message": {"type": "notification", "title": "t", "message": "m",
                                         "level": "info"}, "message_id": "m1"}
    # The body is ASCII JSON, so every character is one SQS accepts.
    expect_send(stubber, body, group=group, dedup="m1")
    receipt = publisher.notify(user, Notification("t", "m"), message_id="m1")
    assert isinstance(receipt, Queued) and receipt.group_id == group


def test_a_queue_only_publisher_queues_registrations(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    calls = capture_sends(client)
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    stubber.add_response("send_message", SENT, {
        "QueueUrl": QUEUE,
        "MessageBody": '{"action":"register_job","job_id":"j","user_id":"ana"}',
        "MessageGroupId": "j", "MessageDeduplicationId": ANY,
    })
    assert isinstance(publisher.register("j", "ana"), Queued)
    assert len(calls) == 1


def test_questions_need_the_function(sqs: tuple[SQSClient, Stubber]) -> None:
    client, _ = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    with pytest.raises(InvokeRequired, match="function_name"):
        publisher.is_cancelled("j")
    with pytest.raises(InvokeRequired):
        publisher.get_job("j")
    with pytest.raises(InvokeRequired):
        publisher.request({"action": "get_job", "job_id": "j"})
    # (the Stubber fails any call it was not told of: nothing was sent)


def test_with_both_events_queue_and_the_rest_invokes(sqs: tuple[SQSClient, Stubber]) -> None:
    client, stubber = sqs
    lambda_client = stub_lambda()
    publisher = Publisher(
        "jobcast-sender", queue_url=QUEUE, sqs_client=client, lambda_client=lambda_client
    )
    with Stubber(lambda_client) as invoked:
        invoked.add_response(
            "invoke",
            invoke_response({"outcome": "registered", "job_id": "j", "created": True,
                             "status": "pending"}),
            {"FunctionName": "jobcast-sender", "InvocationType": "RequestResponse",
             "Payload": '{"action":"register_job","job_id":"j","user_id":"ana"}'},
        )
        invoked.add_response(
            "invoke",
            invoke_response({"outcome": "cancellation", "job_id": "j", "cancelled": False,
                             "status": "running"}),
            {"FunctionName": "jobcast-sender", "InvocationType": "RequestResponse",
             "Payload": '{"action":"is_cancelled","job_id":"j"}'},
        )
        assert publisher.register("j", "ana") == Registered("j", True, "pending")
        expect_send(stubber, {"job_id": "j", "event_id": "e1",
                              "event": {"type": "job_complete", "results": None}}, "j", "e1")
        assert isinstance(publisher.complete("j", event_id="e1"), Queued)
        assert publisher.is_cancelled("j") is False
        invoked.assert_no_pending_responses()


def test_a_failed_send_is_a_transport_error_carrying_the_event_id(
    sqs: tuple[SQSClient, Stubber],
) -> None:
    client, stubber = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    stubber.add_client_error(
        "send_message", service_error_code="AWS.SimpleQueueService.NonExistentQueue",
        service_message="The specified queue does not exist.", http_status_code=400,
    )
    with pytest.raises(TransportError) as failed:
        publisher.progress("j", "s", 1, event_id="e-7")
    assert failed.value.code == "AWS.SimpleQueueService.NonExistentQueue"
    assert failed.value.event_id == "e-7"


def test_nothing_is_queued_that_the_sender_would_drop(sqs: tuple[SQSClient, Stubber]) -> None:
    client, _ = sqs
    publisher = Publisher(queue_url=QUEUE, sqs_client=client)
    with pytest.raises(ValidationError, match="job_id"):
        publisher.progress("job 42", "s", 1)
    with pytest.raises(ValidationError, match="request"):
        publisher.complete("j", {"when": object()})
