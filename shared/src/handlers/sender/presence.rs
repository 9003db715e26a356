//! `get_presence`: whether a user is online, as a notification hub's "has other connections":
//! the user's live connections, counted from the store (one Query per hundred).

use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{PRESENCE_COUNT_LIMIT, PresenceQuery, SendOutcome};
use crate::store::Store;

/// Answers `presence`.
pub(super) async fn run<S: Store>(
    service: &Jobcast<S>,
    query: PresenceQuery,
) -> Result<SendOutcome, SendError> {
    let connections = service
        .count_connections(&query.user_id, PRESENCE_COUNT_LIMIT)
        .await?
        .min(PRESENCE_COUNT_LIMIT);
    tracing::debug!(connections, "presence asked");
    Ok(SendOutcome::Presence {
        user_id: query.user_id,
        connections: connections as u64,
        online: connections > 0,
    })
}
