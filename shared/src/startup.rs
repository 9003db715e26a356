//! One start-up path for every Lambda function: the settings are read once, logging is set
//! up from them, then the function's own pieces are built (the SDK's configuration, the
//! DynamoDB store, the service, the Management API; or the token verifier) and handed to the
//! Lambda runtime. Each binary in `functions/` is only its function's entry here
//! (`startup::connect()`, …): one entry each, so each bootstrap links its own path alone
//! (the authorizer no AWS client at all), which keeps it small and its start fast.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::auth::{Authorizer, TokenVerifier, VerifierConfigError};
use crate::gateway::ManagementApi;
use crate::handlers::Jobcast;
use crate::metrics::StdoutSink;
use crate::settings::{ConfigError, Settings};
use crate::store::DynamoStore;

/// Why a function could not start: its configuration, found before it serves anything.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting could not be read.
    #[error("reading settings: {0}")]
    Settings(#[from] ConfigError),
    /// The token verifier could not be built (no key, an unreadable JWKS).
    #[error("building the token verifier: {0}")]
    Verifier(#[from] VerifierConfigError),
    /// The sender posts to connections it was not called from, so it must be told where.
    #[error("the sender needs WEBSOCKET_ENDPOINT")]
    NoEndpoint,
    /// Without a region nothing can be signed: no DynamoDB call, no post.
    #[error("no AWS region: set AWS_REGION (Lambda sets it)")]
    NoRegion,
}

/// The SDK's configuration, refused at start-up when it has no region (every request would
/// fail later, one by one).
fn with_region(sdk: aws_config::SdkConfig) -> Result<aws_config::SdkConfig, StartupError> {
    match sdk.region() {
        Some(_) => Ok(sdk),
        None => Err(StartupError::NoRegion),
    }
}

/// What every function but the authorizer builds first: the settings (and logging from
/// them), the SDK's configuration, and the service over DynamoDB.
struct Built {
    sdk: aws_config::SdkConfig,
    service: Jobcast<DynamoStore>,
}

fn settings() -> Result<Settings, lambda_runtime::Error> {
    let settings = Settings::from_env().map_err(StartupError::from)?;
    crate::telemetry::init(&settings.logging);
    Ok(settings)
}

async fn build() -> Result<Built, lambda_runtime::Error> {
    let settings = settings()?;
    let sdk = with_region(crate::sdk::loader().load().await)?;
    let store = DynamoStore::new(&sdk, settings.tables.clone());
    // One Embedded Metric Format line per fan-out, on stdout for CloudWatch.
    let service = Jobcast::new(store, settings).with_metrics(Arc::new(StdoutSink));
    Ok(Built { sdk, service })
}

impl Built {
    /// Without WEBSOCKET_ENDPOINT, replies go to the endpoint each request came through.
    fn management_api(&self) -> ManagementApi {
        ManagementApi::new(
            self.sdk.clone(),
            self.service.settings().websocket_endpoint.as_deref(),
        )
    }
}

/// `$disconnect`: removes the connection and its subscriptions.
pub async fn disconnect() -> Result<(), lambda_runtime::Error> {
    let Built { service, .. } = build().await?;
    let service = &service;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(service.handle_disconnect(&event.payload).await)
        },
    ))
    .await
}

/// `$default` and the action routes: every client frame, answered through the Management API.
pub async fn default() -> Result<(), lambda_runtime::Error> {
    let built = build().await?;
    let (service, management_api) = (&built.service, &built.management_api());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let request = &event.payload;
            let gateway = management_api.for_request(&request.request_context)?;
            Ok::<_, lambda_runtime::Error>(service.handle_message(&gateway, request).await)
        },
    ))
    .await
}

/// `$connect`. A one-job socket (`?job_id=`) is subscribed by the sender, invoked
/// asynchronously: the connection opens only after this function answers, and the sender
/// waits for it.
pub async fn connect() -> Result<(), lambda_runtime::Error> {
    let Built { sdk, service } = build().await?;
    let service = &service;
    let lambda = &aws_sdk_lambda::Client::new(&sdk);
    let sender = service.settings().sender_function.as_deref();
    // Boxed, as the sender's fan-out is: nested in `main` the handler's future overflows
    // rustc's layout query depth in release builds.
    Box::pin(lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let connected = service.handle_connect_with_follow_up(&event.payload).await;
            let Some(subscribe) = connected.subscribe else {
                return Ok::<_, lambda_runtime::Error>(connected.response);
            };
            let Some(sender) = sender else {
                tracing::error!("a one-job socket needs SENDER_FUNCTION_NAME; refused");
                return Ok(refused(501, "one-job sockets are not configured"));
            };
            let payload = serde_json::to_vec(
                &crate::protocol::SenderRequest::subscribe_connection(subscribe),
            )
            .expect("a request serializes");
            let invoked = lambda
                .invoke()
                .function_name(sender)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(payload))
                .send()
                .await;
            Ok(match invoked {
                Ok(_) => connected.response,
                Err(err) => {
                    // The connection is recorded but would never hear its job: refuse it, and
                    // the client reconnects. The item expires with its TTL.
                    tracing::error!(error = %err, "could not hand the subscribe to the sender");
                    refused(503, "could not subscribe the connection")
                }
            })
        },
    )))
    .await
}

/// A refusal of the upgrade, with its status.
fn refused(status: u16, body: &str) -> aws_lambda_events::apigw::ApiGatewayProxyResponse {
    let mut response = aws_lambda_events::apigw::ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(aws_lambda_events::encodings::Body::Text(body.to_owned()));
    response
}

/// The sender answers no WebSocket request, so it needs the configured endpoint. Delivery
/// failures are counted in the answer, never raised; an SQS batch is answered with the
/// records to redeliver.
pub async fn sender() -> Result<(), lambda_runtime::Error> {
    let built = build().await?;
    let service = &built.service;
    let gateway = &built
        .management_api()
        .configured()
        .map_err(|_| StartupError::NoEndpoint)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Instant::now()
            + event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
        service
            .handle_sender_invocation_until(gateway, event.payload, Some(deadline))
            .await
            .map_err(|err| Diagnostic {
                error_type: err.error_type().to_owned(),
                error_message: err.to_string(),
            })
    }))
    .await
}

/// The authorizer verifies the client's JWT; failing with "Unauthorized" makes API Gateway
/// answer 401. A JWKS URL is fetched here, once per cold start.
pub async fn authorizer() -> Result<(), lambda_runtime::Error> {
    let settings = settings()?;
    let verifier = TokenVerifier::new(&settings.jwt)
        .await
        .map_err(StartupError::from)?;
    let authorizer = &Authorizer::new(verifier, settings.allowed_origins.clone());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            authorizer
                .authorize(&event.payload)
                .await
                .map_err(|unauthorized| Diagnostic {
                    error_type: "Unauthorized".to_owned(),
                    error_message: unauthorized.to_string(),
                })
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_without_a_region_fails_the_start() {
        let without = aws_config::SdkConfig::builder().build();
        assert!(matches!(with_region(without), Err(StartupError::NoRegion)));
        let with = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        assert!(with_region(with).is_ok());
    }
}
