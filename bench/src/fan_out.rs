//! Fan-out throughput on jobcast-local, side by side in one run: jobcast's sender (the real
//! handler and delivery engine, posting through the AWS SDK to `@connections` over HTTP, as
//! in AWS), Python boto3 in a plain loop and with a 32-thread pool, and the emulator's own
//! ceiling under raw POST load from wrk. Every message is counted by real WebSocket clients.
//!
//! Run by `bench/fan-out.sh`, which builds, installs the baselines' tools and records the
//! table in bench/RESULTS.md.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use jobcast::gateway::ManagementApiGateway;
use jobcast::handlers::Jobcast;
use jobcast::protocol::{ConnectionId, JobId, UserId};
use jobcast::settings::{AuthMode, Settings};
use jobcast::store::{Connection, ConnectionStore, MemoryStore, Subscription};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as u64
}

mod local_server;
use local_server::Server;

impl Server {
    /// Resident memory in KiB, from /proc.
    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS")
    }

    async fn connection_ids(&self) -> Result<Vec<String>> {
        let body: Value = reqwest::get(format!("{}/connections", self.http()))
            .await?
            .json()
            .await?;
        Ok(body["connections"]
            .as_array()
            .context("connections")?
            .iter()
            .filter_map(|c| c["connection_id"].as_str().map(str::to_owned))
            .collect())
    }
}

/// What the clients received: a count and each frame's arrival time.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    stamps: std::sync::Mutex<Vec<u64>>,
}

impl Received {
    fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
        self.stamps.lock().unwrap().clear();
    }

    async fn wait_for(&self, expected: u64, patience: Duration) -> u64 {
        let deadline = Instant::now() + patience;
        loop {
            let count = self.count.load(Ordering::SeqCst);
            if count >= expected || Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Opens `n` WebSocket clients subscribed to `job`; each counts every text frame after that.
async fn open_clients(server: &Server, n: usize, job: &str, received: Arc<Received>) -> Result<()> {
    let url = format!("ws://{}/?user_id=bench", server.address);
    let opened = futures::stream::iter(0..n)
        .map(|_| {
            let url = url.clone();
            let received = received.clone();
            let job = job.to_owned();
            async move {
                let (mut socket, _) = tokio_tungstenite::connect_async(&url).await?;
                socket
                    .send(Message::text(
                        json!({"action": "subscribe", "job_id": job}).to_string(),
                    ))
                    .await?;
                // The `subscribed` reply, then count everything else.
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Text(text))) if text.contains("\"subscribed\"") => break,
                        Some(Ok(_)) => continue,
                        other => bail!("subscribe failed: {other:?}"),
                    }
                }
                tokio::spawn(async move {
                    while let Some(Ok(message)) = socket.next().await {
                        if let Message::Text(_) = message {
                            let at = now_micros();
                            received.stamps.lock().unwrap().push(at);
                            received.count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                anyhow::Ok(())
            }
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await;
    opened.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(())
}

/// One approach's run: what arrived, when.
struct Run {
    approach: String,
    delivered: u64,
    expected: u64,
    seconds_to_last: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.seconds_to_last
    }

    fn from(approach: &str, received: &Received, expected: u64, started_micros: u64) -> Run {
        let mut latencies: Vec<u64> = received
            .stamps
            .lock()
            .unwrap()
            .iter()
            .map(|stamp| stamp.saturating_sub(started_micros))
            .collect();
        latencies.sort_unstable();
        let at = |q: f64| -> f64 {
            if latencies.is_empty() {
                return f64::NAN;
            }
            let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
            latencies[index] as f64 / 1000.0
        };
        Run {
            approach: approach.to_owned(),
            delivered: received.count.load(Ordering::SeqCst),
            expected,
            seconds_to_last: latencies.last().copied().unwrap_or(0) as f64 / 1e6,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}

/// jobcast's sender in this process: the real handler over a store holding the subscribers,
/// posting through the AWS SDK to jobcast-local's `@connections` over HTTP.
struct Sender {
    service: Jobcast<MemoryStore>,
    gateway: ManagementApiGateway,
}

impl Sender {
    async fn new(server: &Server, ids: &[String], job: &str, settings: Settings) -> Result<Self> {
        let store = MemoryStore::new();
        let user = UserId::parse("bench")?;
        let expires_at = Utc::now() + chrono::Duration::hours(2);
        for id in ids {
            let connection_id = ConnectionId::parse(id.clone())?;
            store
                .put_connection(&Connection {
                    connection_id: connection_id.clone(),
                    user_id: user.clone(),
                    connected_at: Utc::now(),
                    expires_at,
                })
                .await?;
            store
                .put_subscription(&Subscription {
                    connection_id,
                    job_id: JobId::parse(job)?,
                    user_id: user.clone(),
                    expires_at,
                    live_after: 0,
                })
                .await?;
        }
        let sdk = jobcast::sdk::loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                "bench", "bench", None, None, "bench",
            ))
            .load()
            .await;
        let gateway = ManagementApiGateway::new(&sdk, &server.http());
        Ok(Sender {
            service: Jobcast::new(store, settings),
            gateway,
        })
    }

    async fn send(&self, job: &str, n: u32) -> Result<Value> {
        let outcome = self
            .service
            .handle_send(
                &self.gateway,
                json!({"job_id": job, "event": {"type": "progress_update", "stage": "bench",
                    "progress": f64::from(n % 100), "message": "fan-out benchmark"}}),
            )
            .await?;
        Ok(serde_json::to_value(outcome)?)
    }
}

fn bench_settings(concurrency: usize) -> Settings {
    let mut settings = Settings {
        auth_mode: AuthMode::None,
        ..Settings::default()
    };
    settings.delivery.concurrency = concurrency;
    settings
}

const PAYLOAD: &str = r#"{"type":"progress_update","job_id":"bench","seq":1,"stage":"bench","progress":50.0,"message":"fan-out benchmark"}"#;

/// boto3 in a plain loop or a thread pool, as a separate Python process.
fn python_baseline(
    python: &str,
    server: &Server,
    ids_file: &str,
    mode: &str,
) -> Result<(u64, u64)> {
    let output = Command::new(python)
        .args(["bench/boto3_baseline.py", "--endpoint", &server.http()])
        .args(["--ids-file", ids_file, "--mode", mode, "--payload", PAYLOAD])
        .stderr(Stdio::inherit())
        .output()
        .context("running the boto3 baseline")?;
    if !output.status.success() {
        bail!("boto3 baseline failed: {}", output.status);
    }
    let report: Value = serde_json::from_slice(&output.stdout)?;
    let started = report["started_micros"]
        .as_u64()
        .context("started_micros")?;
    let errors = report["errors"].as_u64().unwrap_or(0);
    Ok((started, errors))
}

struct Row {
    subscribers: usize,
    runs: Vec<Run>,
}

fn fmt_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| subscribers | approach | delivered | delivered/s | time to last (ms) | p50 (ms) | p99 (ms) | jobcast is × faster |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let jobcast = row.runs.iter().find(|r| r.approach.starts_with("jobcast"));
        for run in &row.runs {
            let ratio = match jobcast {
                Some(j) if !run.approach.starts_with("jobcast") => {
                    format!("{:.1}×", j.rate() / run.rate())
                }
                _ => String::new(),
            };
            out.push_str(&format!(
                "| {} | {} | {}/{} | {:.0} | {:.0} | {:.1} | {:.1} | {} |\n",
                row.subscribers,
                run.approach,
                run.delivered,
                run.expected,
                run.rate(),
                run.seconds_to_last * 1000.0,
                run.p50_ms,
                run.p99_ms,
                ratio
            ));
        }
    }
    out
}

struct Args {
    local_bin: String,
    python: String,
    sizes: Vec<usize>,
    concurrency: usize,
    sweep: Vec<usize>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        local_bin: "target/release/jobcast-local".into(),
        python: "python3".into(),
        sizes: vec![100, 1_000, 10_000],
        concurrency: jobcast::delivery::DeliverySettings::default().concurrency,
        sweep: vec![16, 32, 64, 128, 256],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--local-bin" => args.local_bin = value,
            "--python" => args.python = value,
            "--sizes" => args.sizes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--sweep" => {
                args.sweep = value
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let mut rows = Vec::new();
    let mut memory_line = String::new();
    let mut ceiling_lines = Vec::new();
    let scratch = std::env::temp_dir().join(format!("jobcast-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    for &n in &args.sizes {
        eprintln!("== {n} subscribers");
        let server = Server::start(&args.local_bin, &[])?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rss_before = server.rss_kib()?;
        let received = Arc::new(Received::default());
        let job = format!("bench-{n}");
        open_clients(&server, n, &job, received.clone()).await?;
        let ids = server.connection_ids().await?;
        if ids.len() != n {
            bail!("{} connections open, expected {n}", ids.len());
        }
        let rss_after = server.rss_kib()?;
        if n == *args.sizes.iter().max().unwrap() {
            memory_line = format!(
                "jobcast-local resident memory: {rss_before} KiB idle, {rss_after} KiB with {n} open, subscribed connections: {:.1} KiB per connection.",
                (rss_after - rss_before) as f64 / n as f64
            );
        }
        let ids_file = scratch.join(format!("ids-{n}.txt"));
        std::fs::write(&ids_file, ids.join("\n"))?;
        let ids_file = ids_file.to_string_lossy().into_owned();
        let patience = Duration::from_secs(30 + n as u64 / 100);
        let mut runs = Vec::new();

        // jobcast: a warm-up (connection pool, allocator), then the median of three.
        let sender = Sender::new(&server, &ids, &job, bench_settings(args.concurrency)).await?;
        sender.send(&job, 0).await?;
        received.wait_for(n as u64, patience).await;
        let mut jobcast_runs = Vec::new();
        for round in 1..=3 {
            received.reset();
            let started = now_micros();
            let report = sender.send(&job, round).await?;
            received.wait_for(n as u64, patience).await;
            eprintln!("jobcast report: {report}");
            jobcast_runs.push(Run::from(
                &format!("jobcast sender (concurrency {})", args.concurrency),
                &received,
                n as u64,
                started,
            ));
        }
        jobcast_runs.sort_by(|a, b| a.seconds_to_last.total_cmp(&b.seconds_to_last));
        runs.push(jobcast_runs.swap_remove(1));

        for (mode, label) in [
            ("loop", "boto3 plain loop"),
            ("pool", "boto3, 32-thread pool"),
        ] {
            received.reset();
            let (started, errors) = python_baseline(&args.python, &server, &ids_file, mode)?;
            received.wait_for(n as u64, patience).await;
            if errors > 0 {
                eprintln!("{label}: {errors} errors");
            }
            runs.push(Run::from(label, &received, n as u64, started));
        }

        // The ceiling: wrk posting to @connections as fast as the emulator takes it.
        received.reset();
        let wrk = Command::new("wrk")
            .args([
                "-t",
                "2",
                "-c",
                "64",
                "-d",
                "5s",
                "--latency",
                "-s",
                "bench/post.lua",
            ])
            .arg(server.http())
            .env("JOBCAST_BENCH_IDS", &ids_file)
            .env("JOBCAST_BENCH_PAYLOAD", PAYLOAD)
            .output()
            .context("running wrk (apt-get install wrk)")?;
        let text = String::from_utf8_lossy(&wrk.stdout).into_owned();
        let requests_per_second: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("wrk output: {text}"))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let heard = received.count.load(Ordering::SeqCst);
        ceiling_lines.push((n, requests_per_second, heard));
        rows.push(Row {
            subscribers: n,
            runs,
        });
        drop(server);
    }

    // The concurrency sweep that picks the default, at the largest size.
    let mut sweep_lines = Vec::new();
    let largest = *args.sizes.iter().max().unwrap();
    if !args.sweep.is_empty() {
        let server = Server::start(&args.local_bin, &[])?;
        let received = Arc::new(Received::default());
        let job = "bench-sweep";
        open_clients(&server, largest, job, received.clone()).await?;
        let ids = server.connection_ids().await?;
        for &concurrency in &args.sweep {
            let sender = Sender::new(&server, &ids, job, bench_settings(concurrency)).await?;
            sender.send(job, 0).await?;
            received
                .wait_for(largest as u64, Duration::from_secs(60))
                .await;
            received.reset();
            let started = now_micros();
            sender.send(job, 1).await?;
            received
                .wait_for(largest as u64, Duration::from_secs(60))
                .await;
            let run = Run::from("", &received, largest as u64, started);
            sweep_lines.push(format!(
                "| {concurrency} | {:.0} | {:.0} |",
                run.rate(),
                run.seconds_to_last * 1000.0
            ));
        }
    }

    // The account quota: 10,000 posts/s with a 5,000 burst, five events to 10,000 subscribers.
    let throttled = {
        let server = Server::start(&args.local_bin, &["--throttle-rps", "10000"])?;
        let received = Arc::new(Received::default());
        let job = "bench-quota";
        let n = largest;
        open_clients(&server, n, job, received.clone()).await?;
        let ids = server.connection_ids().await?;
        let sender = Sender::new(&server, &ids, job, bench_settings(args.concurrency)).await?;
        // Let the bucket fill after the subscribe replies drained it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let events = 5u32;
        let started = now_micros();
        let mut reports = Vec::new();
        for round in 1..=events {
            reports.push(sender.send(job, round).await?);
        }
        let expected = n as u64 * u64::from(events);
        received.wait_for(expected, Duration::from_secs(120)).await;
        let run = Run::from("", &received, expected, started);
        let retried: u64 = reports.iter().filter_map(|r| r["retried"].as_u64()).sum();
        let failed: u64 = reports.iter().filter_map(|r| r["failed"].as_u64()).sum();
        format!(
            "Under `--throttle-rps 10000` (burst 5,000), {events} events to {n} subscribers: {} of {expected} delivered ({} lost, {failed} reported failed, {retried} retries) in {:.2} s: {:.0} delivered/s, {:.0} % of the quota. The bucket's burst alone allows at most {:.0}/s over this run.",
            run.delivered,
            expected - run.delivered.min(expected),
            run.seconds_to_last,
            run.rate(),
            run.rate() / 100.0,
            expected as f64 / ((expected as f64 - 5000.0) / 10000.0),
        )
    };

    let mut out = String::new();
    out.push_str(&fmt_table(&rows));
    out.push('\n');
    out.push_str("Emulator ceiling (wrk, 2 threads, 64 connections, 5 s of POST /@connections/{id} over the same clients):\n\n");
    out.push_str(
        "| subscribers | wrk requests/s | jobcast's delivered/s as % of it |\n|---:|---:|---:|\n",
    );
    for (n, rps, _heard) in &ceiling_lines {
        let jobcast = rows
            .iter()
            .find(|r| r.subscribers == *n)
            .and_then(|r| r.runs.first())
            .map(Run::rate)
            .unwrap_or(f64::NAN);
        out.push_str(&format!(
            "| {n} | {rps:.0} | {:.0} % |\n",
            jobcast / rps * 100.0
        ));
    }
    if !sweep_lines.is_empty() {
        out.push_str(&format!(
            "\nSender concurrency at {largest} subscribers (one fan-out each, after a warm-up):\n\n| concurrency | delivered/s | time to last (ms) |\n|---:|---:|---:|\n"
        ));
        for line in &sweep_lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&throttled);
    out.push_str("\n\n");
    out.push_str(&memory_line);
    out.push('\n');
    println!("{out}");
    std::io::stdout().flush()?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
