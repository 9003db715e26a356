//! A pipeline's job event: recorded with the next seq and fanned out to the job's
//! subscribers; refused for good (answered, not raised) when the job has finished or belongs
//! to another user than the event names.

use crate::gateway::ConnectionGateway;
use crate::handlers::errors::SendError;
use crate::handlers::record::{NewJobEvent, Recorded, record_and_deliver};
use crate::handlers::service::Jobcast;
use crate::protocol::{ErrorCode, SendOutcome, SendRequest};
use crate::store::Store;

/// Records and fans out the event; answers `published` or `rejected`.
pub(super) async fn run<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    request: SendRequest,
) -> Result<SendOutcome, SendError> {
    let SendRequest {
        job_id,
        event_id,
        event,
        correlation_id,
        user_id,
    } = request;
    let new = NewJobEvent {
        event_id,
        event,
        correlation_id,
        owner: user_id,
    };
    Ok(
        match record_and_deliver(service, gateway, &job_id, new).await? {
            Recorded::Published {
                seq,
                duplicate,
                delivery,
            } => SendOutcome::Published {
                job_id,
                seq,
                duplicate,
                delivery,
            },
            Recorded::Finished(state) => {
                tracing::warn!(state = state.as_str(), "event refused: job finished");
                let message = format!(
                    "job {job_id} has already {}; the event was not recorded",
                    state.as_str()
                );
                SendOutcome::Rejected {
                    job_id,
                    code: ErrorCode::JobFinished,
                    message,
                }
            }
            Recorded::OwnedByAnother => {
                tracing::warn!("event refused: the job belongs to another user");
                SendOutcome::Rejected {
                    job_id,
                    code: ErrorCode::Forbidden,
                    message: "the job belongs to another user than this event names".into(),
                }
            }
        },
    )
}
