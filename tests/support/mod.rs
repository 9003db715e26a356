//! Test support: an emulator on a free port, real WebSocket clients, real AWS SDK clients.

pub mod chaos;
pub mod costs;
mod dynamo_tap;
mod gateway;
mod observed;
mod redis_server;
pub use dynamo_tap::{DynamoTap, Tally, Usage};
pub use gateway::{RecordingPosts, ScriptedGateway, listening, listening_after};
pub use observed::{Observations, ObservedStore};
pub use redis_server::RedisServer;

use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use jobcast::handlers::Jobcast;
use jobcast::protocol::{ConnectionId, UserId};
use jobcast::settings::{AuthMode, Settings};
use jobcast::store::{MemoryStore, PageRequest, Store};
use jobcast_local::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test listens to be sure nothing more arrives.
pub const QUIET: Duration = Duration::from_millis(300);

pub type TestEmulator = Emulator<MemoryStore>;

/// Settings for tests: no authentication, quick retries.
pub fn test_settings() -> Settings {
    let mut settings = Settings {
        auth_mode: AuthMode::None,
        ..Settings::default()
    };
    settings.delivery.backoff_base = Duration::from_millis(5);
    settings.delivery.backoff_max = Duration::from_millis(50);
    settings
}

pub async fn start() -> TestEmulator {
    start_with(test_settings(), EmulatorConfig::default()).await
}

pub async fn start_with(settings: Settings, config: EmulatorConfig) -> TestEmulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    Emulator::start(listener, Jobcast::new(MemoryStore::new(), settings), config)
        .expect("start the emulator")
}

/// What a client reads next.
pub enum Incoming {
    Text(Value),
    Closed,
}

/// An emulator on a free port over `store`, with the test settings.
pub async fn start_on<S: Store>(store: S) -> Emulator<S> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    Emulator::start(
        listener,
        Jobcast::new(store, test_settings()),
        EmulatorConfig::default(),
    )
    .expect("start the emulator")
}

/// The HS256 secret of [`start_secured`]'s authorizer.
pub const TEST_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

/// A token [`start_secured`]'s authorizer accepts for `user`, valid for five minutes.
pub fn token_for(user: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 300;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("a token")
}

/// An emulator on a free port over `store` with authentication on, as deployed: `--auth jwt`
/// (HS256 with [`TEST_SECRET`]) and the authorizer's user on every route.
pub async fn start_secured<S: Store>(store: S, settings: Settings) -> Emulator<S> {
    start_secured_with(store, settings, EmulatorConfig::default()).await
}

/// [`start_secured`], with the rest of the emulator's configuration from `config`.
pub async fn start_secured_with<S: Store>(
    store: S,
    mut settings: Settings,
    config: EmulatorConfig,
) -> Emulator<S> {
    settings.auth_mode = AuthMode::Authorizer;
    let jwt = jobcast::auth::JwtSettings {
        hs256_secret: Some(TEST_SECRET.to_owned()),
        ..jobcast::auth::JwtSettings::default()
    };
    let verifier = jobcast::auth::TokenVerifier::new(&jwt)
        .await
        .expect("a verifier");
    let config = EmulatorConfig {
        authorizer: Some(std::sync::Arc::new(jobcast::auth::Authorizer::new(
            verifier,
            settings.allowed_origins.clone(),
        ))),
        ..config
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    Emulator::start(listener, Jobcast::new(store, settings), config).expect("start the emulator")
}

/// A real WebSocket client.
pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub user: String,
    /// The emulator's HTTP address, for the sender.
    http_url: String,
}

impl Client {
    /// Connects as a fresh user of its own, so its connection can be found in the store.
    pub async fn connect<S: Store>(emulator: &Emulator<S>) -> Client {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let user = format!(
            "user-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        Self::connect_as(emulator, &user).await
    }

    pub async fn connect_as<S: Store>(emulator: &Emulator<S>, user: &str) -> Client {
        Self::connect_to(&emulator.websocket_url(), &emulator.http_url(), user).await
    }

    /// Connects to the emulator at these addresses (for tasks that do not hold the emulator).
    pub async fn connect_to(websocket_url: &str, http_url: &str, user: &str) -> Client {
        let url = format!("{websocket_url}/?user_id={user}");
        Self::open(&url, http_url, user).await
    }

    /// Opens the socket at `url`, as `user`.
    pub async fn open(url: &str, http_url: &str, user: &str) -> Client {
        let (socket, response) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect");
        assert_eq!(response.status(), 101);
        Client {
            socket,
            user: user.to_owned(),
            http_url: http_url.to_owned(),
        }
    }

    /// Connects to a [`start_secured`] emulator as `user`, with a token for it.
    pub async fn connect_secured<S: Store>(emulator: &Emulator<S>, user: &str) -> Client {
        let url = format!("{}/?token={}", emulator.websocket_url(), token_for(user));
        Self::open(&url, &emulator.http_url(), user).await
    }

    /// This client's connection id, as the store knows it.
    pub async fn connection_id<S: Store>(&self, emulator: &Emulator<S>) -> ConnectionId {
        let user = UserId::parse(self.user.clone()).unwrap();
        let page = emulator
            .service()
            .store()
            .connections_of(
                &jobcast::store::Audience::User(user.clone()),
                PageRequest::first(10),
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "one connection for {}", self.user);
        page.items[0].clone()
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("send a frame");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send a frame");
    }

    /// The next text frame as JSON; fails the test if none comes in time.
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a frame within the patience window")
                .expect("the socket is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("frames are JSON");
                }
                Message::Close(frame) => {
                    panic!("socket closed while waiting for a frame: {frame:?}")
                }
                _ => continue,
            }
        }
    }

    /// The next frame, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
        frame
    }

    /// Sends a frame and returns the reply.
    pub async fn request(&mut self, frame: Value) -> Value {
        self.send(frame).await;
        self.recv().await
    }

    /// Sends a raw text frame and returns the reply.
    pub async fn request_text(&mut self, frame: String) -> Value {
        self.send_text(frame).await;
        self.recv().await
    }

    /// Registers the job (without an owner, if it is not known yet) as its pipeline would,
    /// subscribes, and takes the `subscribed` and `job_status` replies; answers the status.
    pub async fn subscribe(&mut self, job_id: &str) -> Value {
        register_job_at(&self.http_url, job_id, None).await;
        let reply = self
            .request(json!({"action": "subscribe", "job_id": job_id}))
            .await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        assert_eq!(reply["job_id"], job_id);
        let status = self.expect("job_status").await;
        assert_eq!(status["job_id"], job_id);
        status
    }

    /// Asserts that no text frame arrives for a little while.
    /// The next frame if one of type `kind` arrives within the quiet spell; none if nothing
    /// does.
    pub async fn try_expect(&mut self, kind: &str) -> Option<Value> {
        match tokio::time::timeout(QUIET, self.socket.next()).await {
            Err(_) => None,
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                assert_eq!(frame["type"], kind, "expected a {kind} frame, got {frame}");
                Some(frame)
            }
            Ok(other) => panic!("unexpected socket event: {other:?}"),
        }
    }

    pub async fn expect_silence(&mut self) {
        match tokio::time::timeout(QUIET, self.socket.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Text(text)))) => panic!("unexpected frame: {text}"),
            Ok(other) => panic!("unexpected socket event: {other:?}"),
        }
    }

    /// Waits for the server to close the socket and returns its close frame.
    /// The next text frame, or the end of the connection.
    pub async fn next_event(&mut self) -> Incoming {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a frame or a close in time");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Incoming::Text(serde_json::from_str(&text).expect("frames are JSON"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Incoming::Closed,
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a close in time");
            match next {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Text(text))) => panic!("expected a close, got {text}"),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        // Drain until the server acknowledges, so its $disconnect has started.
        let _ = tokio::time::timeout(PATIENCE, async {
            while self.socket.next().await.is_some() {}
        })
        .await;
    }
}

/// Waits until `check` holds, polling; fails the test with `what` if it never does.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until the emulator's store holds no connection, and, with `and_subscriptions`, no
/// subscription either ($disconnect has run).
pub async fn wait_until_store_empty(emulator: &TestEmulator, and_subscriptions: bool) {
    let store = emulator.service().store().clone();
    eventually("the store has no connections left", || {
        let store = store.clone();
        async move {
            store.connection_count() == 0 && (!and_subscriptions || store.subscription_count() == 0)
        }
    })
    .await;
}

/// Invokes the sender through the Lambda Invoke API path, as `curl` would.
/// Registers a job through the sender, as a pipeline does before handing out its id.
pub async fn register_job<S: Store>(
    emulator: &Emulator<S>,
    job_id: &str,
    owner: Option<&str>,
) -> Value {
    register_job_at(&emulator.http_url(), job_id, owner).await
}

async fn register_job_at(http_url: &str, job_id: &str, owner: Option<&str>) -> Value {
    let mut request = json!({"action": "register_job", "job_id": job_id});
    if let Some(owner) = owner {
        request["user_id"] = json!(owner);
    }
    let answer: Value = reqwest::Client::new()
        .post(format!(
            "{http_url}/2015-03-31/functions/sender/invocations"
        ))
        .body(request.to_string())
        .send()
        .await
        .expect("invoke")
        .json()
        .await
        .expect("a JSON answer");
    answer
}

pub async fn invoke_sender<S: Store>(
    emulator: &Emulator<S>,
    payload: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    invoke_raw(emulator, "sender", payload.to_string()).await
}

pub async fn invoke_raw<S: Store>(
    emulator: &Emulator<S>,
    function: &str,
    body: String,
) -> (u16, reqwest::header::HeaderMap, Value) {
    invoke_function_at(&emulator.http_url(), function, body).await
}

/// Invokes the sender of the emulator at `http_url` (for tasks that do not hold the emulator).
pub async fn invoke_sender_at(
    http_url: &str,
    payload: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    invoke_function_at(http_url, "sender", payload.to_string()).await
}

async fn invoke_function_at(
    http_url: &str,
    function: &str,
    body: String,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!("{http_url}/2015-03-31/functions/{function}/invocations");
    let response = reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .expect("invoke");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON answer")
    };
    (status, headers, body)
}

/// The ids of the emulator's open sockets (`GET /connections`).
pub async fn open_connections<S: Store>(emulator: &Emulator<S>) -> Vec<String> {
    let listing: Value = reqwest::get(format!("{}/connections", emulator.http_url()))
        .await
        .expect("list connections")
        .json()
        .await
        .expect("a JSON listing");
    listing["connections"]
        .as_array()
        .expect("a connections array")
        .iter()
        .map(|c| c["connection_id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Closes a connection from the server side through `@connections`, as API Gateway may at
/// any time.
pub async fn drop_connection<S: Store>(emulator: &Emulator<S>, connection_id: &str) {
    let response = reqwest::Client::new()
        .delete(format!(
            "{}/@connections/{connection_id}",
            emulator.http_url()
        ))
        .send()
        .await
        .expect("DELETE @connections");
    assert_eq!(response.status(), 204, "dropping {connection_id}");
}

/// A progress event for the sender.
pub fn progress(job_id: &str, progress: f64, message: &str) -> Value {
    json!({
        "job_id": job_id,
        "event": {"type": "progress_update", "stage": "crawl", "progress": progress, "message": message}
    })
}

/// The shared AWS SDK configuration for talking to the emulator: dummy credentials, a region,
/// the emulator's endpoint.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    jobcast::sdk::loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "jobcast-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

pub async fn management_client(endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
    aws_sdk_apigatewaymanagement::Client::new(&sdk_config(endpoint).await)
}

/// An SQS record in AWS's shape (as in AWS's sample event), carrying `body`; FIFO when it names
/// a message `group`.
pub fn sqs_record(message_id: &str, group: Option<&str>, body: &str) -> Value {
    let mut attributes = json!({
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1520621625029",
        "SenderId": "AROAIWPX5BD2BHG722MW4:sender",
        "ApproximateFirstReceiveTimestamp": "1520621634884"
    });
    if let Some(group) = group {
        attributes["MessageGroupId"] = json!(group);
        attributes["MessageDeduplicationId"] = json!(message_id);
    }
    json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}"),
        "body": body,
        "md5OfBody": "fce0ea8dd236ccb3ed9b37dae260836f",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobcast-events.fifo",
        "eventSource": "aws:sqs",
        "awsRegion": "us-east-1",
        "attributes": attributes,
        "messageAttributes": {}
    })
}

/// An SQS event of `records`, as the sender's event source hands it over.
pub fn sqs_batch(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// An endpoint of this test's own that hangs up on every connection: a store or service that
/// cannot be reached, on a port nobody else can take meanwhile (unlike binding a port, dropping
/// it and hoping it stays free).
pub async fn refusing_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    format!("http://{address}")
}

/// An API Gateway WebSocket event from connection `id` (no authorizer context), carrying `body`
/// as a client frame when there is one: for calling the handlers in process.
pub fn websocket_event(
    id: &jobcast::protocol::ConnectionId,
    body: Option<Value>,
) -> aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest {
    let mut event = aws_fixture("example-apigw-websocket-request.json");
    event["requestContext"]["connectionId"] = json!(id.as_str());
    event["requestContext"]["authorizer"] = json!({});
    event["body"] = body.map_or(Value::Null, |body| json!(body.to_string()));
    event["isBase64Encoded"] = json!(false);
    serde_json::from_value(event).unwrap()
}

/// An event in the shape of AWS's published samples, from `tests/fixtures/aws/`.
pub fn aws_fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/aws")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

pub fn close_code(frame: &Option<CloseFrame>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from(f.code))
}

pub use bytes::Bytes;
pub use tungstenite::protocol::frame::coding::CloseCode;

/// A DynamoDB store on tables of its own (created here), on the DynamoDB Local that
/// `scripts/test.sh` starts and names in `JOBCAST_DYNAMODB_ENDPOINT`.
pub async fn dynamo_store() -> jobcast::store::DynamoStore {
    let endpoint = std::env::var("JOBCAST_DYNAMODB_ENDPOINT").expect(
        "JOBCAST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh, or start DynamoDB Local with \
         scripts/dynamodb-local.sh and export JOBCAST_DYNAMODB_ENDPOINT=<the endpoint it prints>",
    );
    let suffix: u64 = rand::random();
    let tables = jobcast::store::dynamodb::schema::TableNames {
        connections: format!("connections-{suffix:x}"),
        jobs: format!("jobs-{suffix:x}"),
    };
    let store = jobcast::store::DynamoStore::new(&sdk_config(&endpoint).await, tables);
    store.ensure_tables().await.expect("create the test tables");
    store
}
