"""The :class:`Publisher`: talks to jobcast's sender Lambda, directly or through its FIFO queue."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from . import outcomes
from ._checks import (
    check_id,
    check_optional_id,
    check_optional_user_id,
    check_user_id,
)
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
    FailureDetail,
    JobCancelled,
    JobComplete,
    JobEvent,
    JobFailed,
    ProgressUpdate,
    StageComplete,
)
from .messages import Alert, Notification, ProjectCompleted, ProjectProgress, UserMessage
from .outcomes import Delivered, JobStatus, Published, Queued, Registered

if TYPE_CHECKING:
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_sqs.client import SQSClient

__all__ = ["RESEND_DELAYS", "Publisher", "new_event_id"]

logger = logging.getLogger("jobcast")

#: Pauses (seconds) before each resend of an invoked event while the sender reports
#: subscribers it may still reach (``failed_transient`` or ``incomplete``), as the Rust
#: publisher does and as SQS's redelivery would.
RESEND_DELAYS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)

_USER_MESSAGE_CLASSES = (Notification, Alert, ProjectProgress, ProjectCompleted)


def new_event_id() -> str:
    """A fresh event (or message) id: a random UUID (version 4), 36 characters."""
    return str(uuid.uuid4())


def _dumps(payload: Mapping[str, object]) -> str:
    try:
        # ASCII only: every character is then one SQS accepts in a message body.
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValidationError("request", f"is not JSON-serialisable: {err}") from None


def _sqs_group_for_user(user_id: str) -> str:
    """A FIFO message group for a user's messages. SQS takes at most 128 printable ASCII
    characters; another user id is hashed (the same user, the same group)."""
    if len(user_id) <= 128 and all(0x21 <= ord(c) <= 0x7E for c in user_id):
        return user_id
    return "user-sha256:" + hashlib.sha256(user_id.encode()).hexdigest()


_SENDER_ERRORS: dict[str, type[SenderError]] = {
    "InvalidRequest": InvalidRequest,
    "PayloadTooLarge": PayloadTooLarge,
    "StoreThrottled": StoreUnavailable,
    "StoreUnavailable": StoreUnavailable,
}


class Publisher:
    """Publishes to jobcast's sender: job events, job registrations, user messages, and
    questions about a job.

    Give it the sender function (``function_name``: a name or ARN, the stack's
    ``SenderFunctionArn``) to invoke it directly, and/or the stack's FIFO queue (``queue_url``:
    ``EventQueueUrl``):

    * with ``function_name`` only, everything is a direct ``RequestResponse`` invocation and
      returns the sender's answer;
    * with ``queue_url``, job events and user messages go through the queue and return a
      :class:`~jobcast.Queued` receipt; registrations and questions still invoke when
      ``function_name`` is given too. A queue-only publisher queues registrations, and raises
      :class:`~jobcast.InvokeRequired` for ``is_cancelled`` and ``get_job``.

    Clients: pass boto3 clients (``lambda_client``, ``sqs_client``), or let the publisher
    create them from ``session`` (default: a new ``boto3.session.Session()``) with
    ``endpoint_url`` and ``region_name`` (e.g. jobcast-local's ``http://127.0.0.1:3001``).

    A publisher is cheap to keep: create it once per Lambda container, outside the handler.
    """

    def __init__(
        self,
        function_name: str | None = None,
        *,
        queue_url: str | None = None,
        lambda_client: LambdaClient | None = None,
        sqs_client: SQSClient | None = None,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        resend_delays: Sequence[float] = RESEND_DELAYS,
    ) -> None:
        if function_name is None and queue_url is None:
            raise ValueError("give the sender's function_name, its queue_url, or both")
        if lambda_client is not None and function_name is None:
            raise ValueError("lambda_client needs the function_name to invoke")
        if sqs_client is not None and queue_url is None:
            raise ValueError("sqs_client needs the queue_url to send to")
        if function_name is not None and lambda_client is None:
            session = session if session is not None else boto3.session.Session()
            lambda_client = session.client(
                "lambda", endpoint_url=endpoint_url, region_name=region_name
            )
        if queue_url is not None and sqs_client is None:
            session = session if session is not None else boto3.session.Session()
            sqs_client = session.client("sqs", endpoint_url=endpoint_url, region_name=region_name)
        self._function = (
            (lambda_client, function_name)
            if function_name is not None and lambda_client is not None
            else None
        )
        self._queue = (
            (sqs_client, queue_url) if queue_url is not None and sqs_client is not None else None
        )
        self._resend_delays = tuple(resend_delays)

    def __repr__(self) -> str:
        function = self._function[1] if self._function else None
        queue = self._queue[1] if self._queue else None
        return f"Publisher(function_name={function!r}, queue_url={queue!r})"

    @property
    def function_name(self) -> str | None:
        """The sender function this publisher invokes, if any."""
        return self._function[1] if self._function else None

    @property
    def queue_url(self) -> str | None:
        """The FIFO queue job events and user messages go to, if any."""
        return self._queue[1] if self._queue else None

    # ---- jobs --------------------------------------------------------------------------

    def register(
        self, job_id: str, user_id: str | None = None, *, correlation_id: str | None = None
    ) -> Registered | Queued:
        """Declares a job, and its owner (``user_id``), before its first event, so the owner
        can subscribe at once. Registering again with the same owner answers
        ``created=False``; with another owner it raises :class:`~jobcast.Forbidden`.

        Invokes the sender when the publisher has its function; a queue-only publisher queues
        the registration (in the job's message group, so ahead of its events)."""
        request: dict[str, object] = {
            "action": "register_job",
            "job_id": check_id("job_id", job_id),
        }
        if check_optional_user_id("user_id", user_id) is not None:
            request["user_id"] = user_id
        if check_optional_id("correlation_id", correlation_id) is not None:
            request["correlation_id"] = correlation_id
        if self._function is None:
            return self._enqueue(request, group_id=job_id, deduplication_id=new_event_id())
        answer = self._answer(request)
        if answer.get("outcome") != "registered":
            raise UnexpectedAnswer(f"expected a registration, the sender answered {answer}")
        return outcomes.registered(answer)

    def publish(
        self,
        job_id: str,
        event: JobEvent,
        *,
        event_id: str | None = None,
        user_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Published | Queued:
        """Records a job event and fans it out to the job's subscribers, who receive it with
        its ``seq``.

        ``event_id`` is the idempotency key: a fresh UUID unless given. Every retry of this
        call (boto3's own, SQS's deduplication and redelivery) carries the same id, so the
        sender records the event once; to retry yourself, pass the id of the first try
        (``Published.event_id``, or ``err.event_id`` on an exception). ``user_id`` names the
        job's owner (refused with :class:`~jobcast.Forbidden` if the job has another);
        ``correlation_id`` is echoed on the frame.

        Invoked, the event is sent again (same id, so no new seq) while the sender reports
        subscribers it may still reach (see ``resend_delays``). Raises
        :class:`~jobcast.JobFinished` once the job has completed, failed or been cancelled:
        the pipeline should stop."""
        if not isinstance(event, (ProgressUpdate, StageComplete, JobComplete, JobFailed, JobCancelled)):
            raise TypeError(f"not a job event: {event!r}")
        event_id = new_event_id() if event_id is None else check_id("event_id", event_id)
        request: dict[str, object] = {
            "job_id": check_id("job_id", job_id),
            "event_id": event_id,
            "event": event.to_json(),
        }
        if check_optional_user_id("user_id", user_id) is not None:
            request["user_id"] = user_id
        if check_optional_id("correlation_id", correlation_id) is not None:
            request["correlation_id"] = correlation_id
        try:
            if self._queue is not None:
                return self._enqueue(request, group_id=job_id, deduplication_id=event_id)
            return self._publish_invoked(request, event_id)
        except JobcastError as err:
            err.event_id = event_id
            raise

    def progress(
        self,
        job_id: str,
        stage: str,
        progress: float,
        message: str = "",
        *,
        estimated_seconds_remaining: int | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Published | Queued:
        """Publishes a :class:`~jobcast.ProgressUpdate`: ``progress`` percent (0-100) of
        ``stage``, with a line for the user."""
        event = ProgressUpdate(stage, progress, message, estimated_seconds_remaining)
        return self.publish(
            job_id, event, event_id=event_id, user_id=user_id, correlation_id=correlation_id
        )

    def stage_complete(
        self,
        job_id: str,
        stage: str,
        results: object = None,
        *,
        event_id: str | None = None,
        user_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Published | Queued:
        """Publishes a :class:`~jobcast.StageComplete` with the stage's ``results`` (any JSON)."""
        return self.publish(
            job_id,
            StageComplete(stage, results),
            event_id=event_id,
            user_id=user_id,
            correlation_id=correlation_id,
        )

    def complete(
        self,
        job_id: str,
        results: object = None,
        *,
        event_id: str | None = None,
        user_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Published | Queued:
        """Publishes a :class:`~jobcast.JobComplete` (final) with the job's ``results``."""
        return self.publish(
            job_id,
            JobComplete(results),
            event_id=event_id,
            user_id=user_id,
            correlation_id=correlation_id,
        )

    def fail(
        self,
        job_id: str,
        code: str,
        message: str,
        *,
        suggested_action: str | None = None,
        stage: str | None = None,
        event_id: str | None = None,
        user_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Published | Queued:
        """Publishes a :class:`~jobcast.JobFailed` (final): the pipeline's error ``code``, a
        ``message`` for the user, and what they can do about it."""
        event = JobFailed(FailureDetail(code, message, suggested_action), stage)
        return self.publish(
            job_id, event, event_id=event_id, user_id=user_id, correlation_id=correlation_id
        )

    def cancel(
        self,
        job_id: str,
        reason: str | None = None,
        *,
        event_id: str | None = None,
        user_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Published | Queued:
        """Publishes a :class:`~jobcast.JobCancelled` (final): the pipeline cancels its job."""
        return self.publish(
            job_id,
            JobCancelled(reason),
            event_id=event_id,
            user_id=user_id,
            correlation_id=correlation_id,
        )

    # ---- users -------------------------------------------------------------------------

    def notify(
        self,
        user_id: str,
        message: UserMessage | Mapping[str, object] | str,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Delivered | Queued:
        """Sends a user message (:class:`~jobcast.Notification`, :class:`~jobcast.Alert`,
        :class:`~jobcast.ProjectProgress`, :class:`~jobcast.ProjectCompleted`) to every
        connection of ``user_id``. A hub publisher's message may also be given as it is: a
        ``dict`` or a JSON string.

        ``message_id`` (a fresh UUID unless given) rides on every frame, so a client shows a
        redelivered message once; through the queue it is the deduplication id, and the
        message group is the user id. A message of a type the sender does not know raises
        :class:`~jobcast.MessageIgnored`."""
        check_user_id("user_id", user_id)
        message_id = new_event_id() if message_id is None else check_id("message_id", message_id)
        body: object
        if isinstance(message, _USER_MESSAGE_CLASSES):
            body = message.to_json()
        elif isinstance(message, (Mapping, str)):
            body = message
        else:
            raise TypeError(f"not a user message: {message!r}")
        request: dict[str, object] = {"user_id": user_id, "message": body, "message_id": message_id}
        if check_optional_id("correlation_id", correlation_id) is not None:
            request["correlation_id"] = correlation_id
        if self._queue is not None:
            return self._enqueue(
                request, group_id=_sqs_group_for_user(user_id), deduplication_id=message_id
            )
        answer = self._answer(request)
        outcome = answer.get("outcome")
        if outcome == "ignored":
            raise MessageIgnored(
                str(answer.get("user_id", user_id)),
                str(answer.get("message_type", "")),
                str(answer.get("reason", "")),
            )
        if outcome != "delivered":
            raise UnexpectedAnswer(f"expected a delivery, the sender answered {answer}")
        return outcomes.delivered(answer, message_id)

    # ---- questions ---------------------------------------------------------------------

    def is_cancelled(self, job_id: str, *, correlation_id: str | None = None) -> bool:
        """Whether the job has been cancelled: poll between steps, and stop (sending nothing
        more) when it is. A job that does not exist (never registered, or expired) also
        answers ``True``, as in the Rust publisher: there is nobody left to report to. Needs a
        direct invocation (:class:`~jobcast.InvokeRequired` otherwise)."""
        answer = self._query("is_cancelled", job_id, correlation_id)
        outcome = answer.get("outcome")
        if outcome == "not_found":
            return True
        if outcome != "cancellation" or not isinstance(answer.get("cancelled"), bool):
            raise UnexpectedAnswer(f"expected a cancellation answer, the sender answered {answer}")
        return bool(answer["cancelled"])

    def get_job(self, job_id: str, *, correlation_id: str | None = None) -> JobStatus | None:
        """The job's snapshot (status, stage, progress, message, last seq, whether it was
        cancelled), or ``None`` when it does not exist. Needs a direct invocation
        (:class:`~jobcast.InvokeRequired` otherwise)."""
        answer = self._query("get_job", job_id, correlation_id)
        outcome = answer.get("outcome")
        if outcome == "not_found":
            return None
        if outcome != "job":
            raise UnexpectedAnswer(f"expected a job, the sender answered {answer}")
        return outcomes.job_status(answer)

    def request(self, payload: Mapping[str, object]) -> dict[str, Any]:
        """Invokes the sender with any request (as in docs/protocol.md) and returns its answer
        as it is, ``rejected`` outcomes included. Function errors still raise
        :class:`~jobcast.SenderError` and failed calls :class:`~jobcast.TransportError`."""
        return self._invoke(payload)

    # ---- the transports ----------------------------------------------------------------

    def _query(self, action: str, job_id: str, correlation_id: str | None) -> dict[str, Any]:
        request: dict[str, object] = {"action": action, "job_id": check_id("job_id", job_id)}
        if check_optional_id("correlation_id", correlation_id) is not None:
            request["correlation_id"] = correlation_id
        return self._answer(request)

    def _publish_invoked(self, request: dict[str, object], event_id: str) -> Published:
        answer = self._answer(request)
        if answer.get("outcome") != "published":
            raise UnexpectedAnswer(f"expected a publication, the sender answered {answer}")
        first = outcomes.published(answer, event_id)
        last = first
        for resend, delay in enumerate(self._resend_delays):
            if last.delivery.complete:
                break
            logger.info(
                "job %s seq %d: %d subscriber(s) not reached yet%s; sending event %s again",
                first.job_id,
                first.seq,
                last.delivery.failed_transient,
                " (lookup incomplete)" if last.delivery.incomplete else "",
                event_id,
                extra={"resend": resend},
            )
            time.sleep(delay)
            try:
                answer = self._answer(request)
                last = outcomes.published(answer, event_id)
            except JobcastError as err:
                # The event is recorded: a failed resend leaves the answer there is.
                logger.warning("could not send event %s again: %s", event_id, err)
                break
        # Whether the event was new is the first try's to say; what was reached, the last's.
        return Published(first.job_id, first.seq, event_id, first.duplicate, last.delivery)

    def _answer(self, request: Mapping[str, object]) -> dict[str, Any]:
        """Invokes the sender; raises a refusal (``outcome: rejected``) as its exception."""
        answer = self._invoke(request)
        if answer.get("outcome") == "rejected":
            job_id = str(answer.get("job_id", request.get("job_id", "")))
            code = str(answer.get("code", ""))
            message = str(answer.get("message", ""))
            kind = {"job_finished": JobFinished, "forbidden": Forbidden}.get(code, Rejected)
            raise kind(job_id, code, message)
        return answer

    def _invoke(self, request: Mapping[str, object]) -> dict[str, Any]:
        if self._function is None:
            raise InvokeRequired(
                "this publisher only has the queue; is_cancelled, get_job and request need "
                "an answer, which only a direct invocation gives: pass function_name (the "
                "stack's SenderFunctionArn)"
            )
        client, function = self._function
        body = _dumps(request)
        try:
            response = client.invoke(
                FunctionName=function, InvocationType="RequestResponse", Payload=body
            )
            raw = response["Payload"].read()
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            raise TransportError(f"invoking {function} failed: {err}", code) from err
        except BotoCoreError as err:
            raise TransportError(f"invoking {function} failed: {err}") from err
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        function_error = response.get("FunctionError")
        if function_error:
            details = answer if isinstance(answer, dict) else {}
            error_type = str(details.get("errorType") or function_error)
            message = str(details.get("errorMessage") or "")
            raise _SENDER_ERRORS.get(error_type, SenderError)(error_type, message)
        if not isinstance(answer, dict):
            raise UnexpectedAnswer(f"the sender's answer is not a JSON object: {raw[:200]!r}")
        return answer

    def _enqueue(
        self, request: Mapping[str, object], *, group_id: str, deduplication_id: str
    ) -> Queued:
        assert self._queue is not None
        client, queue_url = self._queue
        try:
            response = client.send_message(
                QueueUrl=queue_url,
                MessageBody=_dumps(request),
                MessageGroupId=group_id,
                MessageDeduplicationId=deduplication_id,
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            raise TransportError(f"sending to {queue_url} failed: {err}", code) from err
        except BotoCoreError as err:
            raise TransportError(f"sending to {queue_url} failed: {err}") from err
        return Queued(
            message_id=response.get("MessageId", ""),
            sequence_number=response.get("SequenceNumber"),
            group_id=group_id,
            deduplication_id=deduplication_id,
        )
