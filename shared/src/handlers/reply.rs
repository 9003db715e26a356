//! Posting a frame to the one connection that asked: replies to client actions and the
//! events a replay sends. Best effort, with the delivery engine's retries: the client may
//! already be gone, and a gone connection is removed from the store.

use bytes::Bytes;

use super::service::Jobcast;
use crate::delivery::post_with_retry;
use crate::gateway::{ConnectionGateway, PostError};
use crate::protocol::{ConnectionId, CorrelationId, ServerFrame, ServerMessage};
use crate::store::Store;

/// Posts `message` to `connection_id`; returns whether it was posted.
pub(super) async fn reply<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    connection_id: &ConnectionId,
    message: ServerMessage,
    correlation_id: Option<CorrelationId>,
) -> bool {
    let kind = message.type_name();
    let payload = Bytes::from(ServerFrame::new(message, correlation_id).to_json());
    let (result, attempts) = post_with_retry(
        gateway,
        &service.settings().delivery,
        connection_id,
        payload,
    )
    .await;
    let retries = attempts.retries;
    match result {
        Ok(()) => {
            tracing::debug!(%connection_id, kind, retries, "reply posted");
            return true;
        }
        Err(PostError::Gone) => {
            tracing::info!(%connection_id, kind, "reply to a gone connection; removing it");
            if let Err(err) = service.store().delete_connection(connection_id).await {
                tracing::warn!(%connection_id, error = %err, "could not remove a gone connection");
            }
        }
        Err(err) => {
            tracing::warn!(%connection_id, kind, error = %err, attempts = retries + 1, "reply not delivered")
        }
    }
    false
}
