//! The message protocol: typed, validated, serde. Everything that crosses a socket or an
//! invocation boundary is parsed here before any handler sees it.

mod client;
mod errors;
mod events;
mod fields;
mod frame_error;
mod hub;
mod ids;
mod sender;
mod server;
mod user;
mod values;

pub use client::*;
pub use errors::ErrorCode;
pub use events::*;
pub use frame_error::{FrameError, MAX_FRAME_BYTES};
pub use hub::{
    Envelope, HubTimestamp, ProjectEnvelope, ProjectPayload, ProjectStatus, UpdateEnvelope,
};
pub use ids::{ConnectionId, CorrelationId, EventId, InvalidId, JobId, MessageId, UserId};
pub use sender::*;
pub use server::*;
pub use user::{
    Alert, AlertSeverity, Form, MAX_UPDATE_BYTES, Notification, NotificationLevel, UserMessage,
    UserMessageError,
};
pub use values::{InvalidStageName, Percent, PercentOutOfRange, StageName};

#[cfg(test)]
mod tests;
