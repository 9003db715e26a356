//! `jobcast bridge redis`: the notification hub's Redis channels forwarded to jobcast, run
//! beside the Redis it reads. Stops cleanly on SIGTERM or Ctrl-C, forwarding what it has read.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use jobcast_bridge::destination::{Function, InvokeApi, Queue};
use jobcast_bridge::{Bridge, BridgeConfig, Destination, Source};

/// The bridges there are.
#[derive(Debug, Subcommand)]
pub enum BridgeKind {
    /// Forward Redis Pub/Sub (`PSUBSCRIBE`) or a Redis Stream (`XREADGROUP`) to the sender.
    Redis(RedisArgs),
}

/// `jobcast bridge redis`.
#[derive(Debug, Args)]
pub struct RedisArgs {
    /// Redis, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "JOBCAST_REDIS_URL")]
    redis_url: String,
    /// The Pub/Sub channel pattern. Pub/Sub keeps nothing: what is published while the bridge
    /// is away is lost; use --stream for delivery that survives a restart.
    #[arg(long, default_value = "user_noti:*", conflicts_with = "stream")]
    pattern: String,
    /// Read this Redis Stream with a consumer group instead (entries with `message` and
    /// `channel` or `user_id` fields); acknowledged only once the sender took them.
    #[arg(long, requires = "group")]
    stream: Option<String>,
    /// The stream's consumer group (created if missing).
    #[arg(long)]
    group: Option<String>,
    /// This bridge's name in the group (one per running bridge).
    #[arg(long, default_value = "jobcast-bridge")]
    consumer: String,
    /// jobcast-local's HTTP address, e.g. http://127.0.0.1:3001.
    #[arg(long, group = "destination")]
    local: Option<String>,
    /// The sender function's name or ARN (invoked; its answers feed the metrics).
    #[arg(long, group = "destination")]
    function: Option<String>,
    /// The stack's FIFO queue URL (EventQueueUrl); the user id is the message group.
    #[arg(long, group = "destination")]
    queue: Option<String>,
    /// Messages forwarded at once (each user's stay in order).
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Serve GET /health and GET /metrics here, e.g. 127.0.0.1:9464.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// Runs the bridge until SIGTERM or Ctrl-C.
pub async fn run(kind: BridgeKind) -> anyhow::Result<ExitCode> {
    let BridgeKind::Redis(args) = kind;
    let settings = jobcast::settings::Settings::from_env().context("reading the environment")?;
    jobcast::telemetry::init(&settings.logging);
    let source = match (&args.stream, &args.group) {
        (Some(key), Some(group)) => Source::Stream {
            key: key.clone(),
            group: group.clone(),
            consumer: args.consumer.clone(),
        },
        _ => Source::PubSub {
            pattern: args.pattern.clone(),
        },
    };
    let config = BridgeConfig {
        redis_url: args.redis_url.clone(),
        source,
        in_flight: args.in_flight,
    };
    if let Some(local) = &args.local {
        return serve(config, InvokeApi::new(local), args.listen).await;
    }
    let sdk = jobcast::sdk::loader().load().await;
    match (&args.function, &args.queue) {
        (Some(function), None) => {
            let client = aws_sdk_lambda::Client::new(&sdk);
            serve(config, Function::new(client, function), args.listen).await
        }
        (None, Some(queue)) => {
            let client = aws_sdk_sqs::Client::new(&sdk);
            serve(config, Queue::new(client, queue), args.listen).await
        }
        _ => anyhow::bail!("name one destination: --local, --function or --queue"),
    }
}

async fn serve<D: Destination>(
    config: BridgeConfig,
    destination: D,
    listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let bridge = Bridge::start(config, destination)?;
    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        println!(
            "bridge health and metrics on http://{}",
            listener.local_addr()?
        );
        let router = jobcast_bridge::http::router(bridge.status());
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    stopped().await;
    eprintln!("jobcast: stopping the bridge");
    bridge.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (how containers and systemd stop a service) or Ctrl-C.
async fn stopped() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
