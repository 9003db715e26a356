//! Configuration, read once at start-up from the environment: the one module that reads it.
//! Everything else (the handlers, the store, the token verifier, logging) is handed what it
//! needs from [`Settings`], so a test builds any configuration without touching the process
//! environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AllowedOrigins, JwksSource, JwtSettings, MIN_SECRET_BYTES};
use crate::delivery::DeliverySettings;
use crate::store::TableNames;

/// How `$connect` learns who the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// The REQUEST authorizer ran and put the user id in the request context (AWS).
    Authorizer,
    /// No authentication: development only. The user may name itself with `?user_id=`.
    None,
}

/// How log lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines (CloudWatch parses them) rather than readable text: `LOG_FORMAT=json`, the
    /// default inside Lambda.
    pub json: bool,
    /// `RUST_LOG`'s filter (default `info`).
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            json: false,
            filter: "info".into(),
        }
    }
}

/// Everything jobcast reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How `$connect` learns who the user is (`AUTH_MODE`).
    pub auth_mode: AuthMode,
    /// How long a connection and its subscriptions are kept (DynamoDB TTL).
    pub connection_ttl: Duration,
    /// How long a job's snapshot is kept after its last event.
    pub job_ttl: Duration,
    /// How long each event stays in the replay log.
    pub event_ttl: Duration,
    /// The `@connections` endpoint; derived from each request when unset.
    pub websocket_endpoint: Option<String>,
    /// The sender function `$connect` invokes to subscribe a one-job socket
    /// (`SENDER_FUNCTION_NAME`); without it, `?job_id=` on the connect URL is refused.
    pub sender_function: Option<String>,
    /// How fan-outs post (`SEND_*`, `SUBSCRIBER_CACHE_TTL_MS`).
    pub delivery: DeliverySettings,
    /// How many jobs one connection may follow at once.
    pub max_subscriptions_per_connection: usize,
    /// How many connections one user may hold open at once (`MAX_CONNECTIONS_PER_USER`); the
    /// next `$connect` is refused with 429 `too_many_connections`.
    pub max_connections_per_user: usize,
    /// Whether a job without an owner may be seen by every user when authentication is on
    /// (`OPEN_OWNERLESS_JOBS`, off by default). Without authentication they always may.
    pub open_ownerless_jobs: bool,
    /// Client frames allowed per second, on average, per connection (the bucket's refill).
    pub frame_rate: u32,
    /// Client frames allowed at once (the bucket's size).
    pub frame_burst: u32,
    /// How long before the sender's deadline it stops starting SQS records and hands the rest
    /// back (`SQS_DEADLINE_RESERVE_MS`).
    pub sqs_deadline_reserve: Duration,
    /// The DynamoDB tables (`CONNECTIONS_TABLE_NAME`, `JOBS_TABLE_NAME`).
    pub tables: TableNames,
    /// How tokens are verified (`JWT_*`): the authorizer's, and jobcast-local's `--auth jwt`.
    pub jwt: JwtSettings,
    /// The web pages (origins) a token in the `access_token` cookie may connect from, besides
    /// the API's own (`ALLOWED_ORIGINS`, comma-separated `scheme://host[:port]`).
    pub allowed_origins: AllowedOrigins,
    /// How log lines are written (`LOG_FORMAT`, `RUST_LOG`).
    pub logging: LogSettings,
}

impl Settings {
    /// Whether every user may see jobs that have no owner: without authentication (users
    /// name themselves, so ownership protects nothing), or when `OPEN_OWNERLESS_JOBS` says so.
    pub fn ownerless_jobs_open(&self) -> bool {
        self.auth_mode == AuthMode::None || self.open_ownerless_jobs
    }

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
            sender_function: None,
            delivery: DeliverySettings::default(),
            max_subscriptions_per_connection: 100,
            open_ownerless_jobs: false,
            // A user with a dozen tabs and a phone; never thousands.
            max_connections_per_user: 20,
            // A UI sends a few frames a minute; a reconnect burst resubscribes a dozen jobs.
            frame_rate: 10,
            frame_burst: 20,
            // A record's fan-out to a few thousand subscribers takes about a second.
            sqs_deadline_reserve: Duration::from_secs(5),
            tables: TableNames::default(),
            jwt: JwtSettings::default(),
            allowed_origins: AllowedOrigins::default(),
            logging: LogSettings::default(),
        }
    }
}

/// A setting that could not be read: which, what it was, and why it was refused.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: &'static str,
}

impl Settings {
    /// Reads the process environment.
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
        settings.websocket_endpoint = lookup("WEBSOCKET_ENDPOINT")
            .filter(|e| !e.is_empty())
            .map(|e| endpoint("WEBSOCKET_ENDPOINT", e))
            .transpose()?;
        settings.sender_function = lookup("SENDER_FUNCTION_NAME").filter(|f| !f.is_empty());
        settings.max_subscriptions_per_connection = number(
            &lookup,
            "MAX_SUBSCRIPTIONS_PER_CONNECTION",
            settings.max_subscriptions_per_connection as u64,
        )? as usize;
        settings.max_connections_per_user = number(
            &lookup,
            "MAX_CONNECTIONS_PER_USER",
            settings.max_connections_per_user as u64,
        )? as usize;
        settings.open_ownerless_jobs = match lookup("OPEN_OWNERLESS_JOBS").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ConfigError {
                    name: "OPEN_OWNERLESS_JOBS",
                    value: other.to_owned(),
                    reason: "expected true or false",
                });
            }
        };
        settings.frame_rate =
            number(&lookup, "FRAME_RATE_PER_SECOND", settings.frame_rate.into())? as u32;
        settings.frame_burst = number(&lookup, "FRAME_BURST", settings.frame_burst.into())? as u32;
        let delivery = &mut settings.delivery;
        delivery.concurrency =
            number(&lookup, "SEND_CONCURRENCY", delivery.concurrency as u64)? as usize;
        delivery.initial_concurrency = number(
            &lookup,
            "SEND_INITIAL_CONCURRENCY",
            delivery.initial_concurrency.min(delivery.concurrency) as u64,
        )? as usize;
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
        settings.sqs_deadline_reserve =
            millis("SQS_DEADLINE_RESERVE_MS", settings.sqs_deadline_reserve)?;
        if let Some(name) = lookup("CONNECTIONS_TABLE_NAME") {
            settings.tables.connections = name;
        }
        if let Some(name) = lookup("JOBS_TABLE_NAME") {
            settings.tables.jobs = name;
        }
        settings.jwt = jwt(&lookup)?;
        if let Some(list) = lookup("ALLOWED_ORIGINS") {
            settings.allowed_origins = AllowedOrigins::parse(&list).map_err(|_| ConfigError {
                name: "ALLOWED_ORIGINS",
                value: list.clone(),
                reason: "expected comma-separated origins, scheme://host[:port], no path or wildcard",
            })?;
        }
        settings.logging = LogSettings {
            json: match lookup("LOG_FORMAT").as_deref() {
                Some("json") => true,
                Some(_) => false,
                None => lookup("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            },
            filter: lookup("RUST_LOG")
                .filter(|filter| !filter.trim().is_empty())
                .unwrap_or_else(|| LogSettings::default().filter),
        };
        Ok(settings)
    }
}

/// The `JWT_*` settings.
fn jwt(lookup: &impl Fn(&str) -> Option<String>) -> Result<JwtSettings, ConfigError> {
    let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
    let hs256_secret = set("JWT_HS256_SECRET");
    if let Some(secret) = &hs256_secret
        && secret.len() < MIN_SECRET_BYTES
    {
        return Err(ConfigError {
            name: "JWT_HS256_SECRET",
            value: "<redacted>".into(),
            reason: "must be at least 32 bytes",
        });
    }
    let jwks = match set("JWT_JWKS") {
        None => None,
        Some(value) if value.contains("://") => Some(
            JwksSource::url(&value)
                .map(|_| JwksSource::Url(value.clone()))
                .map_err(|reason| ConfigError {
                    name: "JWT_JWKS",
                    value,
                    reason,
                })?,
        ),
        Some(path) => Some(JwksSource::File(PathBuf::from(path))),
    };
    let issuer = set("JWT_ISSUER");
    let audience = set("JWT_AUDIENCE");
    // Keys from a shared identity provider sign tokens for every application it serves.
    if jwks.is_some() && (issuer.is_none() || audience.is_none()) {
        return Err(ConfigError {
            name: if issuer.is_none() {
                "JWT_ISSUER"
            } else {
                "JWT_AUDIENCE"
            },
            value: String::new(),
            reason: "is required with JWT_JWKS: an identity provider's keys also sign tokens meant for other applications",
        });
    }
    let leeway = match set("JWT_LEEWAY_SECONDS") {
        None => Duration::from_secs(30),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|seconds| *seconds <= 600)
            .map(Duration::from_secs)
            .ok_or(ConfigError {
                name: "JWT_LEEWAY_SECONDS",
                value,
                reason: "expected whole seconds, at most 600",
            })?,
    };
    Ok(JwtSettings {
        hs256_secret,
        jwks,
        issuer,
        audience,
        leeway,
    })
}

/// An `@connections` endpoint: an http(s) URL with a host and no query, which every post's
/// URL is built on. A bad one fails the cold start, not every post after it.
fn endpoint(name: &'static str, value: String) -> Result<String, ConfigError> {
    let usable = value.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("https" | "http"))
            && uri.host().is_some_and(|host| !host.is_empty())
            && uri.query().is_none()
    });
    if usable {
        Ok(value)
    } else {
        Err(ConfigError {
            name,
            value,
            reason: "must be the stage's https:// URL, as https://{api}.execute-api.{region}.amazonaws.com/{stage}",
        })
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
            ("SEND_INITIAL_CONCURRENCY", "2"),
            ("SUBSCRIBER_CACHE_TTL_MS", "0"),
            (
                "WEBSOCKET_ENDPOINT",
                "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
            ),
        ])
        .unwrap();
        assert_eq!(
            settings.websocket_endpoint.as_deref(),
            Some("https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
        );
        assert_eq!(settings.connection_ttl, Duration::from_secs(60));
        assert_eq!(settings.auth_mode, AuthMode::None);
        assert_eq!(settings.delivery.concurrency, 8);
        assert_eq!(settings.delivery.initial_concurrency, 2);
        assert!(settings.delivery.subscriber_cache_ttl.is_zero());
        for (name, value) in [
            ("CONNECTION_TTL_SECONDS", "soon"),
            ("SEND_CONCURRENCY", "0"),
            ("SEND_INITIAL_CONCURRENCY", "0"),
            ("AUTH_MODE", "maybe"),
            (
                "WEBSOCKET_ENDPOINT",
                "abc.execute-api.eu-west-1.amazonaws.com/prod",
            ),
            ("WEBSOCKET_ENDPOINT", "ftp://abc.example.com/prod"),
            ("WEBSOCKET_ENDPOINT", "https:///prod"),
            ("WEBSOCKET_ENDPOINT", "https://abc.example.com/prod?stage=x"),
        ] {
            let err = from(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn short_secrets_and_bad_leeway_are_refused_at_start() {
        let short = from(&[("JWT_HS256_SECRET", "too-short")]).unwrap_err();
        assert!(short.to_string().starts_with("JWT_HS256_SECRET"), "{short}");
        assert!(
            !short.to_string().contains("too-short"),
            "the secret is never echoed"
        );
        let leeway = from(&[("JWT_LEEWAY_SECONDS", "a while")]).unwrap_err();
        assert!(
            leeway.to_string().starts_with("JWT_LEEWAY_SECONDS"),
            "{leeway}"
        );
    }

    const ISSUED: [(&str, &str); 2] = [
        ("JWT_ISSUER", "https://id.example.com/"),
        ("JWT_AUDIENCE", "jobcast"),
    ];

    #[test]
    fn a_jwks_setting_is_a_url_or_a_file() {
        let url = from(&[
            ("JWT_JWKS", "https://id.example.com/.well-known/jwks.json"),
            ISSUED[0],
            ISSUED[1],
        ])
        .unwrap();
        assert!(matches!(url.jwt.jwks, Some(JwksSource::Url(_))));
        let file = from(&[("JWT_JWKS", "/etc/jobcast/jwks.json"), ISSUED[0], ISSUED[1]]).unwrap();
        assert!(matches!(file.jwt.jwks, Some(JwksSource::File(_))));
        assert_eq!(file.jwt.leeway, Duration::from_secs(30));
    }

    #[test]
    fn a_jwks_comes_over_https_and_names_its_issuer_and_audience() {
        for url in [
            "http://id.example.com/jwks.json",
            "http://127.0.0.1.evil.example/jwks.json",
            "ftp://id.example.com/jwks.json",
        ] {
            let err = from(&[("JWT_JWKS", url), ISSUED[0], ISSUED[1]]).unwrap_err();
            assert!(err.to_string().starts_with("JWT_JWKS"), "{url}: {err}");
        }
        for loopback in [
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9/k",
        ] {
            from(&[("JWT_JWKS", loopback), ISSUED[0], ISSUED[1]])
                .unwrap_or_else(|err| panic!("{loopback}: {err}"));
        }
        let jwks = ("JWT_JWKS", "/etc/jobcast/jwks.json");
        let no_issuer = from(&[jwks, ISSUED[1]]).unwrap_err();
        assert!(
            no_issuer.to_string().starts_with("JWT_ISSUER"),
            "{no_issuer}"
        );
        let no_audience = from(&[jwks, ISSUED[0]]).unwrap_err();
        assert!(
            no_audience.to_string().starts_with("JWT_AUDIENCE"),
            "{no_audience}"
        );
        // A shared secret is this deployment's own: issuer and audience stay optional.
        from(&[("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef")]).unwrap();
    }

    #[test]
    fn allowed_origins_are_origins() {
        let settings = from(&[(
            "ALLOWED_ORIGINS",
            "https://app.example.com,http://localhost:5173",
        )])
        .unwrap();
        assert_eq!(settings.allowed_origins.listed().len(), 2);
        let err = from(&[("ALLOWED_ORIGINS", "*")]).unwrap_err();
        assert!(err.to_string().starts_with("ALLOWED_ORIGINS"), "{err}");
    }

    #[test]
    fn tables_and_logging_are_read_here_too() {
        let defaults = from(&[]).unwrap();
        assert_eq!(defaults.tables.connections, "jobcast-connections");
        assert!(!defaults.logging.json);
        let lambda = from(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "jobcast-sender"),
            ("CONNECTIONS_TABLE_NAME", "stack-connections"),
            ("JOBS_TABLE_NAME", "stack-jobs"),
            ("RUST_LOG", "debug"),
        ])
        .unwrap();
        assert!(lambda.logging.json, "JSON by default inside Lambda");
        assert_eq!(lambda.logging.filter, "debug");
        assert_eq!(lambda.tables.connections, "stack-connections");
        assert_eq!(lambda.tables.jobs, "stack-jobs");
        let text = from(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "jobcast-sender"),
            ("LOG_FORMAT", "text"),
        ])
        .unwrap();
        assert!(
            !text.logging.json,
            "LOG_FORMAT overrides the Lambda default"
        );
    }
}
