//! `$disconnect`: removes the connection and its subscriptions.

use anyhow::Context;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
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
    let service = Jobcast::new(DynamoStore::new(&sdk, TableNames::from_env()), settings);

    let service = &service;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<ApiGatewayProxyResponse, lambda_runtime::Error>(
                service.handle_disconnect(&event.payload).await,
            )
        },
    ))
    .await
}
