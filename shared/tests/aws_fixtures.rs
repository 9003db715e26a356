//! Events in the shapes of AWS's published samples (the repository's `tests/fixtures/aws/`)
//! deserialize into the types the handlers take, and the handlers answer them sensibly.

mod common;

use std::path::PathBuf;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use common::{RecordingGateway, read_json};
use jobcast::handlers::Jobcast;
use jobcast::settings::{AuthMode, Settings};
use jobcast::store::MemoryStore;
use serde_json::Value;

/// A fixture from the repository's `tests/fixtures/aws/` (this crate is `shared/`).
fn fixture(name: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/aws");
    read_json(&dir.join(name))
}

fn websocket(name: &str) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(fixture(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn every_fixture_deserializes() {
    for name in [
        "example-apigw-websocket-request.json",
        "example-apigw-websocket-request-without-method.json",
        "example-apigw-websocket-request-disconnect-route.json",
    ] {
        let event = websocket(name);
        assert!(event.request_context.connection_id.is_some(), "{name}");
    }
    let authorizer: ApiGatewayCustomAuthorizerRequestTypeRequest = serde_json::from_value(fixture(
        "example-apigw-v2-custom-authorizer-websocket-request.json",
    ))
    .unwrap();
    assert!(
        authorizer
            .method_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with("/$connect"))
    );
    let sqs: SqsEvent = serde_json::from_value(fixture("example-sqs-event.json")).unwrap();
    assert_eq!(sqs.records.len(), 1);
    let response: SqsBatchResponse =
        serde_json::from_value(fixture("example-sqs-batch-response.json")).unwrap();
    assert_eq!(response.batch_item_failures.len(), 2);
}

#[tokio::test]
async fn the_handlers_answer_aws_sample_events() {
    let settings = Settings {
        auth_mode: AuthMode::None,
        ..Settings::default()
    };
    let service = Jobcast::new(MemoryStore::new(), settings);
    let gateway = RecordingGateway::default();

    let connect = websocket("example-apigw-websocket-request-without-method.json");
    assert_eq!(service.handle_connect(&connect).await.status_code, 200);
    assert_eq!(service.store().connection_count(), 1);

    // The MESSAGE fixture carries `{"job_id": "nightly-export-42"}`: no action, so a typed
    // error goes back.
    let mut message = websocket("example-apigw-websocket-request.json");
    message.request_context.connection_id = connect.request_context.connection_id.clone();
    assert_eq!(
        service.handle_message(&gateway, &message).await.status_code,
        200
    );
    let replies = gateway.take();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].1["type"], "error");
    assert_eq!(replies[0].1["code"], "invalid_message");

    let mut disconnect = websocket("example-apigw-websocket-request-disconnect-route.json");
    disconnect.request_context.connection_id = connect.request_context.connection_id.clone();
    assert_eq!(
        service.handle_disconnect(&disconnect).await.status_code,
        200
    );
    assert_eq!(service.store().connection_count(), 0);
}

#[tokio::test]
async fn without_an_authorizer_principal_connect_is_refused_in_production_mode() {
    let service = Jobcast::new(MemoryStore::new(), Settings::default());
    let connect = websocket("example-apigw-websocket-request-without-method.json");
    assert_eq!(service.handle_connect(&connect).await.status_code, 401);
    assert_eq!(service.store().connection_count(), 0);
}

#[tokio::test]
async fn the_sender_takes_aws_sample_sqs_event_and_drops_its_poison_body() {
    let service = Jobcast::new(MemoryStore::new(), Settings::default());
    let gateway = RecordingGateway::default();
    // The fixture's body is plain text, not a send request: logged and not retried, since a
    // poison message must not loop until the DLQ.
    let answer = service
        .handle_sender_invocation(&gateway, fixture("example-sqs-event.json"))
        .await
        .unwrap();
    let response: SqsBatchResponse = serde_json::from_value(answer.clone()).unwrap();
    assert!(response.batch_item_failures.is_empty(), "{answer}");
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));

    // The same record carrying a real send request is published.
    let mut event = fixture("example-sqs-event.json");
    event["Records"][0]["body"] = serde_json::json!(
        r#"{"job_id":"sqs-job","event":{"type":"stage_complete","stage":"fetch","results":{}}}"#
    )
    .clone();
    let answer = service
        .handle_sender_invocation(&gateway, event)
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
    use jobcast::store::JobStore;
    let job = jobcast::protocol::JobId::parse("sqs-job").unwrap();
    assert_eq!(
        service
            .store()
            .get_job(&job)
            .await
            .unwrap()
            .unwrap()
            .last_seq,
        1
    );
}
