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
use super::ids::{CorrelationId, JobId, MessageId};
use super::user::UserMessage;
use super::values::{Percent, StageName};

/// One frame sent to a client: a message, when it was made, and the correlation id if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerFrame {
    /// The message: its `type` and its fields.
    #[serde(flatten)]
    pub message: ServerMessage,
    /// When the frame was made (for a hub envelope, when its publisher made it): RFC 3339, UTC,
    /// milliseconds.
    #[serde(with = "rfc3339_millis")]
    #[schemars(with = "DateTime<Utc>")]
    pub timestamp: DateTime<Utc>,
    /// The correlation id of what this frame answers or carries, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
    /// A user message's id: a redelivered message carries the same one, so a client shows it
    /// once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
}

impl ServerFrame {
    /// A frame for `message`, stamped now; a hub envelope keeps its publisher's time.
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
            message_id: None,
        }
    }

    /// The same frame, carrying a user message's id.
    pub fn with_message_id(self, message_id: MessageId) -> Self {
        Self {
            message_id: Some(message_id),
            ..self
        }
    }

    /// The frame as the JSON text posted to a connection.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).expect("server frames serialize")
    }
}

/// Messages the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// A recorded `progress_update`.
    ProgressUpdate(Sequenced<ProgressUpdate>),
    /// A recorded `stage_complete`.
    StageComplete(Sequenced<StageComplete>),
    /// A recorded `job_complete`.
    JobComplete(Sequenced<JobComplete>),
    /// A recorded `job_failed`.
    JobFailed(Sequenced<JobFailed>),
    /// A recorded `job_cancelled`.
    JobCancelled(Sequenced<JobCancelled>),
    /// A job's latest snapshot (`job_status`).
    JobStatus(JobStatusReport),
    /// The answer to `subscribe`.
    Subscribed(Subscribed),
    /// A replay stopped at its per-frame bound: `subscribe` again from `through_seq` for more.
    ReplayPaused(ReplayPaused),
    /// The answer to `unsubscribe`.
    Unsubscribed(JobRef),
    /// The answer to `ping`.
    Pong,
    /// A request that could not be served (`error`).
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

    /// The frame's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ProgressUpdate(event) => event.type_name(),
            Self::StageComplete(event) => event.type_name(),
            Self::JobComplete(event) => event.type_name(),
            Self::JobFailed(event) => event.type_name(),
            Self::JobCancelled(event) => event.type_name(),
            Self::JobStatus(_) => "job_status",
            Self::Subscribed(_) => "subscribed",
            Self::ReplayPaused(_) => "replay_paused",
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
    /// The job the event is about.
    pub job_id: JobId,
    /// The event's seq: 1, 2, 3… per job.
    pub seq: Seq,
    /// The event's own fields.
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
    /// The job.
    pub job_id: JobId,
    /// Where the job stands.
    pub status: JobState,
    /// The stage an event last named, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    /// The progress last reported (100 once the job completed), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Percent>,
    /// The latest message: a progress update's, a failure's, or a cancel's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The seq of the job's latest event.
    pub last_seq: Seq,
    /// Whether the job has been cancelled.
    pub cancel_requested: bool,
    /// When the job last changed: RFC 3339, UTC, milliseconds.
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
    /// The job now followed.
    pub job_id: JobId,
    /// Every event of the job with a greater seq follows, once, in order.
    pub after_seq: Seq,
    /// False when the events after the client's `last_seq` are no longer all in the log.
    pub recovered: bool,
}

/// A replay that posted as many events as one `subscribe` may ([`REPLAY_EVENTS_PER_FRAME`])
/// while the job has more: the connection no longer follows the job, and a `subscribe` with
/// `last_seq: through_seq`, `retry_after_ms` later, brings the next events (and, once caught
/// up, the live stream).
/// Bounding each frame's work keeps one client from spending the account's post quota, or a
/// minute of Lambda time, with a single frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplayPaused {
    /// The job being replayed.
    pub job_id: JobId,
    /// The last event this replay posted: subscribe again with it as `last_seq`.
    pub through_seq: Seq,
    /// The job's last seq as the replay paused.
    pub last_seq: Seq,
    /// How long to wait before subscribing again, in milliseconds: the replay was charged to
    /// the connection's frame allowance and to its user's replay allowance (a token per 25
    /// events). A subscribe sooner is refused with `rate_limited`, or replays little or
    /// nothing and pauses again.
    pub retry_after_ms: u64,
}

/// The most events one `subscribe` replays before it pauses with `replay_paused`.
pub const REPLAY_EVENTS_PER_FRAME: u64 = 500;

/// A request that could not be served, with a machine-readable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorReply {
    /// What kind of failure: a machine-readable code.
    pub code: ErrorCode,
    /// What went wrong, in words.
    pub message: String,
    /// What the client can do about it, when there is something.
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
