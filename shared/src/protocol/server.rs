//! Server → client: every frame the server posts to a connection, stamped with its time and
//! the correlation id of the request it answers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::client::JobRef;
use super::errors::ErrorCode;
use super::events::{
    EventType, JobCancelled, JobComplete, JobEvent, JobFailed, JobState, ProgressUpdate, Seq,
    StageComplete,
};
use super::ids::{CorrelationId, JobId};
use super::user::UserMessage;
use super::values::{Percent, StageName};

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
    User(UserMessage),
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
            Self::ProgressUpdate(event) => event.type_name(),
            Self::StageComplete(event) => event.type_name(),
            Self::JobComplete(event) => event.type_name(),
            Self::JobFailed(event) => event.type_name(),
            Self::JobCancelled(event) => event.type_name(),
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

impl<T: EventType> Sequenced<T> {
    /// The event's `type`.
    pub fn type_name(&self) -> &'static str {
        T::TYPE
    }
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
