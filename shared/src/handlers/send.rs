use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use super::Jobcast;
use crate::cache::MAX_CACHED_SUBSCRIBERS;
use crate::delivery::{Audience, DeliveryReport, FanOut, Recipients, deliver_to};
use crate::gateway::ConnectionGateway;
use crate::protocol::{
    ConnectionId, CorrelationId, ErrorCode, EventId, FrameError, JobEvent, JobId, JobState,
    JobStatusReport, MAX_FRAME_BYTES, Seq, ServerFrame, ServerMessage, UserId, UserMessage,
    UserMessageError,
};
use crate::store::{AppendOutcome, Appended, NewEvent, NewJob, RegisterOutcome, Store, StoreError};

/// What a pipeline sends: one event about one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub job_id: JobId,
    /// The pipeline's id for this event: a retry with the same id (after a timeout, say) is
    /// recorded once, as long as no later event of the job came between. SQS's message id when
    /// the event comes through SQS without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    pub event: JobEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
    /// The job's owner: declared by the first event that names one (or by registration); an
    /// event naming another user than the owner is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
}

impl SendRequest {
    /// Parses an invocation payload, naming the field at fault on error.
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotAnObject);
        };
        let job_id = crate::protocol::optional_field::<JobId>(&mut fields, "job_id")?
            .ok_or_else(|| invalid("job_id", "is missing".into()))?;
        let correlation_id = crate::protocol::optional_field(&mut fields, "correlation_id")?;
        let event_id = crate::protocol::optional_field(&mut fields, "event_id")?;
        let user_id = crate::protocol::optional_field(&mut fields, "user_id")?;
        let event = fields
            .remove("event")
            .ok_or_else(|| invalid("event", "is missing".into()))?;
        let event = JobEvent::from_value(event).map_err(|err| match err {
            FrameError::InvalidField { field, reason } => {
                invalid(&format!("event.{field}"), reason)
            }
            FrameError::NotAnObject => invalid("event", "must be an object".into()),
            other => other,
        })?;
        if let Some(field) = fields.keys().next() {
            return Err(invalid(
                field,
                "is not a known field (expected job_id, event_id, event, user_id, correlation_id)"
                    .into(),
            ));
        }
        Ok(Self {
            job_id,
            event_id,
            event,
            correlation_id,
            user_id,
        })
    }
}

/// A message for every connection of one user: `{user_id, message}`, or a hub's
/// `{channel: "user_noti:{user_id}", message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSendRequest {
    pub user_id: UserId,
    pub message: UserPayload,
    pub correlation_id: Option<CorrelationId>,
}

/// A user message this server forwards, or one of a type it does not know (skipped).
#[derive(Debug, Clone, PartialEq)]
pub enum UserPayload {
    Known(UserMessage),
    Unknown(String),
}

/// The hub channel naming convention: `user_noti:{user_id}`.
pub const USER_CHANNEL_PREFIX: &str = "user_noti:";

/// A pipeline declaring a job (and its owner) before its first event:
/// `{"action": "register_job", "job_id", "user_id"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterJob {
    pub job_id: JobId,
    #[serde(default)]
    pub user_id: Option<UserId>,
    #[serde(default)]
    pub correlation_id: Option<CorrelationId>,
}

/// A pipeline stage asking about a job between steps: `{"action": "get_job" | "is_cancelled",
/// "job_id"}`. Answered, never fanned out.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    pub job_id: JobId,
    #[serde(default)]
    pub correlation_id: Option<CorrelationId>,
}

/// What a [`JobQuery`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// The whole snapshot.
    GetJob,
    /// Only whether the job was cancelled (the cheap poll between steps).
    IsCancelled,
}

/// Anything the sender takes: a job event (`event`), a user message (`message`), or an
/// `action` (`register_job`, `get_job`, `is_cancelled`).
#[derive(Debug, Clone, PartialEq)]
pub enum SenderRequest {
    Job(SendRequest),
    User(UserSendRequest),
    Register(RegisterJob),
    Query(QueryKind, JobQuery),
}

/// The sender's actions, as documented.
pub const SENDER_ACTIONS: [&str; 3] = ["register_job", "get_job", "is_cancelled"];

impl SenderRequest {
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotAnObject);
        };
        if let Some(action) = fields.remove("action") {
            return match action.as_str() {
                Some("register_job") => crate::protocol::from_fields(fields).map(Self::Register),
                Some("get_job") => crate::protocol::from_fields(fields)
                    .map(|query| Self::Query(QueryKind::GetJob, query)),
                Some("is_cancelled") => crate::protocol::from_fields(fields)
                    .map(|query| Self::Query(QueryKind::IsCancelled, query)),
                _ => Err(invalid(
                    "action",
                    format!(
                        "is not a sender action (expected one of: {})",
                        SENDER_ACTIONS.join(", ")
                    ),
                )),
            };
        }
        match (fields.contains_key("event"), fields.contains_key("message")) {
            (true, false) => SendRequest::from_value(Value::Object(fields)).map(Self::Job),
            (false, true) => UserSendRequest::from_value(Value::Object(fields)).map(Self::User),
            (true, true) => Err(invalid(
                "event",
                "give a job event (`event`) or a user message (`message`), not both".into(),
            )),
            (false, false) => Err(invalid(
                "event",
                "is missing (a job event needs `job_id` and `event`; a user message `user_id` and `message`)".into(),
            )),
        }
    }

    /// What keeps order among SQS records: the job, or the user.
    pub fn order_group(&self) -> String {
        match self {
            Self::Job(request) => request.job_id.to_string(),
            Self::Register(request) => request.job_id.to_string(),
            Self::Query(_, query) => query.job_id.to_string(),
            Self::User(request) => format!("{USER_CHANNEL_PREFIX}{}", request.user_id),
        }
    }
}

impl UserSendRequest {
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotAnObject);
        };
        let user_id = crate::protocol::optional_field::<UserId>(&mut fields, "user_id")?;
        let channel = crate::protocol::optional_field::<String>(&mut fields, "channel")?;
        let user_id = match (user_id, channel) {
            (Some(user_id), None) => user_id,
            (None, Some(channel)) => {
                let raw = channel.strip_prefix(USER_CHANNEL_PREFIX).ok_or_else(|| {
                    invalid(
                        "channel",
                        format!("must be {USER_CHANNEL_PREFIX}{{user_id}}"),
                    )
                })?;
                UserId::parse(raw.to_owned())
                    .map_err(|err| invalid("channel", format!("names no valid user: {err}")))?
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "channel",
                    "give user_id or channel, not both".into(),
                ));
            }
            (None, None) => return Err(invalid("user_id", "is missing".into())),
        };
        let correlation_id = crate::protocol::optional_field(&mut fields, "correlation_id")?;
        let message = fields
            .remove("message")
            .ok_or_else(|| invalid("message", "is missing".into()))?;
        let message = match UserMessage::from_value(message) {
            Ok(message) => UserPayload::Known(message),
            Err(UserMessageError::UnknownType(kind)) => UserPayload::Unknown(kind),
            Err(UserMessageError::Invalid(err)) => {
                return Err(match err {
                    FrameError::InvalidField { field, reason } => {
                        invalid(&format!("message.{field}"), reason)
                    }
                    FrameError::NotAnObject => invalid("message", "must be an object".into()),
                    FrameError::InvalidJson(reason) => {
                        invalid("message", format!("is not valid JSON: {reason}"))
                    }
                    other => other,
                });
            }
        };
        if let Some(field) = fields.keys().next() {
            return Err(invalid(
                field,
                "is not a known field (expected user_id or channel, message, correlation_id)"
                    .into(),
            ));
        }
        Ok(Self {
            user_id,
            message,
            correlation_id,
        })
    }
}

fn invalid(field: &str, reason: String) -> FrameError {
    FrameError::InvalidField {
        field: field.to_owned(),
        reason,
    }
}

/// What the sender answers a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    /// Recorded with `seq` and fanned out.
    Published {
        job_id: JobId,
        seq: Seq,
        /// A retry of the event already recorded with `seq`: it was fanned out again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
        #[serde(flatten)]
        delivery: DeliveryReport,
    },
    /// The job is registered (`created: false`: it already was, with the same owner).
    Registered {
        job_id: JobId,
        created: bool,
        status: JobState,
    },
    /// A user message, posted to every connection of the user.
    Delivered {
        user_id: UserId,
        message_type: String,
        #[serde(flatten)]
        delivery: DeliveryReport,
    },
    /// A user message of a type this server does not know: logged, counted, not forwarded.
    Ignored {
        user_id: UserId,
        message_type: String,
        reason: String,
    },
    /// The answer to `get_job`: the job's snapshot.
    Job {
        #[serde(flatten)]
        job: JobStatusReport,
    },
    /// The answer to `is_cancelled`: whether the pipeline should stop.
    Cancellation {
        job_id: JobId,
        cancelled: bool,
        status: JobState,
    },
    /// The answer to a query about a job that does not exist (or has expired).
    NotFound { job_id: JobId },
    /// Not recorded: the job had already finished.
    Rejected {
        job_id: JobId,
        code: ErrorCode,
        message: String,
    },
}

/// Why the sender could not take an event. Delivery failures are never errors: they are
/// counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("invalid send request: {0}")]
    InvalidRequest(#[from] FrameError),
    #[error("the event is {size} bytes as a frame; API Gateway carries at most {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SendError {
    /// The `errorType` a Lambda invoker sees.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::Store(StoreError::Throttled(_)) => "StoreThrottled",
            Self::Store(StoreError::NotFound(_)) => "StoreMisconfigured",
            Self::Store(StoreError::Corrupt(_)) => "StoreCorrupt",
            Self::Store(StoreError::Unavailable(_) | StoreError::ConditionFailed(_)) => {
                "StoreUnavailable"
            }
        }
    }

    /// Whether the request itself is at fault, so that no retry can help.
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::InvalidRequest(_) | Self::PayloadTooLarge { .. })
    }

    /// Whether the same request may succeed later (SQS should redeliver it).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Store(
                StoreError::Throttled(_)
                    | StoreError::Unavailable(_)
                    | StoreError::ConditionFailed(_)
            )
        )
    }
}

impl<S: Store> Jobcast<S> {
    /// The sender: parses a pipeline's event, records it (the store assigns `seq`), and fans it
    /// out to every subscriber of the job.
    pub async fn handle_send<G: ConnectionGateway>(
        &self,
        gateway: &G,
        input: Value,
    ) -> Result<SendOutcome, SendError> {
        let request = SenderRequest::from_value(input)?;
        self.serve_request(gateway, request).await
    }

    /// Publishes a job event or delivers a user message, in a span naming it.
    pub(super) async fn serve_request<G: ConnectionGateway>(
        &self,
        gateway: &G,
        request: SenderRequest,
    ) -> Result<SendOutcome, SendError> {
        match request {
            SenderRequest::Job(request) => {
                let span = tracing::info_span!(
                    "send",
                    job_id = %request.job_id,
                    event_type = request.event.type_name(),
                    correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
                );
                self.publish(gateway, request).instrument(span).await
            }
            SenderRequest::Register(request) => {
                let span = tracing::info_span!(
                    "register",
                    job_id = %request.job_id,
                    correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
                );
                self.register(request).instrument(span).await
            }
            SenderRequest::Query(kind, query) => {
                let span = tracing::info_span!(
                    "query",
                    job_id = %query.job_id,
                    correlation_id = query.correlation_id.as_ref().map(CorrelationId::as_str),
                );
                self.answer_query(kind, query).instrument(span).await
            }
            SenderRequest::User(request) => {
                let span = tracing::info_span!(
                    "send",
                    user_id = %request.user_id,
                    correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
                );
                self.deliver_to_user(gateway, request)
                    .instrument(span)
                    .await
            }
        }
    }

    /// A pipeline's question about its job. A cancelled job has `cancel_requested` set (and
    /// is in its final state): the stage should stop and send nothing more.
    async fn answer_query(
        &self,
        kind: QueryKind,
        query: JobQuery,
    ) -> Result<SendOutcome, SendError> {
        let Some(job) = self.store.get_job(&query.job_id).await? else {
            tracing::info!("query about a job that does not exist");
            return Ok(SendOutcome::NotFound {
                job_id: query.job_id,
            });
        };
        tracing::debug!(status = job.state.as_str(), "job queried");
        Ok(match kind {
            QueryKind::GetJob => SendOutcome::Job {
                job: super::message::status_report(job),
            },
            QueryKind::IsCancelled => SendOutcome::Cancellation {
                cancelled: job.cancel_requested || job.state == JobState::Cancelled,
                status: job.state,
                job_id: job.job_id,
            },
        })
    }

    async fn register(&self, request: RegisterJob) -> Result<SendOutcome, SendError> {
        let now = Utc::now();
        let outcome = self
            .store
            .register_job(NewJob {
                job_id: request.job_id.clone(),
                owner: request.user_id.clone(),
                registered_at: now,
                expires_at: self.expiry(now, self.settings.job_ttl),
            })
            .await?;
        let (job, created) = match outcome {
            RegisterOutcome::Registered(job) => (job, true),
            RegisterOutcome::Exists(job) => (job, false),
        };
        if !created && job.owner != request.user_id {
            tracing::warn!(owner = ?job.owner, claimed = ?request.user_id, "registration refused: the job exists with another owner");
            return Ok(SendOutcome::Rejected {
                job_id: request.job_id,
                code: ErrorCode::Forbidden,
                message: "the job already exists with another owner".into(),
            });
        }
        tracing::info!(created, owner = ?job.owner, "job registered");
        Ok(SendOutcome::Registered {
            job_id: job.job_id,
            created,
            status: job.state,
        })
    }

    /// A user message goes to every connection of the user; nothing is recorded.
    async fn deliver_to_user<G: ConnectionGateway>(
        &self,
        gateway: &G,
        request: UserSendRequest,
    ) -> Result<SendOutcome, SendError> {
        let UserSendRequest {
            user_id,
            message,
            correlation_id,
        } = request;
        let message = match message {
            UserPayload::Known(message) => message,
            UserPayload::Unknown(kind) => {
                tracing::warn!(message_type = %kind, "user message of an unknown type skipped");
                self.metrics
                    .emit(&crate::metrics::unknown_message_line(&kind));
                return Ok(SendOutcome::Ignored {
                    user_id,
                    reason: format!(
                        "unknown message type {kind:?} (known: {})",
                        UserMessage::TYPES.join(", ")
                    ),
                    message_type: kind,
                });
            }
        };
        let message_type = message.type_name();
        let frame = ServerFrame::new(ServerMessage::User(message), correlation_id);
        let payload = frame.to_json();
        if payload.len() > MAX_FRAME_BYTES {
            return Err(SendError::PayloadTooLarge {
                size: payload.len(),
                limit: MAX_FRAME_BYTES,
            });
        }
        let FanOut { report, .. } = deliver_to(
            &self.store,
            gateway,
            &self.settings.delivery,
            Recipients::Lookup(Audience::User(user_id.clone())),
            &[],
            Bytes::from(payload),
            0,
        )
        .await?;
        self.metrics
            .emit(&crate::metrics::fan_out_line(message_type, &report));
        tracing::info!(
            message_type,
            delivered = report.delivered,
            gone = report.gone,
            failed = report.failed,
            retried = report.retried,
            duration_ms = report.duration_ms,
            "user message delivered"
        );
        Ok(SendOutcome::Delivered {
            user_id,
            message_type: message_type.to_owned(),
            delivery: report,
        })
    }

    pub(super) async fn publish<G: ConnectionGateway>(
        &self,
        gateway: &G,
        request: SendRequest,
    ) -> Result<SendOutcome, SendError> {
        let SendRequest {
            job_id,
            event_id,
            event,
            correlation_id,
            user_id,
        } = request;
        let new = NewJobEvent {
            event_id,
            event,
            correlation_id,
            owner: user_id,
        };
        match self.record_and_deliver(gateway, &job_id, new).await? {
            Recorded::Published {
                seq,
                duplicate,
                delivery,
            } => Ok(SendOutcome::Published {
                job_id,
                seq,
                duplicate,
                delivery,
            }),
            Recorded::Finished(state) => {
                tracing::warn!(state = state.as_str(), "event refused: job finished");
                let message = format!(
                    "job {job_id} has already {}; the event was not recorded",
                    state.as_str()
                );
                Ok(SendOutcome::Rejected {
                    job_id,
                    code: ErrorCode::JobFinished,
                    message,
                })
            }
            Recorded::OwnedByAnother => {
                tracing::warn!("event refused: the job belongs to another user");
                Ok(SendOutcome::Rejected {
                    job_id,
                    code: ErrorCode::Forbidden,
                    message: "the job belongs to another user than this event names".into(),
                })
            }
        }
    }

    /// Records a job event (the store assigns its seq) and fans it out to the job's
    /// subscribers: what the sender does, and what `cancel_job` does for a client.
    pub(super) async fn record_and_deliver<G: ConnectionGateway>(
        &self,
        gateway: &G,
        job_id: &JobId,
        new: NewJobEvent,
    ) -> Result<Recorded, SendError> {
        let NewJobEvent {
            event_id,
            event,
            correlation_id,
            owner,
        } = new;
        // Refuse an event too large to deliver before it takes a seq.
        let probe = ServerFrame::new(
            ServerMessage::job_event(job_id.clone(), Seq::MAX, event.clone()),
            correlation_id.clone(),
        );
        let size = probe.to_json().len();
        if size > MAX_FRAME_BYTES {
            tracing::warn!(size, "event refused: too large to deliver");
            return Err(SendError::PayloadTooLarge {
                size,
                limit: MAX_FRAME_BYTES,
            });
        }
        let now = Utc::now();
        let outcome = self
            .store
            .append_event(NewEvent {
                job_id: job_id.clone(),
                event_id,
                event,
                correlation_id: correlation_id.clone(),
                recorded_at: now,
                job_expires_at: self.expiry(now, self.settings.job_ttl),
                event_expires_at: self.expiry(now, self.settings.event_ttl),
                owner,
            })
            .await?;
        let Appended {
            event: stored,
            duplicate,
            subscribers_version,
            replaying,
        } = match outcome {
            AppendOutcome::Appended(appended) => appended,
            AppendOutcome::JobFinished(job) => return Ok(Recorded::Finished(job.state)),
            AppendOutcome::OwnedByAnother(_) => return Ok(Recorded::OwnedByAnother),
        };
        if duplicate {
            tracing::info!(
                seq = stored.seq,
                "a retry of the job's latest event; fanning it out again"
            );
        }
        let seq = stored.seq;
        let frame = ServerFrame::new(
            ServerMessage::job_event(job_id.clone(), seq, stored.event),
            stored.correlation_id,
        );
        let payload = Bytes::from(frame.to_json());
        let delivery = self
            .fan_out_to_subscribers(
                gateway,
                job_id,
                seq,
                subscribers_version,
                &replaying,
                payload,
            )
            .await?;
        self.metrics.emit(&crate::metrics::fan_out_line(
            frame.message.type_name(),
            &delivery,
        ));
        tracing::info!(
            seq,
            event_type = frame.message.type_name(),
            delivered = delivery.delivered,
            gone = delivery.gone,
            failed = delivery.failed,
            retried = delivery.retried,
            duration_ms = delivery.duration_ms,
            "event published"
        );
        Ok(Recorded::Published {
            seq,
            duplicate,
            delivery,
        })
    }

    /// Fans event `seq` out to a job's subscribers but those `replaying` it, from the warm
    /// cache when it still holds them at `version`, else from the store (remembering them).
    /// A subscription made after an append raises the version, so a list cached for an
    /// earlier seq never lacks one that a later seq should reach.
    async fn fan_out_to_subscribers<G: ConnectionGateway>(
        &self,
        gateway: &G,
        job_id: &JobId,
        seq: Seq,
        version: u64,
        replaying: &[ConnectionId],
        payload: Bytes,
    ) -> Result<DeliveryReport, StoreError> {
        let settings = &self.settings.delivery;
        let cached = self.subscribers.get(job_id, version);
        let from_cache = cached.is_some();
        let recipients = match cached {
            Some(list) => Recipients::Listed(list),
            None => Recipients::Lookup(Audience::Job(job_id.clone(), seq)),
        };
        let remember = if self.subscribers.is_enabled() && !from_cache {
            MAX_CACHED_SUBSCRIBERS
        } else {
            0
        };
        let FanOut { report, recipients } = deliver_to(
            &self.store,
            gateway,
            settings,
            recipients,
            replaying,
            payload,
            remember,
        )
        .await?;
        if report.gone > 0 {
            self.subscribers.invalidate(job_id);
        } else if let Some(list) = recipients {
            self.subscribers.put(job_id.clone(), version, list);
        }
        tracing::debug!(from_cache, "subscribers resolved");
        Ok(report)
    }
}

/// What recording a job event came to.
pub(super) enum Recorded {
    Published {
        seq: Seq,
        duplicate: bool,
        delivery: DeliveryReport,
    },
    /// The job had finished in this state; nothing was recorded.
    Finished(JobState),
    /// The event named another owner than the job's; nothing was recorded.
    OwnedByAnother,
}

/// A job event on its way to the store.
pub(super) struct NewJobEvent {
    pub event_id: Option<EventId>,
    pub event: JobEvent,
    pub correlation_id: Option<CorrelationId>,
    pub owner: Option<UserId>,
}
