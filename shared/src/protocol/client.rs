//! Client → server: the actions a client may send over its WebSocket, parsed field by field
//! so that every refusal names the field at fault.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::Seq;
use super::fields::{from_fields, optional_field, parse_object, truncate};
use super::frame_error::FrameError;
use super::ids::{CorrelationId, JobId};

/// What a client may ask, tagged by `action` (which is also API Gateway's route key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Follow a job's events; with `last_seq`, first replay those the client missed.
    Subscribe(Subscribe),
    /// Stop following a job.
    Unsubscribe(JobRef),
    /// Cancel a job: recorded as its final event, `job_cancelled`.
    CancelJob(CancelJob),
    /// Ask for the job's latest `job_status`.
    RequestStatus(JobRef),
    /// Keep the connection open; answered with `pong`.
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

    /// The `action` this message goes by.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::CancelJob(_) => "cancel_job",
            Self::RequestStatus(_) => "request_status",
            Self::Ping => "ping",
        }
    }

    /// The job the action is about (`None` for `ping`).
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

/// The fields of `subscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The job to follow.
    pub job_id: JobId,
    /// The last `seq` the client saw; events after it are replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<Seq>,
}

/// A message that names a job and nothing else (`unsubscribe`, `request_status`, `unsubscribed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    /// The job.
    pub job_id: JobId,
}

/// The fields of `cancel_job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelJob {
    /// The job to cancel.
    pub job_id: JobId,
    /// Why, in the client's words; carried by the `job_cancelled` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// One client frame: the action and the id the client wants echoed in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ClientRequest {
    /// The action and its fields.
    #[serde(flatten)]
    pub message: ClientMessage,
    /// Echoed on the reply, when given.
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
            None => {
                return Err(FrameError::MissingAction {
                    expected: &ClientMessage::ACTIONS,
                });
            }
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
                    expected: &ClientMessage::ACTIONS,
                });
            }
        };
        Ok(Self {
            message,
            correlation_id,
        })
    }
}
