//! The pipeline's side: publish job events, register jobs and poll for cancellation through
//! the sender Lambda, from any Rust pipeline stage (feature `publish`). Events go by direct
//! invocation (answered with the sender's outcome) or through the stack's SQS FIFO queue
//! (answered with the queue's receipt; the job id is the message group, so one job's events
//! stay in order).
//!
//! ```no_run
//! # async fn stage() -> Result<(), jobcast::publish::PublishError> {
//! use jobcast::protocol::{JobEvent, JobId, Percent, ProgressUpdate, StageName};
//! use jobcast::publish::Publisher;
//!
//! let config = jobcast::sdk::loader().load().await;
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

use crate::protocol::{
    EventId, JobEvent, JobId, JobStatusReport, SendOutcome, SendRequest, UserId,
};

/// Why a call to the sender did not come back with an answer.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The invocation itself failed: network, permissions, throttling, no such function.
    #[error("invoking the sender failed: {0}")]
    Invoke(String),
    /// The sender ran and refused the request (`errorType` as the sender names it, e.g.
    /// `InvalidRequest`, `PayloadTooLarge`, `StoreUnavailable`).
    #[error("the sender refused the request ({error_type}): {message}")]
    Refused {
        /// The sender's `errorType` (`Unhandled` when the answer names none).
        error_type: String,
        /// The sender's `errorMessage`, naming the field at fault for an invalid request.
        message: String,
    },
    /// Only a direct invocation answers: configure one with [`Publisher::with_invoke`].
    #[error(
        "this publisher only queues; questions and registrations need the sender's function (with_invoke)"
    )]
    NoInvoke,
    /// The sender's answer was not what this version of the library understands.
    #[error("the sender's answer could not be read: {0}")]
    Answer(String),
}

/// Talks to the sender: events by direct invocation or through the queue; questions (and
/// registrations) always by invocation, since only an invocation has an answer.
#[derive(Debug, Clone)]
pub struct Publisher {
    invoke: Option<(aws_sdk_lambda::Client, String)>,
    queue: Option<(aws_sdk_sqs::Client, String)>,
}

/// Times [`Publisher::event`] sends an event again (after 0.25, 0.5, 1 and 2 s) while the
/// sender reports subscribers that may still be reached.
pub const RESENDS: u32 = 4;

/// What became of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Receipt {
    /// Invoked: the sender's answer.
    Answered(SendOutcome),
    /// Queued: the sender will take it from the queue, in order within its job.
    Queued {
        /// SQS's id for the message.
        message_id: String,
        /// The message's sequence number in its group (FIFO queues give one).
        sequence_number: Option<String>,
    },
}

impl Publisher {
    /// Invokes `function` (a name, an ARN, or a name with a qualifier) with `client`.
    pub fn invoke(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            invoke: Some((client, function.into())),
            queue: None,
        }
    }

    /// Sends events to the stack's FIFO queue (`EventQueueUrl`), with the job id as the message
    /// group and the event id, when there is one, as the deduplication id.
    pub fn queue(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            invoke: None,
            queue: Some((client, queue_url.into())),
        }
    }

    /// Events through the queue, questions and registrations by invoking `function`.
    pub fn with_invoke(
        mut self,
        client: aws_sdk_lambda::Client,
        function: impl Into<String>,
    ) -> Self {
        self.invoke = Some((client, function.into()));
        self
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

    /// Records one event and fans it out (or queues it), under a fresh event id, so a retry of
    /// this call's request (the SDK's own, or SQS's deduplication) is recognised. Invoked, it
    /// sends the event again while the sender reports subscribers it may still reach (see
    /// [`RESENDS`]); the answer is the last try's. A finished job answers `Rejected` (code
    /// `job_finished`): the pipeline should stop.
    pub async fn event(&self, job_id: &JobId, event: JobEvent) -> Result<Receipt, PublishError> {
        self.send(SendRequest {
            job_id: job_id.clone(),
            event_id: Some(EventId::random()),
            event,
            correlation_id: None,
            user_id: None,
        })
        .await
    }

    /// [`Publisher::event`] with every field of the request (event id for retries, owner,
    /// correlation id). A request without an event id is given a fresh one: to retry a send
    /// yourself, set the id and send the same request again.
    pub async fn send(&self, mut request: SendRequest) -> Result<Receipt, PublishError> {
        request.event_id.get_or_insert_with(EventId::random);
        let payload =
            serde_json::to_value(&request).map_err(|err| PublishError::Answer(err.to_string()))?;
        let Some((client, queue_url)) = &self.queue else {
            return self
                .invoke_until_reached(payload)
                .await
                .map(Receipt::Answered);
        };
        let output = client
            .send_message()
            .queue_url(queue_url)
            .message_body(payload.to_string())
            .message_group_id(request.job_id.as_str())
            .set_message_deduplication_id(
                request.event_id.as_ref().map(|id| id.as_str().to_owned()),
            )
            .send()
            .await
            .map_err(|err| {
                PublishError::Invoke(aws_sdk_sqs::error::DisplayErrorContext(err).to_string())
            })?;
        Ok(Receipt::Queued {
            message_id: output.message_id().unwrap_or_default().to_owned(),
            sequence_number: output.sequence_number().map(str::to_owned),
        })
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
        let Some((client, function)) = &self.invoke else {
            return Err(PublishError::NoInvoke);
        };
        let output = client
            .invoke()
            .function_name(function)
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

    /// Invokes the sender with an event, and again (the same request, so the same event id)
    /// while its report says some subscribers may still be reached: a retry takes no new seq
    /// and goes only to those the fan-out missed, as SQS's redelivery would. After
    /// [`RESENDS`] more tries the last answer stands.
    async fn invoke_until_reached(&self, payload: Value) -> Result<SendOutcome, PublishError> {
        let mut outcome = self.outcome(payload.clone()).await?;
        for resend in 0..RESENDS {
            let SendOutcome::Published { delivery, .. } = &outcome else {
                break;
            };
            if delivery.failed_transient == 0 && !delivery.incomplete {
                break;
            }
            tracing::info!(
                resend,
                failed_transient = delivery.failed_transient,
                incomplete = delivery.incomplete,
                "some subscribers were not reached; sending the event again"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250 << resend)).await;
            match self.outcome(payload.clone()).await {
                Ok(again) => outcome = again,
                // The event is recorded: a failed resend leaves the answer it already has.
                Err(err) => {
                    tracing::warn!(error = %err, "could not send the event again");
                    break;
                }
            }
        }
        Ok(outcome)
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
