"""Job events: what a pipeline stage reports about a job (``event`` in a sender request).

Each is a frozen dataclass, checked when it is made (:class:`~jobcast.ValidationError`), and
becomes the JSON object the sender takes with :meth:`to_json`. Subscribers receive it as a frame
of the same ``type``, with ``job_id``, ``seq`` and ``timestamp`` added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Union

from ._checks import check_count, check_percent, check_stage, check_string

__all__ = [
    "JOB_EVENT_TYPES",
    "FailureDetail",
    "JobCancelled",
    "JobComplete",
    "JobEvent",
    "JobFailed",
    "JobState",
    "ProgressUpdate",
    "StageComplete",
]

#: Where a job stands. ``completed``, ``failed`` and ``cancelled`` are final.
JobState = Literal["pending", "running", "completed", "failed", "cancelled"]

#: Every job event ``type`` the sender takes, in the order the protocol documents them.
JOB_EVENT_TYPES = ("progress_update", "stage_complete", "job_complete", "job_failed", "job_cancelled")


@dataclass(frozen=True)
class ProgressUpdate:
    """How far a stage has got; the job is ``running``.

    ``progress`` is a percentage (0-100, fractions allowed); ``message`` a line for the user;
    ``estimated_seconds_remaining`` the pipeline's estimate, when it has one.
    """

    type: ClassVar[str] = "progress_update"

    stage: str
    progress: float
    message: str = ""
    estimated_seconds_remaining: int | None = None

    def __post_init__(self) -> None:
        check_stage("event.stage", self.stage)
        check_percent("event.progress", self.progress)
        check_string("event.message", self.message)
        if self.estimated_seconds_remaining is not None:
            check_count("event.estimated_seconds_remaining", self.estimated_seconds_remaining)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "type": self.type,
            "stage": self.stage,
            "progress": self.progress,
            "message": self.message,
        }
        if self.estimated_seconds_remaining is not None:
            out["estimated_seconds_remaining"] = self.estimated_seconds_remaining
        return out


@dataclass(frozen=True)
class StageComplete:
    """A stage has finished; ``results`` is any JSON-serialisable value (``None`` when absent)."""

    type: ClassVar[str] = "stage_complete"

    stage: str
    results: object = None

    def __post_init__(self) -> None:
        check_stage("event.stage", self.stage)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "stage": self.stage, "results": self.results}


@dataclass(frozen=True)
class JobComplete:
    """The job has finished successfully (final); ``results`` is any JSON-serialisable value."""

    type: ClassVar[str] = "job_complete"

    results: object = None

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "results": self.results}


@dataclass(frozen=True)
class FailureDetail:
    """Why a job failed, in words a user can act on: the pipeline's own ``code``, a ``message``
    for the user, and what they can do about it."""

    code: str
    message: str
    suggested_action: str | None = None

    def __post_init__(self) -> None:
        check_string("event.error.code", self.code)
        check_string("event.error.message", self.message)
        if self.suggested_action is not None:
            check_string("event.error.suggested_action", self.suggested_action)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.suggested_action is not None:
            out["suggested_action"] = self.suggested_action
        return out


@dataclass(frozen=True)
class JobFailed:
    """The job has failed (final); ``stage`` names the stage that failed, when known."""

    type: ClassVar[str] = "job_failed"

    error: FailureDetail
    stage: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.error, FailureDetail):
            raise TypeError("JobFailed.error must be a FailureDetail")
        if self.stage is not None:
            check_stage("event.stage", self.stage)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type, "error": self.error.to_json()}
        if self.stage is not None:
            out["stage"] = self.stage
        return out


@dataclass(frozen=True)
class JobCancelled:
    """The job has been cancelled (final), by its pipeline; ``reason`` when there is one. (A
    user's cancel comes from the WebSocket's ``cancel_job``: poll
    :meth:`~jobcast.Publisher.is_cancelled` for it.)"""

    type: ClassVar[str] = "job_cancelled"

    reason: str | None = None

    def __post_init__(self) -> None:
        if self.reason is not None:
            check_string("event.reason", self.reason)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


#: Any job event.
JobEvent = Union[ProgressUpdate, StageComplete, JobComplete, JobFailed, JobCancelled]
