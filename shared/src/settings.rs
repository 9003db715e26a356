//! Configuration, read once at start-up from the environment.

use std::time::Duration;

use crate::delivery::DeliverySettings;

/// How `$connect` learns who the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The REQUEST authorizer ran and put the user id in the request context (AWS).
    Authorizer,
    /// No authentication: development only. The user may name itself with `?user_id=`.
    None,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub auth_mode: AuthMode,
    /// How long a connection and its subscriptions are kept (DynamoDB TTL).
    pub connection_ttl: Duration,
    /// How long a job's snapshot is kept after its last event.
    pub job_ttl: Duration,
    /// How long each event stays in the replay log.
    pub event_ttl: Duration,
    /// The `@connections` endpoint; derived from each request when unset.
    pub websocket_endpoint: Option<String>,
    pub delivery: DeliverySettings,
    /// How many jobs one connection may follow at once.
    pub max_subscriptions_per_connection: usize,
    /// Client frames allowed per second, on average, per connection (the bucket's refill).
    pub frame_rate: u32,
    /// Client frames allowed at once (the bucket's size).
    pub frame_burst: u32,
}

impl Settings {
    /// The per-connection token bucket for client frames.
    pub fn frame_bucket(&self) -> crate::store::FrameBucket {
        crate::store::FrameBucket {
            interval_ms: (1000 / i64::from(self.frame_rate.max(1))).max(1),
            burst: self.frame_burst.max(1),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auth_mode: AuthMode::Authorizer,
            connection_ttl: Duration::from_secs(3600),
            job_ttl: Duration::from_secs(86_400),
            event_ttl: Duration::from_secs(86_400),
            websocket_endpoint: None,
            delivery: DeliverySettings::default(),
            max_subscriptions_per_connection: 100,
            // A UI sends a few frames a minute; a reconnect burst resubscribes a dozen jobs.
            frame_rate: 10,
            frame_burst: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: &'static str,
}

impl ConfigError {
    pub(crate) fn new(name: &'static str, value: String, reason: &'static str) -> Self {
        Self {
            name,
            value,
            reason,
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        let seconds = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            number(&lookup, name, default.as_secs()).map(Duration::from_secs)
        };
        let millis = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            number(&lookup, name, default.as_millis() as u64).map(Duration::from_millis)
        };
        if let Some(mode) = lookup("AUTH_MODE") {
            settings.auth_mode = match mode.as_str() {
                "authorizer" => AuthMode::Authorizer,
                "none" => AuthMode::None,
                _ => {
                    return Err(ConfigError {
                        name: "AUTH_MODE",
                        value: mode,
                        reason: "expected authorizer or none",
                    });
                }
            };
        }
        settings.connection_ttl = seconds("CONNECTION_TTL_SECONDS", settings.connection_ttl)?;
        settings.job_ttl = seconds("JOB_TTL_SECONDS", settings.job_ttl)?;
        settings.event_ttl = seconds("EVENT_TTL_SECONDS", settings.event_ttl)?;
        settings.websocket_endpoint = lookup("WEBSOCKET_ENDPOINT").filter(|e| !e.is_empty());
        settings.max_subscriptions_per_connection = number(
            &lookup,
            "MAX_SUBSCRIPTIONS_PER_CONNECTION",
            settings.max_subscriptions_per_connection as u64,
        )? as usize;
        settings.frame_rate =
            number(&lookup, "FRAME_RATE_PER_SECOND", settings.frame_rate.into())? as u32;
        settings.frame_burst = number(&lookup, "FRAME_BURST", settings.frame_burst.into())? as u32;
        let delivery = &mut settings.delivery;
        delivery.concurrency =
            number(&lookup, "SEND_CONCURRENCY", delivery.concurrency as u64)? as usize;
        delivery.max_attempts = number(
            &lookup,
            "SEND_MAX_ATTEMPTS",
            u64::from(delivery.max_attempts),
        )? as u32;
        delivery.backoff_base = millis("SEND_BACKOFF_BASE_MS", delivery.backoff_base)?;
        delivery.backoff_max = millis("SEND_BACKOFF_MAX_MS", delivery.backoff_max)?;
        // Zero is allowed here: it turns the cache off.
        delivery.subscriber_cache_ttl = match lookup("SUBSCRIBER_CACHE_TTL_MS").as_deref() {
            Some("0") => Duration::ZERO,
            _ => millis("SUBSCRIBER_CACHE_TTL_MS", delivery.subscriber_cache_ttl)?,
        };
        Ok(settings)
    }
}

fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => match value.trim().parse::<u64>() {
            Ok(0) => Err(ConfigError {
                name,
                value,
                reason: "must be greater than zero",
            }),
            Ok(number) if number > u64::from(u32::MAX) => Err(ConfigError {
                name,
                value,
                reason: "is too large",
            }),
            Ok(number) => Ok(number),
            Err(_) => Err(ConfigError {
                name,
                value,
                reason: "expected a whole number",
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings.connection_ttl, Duration::from_secs(3600));
        assert_eq!(settings.auth_mode, AuthMode::Authorizer);
        assert!(settings.websocket_endpoint.is_none());
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let settings = from(&[
            ("CONNECTION_TTL_SECONDS", "60"),
            ("AUTH_MODE", "none"),
            ("SEND_CONCURRENCY", "8"),
            ("SUBSCRIBER_CACHE_TTL_MS", "0"),
        ])
        .unwrap();
        assert_eq!(settings.connection_ttl, Duration::from_secs(60));
        assert_eq!(settings.auth_mode, AuthMode::None);
        assert_eq!(settings.delivery.concurrency, 8);
        assert!(settings.delivery.subscriber_cache_ttl.is_zero());
        for (name, value) in [
            ("CONNECTION_TTL_SECONDS", "soon"),
            ("SEND_CONCURRENCY", "0"),
            ("AUTH_MODE", "maybe"),
        ] {
            let err = from(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }
}
