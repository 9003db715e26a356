//! `register_job`: a pipeline declares a job (and its owner) before its first event, so the
//! owner can subscribe at once. Registering again with the same owner changes nothing; with
//! another owner it is refused. A registration that names the owner of an id used before
//! removes every other user's subscription to it.

use chrono::Utc;

use crate::handlers::access::remove_other_subscribers;
use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{ErrorCode, RegisterJob, SendOutcome};
use crate::store::{NewJob, RegisterOutcome, Store};

/// Records the job as pending; answers `registered` or `rejected`.
pub(super) async fn run<S: Store>(
    service: &Jobcast<S>,
    request: RegisterJob,
) -> Result<SendOutcome, SendError> {
    let now = Utc::now();
    let outcome = service
        .store()
        .register_job(NewJob {
            job_id: request.job_id.clone(),
            owner: request.user_id.clone(),
            registered_at: now,
            expires_at: service.expiry(now, service.settings().job_ttl),
        })
        .await?;
    let (job, created) = match outcome {
        RegisterOutcome::Registered(job) => (job, true),
        RegisterOutcome::Exists(job) => (job, false),
    };
    if !created && job.owner != request.user_id {
        tracing::warn!(owner = ?job.owner, claimed = ?request.user_id, "registration refused: the job exists with another owner");
        let message = match job.owner {
            // Only an event names the owner of a job already under way.
            None => "the job already exists without an owner; its next event may name one",
            Some(_) => "the job already exists with another owner",
        };
        return Ok(SendOutcome::Rejected {
            job_id: request.job_id,
            code: ErrorCode::Forbidden,
            message: message.into(),
        });
    }
    if created && let Some(owner) = &job.owner {
        // A job registered afresh (its id was used before, and expired) serves its owner only.
        remove_other_subscribers(service, &job.job_id, owner).await;
    }
    tracing::info!(created, owner = ?job.owner, "job registered");
    Ok(SendOutcome::Registered {
        job_id: job.job_id,
        created,
        status: job.state,
    })
}
