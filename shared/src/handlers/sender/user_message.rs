//! A user message (`notification`, `alert`, the hub's project envelope) goes to every
//! connection of its user, every tab and device; nothing is recorded. A type this server does
//! not know is logged, counted and skipped.

use bytes::Bytes;

use crate::delivery::{Delivery, FanOut, Recipients, deliver};
use crate::gateway::ConnectionGateway;
use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::metrics::{report_fan_out, unknown_message_line};
use crate::protocol::{
    MAX_FRAME_BYTES, MessageId, SendOutcome, ServerFrame, ServerMessage, UserMessage, UserPayload,
    UserSendRequest,
};
use crate::store::{Audience, Store};

/// Posts the message to the user's connections; answers `delivered` or `ignored`.
pub(super) async fn run<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    request: UserSendRequest,
) -> Result<SendOutcome, SendError> {
    let UserSendRequest {
        user_id,
        message,
        correlation_id,
        message_id,
    } = request;
    let message = match message {
        UserPayload::Known(message) => message,
        UserPayload::Unknown(kind) => {
            tracing::warn!(message_type = %kind, "user message of an unknown type skipped");
            service.metrics().emit(&unknown_message_line(&kind));
            return Ok(SendOutcome::Ignored {
                user_id,
                reason: format!(
                    "unknown message type {kind:?} (known: {})",
                    UserMessage::TYPES.join(", ")
                ),
                message_type: kind,
            });
        }
    };
    let message_type = message.type_name();
    // Every user message's frame carries an id, so a client shows a redelivery once.
    let message_id = message_id.unwrap_or_else(MessageId::random);
    let payload = ServerFrame::new(ServerMessage::User(message), correlation_id)
        .with_message_id(message_id)
        .to_json();
    if payload.len() > MAX_FRAME_BYTES {
        return Err(SendError::PayloadTooLarge {
            size: payload.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    let recipients = Recipients::Lookup(Audience::User(user_id.clone()));
    let FanOut { report, .. } = deliver(
        service.store(),
        gateway,
        &service.settings().delivery,
        Delivery::new(recipients, Bytes::from(payload)),
    )
    .await?;
    report_fan_out(service.metrics().as_ref(), message_type, &report);
    Ok(SendOutcome::Delivered {
        user_id,
        message_type: message_type.to_owned(),
        delivery: report,
    })
}
