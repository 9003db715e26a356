//! Why a frame (from a client or a pipeline) was refused, and the size limit every frame
//! meets first. At the bottom of the protocol: every parser returns these.

use super::errors::ErrorCode;

/// API Gateway's WebSocket message limit; larger frames are refused.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// Why a frame (from a client or a pipeline) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is larger than API Gateway carries.
    #[error("frame is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// The frame's size, in bytes.
        size: usize,
        /// The largest frame accepted, in bytes (`MAX_FRAME_BYTES`).
        limit: usize,
    },
    /// The frame is not JSON; holds the parser's message.
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    /// The frame (or an object inside it, such as a request's `event`) is JSON but not an object.
    #[error("frame must be a JSON object")]
    NotAnObject,
    /// A binary WebSocket frame: only text frames are accepted.
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
    /// A field is missing, unknown, or of the wrong type or value.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field at fault, as a dotted path for a nested one (`event.progress`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The longest field path a refusal names.
const MAX_FIELD_PATH: usize = 128;
/// The longest reason a refusal gives.
pub(crate) const MAX_REASON: usize = 256;

/// `value`, cut at a character boundary to at most `max` bytes and marked with `…` if cut.
pub(crate) fn bounded(mut value: String, max: usize) -> String {
    if value.len() > max {
        let mut end = max;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
        value.push('…');
    }
    value
}

impl FrameError {
    /// A refusal of `field`, both bounded: a parser's reason quotes the value it refused
    /// (`invalid type: string "…"`), and a refusal must never carry a client's 100 KB back to
    /// it, nor to the logs.
    pub fn invalid_field(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: bounded(field.to_owned(), MAX_FIELD_PATH),
            reason: bounded(reason.into(), MAX_REASON),
        }
    }

    /// The `error` code a client is answered with for this refusal.
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
