//! `get_job` and `is_cancelled`: a pipeline's questions about its job between steps. A
//! cancelled job has `cancel_requested` set (and is in its final state): the stage should stop
//! and send nothing more.

use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{JobQuery, JobState, QueryKind, SendOutcome};
use crate::store::Store;

/// Answers `job`, `cancellation` or `not_found`.
pub(super) async fn run<S: Store>(
    service: &Jobcast<S>,
    kind: QueryKind,
    query: JobQuery,
) -> Result<SendOutcome, SendError> {
    let Some(job) = service.store().get_job(&query.job_id).await? else {
        tracing::info!("query about a job that does not exist");
        return Ok(SendOutcome::NotFound {
            job_id: query.job_id,
        });
    };
    tracing::debug!(status = job.state.as_str(), "job queried");
    Ok(match kind {
        QueryKind::GetJob => SendOutcome::Job { job: job.into() },
        QueryKind::IsCancelled => SendOutcome::Cancellation {
            cancelled: job.cancel_requested || job.state == JobState::Cancelled,
            status: job.state,
            job_id: job.job_id,
        },
    })
}
