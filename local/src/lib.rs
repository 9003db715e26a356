//! jobcast-local: jobcast on one machine, with no AWS. A real WebSocket server that emulates
//! API Gateway — the same event JSON, the same handler code, the `@connections` API with AWS's
//! error shapes, the Lambda Invoke API for the sender — around an embedded store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use jobcast::handlers::Jobcast;
use jobcast::store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

mod bridge;
mod demo;
mod events;
mod faults;
mod guard;
mod invoke;
mod management;
mod metrics;
mod registry;
mod store_faults;
mod websocket;

pub use faults::Faults;
pub use guard::HttpGuard;
pub use registry::Registry;
pub use store_faults::{FaultyStore, StoreFailKind, StoreFaults};

/// API Gateway's WebSocket limits, each configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection with no client frame for this long is closed (API Gateway: 10 min).
    pub idle_timeout: Duration,
    /// No connection lives longer than this (API Gateway: 2 h).
    pub max_connection_duration: Duration,
    /// Larger client frames close the connection with 1009; larger posts get 413 (128 KB).
    pub max_message_bytes: usize,
    /// Bytes queued for a client that does not read before its connection is closed with
    /// 1008: a slow reader never holds up the senders posting to it.
    pub max_queued_bytes: usize,
    /// Frames of one connection being handled at once (API Gateway runs each as its own
    /// invocation); past them the socket is not read until one ends.
    pub max_frames_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_connection_duration: Duration::from_secs(7200),
            max_message_bytes: jobcast::protocol::MAX_FRAME_BYTES,
            max_queued_bytes: 8 * 1024 * 1024,
            max_frames_in_flight: 32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub stage: String,
    pub api_id: String,
    pub limits: Limits,
    pub faults: Faults,
    /// Runs on every upgrade before `$connect`, as API Gateway runs the REQUEST authorizer
    /// (`--auth jwt`); none means no authorizer (`--auth none`).
    pub authorizer: Option<Arc<jobcast::auth::Authorizer>>,
    /// Host names the server answers to besides `localhost` and IP addresses, with an
    /// authorizer (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// The Redis bridge to run in-process (`--redis-url`), forwarding to this sender.
    pub bridge: Option<jobcast_bridge::BridgeConfig>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            stage: "local".to_owned(),
            api_id: "jobcast-local".to_owned(),
            limits: Limits::default(),
            faults: Faults::default(),
            authorizer: None,
            allowed_hosts: Vec::new(),
            bridge: None,
        }
    }
}

/// Shared by every route and connection task.
pub(crate) struct App<S> {
    pub service: Jobcast<S>,
    pub registry: Registry,
    pub config: EmulatorConfig,
    pub shutdown: watch::Sender<bool>,
    /// Asynchronous (`Event`) invocations running at once; more are throttled, as Lambda does.
    pub async_invocations: Arc<Semaphore>,
    /// Demo pipelines running at once.
    pub demo_jobs: Arc<Semaphore>,
    /// Client frames being handled at once, over every connection.
    pub frames_in_flight: Arc<Semaphore>,
    /// The in-process Redis bridge, taken at shutdown.
    pub bridge: std::sync::Mutex<Option<jobcast_bridge::Bridge>>,
    /// The bridge's health and counters, for `/health` and `/metrics`.
    pub bridge_status: Option<Arc<jobcast_bridge::Status>>,
    /// What `/metrics` serves.
    pub metrics: prometheus_client::registry::Registry,
}

/// Asynchronous invocations of the sender running at once.
const MAX_ASYNC_INVOCATIONS: usize = 64;
/// Demo pipelines running at once.
const MAX_DEMO_JOBS: usize = 16;
/// Client frames handled at once over every connection (as an account's Lambda concurrency
/// bounds `default`'s invocations); past it, sockets are not read until some end.
const MAX_FRAMES_IN_FLIGHT: usize = 1_024;

/// A running emulator. Dropping it does not stop it; call [`Emulator::shutdown`].
pub struct Emulator<S: Store> {
    addr: SocketAddr,
    app: Arc<App<S>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl<S: Store> Emulator<S> {
    /// Serves on `listener` (bind port 0 for a free port).
    pub fn start(
        listener: TcpListener,
        service: Jobcast<S>,
        config: EmulatorConfig,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let registry = Registry::new(&config.limits, config.faults.clone());
        let bridge_config = config.bridge.clone();
        // The bridge forwards to this emulator, which owns it: it holds the emulator weakly.
        let mut bridge_error = None;
        let app = Arc::new_cyclic(|app: &std::sync::Weak<App<S>>| {
            let bridge = bridge_config.and_then(|bridge_config| {
                let destination = bridge::InProcess { app: app.clone() };
                jobcast_bridge::Bridge::start(bridge_config, destination)
                    .map_err(|err| bridge_error = Some(err))
                    .ok()
            });
            let bridge_status = bridge.as_ref().map(jobcast_bridge::Bridge::status);
            let metrics = registry.counters().registry(bridge_status.as_deref());
            App {
                service,
                registry,
                config,
                shutdown,
                async_invocations: Arc::new(Semaphore::new(MAX_ASYNC_INVOCATIONS)),
                demo_jobs: Arc::new(Semaphore::new(MAX_DEMO_JOBS)),
                frames_in_flight: Arc::new(Semaphore::new(MAX_FRAMES_IN_FLIGHT)),
                bridge: std::sync::Mutex::new(bridge),
                bridge_status,
                metrics,
            }
        });
        if let Some(err) = bridge_error {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, err));
        }
        let router = router(app.clone());
        let mut stop = app.shutdown.subscribe();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
        });
        Ok(Self { addr, app, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT`
    pub fn websocket_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT`: the `@connections` and Lambda endpoint.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn service(&self) -> &Jobcast<S> {
        &self.app.service
    }

    pub fn registry(&self) -> &Registry {
        &self.app.registry
    }

    /// The in-process bridge's health and counters, when one runs.
    pub fn bridge_status(&self) -> Option<Arc<jobcast_bridge::Status>> {
        self.app.bridge_status.clone()
    }

    /// Closes every connection (1001, `$disconnect` for each) and stops serving.
    pub async fn shutdown(self) {
        let bridge = self
            .app
            .bridge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(bridge) = bridge {
            bridge.shutdown().await;
        }
        let _ = self.app.shutdown.send(true);
        // Connection tasks run `$disconnect` as they close; give them a moment.
        for _ in 0..50 {
            if self.app.registry.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }

    /// Waits until the server stops (after a shutdown).
    pub async fn wait(self) -> std::io::Result<()> {
        self.server
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)))
    }

    /// A handle that can trigger shutdown from elsewhere (a signal handler).
    pub fn shutdown_handle(&self) -> impl FnOnce() + Send + 'static {
        let sender = self.app.shutdown.clone();
        move || {
            let _ = sender.send(true);
        }
    }
}

fn router<S: Store>(app: Arc<App<S>>) -> Router {
    let connections = get(management::get::<S>)
        .post(management::post::<S>)
        .delete(management::delete::<S>)
        // The body limit is enforced inside, to answer with AWS's 413 shape.
        .layer(DefaultBodyLimit::disable());
    let side_doors = Router::new()
        .route("/demo/jobs", post(demo::start_job::<S>))
        .route("/connections", get(list_connections::<S>))
        .route("/@connections/{connection_id}", connections.clone())
        // The same routes under a stage prefix (an endpoint URL ending in `/local`).
        .route("/{stage}/@connections/{connection_id}", connections)
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invoke::invoke::<S>).layer(DefaultBodyLimit::max(6 * 1024 * 1024)),
        );
    let front = Router::new()
        .route("/", get(websocket::websocket_or_page::<S>))
        // API Gateway's URL ends in the stage (`wss://…/production`): a client configured with
        // one finds the same server here at `/{stage}`, the hub's `/ws` with `--stage ws`.
        .route("/{stage}", get(websocket::websocket_at_stage::<S>))
        .route("/jobcast.js", get(demo::client_module))
        .route("/health", get(health::<S>))
        .route("/metrics", get(metrics::serve::<S>));
    // With authentication on, the browser the developer uses elsewhere must not reach in.
    let guarded = app.config.authorizer.as_ref().map(|authorizer| {
        Arc::new(HttpGuard {
            allowed_hosts: app.config.allowed_hosts.clone(),
            allowed_origins: authorizer.allowed_origins().clone(),
        })
    });
    let (side_doors, front) = match guarded {
        None => (side_doors, front),
        Some(guard) => (
            side_doors
                .layer(axum::middleware::from_fn_with_state(
                    guard.clone(),
                    guard::check_side_door,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    guard.clone(),
                    guard::check_host,
                )),
            front.layer(axum::middleware::from_fn_with_state(
                guard,
                guard::check_host,
            )),
        ),
    };
    front.merge(side_doors).with_state(app)
}

/// `GET /connections`: the open sockets, for a developer (or a benchmark) to see who is
/// connected. Not part of API Gateway: AWS has no such listing.
async fn list_connections<S: Store>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    let connections: Vec<serde_json::Value> = app
        .registry
        .snapshot()
        .into_iter()
        .map(|(connection_id, connected_at)| {
            json!({"connection_id": connection_id, "connected_at": connected_at.to_rfc3339()})
        })
        .collect();
    axum::Json(json!({ "connections": connections }))
}

/// `GET /health`: 200 when the store answers, 503 when it does not; with the in-process
/// bridge's `subscriber {active, last_message_at, pattern}` block when one runs (503,
/// `degraded`, while it is away from Redis).
async fn health<S: Store>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    let (status, store) = match app.service.check_store().await {
        Ok(latency) => (
            http::StatusCode::OK,
            json!({"reachable": true, "latency_ms": latency.as_millis() as u64}),
        ),
        Err(err) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            json!({"reachable": false, "error": err.to_string()}),
        ),
    };
    let subscriber = app.bridge_status.as_ref().map(|bridge| bridge.subscriber());
    let healthy = status.is_success()
        && app
            .bridge_status
            .as_ref()
            .is_none_or(|bridge| bridge.is_connected());
    // A bridge away from Redis forwards nothing: as unhealthy as a store that does not answer.
    let status = if healthy {
        status
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "connections": app.registry.len(),
        "subscriber": subscriber,
        "store": store,
        "last_delivery_at": app
            .registry
            .last_delivery()
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    });
    (status, axum::Json(body))
}
