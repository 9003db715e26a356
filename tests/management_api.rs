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

/// The jobcast adapter of the gateway port (signed requests of its own), against the emulator:
/// it classifies AWS's answers as the delivery engine needs.
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

/// One request as the capture server saw it.
#[derive(Clone, Debug)]
struct Captured {
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    /// The headers its `Authorization` names as signed.
    fn signed_header_names(&self) -> Vec<String> {
        let authorization = self.header("authorization");
        let list = authorization
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .expect("a SignedHeaders list");
        list.split(';').map(str::to_owned).collect()
    }

    /// Its own signature, made again by jobcast's signer from its headers, body and date.
    async fn signed_again(&self, sdk: &aws_config::SdkConfig, origin: &str) -> String {
        let time =
            chrono::NaiveDateTime::parse_from_str(self.header("x-amz-date"), "%Y%m%dT%H%M%SZ")
                .expect("an X-Amz-Date")
                .and_utc();
        // The signer adds Host, X-Amz-Date and the token itself.
        let names: Vec<String> = self
            .signed_header_names()
            .into_iter()
            .filter(|name| {
                !matches!(
                    name.as_str(),
                    "host" | "x-amz-date" | "x-amz-security-token"
                )
            })
            .collect();
        let headers: Vec<(&str, &str)> = names
            .iter()
            .map(|name| (name.as_str(), self.header(name)))
            .collect();
        let signed = jobcast::gateway::signing::Signer::new(sdk)
            .sign(
                &self.method,
                &format!("{origin}{}", self.path),
                &headers,
                &self.body,
                time.into(),
            )
            .await
            .expect("signed");
        signed
            .into_iter()
            .find(|(name, _)| *name == "authorization")
            .expect("an Authorization header")
            .1
            .to_str()
            .expect("ASCII")
            .to_owned()
    }
}

/// A server that answers 200 to everything and keeps what it was sent.
async fn capture_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Captured>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Captured>::new()));
    let keep = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let keep = keep.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            keep.lock().unwrap().push(Captured {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body: body.to_vec(),
            });
            ([(http::header::CONTENT_TYPE, "application/json")], "{}")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (origin, seen)
}

/// jobcast posts through its own signed client, not the SDK's pipeline (bench/RESULTS.md says
/// why): the requests it sends are the SDK's requests, and its signer signs as the SDK's does,
/// for a connection id that needs escaping and with temporary credentials.
#[tokio::test]
async fn the_adapter_signs_its_requests_as_the_sdk_does() {
    use jobcast::gateway::{ConnectionGateway, ManagementApiGateway};
    let (origin, seen) = capture_server().await;
    let endpoint = format!("{origin}/prod");
    let sdk = jobcast::sdk::loader()
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("a-session-token".into()),
            None,
            "jobcast-tests",
        ))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let id = "L0SM9cOF+vHc/Ihw=";
    let payload = r#"{"type":"progress_update","seq":7}"#;
    let sdk_client = aws_sdk_apigatewaymanagement::Client::new(&sdk);
    sdk_client
        .post_to_connection()
        .connection_id(id)
        .data(Blob::new(payload))
        .send()
        .await
        .expect("the SDK posts");
    let connection_id = jobcast::protocol::ConnectionId::parse(id).unwrap();
    let jobcast = ManagementApiGateway::new(&sdk, &endpoint);
    jobcast
        .post_to_connection(&connection_id, bytes_of(payload))
        .await
        .expect("jobcast posts");
    sdk_client
        .get_connection()
        .connection_id(id)
        .send()
        .await
        .expect("the SDK asks");
    assert!(jobcast.connection_open(&connection_id).await.unwrap());
    sdk_client
        .delete_connection()
        .connection_id(id)
        .send()
        .await
        .expect("the SDK deletes");
    jobcast.delete_connection(&connection_id).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let [
        post_by_sdk,
        post_by_jobcast,
        get_by_sdk,
        get_by_jobcast,
        delete_by_sdk,
        delete_by_jobcast,
    ] = <[Captured; 6]>::try_from(seen).unwrap();
    for (by_sdk, by_jobcast, method) in [
        (&post_by_sdk, &post_by_jobcast, "POST"),
        (&get_by_sdk, &get_by_jobcast, "GET"),
        (&delete_by_sdk, &delete_by_jobcast, "DELETE"),
    ] {
        // The same request: method, escaped path, body, token.
        assert_eq!(by_jobcast.method, method);
        assert_eq!(by_sdk.method, method);
        assert_eq!(
            by_jobcast.path,
            "/prod/@connections/L0SM9cOF%2BvHc%2FIhw%3D"
        );
        assert_eq!(by_jobcast.path, by_sdk.path, "{method}");
        assert_eq!(by_jobcast.body, by_sdk.body, "{method}");
        assert_eq!(
            by_jobcast.header("x-amz-security-token"),
            by_sdk.header("x-amz-security-token")
        );
        // The SDK's request, signed again by jobcast's signer: the SDK's signature exactly.
        assert_eq!(
            by_sdk.signed_again(&sdk, &origin).await,
            by_sdk.header("authorization"),
            "{method}"
        );
        // jobcast's own request signs what it sends.
        assert_eq!(
            by_jobcast.signed_again(&sdk, &origin).await,
            by_jobcast.header("authorization"),
            "{method}"
        );
        assert!(
            by_jobcast
                .header("authorization")
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{}",
            by_jobcast.header("authorization")
        );
    }
    // A post's body and its type, as the SDK sends them.
    assert_eq!(post_by_jobcast.body, payload.as_bytes());
    assert_eq!(
        post_by_jobcast.header("content-type"),
        post_by_sdk.header("content-type")
    );
    assert_eq!(
        post_by_jobcast.signed_header_names(),
        ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    );
    assert_eq!(
        get_by_jobcast.signed_header_names(),
        ["host", "x-amz-date", "x-amz-security-token"]
    );
}
