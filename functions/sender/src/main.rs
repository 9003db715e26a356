//! The sender: pipelines invoke it with `{job_id, event}` or send that through SQS; it records
//! the event and fans it out to every subscriber. Delivery failures are counted in the answer,
//! never raised; an SQS batch is answered with the records to redeliver.

use anyhow::Context;
use jobcast::gateway::ManagementApi;
use jobcast::handlers::Jobcast;
use jobcast::settings::Settings;
use jobcast::store::DynamoStore;
use jobcast::store::dynamodb::schema::TableNames;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::telemetry::init();
    let settings = Settings::from_env().context("reading settings")?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // The sender answers no WebSocket request, so it needs the configured endpoint.
    let gateway = ManagementApi::new(sdk.clone(), settings.websocket_endpoint.as_deref())
        .configured()
        .context("the sender needs WEBSOCKET_ENDPOINT")?;
    // One Embedded Metric Format line per fan-out, on stdout for CloudWatch.
    let service = Jobcast::new(DynamoStore::new(&sdk, TableNames::from_env()), settings)
        .with_metrics(std::sync::Arc::new(jobcast::metrics::StdoutSink));

    let (service, gateway) = (&service, &gateway);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            service
                .handle_sender_invocation(gateway, event.payload)
                .await
                .map_err(|err| Diagnostic {
                    error_type: err.error_type().to_owned(),
                    error_message: err.to_string(),
                })
        },
    ))
    .await
}
