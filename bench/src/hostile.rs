//! Hostile clients: `--readers N` (500) ordinary subscribers of one user follow a job while a
//! pipeline publishes `--events E` (100) events to it at 20 a second; then the same again while
//! `--attackers M` (500) connections of other users flood the server as fast as `--attack-rate`
//! (20 frames a second each) lets them: junk, binary frames, frames of 8 KB, actions on the
//! readers' job (refused), pings, and subscribes with `last_seq: 0` to their own job of 1,200
//! logged events (replays). Every reader must hear every event once and in order in both runs;
//! the run reports their latency (p50, p99, max) quiet and under the flood, what the attackers
//! were answered, and, with `--dynamodb ENDPOINT`, the DynamoDB requests each run cost, counted
//! on the wire by a proxy between jobcast-local and DynamoDB.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod local_server;
use local_server::Server;

/// DynamoDB requests by operation, counted as they pass.
#[derive(Default)]
struct Counted {
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl Counted {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.by_operation.lock().unwrap().clone()
    }
}

/// A proxy in front of DynamoDB that counts each request by its `X-Amz-Target`.
async fn counting_proxy(upstream: String, counted: Arc<Counted>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (http, upstream, counted) = (http.clone(), upstream.clone(), counted.clone());
            async move {
                let operation = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|target| target.rsplit('.').next())
                    .unwrap_or("?")
                    .to_owned();
                *counted
                    .by_operation
                    .lock()
                    .unwrap()
                    .entry(operation)
                    .or_default() += 1;
                let mut request = http.post(&upstream).body(body);
                for (name, value) in &headers {
                    if name != "host" && name != "content-length" {
                        request = request.header(name, value);
                    }
                }
                let response = match request.send().await {
                    Ok(response) => response,
                    Err(_) => {
                        return axum::http::Response::builder()
                            .status(502)
                            .body(axum::body::Body::empty())
                            .unwrap();
                    }
                };
                let mut answer = axum::http::Response::builder().status(response.status().as_u16());
                for (name, value) in response.headers() {
                    if name != "content-length" && name != "transfer-encoding" {
                        answer = answer.header(name.as_str(), value.as_bytes());
                    }
                }
                let body = response.bytes().await.unwrap_or_default();
                answer.body(axum::body::Body::from(body)).unwrap()
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}"))
}

async fn invoke(http: &reqwest::Client, server: &str, request: Value) -> Result<Value> {
    let url = format!("{server}/2015-03-31/functions/sender/invocations");
    Ok(http.post(url).json(&request).send().await?.json().await?)
}

/// What one reader heard of a job: each event's seq and latency.
type Heard = Arc<Mutex<Vec<(u64, Duration)>>>;

/// An ordinary subscriber: follows `job`, records the latency of each event (its message is the
/// time it was sent, in µs since `base`).
async fn reader(
    url: String,
    jobs: Vec<(String, Heard)>,
    base: Instant,
    ready: Arc<AtomicU64>,
) -> Result<()> {
    let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut sink, mut stream) = socket.split();
    for (job, _) in &jobs {
        let subscribe = json!({"action": "subscribe", "job_id": job});
        sink.send(Message::text(subscribe.to_string())).await?;
    }
    let mut subscribed = 0;
    while let Some(message) = stream.next().await {
        let Ok(Message::Text(text)) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text)?;
        match frame["type"].as_str() {
            Some("subscribed") => {
                subscribed += 1;
                if subscribed == jobs.len() {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
            }
            Some("progress_update") => {
                let Some((_, heard)) = jobs.iter().find(|(job, _)| frame["job_id"] == **job) else {
                    continue;
                };
                let sent = frame["message"].as_str().unwrap_or("0").parse::<u64>()?;
                let latency = base.elapsed().saturating_sub(Duration::from_micros(sent));
                heard
                    .lock()
                    .unwrap()
                    .push((frame["seq"].as_u64().unwrap_or(0), latency));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What the attackers sent and were answered.
#[derive(Default)]
struct Attack {
    sent: AtomicU64,
    answers: Mutex<BTreeMap<String, u64>>,
    replayed: AtomicU64,
    closed: AtomicU64,
    connects: AtomicU64,
    refused_connects: AtomicU64,
}

/// One attacker: sends its cycle of frames at `rate` a second until `stop`, and connects again
/// whenever the server closes its connection, as a determined abuser would.
async fn attacker(
    url: String,
    own_job: String,
    rate: u32,
    stop: Arc<AtomicBool>,
    attack: Arc<Attack>,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => {
                attack.connects.fetch_add(1, Ordering::Relaxed);
                flood(socket, &own_job, rate, &stop, &attack).await;
            }
            Err(_) => {
                attack.refused_connects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection's flood, until the server closes it or `stop`.
async fn flood(socket: Socket, own_job: &str, rate: u32, stop: &AtomicBool, attack: &Arc<Attack>) {
    let (mut sink, mut stream) = socket.split();
    let counts = attack.clone();
    let listener = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if frame["seq"].is_u64() {
                counts.replayed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let kind = match frame["type"].as_str() {
                Some("error") => format!("error {}", frame["code"].as_str().unwrap_or("?")),
                Some(other) => other.to_owned(),
                None => "?".to_owned(),
            };
            *counts.answers.lock().unwrap().entry(kind).or_default() += 1;
        }
        counts.closed.fetch_add(1, Ordering::Relaxed);
    });
    let own_job = own_job.to_owned();
    let junk = "\u{1}{not json".repeat(16);
    let big = "z".repeat(8 * 1024);
    let cycle: Vec<Message> = vec![
        Message::text(junk),
        Message::text(json!({"action": "subscribe", "job_id": own_job, "last_seq": 0}).to_string()),
        Message::text(json!({"action": "subscribe", "job_id": "busy-job"}).to_string()),
        Message::binary(vec![0u8, 159, 146, 150]),
        Message::text(json!({"action": "request_status", "job_id": "busy-job"}).to_string()),
        Message::text(json!({"action": "cancel_job", "job_id": "busy-job"}).to_string()),
        Message::text(json!({"action": "drop_tables"}).to_string()),
        Message::text(json!({"action": "ping", "pad": big}).to_string()),
        Message::text(json!({"action": "subscribe", "job_id": own_job, "last_seq": 0}).to_string()),
        Message::text(json!({"action": "ping"}).to_string()),
    ];
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    for frame in cycle.iter().cycle() {
        if stop.load(Ordering::Relaxed) || listener.is_finished() {
            break;
        }
        tick.tick().await;
        if sink.send(frame.clone()).await.is_err() {
            break;
        }
        attack.sent.fetch_add(1, Ordering::Relaxed);
    }
    let _ = sink.close().await;
    listener.abort();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

/// The latencies of every reader for one job, and how many readers missed or repeated events.
fn tally(heard: &[Heard], events: u64) -> (Vec<Duration>, usize) {
    let mut all = Vec::new();
    let mut wrong = 0;
    for reader in heard {
        let seen = reader.lock().unwrap();
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        if seqs != (1..=events).collect::<Vec<_>>() {
            wrong += 1;
        }
        all.extend(seen.iter().map(|(_, latency)| *latency));
    }
    all.sort();
    (all, wrong)
}

/// Publishes `events` events to `job` at 20 a second; each message is its send time.
async fn publish(
    http: &reqwest::Client,
    server: &str,
    job: &str,
    events: u64,
    base: Instant,
) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for n in 1..=events {
        tick.tick().await;
        let sent = base.elapsed().as_micros() as u64;
        let report = invoke(http, server, json!({"job_id": job, "event_id": format!("{job}-{n}"),
            "event": {"type": "progress_update", "stage": "crawl", "progress": n as f64 % 100.0, "message": sent.to_string()}}))
        .await?;
        if report["outcome"] != "published" {
            bail!("event {n} of {job}: {report}");
        }
    }
    Ok(())
}

fn difference(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn calls(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(op, n)| format!("{op} {n}")).collect();
    format!("{total} ({})", parts.join(", "))
}

#[tokio::main]
async fn main() -> Result<()> {
    let (mut readers, mut attackers, mut events, mut rate) = (500usize, 500usize, 100u64, 20u32);
    let (mut local, mut dynamodb) = (None, None);
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--readers" => readers = value()?.parse()?,
            "--attackers" => attackers = value()?.parse()?,
            "--events" => events = value()?.parse()?,
            "--attack-rate" => rate = value()?.parse()?,
            "--local-bin" => local = Some(value()?),
            "--dynamodb" => dynamodb = Some(value()?),
            // Fail when a reader missed or repeated an event (the smoke run in the test command).
            "--check" => check = true,
            other => bail!("unknown argument {other}"),
        }
    }
    let local = local.context("--local-bin")?;
    let counted = Arc::new(Counted::default());
    let suffix = format!("{:08x}", rand::random::<u32>());
    let mut server_args: Vec<String> = vec!["--auth".into(), "jwt".into()];
    if let Some(endpoint) = &dynamodb {
        let proxy = counting_proxy(endpoint.clone(), counted.clone()).await?;
        server_args.extend([
            "--store".into(),
            "dynamodb".into(),
            "--dynamodb-endpoint".into(),
            proxy,
        ]);
    }
    let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let env = [
        ("JWT_HS256_SECRET", jobcast_tests::TEST_SECRET.to_owned()),
        // The flood is refused by the thousand; each refusal's log line would cost more than it.
        ("RUST_LOG", "error".to_owned()),
        ("MAX_CONNECTIONS_PER_USER", "10000".to_owned()),
        (
            "CONNECTIONS_TABLE_NAME",
            format!("hostile-connections-{suffix}"),
        ),
        ("JOBS_TABLE_NAME", format!("hostile-jobs-{suffix}")),
    ];
    let server = Server::start_with_env(&local, &server_args, &env)?;
    let base_url = server.http();
    let ws = format!("ws://{}", server.address);
    let http = reqwest::Client::new();
    let base = Instant::now();

    // The readers' two jobs (one per run), and the attackers' own jobs with a long log.
    for job in ["quiet-job", "busy-job"] {
        invoke(
            &http,
            &base_url,
            json!({"action": "register_job", "job_id": job, "user_id": "owner"}),
        )
        .await?;
    }
    let attacker_users = 2;
    for user in 0..attacker_users {
        let job = format!("flood-{user}");
        invoke(
            &http,
            &base_url,
            json!({"action": "register_job", "job_id": job, "user_id": format!("mallory-{user}")}),
        )
        .await?;
        for n in 0..1_200u32 {
            invoke(&http, &base_url, json!({"job_id": job, "event": {"type": "progress_update", "stage": "x", "progress": 1.0, "message": format!("{n}")}})).await?;
        }
    }

    let ready = Arc::new(AtomicU64::new(0));
    let mut quiet = Vec::new();
    let mut busy = Vec::new();
    let url = format!("{ws}/?token={}", jobcast_tests::token_for("owner"));
    for _ in 0..readers {
        let (q, b): (Heard, Heard) = (Arc::default(), Arc::default());
        quiet.push(q.clone());
        busy.push(b.clone());
        let jobs = vec![("quiet-job".to_owned(), q), ("busy-job".to_owned(), b)];
        tokio::spawn(reader(url.clone(), jobs, base, ready.clone()));
        if quiet.len() % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let waiting = Instant::now();
    while ready.load(Ordering::SeqCst) < readers as u64 {
        if waiting.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {} of {readers} readers subscribed",
                ready.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The quiet run.
    let before = counted.snapshot();
    publish(&http, &base_url, "quiet-job", events, base).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet_calls = difference(&counted.snapshot(), &before);

    // The flood, and the same publishing under it.
    let stop = Arc::new(AtomicBool::new(false));
    let attack = Arc::new(Attack::default());
    let mut flood = Vec::new();
    for n in 0..attackers {
        let user = format!("mallory-{}", n % attacker_users);
        let url = format!("{ws}/?token={}", jobcast_tests::token_for(&user));
        let job = format!("flood-{}", n % attacker_users);
        flood.push(tokio::spawn(attacker(
            url,
            job,
            rate,
            stop.clone(),
            attack.clone(),
        )));
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = counted.snapshot();
    let sent_before = attack.sent.load(Ordering::Relaxed);
    let flood_started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(120),
        publish(&http, &base_url, "busy-job", events, base),
    )
    .await
    .context("publishing under the flood took more than 2 minutes")??;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flood_seconds = flood_started.elapsed().as_secs_f64();
    let busy_calls = difference(&counted.snapshot(), &before);
    let sent_during = attack.sent.load(Ordering::Relaxed) - sent_before;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        let _ = task.await;
    }

    let (quiet_latency, quiet_wrong) = tally(&quiet, events);
    let (busy_latency, busy_wrong) = tally(&busy, events);
    let row = |label: &str, latency: &[Duration], wrong: usize| {
        format!(
            "| {label} | {readers} × {events} | {} | **{wrong}** | {:.1} ms | **{:.1} ms** | {:.1} ms |",
            latency.len(),
            percentile(latency, 0.5).as_secs_f64() * 1e3,
            percentile(latency, 0.99).as_secs_f64() * 1e3,
            latency.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        )
    };
    println!(
        "| run | readers × events | events heard | readers that missed or repeated any | p50 | p99 | max |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!("{}", row("quiet", &quiet_latency, quiet_wrong));
    println!(
        "{}",
        row(
            &format!("under the flood ({attackers} attackers)"),
            &busy_latency,
            busy_wrong
        )
    );
    let p99_ratio = percentile(&busy_latency, 0.99).as_secs_f64()
        / percentile(&quiet_latency, 0.99).as_secs_f64().max(1e-9);
    println!();
    println!("p99 under the flood / quiet p99: **{p99_ratio:.2}×**");
    println!();
    let answers = attack.answers.lock().unwrap().clone();
    let answered: Vec<String> = answers
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    println!(
        "Attackers: {sent_during} frames sent in the {flood_seconds:.1} s of the measured run ({:.0} a second; {} in all, with the 3 s before it), answered: {}; {} replayed events posted to them; {} connections made, {} closed by the server (each attacker connects again at once), {} connects refused.",
        sent_during as f64 / flood_seconds,
        attack.sent.load(Ordering::Relaxed),
        answered.join(", "),
        attack.replayed.load(Ordering::Relaxed),
        attack.connects.load(Ordering::Relaxed),
        attack.closed.load(Ordering::Relaxed),
        attack.refused_connects.load(Ordering::Relaxed),
    );
    if dynamodb.is_some() {
        let busy_total: u64 = busy_calls.values().sum();
        let quiet_total: u64 = quiet_calls.values().sum();
        println!();
        println!("DynamoDB requests, counted on the wire:");
        println!();
        println!("| run | requests |");
        println!("|---|---|");
        println!(
            "| quiet: {events} events to {readers} readers | {} |",
            calls(&quiet_calls)
        );
        println!(
            "| under the flood, same publishing | {} |",
            calls(&busy_calls)
        );
        println!(
            "\nThe flood cost {} requests more, {:.2} per attacker frame sent.",
            busy_total.saturating_sub(quiet_total),
            busy_total.saturating_sub(quiet_total) as f64 / sent_during.max(1) as f64
        );
    }
    drop(server);
    if check && quiet_wrong + busy_wrong > 0 {
        bail!(
            "{} readers missed or repeated events",
            quiet_wrong + busy_wrong
        );
    }
    Ok(())
}
