"""The exceptions this package raises. Everything derives from :class:`JobcastError`.

How a call can fail, from the earliest point to the latest:

* :class:`ValidationError` -- the request failed a client-side check (an id's charset or
  length, a percentage out of range...). Nothing was sent.
* :class:`InvokeRequired` -- the publisher only has the queue, and the call needs an answer
  (``is_cancelled``, ``get_job``, :meth:`~jobcast.Publisher.request`). Nothing was sent.
* :class:`TransportError` -- the AWS call itself failed (network, permissions, throttling, no
  such function or queue). The original botocore exception is ``__cause__``.
* :class:`SenderError` -- the sender Lambda ran and raised a function error; ``error_type`` is
  the sender's ``errorType``: :class:`InvalidRequest`, :class:`PayloadTooLarge`,
  :class:`StoreUnavailable` (retryable), or the base class for anything else.
* :class:`Rejected` -- the sender answered ``{"outcome": "rejected"}``; nothing was recorded:
  :class:`JobFinished` (the job has completed, failed or been cancelled: stop the pipeline) or
  :class:`Forbidden` (the job belongs to another user).
* :class:`MessageIgnored` -- a user message of a type the sender does not know was skipped.
* :class:`UnexpectedAnswer` -- the sender answered something this version does not understand.
"""

from __future__ import annotations

__all__ = [
    "Forbidden",
    "InvalidRequest",
    "InvokeRequired",
    "JobFinished",
    "JobcastError",
    "MessageIgnored",
    "PayloadTooLarge",
    "Rejected",
    "SenderError",
    "StoreUnavailable",
    "TransportError",
    "UnexpectedAnswer",
    "ValidationError",
]


class JobcastError(Exception):
    """The base of every error this package raises.

    ``event_id`` is set when the failed call published a job event: send the same event again
    with ``event_id=err.event_id`` and the sender records it at most once.
    """

    event_id: str | None = None


class ValidationError(JobcastError, ValueError):
    """A value failed a client-side check; nothing was sent. ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvokeRequired(JobcastError):
    """The call needs the sender's answer, which only a direct invocation gives: configure the
    publisher with ``function_name`` (the stack's ``SenderFunctionArn``)."""


class TransportError(JobcastError):
    """The AWS call failed before the sender could answer (botocore's exception is the
    ``__cause__``). ``code`` is the AWS error code when there is one
    (``ResourceNotFoundException``, ``AccessDeniedException``, ``TooManyRequestsException``...)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class SenderError(JobcastError):
    """The sender ran and raised a function error (``X-Amz-Function-Error``)."""

    #: Whether sending the same request again later may succeed.
    retryable: bool = False

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type)
        #: The sender's ``errorType`` (``InvalidRequest``, ``PayloadTooLarge``,
        #: ``StoreThrottled``, ``StoreUnavailable``, ``StoreMisconfigured``, ``StoreCorrupt``,
        #: or a Lambda runtime error such as ``Sandbox.Timedout``).
        self.error_type = error_type
        #: The sender's ``errorMessage``; names the field at fault for an invalid request.
        self.message = message


class InvalidRequest(SenderError):
    """The sender refused the request as malformed; the message names the field at fault
    (``event.progress: must be a number within 0 and 100``). Retrying cannot help."""


class PayloadTooLarge(SenderError):
    """The event would be larger than API Gateway carries (128 KB as a frame); refused before
    it took a seq. Retrying cannot help."""


class StoreUnavailable(SenderError):
    """The sender's store was throttled or unavailable (``StoreThrottled``,
    ``StoreUnavailable``). Send the same request again later (with the same ``event_id``)."""

    retryable = True


class Rejected(JobcastError):
    """The sender answered ``{"outcome": "rejected"}``: nothing was recorded."""

    def __init__(self, job_id: str, code: str, message: str) -> None:
        super().__init__(f"job {job_id} rejected ({code}): {message}")
        self.job_id = job_id
        #: ``job_finished`` or ``forbidden``.
        self.code = code
        self.message = message


class JobFinished(Rejected):
    """The job has completed, failed or been cancelled; it takes no more events. A pipeline
    should stop."""


class Forbidden(Rejected):
    """The job belongs to another user than the request names."""


class MessageIgnored(JobcastError):
    """The sender does not know the user message's ``type``; it was logged and not forwarded."""

    def __init__(self, user_id: str, message_type: str, reason: str) -> None:
        super().__init__(f"message for {user_id} ignored: {reason}")
        self.user_id = user_id
        self.message_type = message_type
        self.reason = reason


class UnexpectedAnswer(JobcastError):
    """The sender's answer could not be read, or was of another kind than the call expects."""
