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

/// Tries of one cancel, the first included, while the store fails or some subscribers are still
/// unreached: nobody else sends a client's cancel again.
const CANCEL_ATTEMPTS: u32 = 5;

/// Records the cancel and answers the job's status after it.
pub(in crate::handlers) async fn run<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    caller: &Caller,
    CancelJob { job_id, reason }: CancelJob,
) -> Result<Vec<ServerMessage>, ActionError> {
    accessible_job(service, caller, &job_id).await?;
    // An id of its own, as every event has: sending the same cancel again is recognised as
    // a retry, takes no new seq, and fans out again.
    let event_id = EventId::random();
    let cancel = || NewJobEvent {
        event_id: Some(event_id.clone()),
        event: JobEvent::JobCancelled(JobCancelled {
            reason: reason.clone(),
        }),
        correlation_id: caller.correlation_id.clone(),
        owner: None,
    };
    let mut recorded = false;
    for attempt in 1..=CANCEL_ATTEMPTS {
        match record_and_deliver(service, gateway, &job_id, cancel()).await {
            Ok(Recorded::Published { seq, delivery, .. }) => {
                recorded = true;
                tracing::info!(
                    seq,
                    attempt,
                    delivered = delivery.delivered,
                    "job cancelled"
                );
                // Nobody redelivers a client's action: reach the rest now, as SQS would.
                if delivery.failed_transient == 0 && !delivery.incomplete {
                    break;
                }
            }
            Ok(Recorded::Finished(state)) => {
                return Err(ActionError::JobFinished { job_id, state });
            }
            Ok(Recorded::OwnedByAnother) => return Err(ActionError::JobNotAccessible(job_id)),
            // Once recorded, the cancel stands: a failed later fan-out is logged, not refused.
            Err(err) if recorded => {
                tracing::warn!(error = %err, "could not fan the cancel out again");
                break;
            }
            // The store may have recorded it all the same: the same id again is recognised,
            // and fanned out.
            Err(err) if err.is_transient() && attempt < CANCEL_ATTEMPTS => {
                tracing::warn!(attempt, error = %err, "could not record the cancel; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    let job = service
        .store()
        .get_job(&job_id)
        .await?
        .ok_or(ActionError::JobNotAccessible(job_id))?;
    Ok(vec![ServerMessage::JobStatus(job.into())])
}
