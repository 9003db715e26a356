//! `GET /metrics`: Prometheus text with the names a notification hub's dashboards know
//! (`websocket_active_connections`, `websocket_connections_total`,
//! `websocket_messages_sent_total` by type, `websocket_messages_failed_total`), and the
//! in-process bridge's `jobcast_bridge_*` when one runs.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use jobcast::store::Store;
use jobcast_bridge::status::TypeLabel;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as MetricsRegistry;
use serde::Deserialize;

use crate::App;

/// The counters the emulator keeps.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: Counter,
    pub active: Gauge,
    pub sent: Family<TypeLabel, Counter>,
    pub failed: Counter,
}

/// The `type` of a posted frame: the rest is skipped.
#[derive(Deserialize)]
struct FrameType<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
}

impl Counters {
    /// A post that reached a connection's queue.
    pub fn sent(&self, payload: &[u8]) {
        let kind = serde_json::from_slice::<FrameType>(payload)
            .ok()
            .and_then(|frame| frame.kind)
            .map_or_else(|| "unknown".to_owned(), |kind| kind.into_owned());
        self.sent.get_or_create(&TypeLabel { r#type: kind }).inc();
    }

    /// Registers them, with the bridge's when it runs.
    pub fn registry(&self, bridge: Option<&jobcast_bridge::Status>) -> MetricsRegistry {
        let mut registry = MetricsRegistry::default();
        registry.register(
            "websocket_active_connections",
            "Open WebSocket connections",
            self.active.clone(),
        );
        registry.register(
            "websocket_connections",
            "WebSocket connections accepted",
            self.connections.clone(),
        );
        jobcast_bridge::status::register_deliveries(&mut registry, &self.sent, &self.failed);
        if let Some(bridge) = bridge {
            // The posts are counted above, as they happen.
            bridge.register(&mut registry, false);
        }
        registry
    }
}

/// `GET /metrics`.
pub(crate) async fn serve<S: Store>(State(app): State<Arc<App<S>>>) -> impl IntoResponse {
    app.registry
        .counters()
        .active
        .set(app.registry.len() as i64);
    (
        [(
            http::header::CONTENT_TYPE,
            jobcast_bridge::http::METRICS_CONTENT_TYPE,
        )],
        jobcast_bridge::http::metrics_text(&app.metrics),
    )
}
