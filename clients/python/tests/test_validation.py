"""Client-side checks, mirroring the server's rules (shared/src/protocol/ids.rs, values.rs,
user.rs): a mistake is caught before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from botocore.stub import Stubber
from conftest import stub_lambda, stub_sqs

from jobcast import (
    Alert,
    FailureDetail,
    JobcastError,
    JobFailed,
    Notification,
    ProgressUpdate,
    ProjectCompleted,
    ProjectPayload,
    ProjectProgress,
    Publisher,
    StageComplete,
    ValidationError,
)


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    """A publisher whose every call would fail: the Stubber has no responses."""
    client = stub_lambda()
    with Stubber(client):
        yield Publisher("sender", lambda_client=client)


@pytest.mark.parametrize("job_id", ["", "a b", "job/1", "ünï", "x\n", "x" * 129, "crawl#1"])
def test_bad_job_ids(publisher: Publisher, job_id: str) -> None:
    with pytest.raises(ValidationError) as refused:
        publisher.progress(job_id, "s", 1)
    assert refused.value.field == "job_id"
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, JobcastError)


@pytest.mark.parametrize("user_id", ["", "a b", "ana\u202eevil", "an\u200ba", "\ufeffana",
                                     "ana\u0007", "a\u00adna", "u" * 257, "ana\u3000"])
def test_bad_user_ids(publisher: Publisher, user_id: str) -> None:
    with pytest.raises(ValidationError, match="user_id"):
        publisher.register("j", user_id)
    with pytest.raises(ValidationError, match="user_id"):
        publisher.notify(user_id, Notification("t", "m"))


def test_other_ids(publisher: Publisher) -> None:
    with pytest.raises(ValidationError, match="event_id"):
        publisher.progress("j", "s", 1, event_id="page 4")
    with pytest.raises(ValidationError, match="correlation_id"):
        publisher.get_job("j", correlation_id="run/7")
    with pytest.raises(ValidationError, match="message_id"):
        publisher.notify("ana", Notification("t", "m"), message_id="")


@pytest.mark.parametrize("progress", [-0.1, 100.01, math.nan, math.inf, True])
def test_progress_is_a_percentage(progress: float) -> None:
    with pytest.raises(ValidationError, match="event.progress"):
        ProgressUpdate("s", progress)


def test_valid_values_pass() -> None:
    ProgressUpdate("✔️ build", 0)
    ProgressUpdate("s" * 128, 100, "m", 0)
    ProgressUpdate("crawl", 42.5, estimated_seconds_remaining=10)
    Notification("t" * 200, "m" * 4000, "warning")
    ProjectPayload("p", "DONE", 0, 0, 0, 100)


@pytest.mark.parametrize("stage", ["", "   ", "a\nb", "s" * 129, "a\u202eb"])
def test_stage_names(stage: str) -> None:
    with pytest.raises(ValidationError, match="event.stage"):
        ProgressUpdate(stage, 1)
    with pytest.raises(ValidationError, match="event.stage"):
        StageComplete(stage)
    with pytest.raises(ValidationError, match="event.stage"):
        JobFailed(FailureDetail("c", "m"), stage)


def test_event_fields() -> None:
    with pytest.raises(ValidationError, match="estimated_seconds_remaining"):
        ProgressUpdate("s", 1, estimated_seconds_remaining=-1)
    with pytest.raises(TypeError):
        JobFailed("boom")  # type: ignore[arg-type]


def test_user_message_fields() -> None:
    with pytest.raises(ValidationError, match="message.title"):
        Notification(" ", "m")
    with pytest.raises(ValidationError, match="message.title"):
        Alert("t" * 201, "m", "low")
    with pytest.raises(ValidationError, match="message.message"):
        Notification("t", "m" * 4001)
    with pytest.raises(ValidationError, match="message.level"):
        Notification("t", "m", "loud")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="message.severity"):
        Alert("t", "m", "urgent")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="payload.status"):
        ProjectPayload("p", "SLEEPING", 1, 1, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="payload.project_id"):
        ProjectPayload(" ", "DONE", 1, 1, 0, 1)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValidationError, match="payload.total"):
            ProjectPayload("p", "DONE", bad, 1, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="payload.progress_percent"):
        ProjectPayload("p", "DONE", 1, 1, 0, 100.5)


def test_hub_timestamps() -> None:
    payload = ProjectPayload("p", "CRAWLING", 10, 4, 0, 40)
    aware = datetime(2026, 11, 24, 10, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert ProjectProgress(payload, aware).to_json()["timestamp"] == "2026-11-24T08:00:00.123Z"
    naive = datetime(2026, 11, 24, 8, 0)
    assert ProjectCompleted(payload, naive).to_json()["timestamp"] == "2026-11-24T08:00:00.000Z"
    assert ProjectProgress(payload, 1_790_000_000_123).to_json()["timestamp"] == 1_790_000_000_123
    stamped = ProjectProgress(payload).to_json()["timestamp"]
    assert isinstance(stamped, str) and stamped.endswith("Z")
    with pytest.raises(ValidationError, match="timestamp"):
        ProjectProgress(payload, -1)


def test_results_must_be_json(publisher: Publisher) -> None:
    with pytest.raises(ValidationError, match="JSON"):
        publisher.complete("j", {"at": datetime.now()})
    with pytest.raises(ValidationError, match="JSON"):
        publisher.complete("j", {"ratio": math.nan})


def test_a_publisher_needs_a_transport() -> None:
    with pytest.raises(ValueError, match="function_name"):
        Publisher()
    with pytest.raises(ValueError, match="function_name"):
        Publisher(queue_url="https://queue", lambda_client=stub_lambda())
    with pytest.raises(ValueError, match="queue_url"):
        Publisher("sender", lambda_client=stub_lambda(), sqs_client=stub_sqs())
