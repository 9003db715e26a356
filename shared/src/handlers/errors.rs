//! The one error vocabulary of the handlers, and the one place where failures become what a
//! client or a pipeline is told. Whether a store failure may pass is the store's to say
//! ([`StoreError::is_transient`]); everything here follows from it.

use crate::protocol::{ErrorCode, ErrorReply, FrameError, JobId, JobState, Seq};
use crate::store::StoreError;

/// Why a client action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The frame itself was refused: not JSON, an unknown action, a bad field.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// One answer for "no such job" and "not yours", so a caller cannot probe for others' jobs.
    #[error("job {0} does not exist or is not yours")]
    JobNotAccessible(JobId),
    /// The job has ended: nothing more can happen to it.
    #[error("job {job_id} has already {}", state.as_str())]
    JobFinished {
        /// The job.
        job_id: JobId,
        /// The state it ended in.
        state: JobState,
    },
    /// The connection sent frames faster than its allowance.
    #[error("too many frames: {rate} per second on one connection, {burst} at once")]
    RateLimited {
        /// Frames per second allowed on average.
        rate: u32,
        /// Frames allowed at once.
        burst: u32,
    },
    /// The connection follows as many jobs as it may.
    #[error("this connection already holds {limit} subscriptions, the most it may")]
    TooManySubscriptions {
        /// The most subscriptions a connection may hold.
        limit: usize,
    },
    /// A replay of the job to this connection is already under way.
    #[error("a replay of job {0} to this connection is under way; its events are coming")]
    ReplayInProgress(JobId),
    /// A resume point the job has not reached.
    #[error("last_seq {last_seq} is ahead of job {job_id}, whose last seq is {job_last_seq}")]
    SeqAhead {
        /// The job.
        job_id: JobId,
        /// The seq the client asked to resume after.
        last_seq: Seq,
        /// The job's actual last seq.
        job_last_seq: Seq,
    },
    /// The store no longer knows the connection.
    #[error("the connection is not known (it may have expired); reconnect")]
    UnknownConnection,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ActionError {
    /// The machine-readable code the client is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Frame(err) => err.code(),
            Self::SeqAhead { .. } => ErrorCode::InvalidMessage,
            Self::JobNotAccessible(_) | Self::UnknownConnection => ErrorCode::Forbidden,
            Self::JobFinished { .. } => ErrorCode::JobFinished,
            Self::TooManySubscriptions { .. } => ErrorCode::TooManySubscriptions,
            Self::ReplayInProgress(_) => ErrorCode::ReplayInProgress,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Store(err) if err.is_transient() => ErrorCode::Unavailable,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }
}

/// Why the sender could not take a request. Delivery failures are never errors: they are
/// counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request does not parse.
    #[error("invalid send request: {0}")]
    InvalidRequest(#[from] FrameError),
    /// The event would be larger, as a frame, than API Gateway carries.
    #[error("the event is {size} bytes as a frame; API Gateway carries at most {limit}")]
    PayloadTooLarge {
        /// The frame's size in bytes.
        size: usize,
        /// The most API Gateway carries.
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SendError {
    /// The `errorType` a Lambda invoker sees.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::PayloadTooLarge { .. } => "PayloadTooLarge",
            Self::Store(StoreError::Throttled(_)) => "StoreThrottled",
            Self::Store(StoreError::NotFound(_)) => "StoreMisconfigured",
            Self::Store(StoreError::Corrupt(_)) => "StoreCorrupt",
            Self::Store(StoreError::Unavailable(_) | StoreError::ConditionFailed(_)) => {
                "StoreUnavailable"
            }
        }
    }

    /// Whether the request itself is at fault, so that no retry can help.
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::InvalidRequest(_) | Self::PayloadTooLarge { .. })
    }

    /// Whether the same request may succeed later (SQS should redeliver it).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(err) if err.is_transient())
    }
}

/// A client's `cancel_job` records an event as the sender does; its failures are the client's.
impl From<SendError> for ActionError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::InvalidRequest(err) => Self::Frame(err),
            SendError::PayloadTooLarge { size, limit } => {
                Self::Frame(FrameError::TooLarge { size, limit })
            }
            SendError::Store(err) => Self::Store(err),
        }
    }
}

/// The `error` reply for a failed action. Internal details stay in the logs.
pub fn error_reply(err: &ActionError, action: Option<&str>) -> ErrorReply {
    let code = err.code();
    let message = match err {
        ActionError::Store(_) => match code {
            ErrorCode::Unavailable => "the service is busy; try again shortly".to_owned(),
            _ => "something went wrong on our side".to_owned(),
        },
        other => other.to_string(),
    };
    ErrorReply {
        code,
        message,
        suggested_action: code.suggested_action().map(str::to_owned),
        action: action.map(str::to_owned),
    }
}
