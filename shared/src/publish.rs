//! The pipeline's side: publish job events, register jobs and poll for cancellation through
//! the sender Lambda, from any Rust pipeline stage (feature `publish`).
//!
//! ```no_run
//! # async fn stage() -> Result<(), jobcast::publish::PublishError> {
//! use jobcast::protocol::{JobEvent, JobId, Percent, ProgressUpdate, StageName};
//! use jobcast::publish::Publisher;
//!
//! let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let publisher = Publisher::invoke(aws_sdk_lambda::Client::new(&config), "jobcast-sender");
//! let job = JobId::parse("crawl-42").unwrap();
//! for page in 1..=10u32 {
//!     if publisher.is_cancelled(&job).await? {
//!         return Ok(()); // the user cancelled: stop, send nothing more
//!     }
//!     let update = ProgressUpdate {
//!         stage: StageName::parse("crawl").unwrap(),
//!         progress: Percent::new(f64::from(page) * 10.0).unwrap(),
//!         message: format!("page {page} of 10"),
//!         estimated_seconds_remaining: None,
//!     };
//!     publisher.event(&job, JobEvent::ProgressUpdate(update)).await?;
//! }
//! # Ok(()) }
//! ```

use aws_sdk_lambda::primitives::Blob;
use serde_json::{Value, json};

use crate::handlers::{SendOutcome, SendRequest};
use crate::protocol::{JobEvent, JobId, JobStatusReport, UserId};

/// Why a call to the sender did not come back with an answer.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The invocation itself failed: network, permissions, throttling, no such function.
    #[error("invoking the sender failed: {0}")]
    Invoke(String),
    /// The sender ran and refused the request (`errorType` as the sender names it, e.g.
    /// `InvalidRequest`, `PayloadTooLarge`, `StoreUnavailable`).
    #[error("the sender refused the request ({error_type}): {message}")]
    Refused { error_type: String, message: String },
    /// The sender's answer was not what this version of the library understands.
    #[error("the sender's answer could not be read: {0}")]
    Answer(String),
}

/// Talks to the sender Lambda by direct invocation.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl Publisher {
    /// Invokes `function` (a name, an ARN, or a name with a qualifier) with `client`.
    pub fn invoke(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }

    /// Declares a job, and its owner, before its first event, so the owner can subscribe.
    pub async fn register(
        &self,
        job_id: &JobId,
        owner: Option<&UserId>,
    ) -> Result<SendOutcome, PublishError> {
        let mut request = json!({"action": "register_job", "job_id": job_id});
        if let Some(owner) = owner {
            request["user_id"] = json!(owner);
        }
        self.outcome(request).await
    }

    /// Records one event and fans it out. A finished job answers `Rejected` (code
    /// `job_finished`): the pipeline should stop.
    pub async fn event(
        &self,
        job_id: &JobId,
        event: JobEvent,
    ) -> Result<SendOutcome, PublishError> {
        self.send(SendRequest {
            job_id: job_id.clone(),
            event_id: None,
            event,
            correlation_id: None,
            user_id: None,
        })
        .await
    }

    /// [`Publisher::event`] with every field of the request (event id for retries, owner,
    /// correlation id).
    pub async fn send(&self, request: SendRequest) -> Result<SendOutcome, PublishError> {
        let payload =
            serde_json::to_value(&request).map_err(|err| PublishError::Answer(err.to_string()))?;
        self.outcome(payload).await
    }

    /// Whether the job was cancelled (or no longer exists): poll it between steps.
    pub async fn is_cancelled(&self, job_id: &JobId) -> Result<bool, PublishError> {
        match self
            .outcome(json!({"action": "is_cancelled", "job_id": job_id}))
            .await?
        {
            SendOutcome::Cancellation { cancelled, .. } => Ok(cancelled),
            SendOutcome::NotFound { .. } => Ok(true),
            other => Err(unexpected(&other)),
        }
    }

    /// The job's latest snapshot, if it exists.
    pub async fn get_job(&self, job_id: &JobId) -> Result<Option<JobStatusReport>, PublishError> {
        match self
            .outcome(json!({"action": "get_job", "job_id": job_id}))
            .await?
        {
            SendOutcome::Job { job } => Ok(Some(job)),
            SendOutcome::NotFound { .. } => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// Any sender request, as JSON; the answer as JSON (a user message, say).
    pub async fn request(&self, payload: Value) -> Result<Value, PublishError> {
        let output = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|err| {
                PublishError::Invoke(aws_sdk_lambda::error::DisplayErrorContext(err).to_string())
            })?;
        let body = output.payload().map(Blob::as_ref).unwrap_or_default();
        let answer: Value =
            serde_json::from_slice(body).map_err(|err| PublishError::Answer(err.to_string()))?;
        if output.function_error().is_some() {
            return Err(PublishError::Refused {
                error_type: answer["errorType"]
                    .as_str()
                    .unwrap_or("Unhandled")
                    .to_owned(),
                message: answer["errorMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        Ok(answer)
    }

    async fn outcome(&self, payload: Value) -> Result<SendOutcome, PublishError> {
        let answer = self.request(payload).await?;
        serde_json::from_value(answer.clone())
            .map_err(|err| PublishError::Answer(format!("{err}: {answer}")))
    }
}

fn unexpected(outcome: &SendOutcome) -> PublishError {
    PublishError::Answer(format!("an answer of another kind: {outcome:?}"))
}
