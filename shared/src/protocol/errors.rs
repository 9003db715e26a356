//! The machine-readable codes of `error` replies.

use serde::{Deserialize, Serialize};

/// The machine-readable `code` of an `error` reply: what kind of failure it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    InvalidJson,
    /// The frame is JSON but a field is missing, unknown or of the wrong type.
    InvalidMessage,
    /// `action` names no action.
    UnknownAction,
    /// The frame or event is larger than API Gateway carries (128 KB).
    PayloadTooLarge,
    /// The caller may not do this.
    Forbidden,
    /// The job has finished; it takes no more events and cannot be cancelled.
    JobFinished,
    /// Too many frames; slow down.
    RateLimited,
    /// The connection holds as many subscriptions as it may.
    TooManySubscriptions,
    /// The user holds as many connections as it may (`$connect` refuses the next one).
    TooManyConnections,
    /// A replay of this job to this connection is already under way; its events are coming.
    ReplayInProgress,
    /// A dependency (the store) is unavailable; retrying later may work.
    Unavailable,
    /// Something failed on our side.
    InternalError,
}

impl ErrorCode {
    /// What the client can do about it, where there is something.
    pub fn suggested_action(self) -> Option<&'static str> {
        Some(match self {
            Self::InvalidJson => "send one JSON object per frame",
            Self::InvalidMessage => "fix the named field; see the message contract in the README",
            Self::UnknownAction => "use one of the listed actions",
            Self::PayloadTooLarge => "keep frames under 128 KB",
            Self::RateLimited => "slow down and retry after a second",
            Self::TooManySubscriptions => "unsubscribe from jobs you no longer watch",
            Self::TooManyConnections => "close connections you no longer use",
            Self::ReplayInProgress => "wait: the replay under way brings the events",
            Self::Unavailable => "retry with backoff",
            Self::Forbidden | Self::JobFinished | Self::InternalError => {
                return None;
            }
        })
    }
}
