"""What the calls return: the sender's answers (when invoked) or the queue's receipt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from .errors import UnexpectedAnswer
from .events import JobState

__all__ = ["DeliveryReport", "Delivered", "JobStatus", "Published", "Queued", "Registered"]


@dataclass(frozen=True)
class DeliveryReport:
    """What one fan-out reached."""

    #: Connections the frame was posted to.
    delivered: int
    #: Connections found closed (410) and removed.
    gone: int
    #: Connections not reached after every attempt, or that refused the frame.
    failed: int
    #: Of ``failed``, those whose last error may pass (throttling, 5xx, a timeout).
    failed_transient: int
    #: Retries made, over all connections.
    retried: int
    #: How long the fan-out took.
    duration_ms: int
    #: The subscriber lookup broke off (the store kept failing): some were not tried.
    incomplete: bool

    @property
    def complete(self) -> bool:
        """Whether no subscriber is left that a later retry could still reach."""
        return self.failed_transient == 0 and not self.incomplete


@dataclass(frozen=True)
class Published:
    """A job event was recorded with ``seq`` and fanned out (direct invocation)."""

    job_id: str
    #: The event's seq (1, 2, 3... per job), which subscribers receive with it.
    seq: int
    #: The event id it was sent with (retry with it to reach anyone missed, at the same seq).
    event_id: str
    #: A retry of an event already recorded under ``seq``: nothing new was recorded.
    duplicate: bool
    delivery: DeliveryReport


@dataclass(frozen=True)
class Registered:
    """A job is registered (``created`` is ``False`` when it already was, with the same
    owner)."""

    job_id: str
    created: bool
    status: JobState


@dataclass(frozen=True)
class Delivered:
    """A user message was posted to every connection of the user."""

    user_id: str
    message_type: str
    #: The id the message's frames carry (clients show a message once per id).
    message_id: str
    delivery: DeliveryReport


@dataclass(frozen=True)
class Queued:
    """The request is on the FIFO queue; the sender takes it from there, in order within its
    message group. Nothing is known yet of what the sender will make of it."""

    #: SQS's id for the message.
    message_id: str
    #: The message's sequence number in its group.
    sequence_number: str | None
    #: The message group: the job id, or (for a user message) the user id.
    group_id: str
    #: The deduplication id: the event id, or the user message's id.
    deduplication_id: str


@dataclass(frozen=True)
class JobStatus:
    """A job's snapshot (``get_job``), with the fields of a ``job_status`` frame."""

    job_id: str
    status: JobState
    #: The seq of the job's latest event (0: none yet).
    last_seq: int
    #: Whether the job has been cancelled.
    cancel_requested: bool
    #: When the job last changed (UTC).
    updated_at: datetime
    #: The stage an event last named.
    stage: str | None = None
    #: The progress last reported (100 once the job completed).
    progress: float | None = None
    #: The latest message: a progress update's, a failure's, or a cancel's reason.
    message: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job is in a final state (completed, failed or cancelled)."""
        return self.status in ("completed", "failed", "cancelled")


# ---- reading the sender's answers ---------------------------------------------------------


def _get(answer: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = answer.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise UnexpectedAnswer(f"the sender's answer has no valid {key!r}: {answer}")
    return value


def _optional(answer: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    return None if answer.get(key) is None else _get(answer, key, kind)


def delivery_report(answer: dict[str, Any]) -> DeliveryReport:
    return DeliveryReport(
        delivered=_get(answer, "delivered", int),
        gone=_get(answer, "gone", int),
        failed=_get(answer, "failed", int),
        failed_transient=int(answer.get("failed_transient", 0)),
        retried=_get(answer, "retried", int),
        duration_ms=_get(answer, "duration_ms", int),
        incomplete=bool(answer.get("incomplete", False)),
    )


def published(answer: dict[str, Any], event_id: str) -> Published:
    return Published(
        job_id=_get(answer, "job_id", str),
        seq=_get(answer, "seq", int),
        event_id=event_id,
        duplicate=bool(answer.get("duplicate", False)),
        delivery=delivery_report(answer),
    )


def registered(answer: dict[str, Any]) -> Registered:
    return Registered(
        job_id=_get(answer, "job_id", str),
        created=_get(answer, "created", bool),
        status=cast(JobState, _get(answer, "status", str)),
    )


def delivered(answer: dict[str, Any], message_id: str) -> Delivered:
    return Delivered(
        user_id=_get(answer, "user_id", str),
        message_type=_get(answer, "message_type", str),
        message_id=message_id,
        delivery=delivery_report(answer),
    )


def _parse_time(text: str) -> datetime:
    # RFC 3339 with "Z"; fromisoformat takes "Z" only from 3.11 on.
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise UnexpectedAnswer(f"the sender's answer has an unreadable time {text!r}") from err


def job_status(answer: dict[str, Any]) -> JobStatus:
    progress = _optional(answer, "progress", (int, float))
    return JobStatus(
        job_id=_get(answer, "job_id", str),
        status=cast(JobState, _get(answer, "status", str)),
        last_seq=_get(answer, "last_seq", int),
        cancel_requested=_get(answer, "cancel_requested", bool),
        updated_at=_parse_time(_get(answer, "updated_at", str)),
        stage=_optional(answer, "stage", str),
        progress=None if progress is None else float(progress),
        message=_optional(answer, "message", str),
    )
