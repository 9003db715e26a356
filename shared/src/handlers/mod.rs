//! The handlers every deployment runs: the Lambda functions in AWS and jobcast-local alike.
//! Generic over the ports, they never know which store or gateway is behind them.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::cache::SubscriberCache;
use crate::delivery::post_with_retry;
use crate::gateway::{ConnectionGateway, PostError};
use crate::metrics::{NoMetrics, SharedSink};
use crate::protocol::{ConnectionId, CorrelationId, ServerFrame, ServerMessage, UserId};
use crate::settings::Settings;
use crate::store::Store;

mod connect;
mod disconnect;
mod errors;
mod message;
mod send;
mod sqs;
mod subscribe;

pub use errors::{ActionError, error_reply};
pub use send::{
    JobQuery, QueryKind, SENDER_ACTIONS, SendError, SendOutcome, SendRequest, SenderRequest,
    USER_CHANNEL_PREFIX, UserPayload, UserSendRequest,
};
pub use sqs::BatchSummary;

/// The jobcast service: a store, the settings, and every handler.
#[derive(Clone)]
pub struct Jobcast<S> {
    store: S,
    settings: Arc<Settings>,
    metrics: SharedSink,
    /// Who listens to which job, kept between invocations of a warm sender.
    subscribers: Arc<SubscriberCache>,
}

impl<S: Store> Jobcast<S> {
    /// A service that emits no metric lines; see [`Jobcast::with_metrics`].
    pub fn new(store: S, settings: Settings) -> Self {
        Self {
            store,
            subscribers: Arc::new(SubscriberCache::new(settings.delivery.subscriber_cache_ttl)),
            settings: Arc::new(settings),
            metrics: Arc::new(NoMetrics),
        }
    }

    /// Sends one Embedded Metric Format line per fan-out to `sink` (stdout in Lambda).
    pub fn with_metrics(mut self, sink: SharedSink) -> Self {
        self.metrics = sink;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One cheap read (a job that does not exist): whether the store answers, and how fast.
    pub async fn check_store(&self) -> Result<std::time::Duration, crate::store::StoreError> {
        let probe = crate::protocol::JobId::parse("health-check").expect("a valid job id");
        let started = std::time::Instant::now();
        self.store.get_job(&probe).await?;
        Ok(started.elapsed())
    }

    fn expiry(&self, from: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
        from + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
    }
}

/// The connection a WebSocket event came from.
fn connection_of(request: &ApiGatewayWebsocketProxyRequest) -> Option<ConnectionId> {
    let id = request.request_context.connection_id.as_deref()?;
    ConnectionId::parse(id).ok()
}

/// The user an upstream REQUEST authorizer vouched for, if one ran.
fn authorized_user(request: &ApiGatewayWebsocketProxyRequest) -> Option<UserId> {
    let fields = &request.request_context.authorizer.fields;
    [crate::auth::USER_ID_CONTEXT_KEY, "principalId"]
        .iter()
        .filter_map(|key| fields.get(*key)?.as_str())
        .find_map(|id| UserId::parse(id).ok())
}

fn response(status: u16, body: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(Body::Text(body.to_owned()));
    response
}

impl<S: Store> Jobcast<S> {
    /// Posts one frame to the connection that asked, with the delivery engine's retries. A
    /// closed connection is removed from the store; other failures are logged. Replies are
    /// best-effort: the client may already be gone. Returns whether the frame was posted.
    async fn reply<G: ConnectionGateway>(
        &self,
        gateway: &G,
        connection_id: &ConnectionId,
        message: ServerMessage,
        correlation_id: Option<CorrelationId>,
    ) -> bool {
        let kind = message.type_name();
        let payload = Bytes::from(ServerFrame::new(message, correlation_id).to_json());
        let (result, attempts) =
            post_with_retry(gateway, &self.settings.delivery, connection_id, payload).await;
        let retries = attempts.retries;
        match result {
            Ok(()) => {
                tracing::debug!(%connection_id, kind, retries, "reply posted");
                return true;
            }
            Err(PostError::Gone) => {
                tracing::info!(%connection_id, kind, "reply to a gone connection; removing it");
                if let Err(err) = self.store.delete_connection(connection_id).await {
                    tracing::warn!(%connection_id, error = %err, "could not remove a gone connection");
                }
            }
            Err(err) => {
                tracing::warn!(%connection_id, kind, error = %err, attempts = retries + 1, "reply not delivered")
            }
        }
        false
    }
}
