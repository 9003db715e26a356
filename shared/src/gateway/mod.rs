//! The gateway port: posting bytes to a client's connection, and closing it.

use std::future::Future;

use bytes::Bytes;

use crate::protocol::ConnectionId;

#[cfg(feature = "lambda")]
mod management_api;
#[cfg(feature = "lambda")]
pub mod signing;
#[cfg(feature = "lambda")]
pub use management_api::{ManagementApi, ManagementApiGateway, endpoint_for_request};

/// Why a post did not reach the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// 410: the connection is closed; it will never come back. Expected, not a failure.
    #[error("connection is gone")]
    Gone,
    /// 413: the payload exceeds the 128 KB message limit.
    #[error("payload too large ({size} bytes)")]
    PayloadTooLarge {
        /// The payload's size, in bytes.
        size: usize,
    },
    /// 429: the account's API Gateway quota is exhausted for now.
    #[error("throttled")]
    Throttled,
    /// 403: the caller may not manage connections (a permissions or endpoint misconfiguration).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 5xx from the gateway.
    #[error("gateway error (HTTP {status})")]
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// The request got no answer in time.
    #[error("timed out")]
    Timeout,
    /// Any other 4xx: the gateway refused the request as it is; sending it again will not help.
    #[error("refused (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The gateway's reason.
        message: String,
    },
    /// The gateway cannot be reached as configured (no region, no credentials provider, an
    /// endpoint that is not a URL): no post will succeed until the configuration changes.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The request never got an answer (connection refused, TLS, DNS).
    #[error("transport error: {0}")]
    Transport(String),
}

impl PostError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::ServerError { .. } | Self::Timeout | Self::Transport(_)
        )
    }

    /// A short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Gone => "gone",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Throttled => "throttled",
            Self::Forbidden(_) => "forbidden",
            Self::ServerError { .. } => "server_error",
            Self::Timeout => "timeout",
            Self::Rejected { .. } => "rejected",
            Self::Misconfigured(_) => "misconfigured",
            Self::Transport(_) => "transport",
        }
    }
}

/// Posts to and closes client connections: API Gateway's Management API in AWS, the
/// emulator's sockets in jobcast-local.
pub trait ConnectionGateway: Send + Sync {
    /// Posts `payload`, one text frame, to the connection.
    fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PostError>> + Send;

    /// Closes the connection.
    fn delete_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> impl Future<Output = Result<(), PostError>> + Send;

    /// Whether the connection is open: false until API Gateway has opened it (after
    /// `$connect` answered) and once it has closed. A gateway that cannot tell says open.
    fn connection_open(
        &self,
        connection_id: &ConnectionId,
    ) -> impl Future<Output = Result<bool, PostError>> + Send {
        let _ = connection_id;
        async { Ok(true) }
    }
}

impl<G: ConnectionGateway> ConnectionGateway for &G {
    fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PostError>> + Send {
        (**self).post_to_connection(connection_id, payload)
    }

    fn delete_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> impl Future<Output = Result<(), PostError>> + Send {
        (**self).delete_connection(connection_id)
    }

    fn connection_open(
        &self,
        connection_id: &ConnectionId,
    ) -> impl Future<Output = Result<bool, PostError>> + Send {
        (**self).connection_open(connection_id)
    }
}
