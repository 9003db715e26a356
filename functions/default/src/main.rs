//! `$default` and the action routes: serves client actions and replies on the caller's
//! connection through the Management API.

use anyhow::Context;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use jobcast::gateway::ManagementApi;
use jobcast::handlers::Jobcast;
use jobcast::settings::Settings;
use jobcast::store::DynamoStore;
use jobcast::store::dynamodb::schema::TableNames;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::telemetry::init();
    let settings = Settings::from_env().context("reading settings")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // Without WEBSOCKET_ENDPOINT, replies go to the endpoint each request came through.
    let management_api = ManagementApi::new(sdk.clone(), settings.websocket_endpoint.as_deref());
    // One Embedded Metric Format line per fan-out, on stdout for CloudWatch.
    let service = Jobcast::new(DynamoStore::new(&sdk, TableNames::from_env()), settings)
        .with_metrics(std::sync::Arc::new(jobcast::metrics::StdoutSink));

    let (service, management_api) = (&service, &management_api);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let gateway = management_api.for_request(&event.payload.request_context)?;
            Ok::<_, lambda_runtime::Error>(service.handle_message(&gateway, &event.payload).await)
        },
    ))
    .await
}
