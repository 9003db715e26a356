//! `jobcast-local`: run jobcast on this machine with no AWS.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use jobcast::auth::{Authorizer, TokenVerifier};
use jobcast::handlers::Jobcast;
use jobcast::settings::{AuthMode, Settings};
use jobcast::store::{MemoryStore, Store};
use jobcast_local::{
    Emulator, EmulatorConfig, Faults, FaultyStore, Limits, StoreFailKind, StoreFaults,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreKind {
    /// In memory, in this process: nothing to install.
    Memory,
    /// DynamoDB (or DynamoDB Local with --dynamodb-endpoint); tables are created if absent,
    /// named by CONNECTIONS_TABLE_NAME and JOBS_TABLE_NAME. Needs a build with
    /// `--features dynamodb`.
    Dynamodb,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Auth {
    /// No authentication; `?user_id=` names the user. Development only.
    None,
    /// The REQUEST authorizer's JWT check on every upgrade, configured as the Lambda is:
    /// JWT_HS256_SECRET and/or JWT_JWKS, JWT_ISSUER, JWT_AUDIENCE, JWT_LEEWAY_SECONDS.
    Jwt,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "jobcast on one machine: an API Gateway WebSocket emulator around the real handlers"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1", env = "JOBCAST_HOST")]
    host: String,
    /// 0 picks a free port (printed on start).
    #[arg(long, default_value_t = 3001, env = "JOBCAST_PORT")]
    port: u16,
    #[arg(long, value_enum, default_value = "none")]
    auth: Auth,
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// A DynamoDB endpoint such as DynamoDB Local's `http://127.0.0.1:8000`.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    dynamodb_endpoint: Option<String>,
    /// The stage name in events and in `/{stage}/@connections` paths.
    #[arg(long, default_value = "local")]
    stage: String,
    /// Close connections with no client frame for this long (API Gateway: 600).
    #[arg(long, default_value_t = 600)]
    idle_timeout_secs: u64,
    /// Close connections older than this (API Gateway: 7200).
    #[arg(long, default_value_t = 7200)]
    max_connection_secs: u64,
    /// Fault injection: the share of posts (0.0–1.0) that fail with --fail-status.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    fail_rate: f64,
    /// Fault injection: the status injected failures answer with (429 or 5xx); repeat for a mix.
    #[arg(long, value_parser = parse_fail_status, default_values_t = [500u16])]
    fail_status: Vec<u16>,
    /// Fault injection: delay added to every post to a connection, in milliseconds.
    #[arg(long, default_value_t = 0)]
    post_latency_ms: u64,
    /// Fault injection: posts per second allowed on @connections (and the sender's posts); more
    /// get 429. 10000 emulates API Gateway's default account quota.
    #[arg(long)]
    throttle_rps: Option<std::num::NonZeroU32>,
    /// Fault injection: the share of delivered posts (0.0–1.0) answered with a 500 all the
    /// same, as a post that reached the socket and then timed out does in AWS.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    fail_after_delivery_rate: f64,
    /// Fault injection: the share of store calls (0.0–1.0) that fail, on either store.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    store_fail_rate: f64,
    /// Fault injection: how failing store calls fail; repeat for a mix.
    #[arg(long, value_enum, default_values_t = [StoreFailKind::Throttled])]
    store_fail_kind: Vec<StoreFailKind>,
    /// Fault injection: delay added to every store call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    store_latency_ms: u64,
    /// With --auth jwt, a host name this server answers to besides localhost and IP
    /// addresses (requests naming any other `Host` are refused: DNS rebinding); repeatable.
    #[arg(long)]
    allowed_host: Vec<String>,
    /// Run the Redis bridge in-process: what a notification hub's publishers put on Redis
    /// reaches this server's sender (as `jobcast bridge redis` does beside a deployed stack).
    #[arg(long, env = "JOBCAST_REDIS_URL")]
    redis_url: Option<String>,
    /// The bridge's Pub/Sub pattern. Pub/Sub keeps nothing: what is published while the
    /// bridge is away is lost; --redis-stream survives restarts.
    #[arg(long, default_value = "user_noti:*", requires = "redis_url")]
    redis_pattern: String,
    /// Read this Redis Stream with a consumer group (--redis-group) instead of Pub/Sub.
    #[arg(long, requires_all = ["redis_url", "redis_group"])]
    redis_stream: Option<String>,
    /// The stream's consumer group (created if missing).
    #[arg(long)]
    redis_group: Option<String>,
    /// The message size limit in bytes (API Gateway: 131072).
    #[arg(long, default_value_t = jobcast::protocol::MAX_FRAME_BYTES)]
    max_message_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    #[cfg(not(feature = "dynamodb"))]
    if matches!(args.store, StoreKind::Dynamodb) {
        anyhow::bail!("{}", no_dynamodb(std::env::args().skip(1)));
    }
    let mut settings = Settings::from_env().context("reading settings from the environment")?;
    jobcast::telemetry::init(&settings.logging);
    let authorizer = match args.auth {
        Auth::None => {
            settings.auth_mode = AuthMode::None;
            tracing::warn!(
                "authentication is OFF (--auth none): anyone who can reach this port can connect as any user"
            );
            None
        }
        Auth::Jwt => {
            settings.auth_mode = AuthMode::Authorizer;
            let jwt = &settings.jwt;
            let verifier = TokenVerifier::new(jwt)
                .await
                .context("--auth jwt needs JWT_HS256_SECRET or JWT_JWKS")?;
            tracing::info!(?jwt, "authentication: JWT on every upgrade");
            Some(std::sync::Arc::new(Authorizer::new(
                verifier,
                settings.allowed_origins.clone(),
            )))
        }
    };
    let faults = Faults {
        fail_rate: args.fail_rate,
        fail_statuses: args.fail_status.clone(),
        post_latency: Duration::from_millis(args.post_latency_ms),
        throttle_rps: args.throttle_rps,
        fail_after_delivery_rate: args.fail_after_delivery_rate,
    };
    let store_faults = StoreFaults {
        fail_rate: args.store_fail_rate,
        fail_kinds: args.store_fail_kind.clone(),
        latency: Duration::from_millis(args.store_latency_ms),
    };
    if store_faults.is_active() {
        tracing::warn!(?store_faults, "store fault injection is ON");
    }
    if faults.is_active() {
        tracing::warn!(?faults, "fault injection is ON");
    }
    let config = EmulatorConfig {
        faults,
        authorizer,
        stage: args.stage,
        limits: Limits {
            idle_timeout: Duration::from_secs(args.idle_timeout_secs),
            max_connection_duration: Duration::from_secs(args.max_connection_secs),
            max_message_bytes: args.max_message_bytes,
            ..Limits::default()
        },
        allowed_hosts: args.allowed_host.clone(),
        bridge: args
            .redis_url
            .clone()
            .map(|redis_url| jobcast_bridge::BridgeConfig {
                redis_url,
                source: match (&args.redis_stream, &args.redis_group) {
                    (Some(key), Some(group)) => jobcast_bridge::Source::Stream {
                        key: key.clone(),
                        group: group.clone(),
                        consumer: "jobcast-local".to_owned(),
                    },
                    _ => jobcast_bridge::Source::PubSub {
                        pattern: args.redis_pattern.clone(),
                    },
                },
                in_flight: 32,
            }),
        ..EmulatorConfig::default()
    };
    let address: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| format!("{}:{} is not a socket address", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!("binding {address} (is another jobcast-local running? try --port 0)")
        })?;
    match args.store {
        StoreKind::Memory => {
            serve(
                listener,
                Jobcast::new(FaultyStore::new(MemoryStore::new(), store_faults), settings),
                config,
                "embedded (in memory)",
            )
            .await
        }
        #[cfg(feature = "dynamodb")]
        StoreKind::Dynamodb => {
            let endpoint = args.dynamodb_endpoint.as_deref();
            serve_on_dynamodb(listener, endpoint, settings, store_faults, config).await
        }
        #[cfg(not(feature = "dynamodb"))]
        StoreKind::Dynamodb => unreachable!("refused right after parsing"),
    }
}

/// `--store dynamodb`: the tables are created if absent.
#[cfg(feature = "dynamodb")]
async fn serve_on_dynamodb(
    listener: tokio::net::TcpListener,
    endpoint: Option<&str>,
    settings: Settings,
    store_faults: StoreFaults,
    config: EmulatorConfig,
) -> anyhow::Result<()> {
    let mut loader = jobcast::sdk::loader();
    if let Some(endpoint) = endpoint {
        // DynamoDB Local checks no signature, but wants an alphanumeric key id; a developer's
        // machine may have no credentials at all.
        loader = loader
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "jobcastlocal",
                "jobcastlocal",
                None,
                None,
                "jobcast-local",
            ));
    }
    let store = jobcast::store::DynamoStore::new(&loader.load().await, settings.tables.clone());
    store
        .ensure_tables()
        .await
        .context("creating the DynamoDB tables")?;
    let description = format!(
        "DynamoDB {} (tables {}, {})",
        endpoint.unwrap_or("(AWS)"),
        store.tables().connections,
        store.tables().jobs
    );
    serve(
        listener,
        Jobcast::new(FaultyStore::new(store, store_faults), settings),
        config,
        &description,
    )
    .await
}

/// What a build without the `dynamodb` feature answers `--store dynamodb` with: the command
/// that builds the store, with the arguments given (the endpoint among them, so that pasting
/// it does not reach real AWS instead of DynamoDB Local).
#[cfg_attr(feature = "dynamodb", allow(dead_code))]
fn no_dynamodb(args: impl Iterator<Item = String>) -> String {
    let args: Vec<String> = args.collect();
    format!(
        "this jobcast-local was built without the DynamoDB store (the first build leaves the \
         AWS SDK out); build it with the `dynamodb` feature:\n  \
         cargo run -p jobcast-local --features dynamodb -- {}",
        args.join(" ")
    )
}

async fn serve<S: Store>(
    listener: tokio::net::TcpListener,
    service: Jobcast<S>,
    config: EmulatorConfig,
    store: &str,
) -> anyhow::Result<()> {
    let stage = config.stage.clone();
    let emulator = Emulator::start(listener, service, config).context("starting the emulator")?;
    let http = emulator.http_url();
    let websocket = emulator.websocket_url();
    println!("jobcast-local listening on {websocket}");
    println!("  WebSocket       {websocket}  {websocket}/{stage}");
    println!("  @connections    {http}/@connections/{{connection_id}}");
    println!("  sender (Invoke) {http}/2015-03-31/functions/sender/invocations");
    println!("  page, health    {http}/  {http}/health  {http}/metrics");
    if let Some(bridge) = emulator.bridge_status() {
        println!("  Redis bridge    {}", bridge.subscriber()["pattern"]);
    }
    println!("  store           {store}");

    let stop = emulator.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop();
    });
    emulator.wait().await.context("serving")?;
    Ok(())
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be within 0.0 and 1.0".to_owned())
    }
}

fn parse_fail_status(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(status) if status == 429 || (500..=599).contains(&status) => Ok(status),
        _ => Err("must be 429 or a 5xx status".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hint_keeps_the_arguments_given() {
        let args = [
            "--store",
            "dynamodb",
            "--dynamodb-endpoint",
            "http://127.0.0.1:8000",
        ];
        let hint = super::no_dynamodb(args.iter().map(|arg| arg.to_string()));
        assert!(
            hint.ends_with(
                "cargo run -p jobcast-local --features dynamodb -- --store dynamodb \
                 --dynamodb-endpoint http://127.0.0.1:8000"
            ),
            "{hint}"
        );
    }
}
