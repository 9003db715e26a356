//! Pipeline → sender: the events a pipeline stage reports about a job, and the states a job
//! goes through. Each event type is named once (`event_types!`), for the parser, the frames
//! and the schemas alike.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{from_fields, invalid_field, truncate};
use super::frame_error::FrameError;
use super::values::{Percent, StageName};

/// The sequence number of a job event: 1, 2, 3… per job, assigned by the store.
pub type Seq = u64;

/// What a pipeline stage reports about a job, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// How far a stage has got.
    ProgressUpdate(ProgressUpdate),
    /// A stage has finished.
    StageComplete(StageComplete),
    /// The job has finished successfully (final).
    JobComplete(JobComplete),
    /// The job has failed (final).
    JobFailed(JobFailed),
    /// The job has been cancelled (final).
    JobCancelled(JobCancelled),
}

impl JobEvent {
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
                    expected: &JobEvent::TYPES,
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

/// How far a stage has got: the job is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressUpdate {
    /// The stage reporting.
    pub stage: StageName,
    /// How far along, in percent (0–100).
    pub progress: Percent,
    /// A line for the user; empty when absent.
    #[serde(default)]
    pub message: String,
    /// The pipeline's estimate of the seconds left, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_seconds_remaining: Option<u64>,
}

/// A stage has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageComplete {
    /// The stage that finished.
    pub stage: StageName,
    /// What the stage produced: any JSON, null when absent.
    #[serde(default)]
    pub results: Value,
}

/// The job has finished successfully. Final: the job takes no more events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobComplete {
    /// What the job produced: any JSON, null when absent.
    #[serde(default)]
    pub results: Value,
}

/// The job has failed. Final: the job takes no more events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobFailed {
    /// The stage that failed, when the pipeline names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    /// Why the job failed.
    pub error: FailureDetail,
}

/// Why a job failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureDetail {
    /// A machine-readable code, the pipeline's own.
    pub code: String,
    /// What went wrong, for the user.
    pub message: String,
    /// What the user can do about it, when there is something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
}

/// The job has been cancelled (by a client's `cancel_job`, or by its pipeline). Final: the job
/// takes no more events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCancelled {
    /// Why, when the canceller said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a job stands. Completed, failed and cancelled are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Registered by its pipeline; no event yet.
    Pending,
    /// At least one event recorded; not finished.
    Running,
    /// Finished successfully (`job_complete`).
    Completed,
    /// Failed (`job_failed`).
    Failed,
    /// Cancelled (`job_cancelled`).
    Cancelled,
}

impl JobState {
    /// Whether the state is final (completed, failed or cancelled): a job in it takes no more
    /// events.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// The state as written on the wire and in the store (`pending`, `running`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state `as_str` writes as `value`; `None` for any other string.
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

/// The name an event type goes by on the wire: its `type`.
pub trait EventType {
    /// The `type` of this event.
    const TYPE: &'static str;
}

/// Names each event type once: its [`EventType`], [`JobEvent::TYPES`] and
/// [`JobEvent::type_name`] all follow from this list.
macro_rules! event_types {
    ($($event:ident => $name:literal),* $(,)?) => {
        $(impl EventType for $event {
            const TYPE: &'static str = $name;
        })*

        impl JobEvent {
            /// Every event `type`, in the order they are documented.
            pub const TYPES: [&'static str; 5] = [$($name),*];

            /// The event's `type`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$event(_) => $name,)*
                }
            }
        }
    };
}

event_types! {
    ProgressUpdate => "progress_update",
    StageComplete => "stage_complete",
    JobComplete => "job_complete",
    JobFailed => "job_failed",
    JobCancelled => "job_cancelled",
}
