//! Who may see which job: the caller of a client action, and the one check every action on a
//! job makes. "No such job" and "not yours" are one answer, so nobody can probe for others'
//! jobs.

use super::errors::ActionError;
use super::service::Jobcast;
use crate::protocol::{ConnectionId, CorrelationId, JobId, UserId};
use crate::store::{JobRecord, Store};

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

/// The job, if it exists and the caller may see it (its owner, or anyone for a job without
/// one), with the caller's user.
pub(super) async fn accessible_job<S: Store>(
    service: &Jobcast<S>,
    caller: &Caller,
    job_id: &JobId,
) -> Result<(UserId, JobRecord), ActionError> {
    let user_id = caller.user(service).await?;
    match service.store().get_job(job_id).await? {
        Some(job) if job.owner.as_ref().is_none_or(|owner| *owner == user_id) => Ok((user_id, job)),
        Some(_) => {
            tracing::warn!(%user_id, "refused: the job belongs to another user");
            Err(ActionError::JobNotAccessible(job_id.clone()))
        }
        None => Err(ActionError::JobNotAccessible(job_id.clone())),
    }
}
