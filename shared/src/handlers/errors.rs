//! The one place where failures become what a client is told.

use crate::protocol::{ErrorCode, ErrorReply, FrameError, JobId, JobState, Seq};
use crate::store::StoreError;

/// Why a client action was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// One answer for "no such job" and "not yours", so a caller cannot probe for others' jobs.
    #[error("job {0} does not exist or is not yours")]
    JobNotAccessible(JobId),
    #[error("job {job_id} has already {}", state.as_str())]
    JobFinished { job_id: JobId, state: JobState },
    #[error("too many frames: {rate} per second on one connection, {burst} at once")]
    RateLimited { rate: u32, burst: u32 },
    #[error("this connection already holds {limit} subscriptions, the most it may")]
    TooManySubscriptions { limit: usize },
    #[error("last_seq {last_seq} is ahead of job {job_id}, whose last seq is {job_last_seq}")]
    SeqAhead {
        job_id: JobId,
        last_seq: Seq,
        job_last_seq: Seq,
    },
    #[error("the connection is not known (it may have expired); reconnect")]
    UnknownConnection,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ActionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Frame(err) => err.code(),
            Self::SeqAhead { .. } => ErrorCode::InvalidMessage,
            Self::JobNotAccessible(_) => ErrorCode::Forbidden,
            Self::JobFinished { .. } => ErrorCode::JobFinished,
            Self::UnknownConnection => ErrorCode::Forbidden,
            Self::TooManySubscriptions { .. } => ErrorCode::TooManySubscriptions,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Store(
                StoreError::Throttled(_)
                | StoreError::Unavailable(_)
                | StoreError::ConditionFailed(_),
            ) => ErrorCode::Unavailable,
            Self::Store(StoreError::Corrupt(_) | StoreError::NotFound(_)) => {
                ErrorCode::InternalError
            }
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
