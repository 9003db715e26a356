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
    ProgressUpdate(ProgressUpdate),
    StageComplete(StageComplete),
    JobComplete(JobComplete),
    JobFailed(JobFailed),
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
