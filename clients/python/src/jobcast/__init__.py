"""jobcast for Python pipelines: publish job progress, register jobs, notify users and poll for
cancellation through jobcast's sender Lambda, by direct invocation or through the stack's SQS
FIFO queue.

>>> from jobcast import Publisher
>>> publisher = Publisher("jobcast-sender")            # doctest: +SKIP
>>> publisher.register("crawl-42", "ana")              # doctest: +SKIP
>>> publisher.progress("crawl-42", "crawl", 40, "4 of 10 pages")  # doctest: +SKIP
>>> if publisher.is_cancelled("crawl-42"): ...         # doctest: +SKIP
>>> publisher.complete("crawl-42", {"pages": 10})      # doctest: +SKIP

The wire contract is docs/protocol.md ("Pipeline -> sender") in the jobcast repository.
"""

from .errors import (
    Forbidden,
    InvalidRequest,
    InvokeRequired,
    JobcastError,
    JobFinished,
    MessageIgnored,
    PayloadTooLarge,
    Rejected,
    SenderError,
    StoreUnavailable,
    TransportError,
    UnexpectedAnswer,
    ValidationError,
)
from .events import (
    JOB_EVENT_TYPES,
    FailureDetail,
    JobCancelled,
    JobComplete,
    JobEvent,
    JobFailed,
    JobState,
    ProgressUpdate,
    StageComplete,
)
from .messages import (
    USER_MESSAGE_TYPES,
    Alert,
    AlertSeverity,
    Notification,
    NotificationLevel,
    ProjectCompleted,
    ProjectPayload,
    ProjectProgress,
    ProjectStatus,
    UserMessage,
)
from .outcomes import Delivered, DeliveryReport, JobStatus, Published, Queued, Registered
from .publisher import RESEND_DELAYS, Publisher, new_event_id

__version__ = "0.1.0"

__all__ = [
    "JOB_EVENT_TYPES",
    "RESEND_DELAYS",
    "USER_MESSAGE_TYPES",
    "Alert",
    "AlertSeverity",
    "Delivered",
    "DeliveryReport",
    "FailureDetail",
    "Forbidden",
    "InvalidRequest",
    "InvokeRequired",
    "JobCancelled",
    "JobComplete",
    "JobEvent",
    "JobFailed",
    "JobFinished",
    "JobState",
    "JobStatus",
    "JobcastError",
    "MessageIgnored",
    "Notification",
    "NotificationLevel",
    "PayloadTooLarge",
    "ProgressUpdate",
    "ProjectCompleted",
    "ProjectPayload",
    "ProjectProgress",
    "ProjectStatus",
    "Published",
    "Publisher",
    "Queued",
    "Registered",
    "Rejected",
    "SenderError",
    "StageComplete",
    "StoreUnavailable",
    "TransportError",
    "UnexpectedAnswer",
    "UserMessage",
    "ValidationError",
    "new_event_id",
]
