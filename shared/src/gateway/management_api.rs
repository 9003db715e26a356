//! The gateway adapter for AWS: API Gateway's Management API (`@connections`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;

use super::{ConnectionGateway, PostError};
use crate::protocol::ConnectionId;

/// Posts through one API stage's `@connections` endpoint.
#[derive(Clone, Debug)]
pub struct ManagementApiGateway {
    client: Client,
}

impl ManagementApiGateway {
    /// A client for `endpoint` (e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com/prod`).
    ///
    /// The SDK's own retries are off: the delivery engine retries with jitter and knows that a
    /// 410 is final, and two layers of retry would multiply attempts under throttling.
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

fn classify<E: ProvideErrorMetadata>(
    err: SdkError<E, aws_smithy_runtime_api::http::Response>,
    size: usize,
) -> PostError {
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    match (&err, err.code()) {
        (_, Some("GoneException")) => PostError::Gone,
        (_, Some("PayloadTooLargeException")) => PostError::PayloadTooLarge { size },
        (_, Some("LimitExceededException" | "ThrottlingException")) => PostError::Throttled,
        (_, Some("ForbiddenException" | "AccessDeniedException")) => {
            PostError::Forbidden(err.message().unwrap_or("forbidden").to_owned())
        }
        (SdkError::TimeoutError(_), _) => PostError::Timeout,
        (SdkError::DispatchFailure(failure), _) if failure.is_timeout() => PostError::Timeout,
        (SdkError::DispatchFailure(failure), _) => PostError::Transport(format!("{failure:?}")),
        _ => match status {
            Some(410) => PostError::Gone,
            Some(413) => PostError::PayloadTooLarge { size },
            Some(429) => PostError::Throttled,
            Some(403) => PostError::Forbidden(err.to_string()),
            Some(status) if status >= 500 => PostError::ServerError { status },
            _ => PostError::Transport(err.to_string()),
        },
    }
}

impl ConnectionGateway for ManagementApiGateway {
    async fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> Result<(), PostError> {
        let size = payload.len();
        self.client
            .post_to_connection()
            .connection_id(connection_id.as_str())
            .data(Blob::new(payload))
            .send()
            .await
            .map(drop)
            .map_err(|err| classify(err, size))
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<(), PostError> {
        self.client
            .delete_connection()
            .connection_id(connection_id.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|err| classify(err, 0))
    }

    /// `GET @connections/{id}`: 410 until API Gateway opens the connection, and after it
    /// closes.
    async fn connection_open(&self, connection_id: &ConnectionId) -> Result<bool, PostError> {
        match self
            .client
            .get_connection()
            .connection_id(connection_id.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) => match classify(err, 0) {
                PostError::Gone => Ok(false),
                other => Err(other),
            },
        }
    }
}

/// The `@connections` endpoint of the API stage a request came through.
pub fn endpoint_for_request(context: &ApiGatewayWebsocketProxyRequestContext) -> Option<String> {
    let domain = context.domain_name.as_deref().filter(|d| !d.is_empty())?;
    let stage = context.stage.as_deref().filter(|s| !s.is_empty())?;
    Some(format!("https://{domain}/{stage}"))
}

/// Management API clients, one per endpoint, built once and reused across invocations.
#[derive(Clone)]
pub struct ManagementApi {
    sdk: SdkConfig,
    configured: Option<ManagementApiGateway>,
    by_endpoint: Arc<Mutex<HashMap<String, ManagementApiGateway>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no @connections endpoint: set WEBSOCKET_ENDPOINT, or invoke through API Gateway")]
pub struct NoEndpoint;

impl ManagementApi {
    /// With `configured_endpoint` (WEBSOCKET_ENDPOINT) every post goes there; without it the
    /// endpoint comes from each request's domain name and stage.
    pub fn new(sdk: SdkConfig, configured_endpoint: Option<&str>) -> Self {
        let configured =
            configured_endpoint.map(|endpoint| ManagementApiGateway::new(&sdk, endpoint));
        Self {
            sdk,
            configured,
            by_endpoint: Arc::default(),
        }
    }

    /// The gateway for posts that answer `request`.
    pub fn for_request(
        &self,
        context: &ApiGatewayWebsocketProxyRequestContext,
    ) -> Result<ManagementApiGateway, NoEndpoint> {
        if let Some(gateway) = &self.configured {
            return Ok(gateway.clone());
        }
        let endpoint = endpoint_for_request(context).ok_or(NoEndpoint)?;
        let mut cache = self.by_endpoint.lock().unwrap_or_else(|e| e.into_inner());
        Ok(cache
            .entry(endpoint)
            .or_insert_with_key(|endpoint| ManagementApiGateway::new(&self.sdk, endpoint))
            .clone())
    }

    /// The gateway for posts that answer no request (the sender): the configured endpoint.
    pub fn configured(&self) -> Result<ManagementApiGateway, NoEndpoint> {
        self.configured.clone().ok_or(NoEndpoint)
    }
}
