//! The messages that cross the wire: client actions, pipeline events and server frames.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::ErrorCode;
use super::fields::{from_fields, invalid_field, optional_field, parse_object, truncate};
use super::ids::{CorrelationId, JobId};
use super::values::{Percent, StageName};

/// API Gateway's WebSocket message limit; larger frames are refused.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// The sequence number of a job event: 1, 2, 3… per job, assigned by the store.
pub type Seq = u64;

// ---------------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------------

/// What a client may ask, tagged by `action` (which is also API Gateway's route key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe(Subscribe),
    Unsubscribe(JobRef),
    CancelJob(CancelJob),
    RequestStatus(JobRef),
    Ping,
}

impl ClientMessage {
    /// Every valid `action`, in the order they are documented.
    pub const ACTIONS: [&'static str; 5] = [
        "subscribe",
        "unsubscribe",
        "cancel_job",
        "request_status",
        "ping",
    ];

    pub fn action(&self) -> &'static str {
        match self {
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::CancelJob(_) => "cancel_job",
            Self::RequestStatus(_) => "request_status",
            Self::Ping => "ping",
        }
    }

    pub fn job_id(&self) -> Option<&JobId> {
        match self {
            Self::Subscribe(Subscribe { job_id, .. })
            | Self::Unsubscribe(JobRef { job_id })
            | Self::CancelJob(CancelJob { job_id, .. })
            | Self::RequestStatus(JobRef { job_id }) => Some(job_id),
            Self::Ping => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    pub job_id: JobId,
    /// The last `seq` the client saw; events after it are replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<Seq>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    pub job_id: JobId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelJob {
    pub job_id: JobId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// One client frame: the action and the id the client wants echoed in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ClientRequest {
    #[serde(flatten)]
    pub message: ClientMessage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
}

impl ClientRequest {
    /// Parses one text frame. The dispatch on `action` is written out (rather than left to the
    /// derived tagged enum) so that every error names the field at fault.
    pub fn parse(frame: &str) -> Result<Self, FrameError> {
        let mut fields = parse_object(frame)?;
        let correlation_id = optional_field(&mut fields, "correlation_id")?;
        let action = match fields.remove("action") {
            Some(Value::String(action)) => action,
            Some(_) => {
                return Err(FrameError::InvalidField {
                    field: "action".into(),
                    reason: "must be a string".into(),
                });
            }
            None => return Err(FrameError::MissingAction),
        };
        let message = match action.as_str() {
            "subscribe" => ClientMessage::Subscribe(from_fields(fields)?),
            "unsubscribe" => ClientMessage::Unsubscribe(from_fields(fields)?),
            "cancel_job" => ClientMessage::CancelJob(from_fields(fields)?),
            "request_status" => ClientMessage::RequestStatus(from_fields(fields)?),
            "ping" => {
                from_fields::<NoFields>(fields)?;
                ClientMessage::Ping
            }
            _ => {
                return Err(FrameError::UnknownAction {
                    action: truncate(action),
                });
            }
        };
        Ok(Self {
            message,
            correlation_id,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Pipeline → sender
// ---------------------------------------------------------------------------------------------

/// What a pipeline stage reports about a job, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    ProgressUpdate(ProgressUpdate),
    StageComplete(StageComplete),
    JobComplete(JobComplete),
    JobFailed(JobFailed),
    JobCancelled(JobCancelled),
}

impl JobEvent {
    pub const TYPES: [&'static str; 5] = [
        "progress_update",
        "stage_complete",
        "job_complete",
        "job_failed",
        "job_cancelled",
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ProgressUpdate(_) => "progress_update",
            Self::StageComplete(_) => "stage_complete",
            Self::JobComplete(_) => "job_complete",
            Self::JobFailed(_) => "job_failed",
            Self::JobCancelled(_) => "job_cancelled",
        }
    }

    /// Parses an event object, naming the field at fault on error.
    pub fn from_value(value: Value) -> Result<Self, FrameError> {
        let Value::Object(mut fields) = value else {
            return Err(FrameError::NotAnObject);
        };
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(invalid_field("type", "must be a string")),
            None => return Err(invalid_field("type", "is missing")),
        };
        Ok(match kind.as_str() {
            "progress_update" => Self::ProgressUpdate(from_fields(fields)?),
            "stage_complete" => Self::StageComplete(from_fields(fields)?),
            "job_complete" => Self::JobComplete(from_fields(fields)?),
            "job_failed" => Self::JobFailed(from_fields(fields)?),
            "job_cancelled" => Self::JobCancelled(from_fields(fields)?),
            _ => {
                return Err(FrameError::UnknownEventType {
                    kind: truncate(kind),
                });
            }
        })
    }

    /// The state a job is in once this event is recorded.
    pub fn resulting_state(&self) -> JobState {
        match self {
            Self::ProgressUpdate(_) | Self::StageComplete(_) => JobState::Running,
            Self::JobComplete(_) => JobState::Completed,
            Self::JobFailed(_) => JobState::Failed,
            Self::JobCancelled(_) => JobState::Cancelled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressUpdate {
    pub stage: StageName,
    pub progress: Percent,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds_remaining: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageComplete {
    pub stage: StageName,
    #[serde(default)]
    pub results: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobComplete {
    #[serde(default)]
    pub results: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFailed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    pub error: FailureDetail,
}

/// Why a job failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCancelled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a job stands. Completed, failed and cancelled are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Registered by its pipeline; no event yet.
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------------

/// One frame sent to a client: a message, when it was made, and the correlation id if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerFrame {
    #[serde(flatten)]
    pub message: ServerMessage,
    #[serde(with = "rfc3339_millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
}

impl ServerFrame {
    pub fn new(message: ServerMessage, correlation_id: Option<CorrelationId>) -> Self {
        // A hub envelope keeps its publisher's time; every other frame is stamped now.
        let timestamp = match &message {
            ServerMessage::User(user) => user.published_at(),
            _ => None,
        }
        .unwrap_or_else(Utc::now);
        Self {
            message,
            timestamp,
            correlation_id,
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).expect("server frames serialize")
    }
}

/// Messages the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    ProgressUpdate(Sequenced<ProgressUpdate>),
    StageComplete(Sequenced<StageComplete>),
    JobComplete(Sequenced<JobComplete>),
    JobFailed(Sequenced<JobFailed>),
    JobCancelled(Sequenced<JobCancelled>),
    JobStatus(JobStatusReport),
    Subscribed(Subscribed),
    Unsubscribed(JobRef),
    Pong,
    Error(ErrorReply),
    /// A user-level message, forwarded to every connection of its user.
    #[serde(untagged)]
    User(super::UserMessage),
}

impl ServerMessage {
    /// The frame a recorded job event becomes.
    pub fn job_event(job_id: JobId, seq: Seq, event: JobEvent) -> Self {
        match event {
            JobEvent::ProgressUpdate(event) => {
                Self::ProgressUpdate(Sequenced { job_id, seq, event })
            }
            JobEvent::StageComplete(event) => Self::StageComplete(Sequenced { job_id, seq, event }),
            JobEvent::JobComplete(event) => Self::JobComplete(Sequenced { job_id, seq, event }),
            JobEvent::JobFailed(event) => Self::JobFailed(Sequenced { job_id, seq, event }),
            JobEvent::JobCancelled(event) => Self::JobCancelled(Sequenced { job_id, seq, event }),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ProgressUpdate(_) => "progress_update",
            Self::StageComplete(_) => "stage_complete",
            Self::JobComplete(_) => "job_complete",
            Self::JobFailed(_) => "job_failed",
            Self::JobCancelled(_) => "job_cancelled",
            Self::JobStatus(_) => "job_status",
            Self::Subscribed(_) => "subscribed",
            Self::Unsubscribed(_) => "unsubscribed",
            Self::Pong => "pong",
            Self::Error(_) => "error",
            Self::User(message) => message.type_name(),
        }
    }
}

/// A job event as a client sees it: the job, its `seq`, and the event's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sequenced<T> {
    pub job_id: JobId,
    pub seq: Seq,
    #[serde(flatten)]
    pub event: T,
}

/// The latest known state of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobStatusReport {
    pub job_id: JobId,
    pub status: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub last_seq: Seq,
    pub cancel_requested: bool,
    #[serde(with = "rfc3339_millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub updated_at: DateTime<Utc>,
}

/// The answer to `subscribe`: every event of the job with `seq > after_seq` follows, in order,
/// each once. `recovered` is false when the client asked to resume from a `last_seq` whose
/// events are no longer all in the log: a `job_status` follows instead, and `after_seq` is
/// the job's current last seq.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Subscribed {
    pub job_id: JobId,
    pub after_seq: Seq,
    pub recovered: bool,
}

/// A request that could not be served, with a machine-readable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
    /// The client action that failed, when it was recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Parse errors
// ---------------------------------------------------------------------------------------------

/// Why a frame (from a client or a pipeline) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("frame must be a JSON object")]
    NotAnObject,
    #[error("binary frames are not accepted; send JSON text")]
    Binary,
    #[error("missing \"action\"; expected one of: {}", ClientMessage::ACTIONS.join(", "))]
    MissingAction,
    #[error("unknown action {action:?}; expected one of: {}", ClientMessage::ACTIONS.join(", "))]
    UnknownAction { action: String },
    #[error("unknown event type {kind:?}; expected one of: {}", JobEvent::TYPES.join(", "))]
    UnknownEventType { kind: String },
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
}

impl FrameError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::InvalidJson(_) => ErrorCode::InvalidJson,
            Self::UnknownAction { .. } => ErrorCode::UnknownAction,
            Self::NotAnObject
            | Self::Binary
            | Self::MissingAction
            | Self::UnknownEventType { .. }
            | Self::InvalidField { .. } => ErrorCode::InvalidMessage,
        }
    }

    /// The field at fault, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidField { field, .. } => Some(field),
            Self::MissingAction | Self::UnknownAction { .. } => Some("action"),
            Self::UnknownEventType { .. } => Some("type"),
            _ => None,
        }
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T10:00:00.000Z`.
pub(crate) mod rfc3339_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
