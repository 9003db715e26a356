//! The message protocol: typed, validated, serde. Everything that crosses a socket or an
//! invocation boundary is parsed here before any handler sees it.

mod errors;
mod fields;
mod ids;
mod messages;
mod sender;
mod user;
mod values;

pub use errors::ErrorCode;
pub use ids::{ConnectionId, CorrelationId, EventId, InvalidId, JobId, UserId};
pub use messages::*;
pub use sender::*;
pub use user::{
    Alert, AlertSeverity, HubTimestamp, Notification, NotificationLevel, ProjectEnvelope,
    ProjectPayload, ProjectStatus, UserMessage, UserMessageError,
};
pub use values::{InvalidStageName, Percent, PercentOutOfRange, StageName};

#[cfg(test)]
mod tests;
