//! The `@connections` Management API, driven by the official AWS SDK for Rust.

use aws_sdk_apigatewaymanagement::primitives::Blob;
use jobcast_tests::*;

#[tokio::test]
async fn post_to_connection_delivers_the_bytes_as_one_frame() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    let sdk = management_client(&emulator.http_url()).await;
    sdk.post_to_connection()
        .connection_id(id.as_str())
        .data(Blob::new(r#"{"type":"hello"}"#))
        .send()
        .await
        .expect("the SDK posts");
    assert_eq!(
        client.expect("hello").await,
        serde_json::json!({"type": "hello"})
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_with_the_stage_path_works_too() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    let sdk = management_client(&format!("{}/local", emulator.http_url())).await;
    sdk.post_to_connection()
        .connection_id(id.as_str())
        .data(Blob::new(r#"{"type":"staged"}"#))
        .send()
        .await
        .unwrap();
    client.expect("staged").await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn get_connection_reports_when_and_who() {
    let emulator = start().await;
    let client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    let sdk = management_client(&emulator.http_url()).await;
    let connection = sdk
        .get_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .expect("the SDK reads the connection");
    let connected_at = connection.connected_at().expect("connectedAt");
    let last_active_at = connection.last_active_at().expect("lastActiveAt");
    assert!(last_active_at >= connected_at);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - connected_at.secs()).abs() < 60,
        "connectedAt is now-ish"
    );
    let identity = connection.identity().expect("identity");
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn delete_connection_closes_the_socket_and_cleans_the_store() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-d").await;
    let id = client.connection_id(&emulator).await;
    let sdk = management_client(&emulator.http_url()).await;
    sdk.delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .expect("the SDK deletes");
    let close = client.expect_close().await;
    assert_eq!(close_code(&close), Some(1000));
    wait_until_store_empty(&emulator, true).await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn posting_to_a_closed_connection_is_gone() {
    let emulator = start().await;
    let client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    client.close().await;
    let sdk = management_client(&emulator.http_url()).await;
    wait_until_store_empty(&emulator, false).await;
    let err = sdk
        .post_to_connection()
        .connection_id(id.as_str())
        .data(Blob::new("{}"))
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_gone_exception(), "{err:?}");
    let err = sdk
        .get_connection()
        .connection_id("never-existed=")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_gone_exception());
    let err = sdk
        .delete_connection()
        .connection_id(id.as_str())
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_gone_exception());
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_post_over_128_kb_is_payload_too_large() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    let sdk = management_client(&emulator.http_url()).await;
    let err = sdk
        .post_to_connection()
        .connection_id(id.as_str())
        .data(Blob::new(vec![b'x'; 128 * 1024 + 1]))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_payload_too_large_exception());
    client.expect_silence().await;
    emulator.shutdown().await;
}

/// The jobcast adapter of the gateway port, over the SDK, against the emulator: it classifies
/// AWS's answers as the delivery engine needs.
#[tokio::test]
async fn the_management_api_adapter_reports_gone_distinctly() {
    use jobcast::gateway::{ConnectionGateway, ManagementApiGateway, PostError};
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    let gateway = ManagementApiGateway::new(
        &sdk_config(&emulator.http_url()).await,
        &emulator.http_url(),
    );
    gateway
        .post_to_connection(&id, bytes_of(r#"{"type":"via_adapter"}"#))
        .await
        .unwrap();
    client.expect("via_adapter").await;
    let too_big = gateway
        .post_to_connection(&id, vec![b'x'; 200 * 1024].into())
        .await
        .unwrap_err();
    assert!(
        matches!(too_big, PostError::PayloadTooLarge { .. }),
        "{too_big:?}"
    );
    gateway.delete_connection(&id).await.unwrap();
    client.expect_close().await;
    wait_until_store_empty(&emulator, false).await;
    let gone = gateway
        .post_to_connection(&id, bytes_of("{}"))
        .await
        .unwrap_err();
    assert_eq!(gone, PostError::Gone);
    emulator.shutdown().await;
}

fn bytes_of(text: &str) -> jobcast_tests::Bytes {
    jobcast_tests::Bytes::copy_from_slice(text.as_bytes())
}
