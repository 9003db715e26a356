//! `cancel_job`: a client cancels a job it may see. The cancel is recorded as the job's final
//! event (`job_cancelled`), fanned out like any other, and seen by the pipeline, which polls
//! `is_cancelled` between steps.

use crate::gateway::ConnectionGateway;
use crate::handlers::access::{Caller, accessible_job};
use crate::handlers::errors::ActionError;
use crate::handlers::record::{NewJobEvent, Recorded, record_and_deliver};
use crate::handlers::service::Jobcast;
use crate::protocol::{CancelJob, EventId, JobCancelled, JobEvent, ServerMessage};
use crate::store::Store;

/// Records the cancel and answers the job's status after it.
pub(in crate::handlers) async fn run<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    caller: &Caller,
    CancelJob { job_id, reason }: CancelJob,
) -> Result<Vec<ServerMessage>, ActionError> {
    accessible_job(service, caller, &job_id).await?;
    let new = NewJobEvent {
        // An id of its own, as every event has, so a redelivery of it is recognised.
        event_id: Some(EventId::random()),
        event: JobEvent::JobCancelled(JobCancelled { reason }),
        correlation_id: caller.correlation_id.clone(),
        owner: None,
    };
    match record_and_deliver(service, gateway, &job_id, new).await? {
        Recorded::Published { seq, delivery, .. } => {
            tracing::info!(seq, delivered = delivery.delivered, "job cancelled");
        }
        Recorded::Finished(state) => return Err(ActionError::JobFinished { job_id, state }),
        Recorded::OwnedByAnother => return Err(ActionError::JobNotAccessible(job_id)),
    }
    let job = service
        .store()
        .get_job(&job_id)
        .await?
        .ok_or(ActionError::JobNotAccessible(job_id))?;
    Ok(vec![ServerMessage::JobStatus(job.into())])
}
