//! Who may see which job: the caller of a client action, and the one check every action on a
//! job makes. "No such job" and "not yours" are one answer, so nobody can probe for others'
//! jobs.
//!
//! Deny by default: with authentication on, a job without an owner is nobody's to see (unless
//! `OPEN_OWNERLESS_JOBS` opens them); the moment a job's owner is named, every other user's
//! subscription to it is removed; and fan-out serves only the owner's subscriptions, so a
//! subscription that slipped in before the owner was named never hears the job.

use super::errors::ActionError;
use super::service::Jobcast;
use crate::protocol::{ConnectionId, CorrelationId, JobId, Seq, UserId};
use crate::store::{Audience, JobRecord, PageRequest, Store};

/// Who sent a client frame.
pub(super) struct Caller {
    /// The connection the frame came on, where replies go.
    pub connection_id: ConnectionId,
    /// The user the authorizer vouched for, when one ran.
    pub user: Option<UserId>,
    /// The client's id for the request, echoed on its replies.
    pub correlation_id: Option<CorrelationId>,
}

impl Caller {
    /// The caller's user: from the authorizer context when one ran, else from the store.
    pub async fn user<S: Store>(&self, service: &Jobcast<S>) -> Result<UserId, ActionError> {
        if let Some(user) = &self.user {
            return Ok(user.clone());
        }
        service
            .store()
            .get_connection(&self.connection_id)
            .await?
            .map(|connection| connection.user_id)
            .ok_or(ActionError::UnknownConnection)
    }
}

/// The job, if it exists and the caller may see it (its owner; anyone for a job without one
/// only where ownerless jobs are open), with the caller's user.
pub(super) async fn accessible_job<S: Store>(
    service: &Jobcast<S>,
    caller: &Caller,
    job_id: &JobId,
) -> Result<(UserId, JobRecord), ActionError> {
    let user_id = caller.user(service).await?;
    let open = service.settings().ownerless_jobs_open();
    match service.store().get_job(job_id).await? {
        Some(job) if job.owner.as_ref().map_or(open, |owner| *owner == user_id) => {
            Ok((user_id, job))
        }
        Some(job) if job.owner.is_none() => {
            tracing::warn!(%user_id, "refused: the job has no owner");
            Err(ActionError::JobNotAccessible(job_id.clone()))
        }
        Some(_) => {
            tracing::warn!(%user_id, "refused: the job belongs to another user");
            Err(ActionError::JobNotAccessible(job_id.clone()))
        }
        None => Err(ActionError::JobNotAccessible(job_id.clone())),
    }
}

/// Subscriptions read per page when looking for other users' ones.
const OWNER_SWEEP_PAGE: usize = 1_000;
/// Pages read at most: a job followed by more is cleaned up by fan-out's owner filter alone.
const OWNER_SWEEP_PAGES: usize = 100;

/// Removes every subscription to `job_id` that is not `owner`'s: the job has just been given an
/// owner (its first event or its registration named one). Returns the connections whose
/// subscription went. Best effort: fan-out serves only the owner's subscriptions whatever is
/// left.
pub(super) async fn remove_other_subscribers<S: Store>(
    service: &Jobcast<S>,
    job_id: &JobId,
    owner: &UserId,
) -> Vec<ConnectionId> {
    let store = service.store();
    let everyone = Audience::Job(job_id.clone(), Seq::MAX, None);
    let owners = Audience::Job(job_id.clone(), Seq::MAX, Some(owner.clone()));
    let (all, kept) = match (
        all_connections(store, &everyone).await,
        all_connections(store, &owners).await,
    ) {
        (Ok(all), Ok(kept)) => (all, kept),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "could not list the job's subscriptions; fan-out still serves the owner only");
            return Vec::new();
        }
    };
    let kept: std::collections::HashSet<ConnectionId> = kept.into_iter().collect();
    let mut removed = Vec::new();
    for connection_id in all.into_iter().filter(|id| !kept.contains(id)) {
        match store.delete_subscription(&connection_id, job_id).await {
            Ok(_) => removed.push(connection_id),
            Err(err) => {
                tracing::warn!(%connection_id, error = %err, "could not remove another user's subscription")
            }
        }
    }
    if !removed.is_empty() {
        service.subscribers().invalidate(job_id);
        tracing::warn!(removed = removed.len(), %owner, "the job's owner was named: other users' subscriptions removed");
    }
    removed
}

async fn all_connections<S: Store>(
    store: &S,
    audience: &Audience,
) -> Result<Vec<ConnectionId>, crate::store::StoreError> {
    let mut found = Vec::new();
    let mut request = PageRequest::first(OWNER_SWEEP_PAGE);
    for _ in 0..OWNER_SWEEP_PAGES {
        let page = store.connections_of(audience, request.clone()).await?;
        found.extend(page.items);
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    Ok(found)
}
