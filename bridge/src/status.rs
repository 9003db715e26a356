//! What the bridge reports: the hub's `subscriber {active, last_message_at, pattern}` block
//! for `/health`, and counters in Prometheus text for `/metrics` (the hub's
//! `websocket_messages_sent_total` by type and `websocket_messages_failed_total`, from the
//! sender's answers, and the bridge's own `jobcast_bridge_*`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

/// A message `type` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// The message's `type`.
    pub r#type: String,
}

/// Why a message was not forwarded.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `malformed`, `unknown_type` or `refused`.
    pub reason: String,
}

/// Registers the notification hub's delivery counters under the names its dashboards know:
/// `websocket_messages_sent_total{type}` and `websocket_messages_failed_total`.
pub fn register_deliveries(
    registry: &mut Registry,
    sent: &Family<TypeLabel, Counter>,
    failed: &Counter,
) {
    registry.register(
        "websocket_messages_sent",
        "Messages posted to WebSocket connections, by type",
        sent.clone(),
    );
    registry.register(
        "websocket_messages_failed",
        "Posts to WebSocket connections that failed",
        failed.clone(),
    );
}

/// The bridge's state, shared by its tasks and its HTTP server.
#[derive(Debug)]
pub struct Status {
    pattern: String,
    connected: AtomicBool,
    /// Epoch milliseconds of the last message read from Redis; 0 for none.
    last_message_millis: AtomicI64,
    received: Counter,
    forwarded: Counter,
    rejected: Family<ReasonLabel, Counter>,
    failed: Counter,
    reconnects: Counter,
    redis_connected: Gauge,
    sent: Family<TypeLabel, Counter>,
    sent_failed: Counter,
}

impl Status {
    /// A bridge reading `pattern` (or a stream, named as `stream:{key}`), not yet connected.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            connected: AtomicBool::new(false),
            last_message_millis: AtomicI64::new(0),
            received: Counter::default(),
            forwarded: Counter::default(),
            rejected: Family::default(),
            failed: Counter::default(),
            reconnects: Counter::default(),
            redis_connected: Gauge::default(),
            sent: Family::default(),
            sent_failed: Counter::default(),
        }
    }

    /// Registers the bridge's metrics. With `deliveries`, also the hub's
    /// `websocket_messages_sent_total` and `websocket_messages_failed_total`, counted from the
    /// sender's answers (leave them to a server that counts its own posts).
    pub fn register(&self, registry: &mut Registry, deliveries: bool) {
        registry.register(
            "jobcast_bridge_messages_received",
            "Messages read from Redis",
            self.received.clone(),
        );
        registry.register(
            "jobcast_bridge_messages_forwarded",
            "Messages the sender took",
            self.forwarded.clone(),
        );
        registry.register(
            "jobcast_bridge_messages_rejected",
            "Messages not forwarded: malformed, of an unknown type, or refused by the sender",
            self.rejected.clone(),
        );
        registry.register(
            "jobcast_bridge_messages_failed",
            "Messages given up on: the sender could not be reached",
            self.failed.clone(),
        );
        registry.register(
            "jobcast_bridge_redis_reconnects",
            "Times the bridge lost Redis and connected again",
            self.reconnects.clone(),
        );
        registry.register(
            "jobcast_bridge_redis_connected",
            "1 while the bridge is subscribed to Redis",
            self.redis_connected.clone(),
        );
        if deliveries {
            register_deliveries(registry, &self.sent, &self.sent_failed);
        }
    }

    /// Connected to Redis (subscribed, or the group is ready), or not.
    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.redis_connected.set(i64::from(connected));
    }

    /// Whether the bridge is connected to Redis.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn reconnecting(&self) {
        self.reconnects.inc();
    }

    pub(crate) fn received(&self) {
        self.received.inc();
        self.last_message_millis
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn forwarded(&self, message_type: &str, delivered: u64, failed: u64) {
        self.forwarded.inc();
        self.sent
            .get_or_create(&TypeLabel {
                r#type: message_type.to_owned(),
            })
            .inc_by(delivered);
        self.sent_failed.inc_by(failed);
    }

    pub(crate) fn failed(&self) {
        self.failed.inc();
    }

    /// Messages read from Redis so far.
    pub fn received_count(&self) -> u64 {
        self.received.get()
    }

    /// The hub's `subscriber` block: `{active, last_message_at, pattern}`.
    pub fn subscriber(&self) -> Value {
        let last = self.last_message_millis.load(Ordering::Relaxed);
        let last_message_at = (last > 0)
            .then(|| DateTime::<Utc>::from_timestamp_millis(last))
            .flatten()
            .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true));
        json!({
            "active": self.is_connected(),
            "last_message_at": last_message_at,
            "pattern": self.pattern,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_use_the_hubs_names() {
        let status = Status::new("user_noti:*");
        let mut registry = Registry::default();
        status.register(&mut registry, true);
        status.received();
        status.forwarded("notification", 3, 1);
        status.rejected("malformed");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("websocket_messages_sent_total{type=\"notification\"} 3"),
            "{text}"
        );
        assert!(text.contains("websocket_messages_failed_total 1"), "{text}");
        assert!(
            text.contains("jobcast_bridge_messages_rejected_total{reason=\"malformed\"} 1"),
            "{text}"
        );
        assert_eq!(status.subscriber()["pattern"], "user_noti:*");
        assert!(status.subscriber()["last_message_at"].is_string());
    }
}
