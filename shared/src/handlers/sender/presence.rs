//! `get_presence`: whether a user is online, as a notification hub's "has other connections":
//! the user's live connections, counted from the store (one Query per hundred).

use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{PRESENCE_COUNT_LIMIT, PresenceQuery, SendOutcome};
use crate::store::{Audience, PageRequest, Store};

/// Answers `presence`.
pub(super) async fn run<S: Store>(
    service: &Jobcast<S>,
    query: PresenceQuery,
) -> Result<SendOutcome, SendError> {
    let audience = Audience::User(query.user_id.clone());
    let mut request = PageRequest::first(100);
    let mut connections = 0usize;
    loop {
        let page = service
            .store()
            .connections_of(&audience, request.clone())
            .await?;
        connections += page.items.len();
        match page.next {
            Some(next) if connections < PRESENCE_COUNT_LIMIT => request.after = Some(next),
            _ => break,
        }
    }
    let connections = connections.min(PRESENCE_COUNT_LIMIT);
    tracing::debug!(connections, "presence asked");
    Ok(SendOutcome::Presence {
        user_id: query.user_id,
        connections: connections as u64,
        online: connections > 0,
    })
}
