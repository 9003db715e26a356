//! The sender's wire contract: what a pipeline may send (a job event, a user message, a
//! registration, a question about a job) and what the sender answers. Parsed here, like every
//! client frame, before any handler sees it; the JSON Schemas and `jobcast::publish` read the
//! same types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::ErrorCode;
use super::events::{JobEvent, JobState, Seq};
use super::fields::{from_fields, invalid_field, optional_field};
use super::frame_error::FrameError;
use super::ids::{ConnectionId, CorrelationId, EventId, JobId, MessageId, UserId};
use super::server::JobStatusReport;
use super::user::{UserMessage, UserMessageError};

/// What a pipeline sends: one event about one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The job the event is about.
    pub job_id: JobId,
    /// The pipeline's id for this event: a retry with the same id (after a timeout, say) is
    /// recorded once, as long as no later event of the job came between. SQS's message id when
    /// the event comes through SQS without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The event: one of the job events, tagged by `type`, without `job_id` or `seq`.
    pub event: JobEvent,
    /// Ties the event to the pipeline run that caused it; echoed on the frame subscribers receive.
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
        let job_id = optional_field::<JobId>(&mut fields, "job_id")?
            .ok_or_else(|| invalid_field("job_id", "is missing"))?;
        let correlation_id = optional_field(&mut fields, "correlation_id")?;
        let event_id = optional_field(&mut fields, "event_id")?;
        let user_id = optional_field(&mut fields, "user_id")?;
        let event = fields
            .remove("event")
            .ok_or_else(|| invalid_field("event", "is missing"))?;
        let event = JobEvent::from_value(event).map_err(|err| match err {
            FrameError::InvalidField { field, reason } => {
                invalid_field(&format!("event.{field}"), reason)
            }
            FrameError::NotAnObject => invalid_field("event", "must be an object"),
            other => other,
        })?;
        if let Some(field) = fields.keys().next() {
            return Err(invalid_field(
                field,
                "is not a known field (expected job_id, event_id, event, user_id, correlation_id)",
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
    /// The user whose connections receive the message (from `channel`, when the request named one).
    pub user_id: UserId,
    /// The message, or the type of one this server does not know.
    pub message: UserPayload,
    /// Echoed on the frame the user's connections receive.
    pub correlation_id: Option<CorrelationId>,
    /// The message's id, carried on its frame so a client shows a redelivered message once
    /// (the SQS message id when the request comes through SQS without one).
    pub message_id: Option<MessageId>,
}

/// A user message this server forwards, or one of a type it does not know (skipped).
#[derive(Debug, Clone, PartialEq)]
pub enum UserPayload {
    /// A message of a type this server knows, as parsed.
    Known(UserMessage),
    /// The `type` of a message this server does not know.
    Unknown(String),
}

/// `get_presence` counts a user's connections up to this many (a user without
/// authentication may name itself on any number).
pub const PRESENCE_COUNT_LIMIT: usize = 1_000;

/// The hub channel naming convention: `user_noti:{user_id}`.
pub const USER_CHANNEL_PREFIX: &str = "user_noti:";

/// A pipeline declaring a job (and its owner) before its first event:
/// `{"action": "register_job", "job_id", "user_id"?}`.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterJob {
    /// The job to register.
    pub job_id: JobId,
    /// The job's owner. Without one, nobody may see the job when authentication is on (unless
    /// `OPEN_OWNERLESS_JOBS`), and everybody may without it.
    #[serde(default)]
    pub user_id: Option<UserId>,
    /// Ties the registration to the pipeline run that made it.
    #[serde(default)]
    pub correlation_id: Option<CorrelationId>,
}

/// A pipeline stage asking about a job between steps: `{"action": "get_job" | "is_cancelled",
/// "job_id"}`. Answered, never fanned out.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// The job asked about.
    pub job_id: JobId,
    /// Ties the question to the pipeline run that asked it.
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

/// A pipeline asking whether a user is online: `{"action": "get_presence", "user_id"}` (the
/// hub's "has other connections"). Answered, never fanned out.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    /// The user asked about.
    pub user_id: UserId,
    /// Ties the question to the pipeline run that asked it.
    #[serde(default)]
    pub correlation_id: Option<CorrelationId>,
}

/// A connection opened with `?job_id=` (a client that opens one socket per job and never
/// sends a frame): `{"action": "subscribe_connection", "connection_id", "job_id",
/// "last_seq"?}`, sent by `$connect` once the connection is recorded. It runs the `subscribe`
/// the client did not send, with every check `subscribe` makes, as the connection's own user:
/// a pipeline that sends one can make a user's socket follow only a job that user may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeConnection {
    /// The connection to subscribe.
    pub connection_id: ConnectionId,
    /// The job it follows.
    pub job_id: JobId,
    /// Resume after this seq, as `subscribe`'s `last_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<Seq>,
}

/// Anything the sender takes: a job event (`event`), a user message (`message`), or an
/// `action` (`register_job`, `get_job`, `is_cancelled`, `get_presence`,
/// `subscribe_connection`).
#[derive(Debug, Clone, PartialEq)]
pub enum SenderRequest {
    /// A job event, to record and fan out.
    Job(SendRequest),
    /// A message for every connection of one user; nothing is recorded.
    User(UserSendRequest),
    /// `register_job`: a job declared before its first event.
    Register(RegisterJob),
    /// `get_job` or `is_cancelled`: a question about a job, answered and never fanned out.
    Query(QueryKind, JobQuery),
    /// `get_presence`: how many connections a user holds, answered and never fanned out.
    Presence(PresenceQuery),
    /// `subscribe_connection`: the `subscribe` of a connection opened with `?job_id=`.
    SubscribeConnection(SubscribeConnection),
}

/// The sender's actions, as documented.
pub const SENDER_ACTIONS: [&str; 5] = [
    "register_job",
    "get_job",
    "is_cancelled",
    "get_presence",
    "subscribe_connection",
];

impl SenderRequest {
    /// The `subscribe_connection` request as it goes on the wire, with its `action`.
    pub fn subscribe_connection(request: SubscribeConnection) -> Value {
        let mut value = serde_json::to_value(request).expect("a request serializes");
        value["action"] = Value::from("subscribe_connection");
        value
    }

    /// Parses any sender request, telling the kinds apart by `action`, `event` and `message`, and
    /// naming the field at fault on error.
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotAnObject);
        };
        if let Some(action) = fields.remove("action") {
            return match action.as_str() {
                Some("register_job") => from_fields(fields).map(Self::Register),
                Some("get_job") => {
                    from_fields(fields).map(|query| Self::Query(QueryKind::GetJob, query))
                }
                Some("is_cancelled") => {
                    from_fields(fields).map(|query| Self::Query(QueryKind::IsCancelled, query))
                }
                Some("get_presence") => from_fields(fields).map(Self::Presence),
                Some("subscribe_connection") => from_fields(fields).map(Self::SubscribeConnection),
                _ => Err(invalid_field(
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
            (true, true) => Err(invalid_field(
                "event",
                "give a job event (`event`) or a user message (`message`), not both",
            )),
            (false, false) => Err(invalid_field(
                "event",
                "is missing (a job event needs `job_id` and `event`; a user message `user_id` and `message`)",
            )),
        }
    }

    /// What keeps order among SQS records: the job, or the user.
    pub fn order_group(&self) -> String {
        match self {
            Self::Job(request) => request.job_id.to_string(),
            Self::Register(request) => request.job_id.to_string(),
            Self::Query(_, query) => query.job_id.to_string(),
            Self::Presence(query) => format!("{USER_CHANNEL_PREFIX}{}", query.user_id),
            Self::SubscribeConnection(request) => request.job_id.to_string(),
            Self::User(request) => format!("{USER_CHANNEL_PREFIX}{}", request.user_id),
        }
    }
}

impl UserSendRequest {
    /// Parses a user message request (`user_id` or `channel`, `message`, `correlation_id`), naming
    /// the field at fault on error. `message` may be an object or a string holding one.
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotAnObject);
        };
        let user_id = optional_field::<UserId>(&mut fields, "user_id")?;
        let channel = optional_field::<String>(&mut fields, "channel")?;
        let user_id = match (user_id, channel) {
            (Some(user_id), None) => user_id,
            (None, Some(channel)) => {
                let raw = channel.strip_prefix(USER_CHANNEL_PREFIX).ok_or_else(|| {
                    invalid_field(
                        "channel",
                        format!("must be {USER_CHANNEL_PREFIX}{{user_id}}"),
                    )
                })?;
                UserId::parse(raw.to_owned()).map_err(|err| {
                    invalid_field("channel", format!("names no valid user: {err}"))
                })?
            }
            (Some(_), Some(_)) => {
                return Err(invalid_field(
                    "channel",
                    "give user_id or channel, not both",
                ));
            }
            (None, None) => return Err(invalid_field("user_id", "is missing")),
        };
        let correlation_id = optional_field(&mut fields, "correlation_id")?;
        let message_id = optional_field(&mut fields, "message_id")?;
        let message = fields
            .remove("message")
            .ok_or_else(|| invalid_field("message", "is missing"))?;
        let message = match UserMessage::from_value(message) {
            Ok(message) => UserPayload::Known(message),
            Err(UserMessageError::UnknownType(kind)) => UserPayload::Unknown(kind),
            Err(UserMessageError::Invalid(err)) => {
                return Err(match err {
                    FrameError::InvalidField { field, reason } => {
                        invalid_field(&format!("message.{field}"), reason)
                    }
                    FrameError::NotAnObject => invalid_field("message", "must be an object"),
                    FrameError::InvalidJson(reason) => {
                        invalid_field("message", format!("is not valid JSON: {reason}"))
                    }
                    other => other,
                });
            }
        };
        if let Some(field) = fields.keys().next() {
            return Err(invalid_field(
                field,
                "is not a known field (expected user_id or channel, message, message_id, correlation_id)",
            ));
        }
        Ok(Self {
            user_id,
            message,
            correlation_id,
            message_id,
        })
    }
}

/// What the sender answers a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    /// Recorded with `seq` and fanned out.
    Published {
        /// The job.
        job_id: JobId,
        /// The seq the event was recorded with.
        seq: Seq,
        /// A retry of the event already recorded with `seq`: it was fanned out again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
        /// What the fan-out reached.
        #[serde(flatten)]
        delivery: DeliveryReport,
    },
    /// The job is registered (`created: false`: it already was, with the same owner).
    Registered {
        /// The job.
        job_id: JobId,
        /// False when the job already existed with the same owner.
        created: bool,
        /// The job's state now.
        status: JobState,
    },
    /// A user message, posted to every connection of the user.
    Delivered {
        /// The user the message went to.
        user_id: UserId,
        /// The message's `type`.
        message_type: String,
        /// What the fan-out reached.
        #[serde(flatten)]
        delivery: DeliveryReport,
    },
    /// A user message of a type this server does not know: logged, counted, not forwarded.
    Ignored {
        /// The user the message was for.
        user_id: UserId,
        /// The message's `type`.
        message_type: String,
        /// Why it was not forwarded.
        reason: String,
    },
    /// The answer to `get_job`: the job's snapshot.
    Job {
        /// The job's snapshot, with the `job_status` fields.
        #[serde(flatten)]
        job: JobStatusReport,
    },
    /// The answer to `is_cancelled`: whether the pipeline should stop.
    Cancellation {
        /// The job.
        job_id: JobId,
        /// Whether the job has been cancelled: the pipeline should stop and send nothing more.
        cancelled: bool,
        /// The job's state.
        status: JobState,
    },
    /// The answer to `get_presence`: the user's open connections (tabs and devices).
    Presence {
        /// The user asked about.
        user_id: UserId,
        /// Connections the user holds, counted up to [`PRESENCE_COUNT_LIMIT`].
        connections: u64,
        /// Whether the user holds any connection.
        online: bool,
    },
    /// The answer to `subscribe_connection`: the subscribe ran, and told the connection
    /// its outcome (`subscribed` and the replay, or an `error`).
    ConnectionServed {
        /// The connection.
        connection_id: ConnectionId,
        /// The job it asked for.
        job_id: JobId,
    },
    /// The answer to `subscribe_connection` for a connection that closed, or never opened.
    ConnectionGone {
        /// The connection.
        connection_id: ConnectionId,
    },
    /// The answer to a query about a job that does not exist (or has expired).
    NotFound {
        /// The job asked about.
        job_id: JobId,
    },
    /// Refused, nothing recorded: the job had already finished (`job_finished`), or it belongs
    /// to another user than the request names (`forbidden`).
    Rejected {
        /// The job.
        job_id: JobId,
        /// `job_finished` or `forbidden`.
        code: ErrorCode,
        /// Why, in words.
        message: String,
    },
}

/// What happened to one fan-out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeliveryReport {
    /// Connections the payload was posted to.
    pub delivered: u64,
    /// Connections found closed (410) and removed from the store.
    pub gone: u64,
    /// Connections that could not be reached after every attempt, or refused the payload.
    pub failed: u64,
    /// Of `failed`, those whose last error may pass (throttling, 5xx, timeouts): trying the
    /// event again later may reach them.
    #[serde(default)]
    pub failed_transient: u64,
    /// Retries made, over all connections.
    pub retried: u64,
    /// How long the fan-out took, in milliseconds.
    pub duration_ms: u64,
    /// The lookup of the audience broke off (the store kept failing): the posts already under
    /// way were finished, but connections further down the list were not reached. Send the
    /// event again with its `event_id` to reach them without a new seq (SQS does so itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}
