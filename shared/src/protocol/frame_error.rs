//! Why a frame (from a client or a pipeline) was refused, and the size limit every frame
//! meets first. At the bottom of the protocol: every parser returns these.

use super::errors::ErrorCode;

/// API Gateway's WebSocket message limit; larger frames are refused.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

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
    /// No `action`.
    #[error("missing \"action\"; expected one of: {}", expected.join(", "))]
    MissingAction {
        /// The actions there are.
        expected: &'static [&'static str],
    },
    /// An `action` this server does not know.
    #[error("unknown action {action:?}; expected one of: {}", expected.join(", "))]
    UnknownAction {
        /// The action asked for (truncated).
        action: String,
        /// The actions there are.
        expected: &'static [&'static str],
    },
    /// An event `type` this server does not know.
    #[error("unknown event type {kind:?}; expected one of: {}", expected.join(", "))]
    UnknownEventType {
        /// The type given (truncated).
        kind: String,
        /// The types there are.
        expected: &'static [&'static str],
    },
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
            | Self::MissingAction { .. }
            | Self::UnknownEventType { .. }
            | Self::InvalidField { .. } => ErrorCode::InvalidMessage,
        }
    }

    /// The field at fault, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidField { field, .. } => Some(field),
            Self::MissingAction { .. } | Self::UnknownAction { .. } => Some("action"),
            Self::UnknownEventType { .. } => Some("type"),
            _ => None,
        }
    }
}
