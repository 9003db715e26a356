"""The invoke transport's handling of answers jobcast-local does not give on demand: resends
while subscribers may still be reached, store failures, Lambda runtime errors, answers this
version cannot read. Stubbed with botocore's Stubber."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from conftest import invoke_response, stub_lambda
from mypy_boto3_lambda.client import LambdaClient

from jobcast import (
    JobcastError,
    Published,
    Publisher,
    Rejected,
    SenderError,
    StoreUnavailable,
    UnexpectedAnswer,
)

REPORT = {"delivered": 1, "gone": 0, "failed": 0, "failed_transient": 0, "retried": 0,
          "duration_ms": 3}


def published(seq: int = 1, **report: Any) -> dict[str, Any]:
    return {"outcome": "published", "job_id": "j", "seq": seq, **REPORT, **report}


@pytest.fixture
def stubbed() -> Iterator[tuple[LambdaClient, Stubber]]:
    client = stub_lambda()
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def payloads(client: LambdaClient) -> list[str]:
    calls: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["Payload"])

    client.meta.events.register("provide-client-params.lambda.Invoke", record)
    return calls


def test_an_event_is_sent_again_while_subscribers_may_still_be_reached(
    stubbed: tuple[LambdaClient, Stubber],
) -> None:
    client, stubber = stubbed
    sent = payloads(client)
    stubber.add_response("invoke", invoke_response(published(failed=2, failed_transient=2)))
    stubber.add_response("invoke", invoke_response(published(duplicate=True, incomplete=True)))
    stubber.add_response("invoke", invoke_response(published(duplicate=True, delivered=2)))
    publisher = Publisher("sender", lambda_client=client, resend_delays=(0, 0, 0))
    answer = publisher.progress("j", "s", 5)
    assert isinstance(answer, Published)
    # The same request each time, so the same event id: no new seq.
    assert len(sent) == 3 and len(set(sent)) == 1
    assert json.loads(sent[0])["event_id"] == answer.event_id
    # New on the first try; the delivery is the last try's.
    assert (answer.seq, answer.duplicate, answer.delivery.delivered) == (1, False, 2)
    assert answer.delivery.complete


def test_resends_stop_after_the_last_delay(stubbed: tuple[LambdaClient, Stubber]) -> None:
    client, stubber = stubbed
    for _ in range(3):
        stubber.add_response("invoke", invoke_response(published(failed=1, failed_transient=1)))
    publisher = Publisher("sender", lambda_client=client, resend_delays=(0, 0))
    answer = publisher.progress("j", "s", 5)
    assert isinstance(answer, Published) and not answer.delivery.complete


def test_a_failed_resend_keeps_the_answer_there_is(stubbed: tuple[LambdaClient, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("invoke", invoke_response(published(failed=1, failed_transient=1)))
    stubber.add_client_error("invoke", service_error_code="TooManyRequestsException",
                             http_status_code=429)
    publisher = Publisher("sender", lambda_client=client, resend_delays=(0, 0))
    answer = publisher.progress("j", "s", 5)
    assert isinstance(answer, Published) and answer.delivery.failed_transient == 1


def test_no_resend_without_transient_failures(stubbed: tuple[LambdaClient, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("invoke", invoke_response(published(failed=1, gone=1)))
    answer = Publisher("sender", lambda_client=client).progress("j", "s", 5)
    assert isinstance(answer, Published) and answer.delivery.failed == 1


@pytest.mark.parametrize(
    ("error_type", "kind", "retryable"),
    [
        ("StoreThrottled", StoreUnavailable, True),
        ("StoreUnavailable", StoreUnavailable, True),
        ("StoreMisconfigured", SenderError, False),
        ("StoreCorrupt", SenderError, False),
    ],
)
def test_store_failures_say_whether_to_retry(
    stubbed: tuple[LambdaClient, Stubber], error_type: str, kind: type[SenderError],
    retryable: bool,
) -> None:
    client, stubber = stubbed
    stubber.add_response("invoke", invoke_response(
        {"errorType": error_type, "errorMessage": "the store failed"}, function_error="Unhandled"))
    with pytest.raises(kind) as failed:
        Publisher("sender", lambda_client=client).progress("j", "s", 5, event_id="e1")
    assert type(failed.value) is kind
    assert (failed.value.error_type, failed.value.retryable) == (error_type, retryable)
    assert failed.value.event_id == "e1"


def test_a_lambda_runtime_error_is_a_sender_error(stubbed: tuple[LambdaClient, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("invoke", invoke_response(
        {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 30.00 seconds"},
        function_error="Unhandled"))
    stubber.add_response("invoke", invoke_response(b"", function_error="Unhandled"))
    publisher = Publisher("sender", lambda_client=client)
    with pytest.raises(SenderError, match="Sandbox.Timedout"):
        publisher.get_job("j")
    with pytest.raises(SenderError) as failed:
        publisher.get_job("j")
    assert failed.value.error_type == "Unhandled"


def test_answers_that_cannot_be_read(stubbed: tuple[LambdaClient, Stubber]) -> None:
    client, stubber = stubbed
    publisher = Publisher("sender", lambda_client=client)
    stubber.add_response("invoke", invoke_response(b"not json"))
    stubber.add_response("invoke", invoke_response({"outcome": "published", "job_id": "j"}))
    stubber.add_response("invoke", invoke_response({"outcome": "job", "job_id": "j"}))
    stubber.add_response("invoke", invoke_response(
        {"outcome": "registered", "job_id": "j", "created": True, "status": "pending"}))
    with pytest.raises(UnexpectedAnswer):
        publisher.is_cancelled("j")
    with pytest.raises(UnexpectedAnswer, match="seq"):
        publisher.progress("j", "s", 1)
    with pytest.raises(UnexpectedAnswer):
        publisher.get_job("j")
    with pytest.raises(UnexpectedAnswer):
        publisher.get_job("j")


def test_a_refusal_of_an_unknown_code_is_still_a_rejection(
    stubbed: tuple[LambdaClient, Stubber],
) -> None:
    client, stubber = stubbed
    stubber.add_response("invoke", invoke_response(
        {"outcome": "rejected", "job_id": "j", "code": "paused", "message": "later"}))
    with pytest.raises(Rejected) as refused:
        Publisher("sender", lambda_client=client).complete("j")
    assert type(refused.value) is Rejected and refused.value.code == "paused"
    assert isinstance(refused.value, JobcastError)


def test_request_returns_a_rejection_as_it_is(stubbed: tuple[LambdaClient, Stubber]) -> None:
    client, stubber = stubbed
    answer = {"outcome": "rejected", "job_id": "j", "code": "job_finished", "message": "done"}
    stubber.add_response("invoke", invoke_response(answer))
    assert Publisher("sender", lambda_client=client).request({"job_id": "j"}) == answer
