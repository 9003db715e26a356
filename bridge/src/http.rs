//! `GET /health` and `GET /metrics` for the bridge run on its own (`--listen`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::Status;

/// The content type of Prometheus' text exposition in the OpenMetrics dialect.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry as Prometheus text.
pub fn metrics_text(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

struct Served {
    status: Arc<Status>,
    registry: Registry,
}

/// `/health` (200 while connected to Redis, else 503, with the `subscriber` block) and
/// `/metrics`.
pub fn router(status: Arc<Status>) -> Router {
    let mut registry = Registry::default();
    status.register(&mut registry, true);
    let served = Arc::new(Served { status, registry });
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(served)
}

async fn health(State(served): State<Arc<Served>>) -> impl IntoResponse {
    let connected = served.status.is_connected();
    let code = if connected {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if connected { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "subscriber": served.status.subscriber(),
    });
    (code, axum::Json(body))
}

async fn metrics(State(served): State<Arc<Served>>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        metrics_text(&served.registry),
    )
}
