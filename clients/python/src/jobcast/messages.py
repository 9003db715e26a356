"""User messages: not about one job but for every connection of one user (every tab and
device), sent with :meth:`~jobcast.Publisher.notify`. Nothing is recorded and they have no
``seq``. The ``project_*`` types are a notification hub's envelope, so hub publishers can point
at jobcast unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ClassVar, Literal, Union

from ._checks import check_choice, check_count, check_percent, check_text, check_title
from .errors import ValidationError

__all__ = [
    "USER_MESSAGE_TYPES",
    "Alert",
    "AlertSeverity",
    "Notification",
    "NotificationLevel",
    "ProjectCompleted",
    "ProjectPayload",
    "ProjectProgress",
    "ProjectStatus",
    "UserMessage",
]

#: Every user message ``type`` the sender forwards.
USER_MESSAGE_TYPES = ("notification", "alert", "project_progress", "project_completed")

NotificationLevel = Literal["info", "success", "warning", "error"]
AlertSeverity = Literal["low", "medium", "high", "critical"]
ProjectStatus = Literal["INITIALIZING", "CRAWLING", "PROCESSING", "DONE", "FAILED"]

_LEVELS = ("info", "success", "warning", "error")
_SEVERITIES = ("low", "medium", "high", "critical")
_STATUSES = ("INITIALIZING", "CRAWLING", "PROCESSING", "DONE", "FAILED")


@dataclass(frozen=True)
class Notification:
    """A notice for the user. ``title``: non-blank, at most 200 characters; ``message``: at
    most 4,000."""

    type: ClassVar[str] = "notification"

    title: str
    message: str
    level: NotificationLevel = "info"

    def __post_init__(self) -> None:
        check_title("message.title", self.title)
        check_text("message.message", self.message)
        check_choice("message.level", self.level, _LEVELS)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "title": self.title, "message": self.message, "level": self.level}


@dataclass(frozen=True)
class Alert:
    """An alert for the user, with a severity; the same lengths as :class:`Notification`."""

    type: ClassVar[str] = "alert"

    title: str
    message: str
    severity: AlertSeverity

    def __post_init__(self) -> None:
        check_title("message.title", self.title)
        check_text("message.message", self.message)
        check_choice("message.severity", self.severity, _SEVERITIES)

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type,
            "title": self.title,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class ProjectPayload:
    """The project a hub envelope reports on: counts are non-negative integers,
    ``progress_percent`` is within 0-100."""

    project_id: str
    status: ProjectStatus
    total: int
    done: int
    errors: int
    progress_percent: float

    def __post_init__(self) -> None:
        if not isinstance(self.project_id, str) or not self.project_id.strip():
            raise ValidationError("message.payload.project_id", "must not be empty")
        check_choice("message.payload.status", self.status, _STATUSES)
        check_count("message.payload.total", self.total)
        check_count("message.payload.done", self.done)
        check_count("message.payload.errors", self.errors)
        check_percent("message.payload.progress_percent", self.progress_percent)

    def to_json(self) -> dict[str, object]:
        return {
            "project_id": self.project_id,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "errors": self.errors,
            "progress_percent": self.progress_percent,
        }


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _timestamp_json(value: datetime | int) -> str | int:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # naive: taken as UTC
            value = value.replace(tzinfo=timezone.utc)
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return value


@dataclass(frozen=True)
class _ProjectEnvelope:
    payload: ProjectPayload
    #: When the publisher made the message: an aware ``datetime`` (a naive one is taken as
    #: UTC) or epoch milliseconds. Becomes the frame's ``timestamp``. Now, by default.
    timestamp: datetime | int = field(default_factory=_now)

    type: ClassVar[str]

    def __post_init__(self) -> None:
        if not isinstance(self.payload, ProjectPayload):
            raise TypeError(f"{type(self).__name__}.payload must be a ProjectPayload")
        if not isinstance(self.timestamp, datetime):
            check_count("message.timestamp", self.timestamp)

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type,
            "payload": self.payload.to_json(),
            "timestamp": _timestamp_json(self.timestamp),
        }


@dataclass(frozen=True)
class ProjectProgress(_ProjectEnvelope):
    """A project's progress, in the hub's envelope ``{type, payload, timestamp}``."""

    type: ClassVar[str] = "project_progress"


@dataclass(frozen=True)
class ProjectCompleted(_ProjectEnvelope):
    """A completed project, in the hub's envelope ``{type, payload, timestamp}``."""

    type: ClassVar[str] = "project_completed"


#: Any user message this package builds.
UserMessage = Union[Notification, Alert, ProjectProgress, ProjectCompleted]
