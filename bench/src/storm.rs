//! The reconnect storm: `--clients N` (5,000) WebSocket clients subscribe to one job at once
//! (`last_seq: 0`, a replay of the job's 5 events each) against jobcast-local under
//! `--throttle-rps 10000` (AWS's account quota: a 5,000 burst). A client that hears nothing in
//! 3 s subscribes again, as clients do after a timeout. Once every client has heard `subscribed`
//! (or 20 s have passed) and 2 s more, the pipeline sends one event (and sends it again, as
//! `jobcast::publish` does, while the sender reports subscribers it may still reach); the run
//! counts the subscribed clients that never receive it. `--local-bin` is the jobcast-local under test;
//! `--baseline-bin`, if given, runs the same storm against another build first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

mod local_server;
use local_server::Server;

impl Server {
    /// Sends `request` to the sender through jobcast-local's Lambda Invoke endpoint.
    async fn send(&self, request: Value) -> Result<Value> {
        let url = format!("{}/2015-03-31/functions/sender/invocations", self.http());
        Ok(reqwest::Client::new()
            .post(url)
            .json(&request)
            .send()
            .await?
            .json()
            .await?)
    }
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    connected: AtomicU64,
    subscribes: AtomicU64,
    subscribed: AtomicU64,
    reconnects: AtomicU64,
    heard_next: AtomicU64,
}

const JOB: &str = "storm";
/// The seq of the event sent after the storm (5 before it).
const NEXT_SEQ: u64 = 6;

/// One client, as `web/jobcast.js` behaves: subscribes from the last seq it has (0 at first),
/// asks again after 3 s of silence, and reconnects and resumes when the server closes its
/// connection. Done when it has the next event.
async fn client(url: String, mut go: watch::Receiver<bool>, tally: Arc<Tally>) -> Result<()> {
    let mut cursor = 0u64;
    let mut first = true;
    let mut ever_subscribed = false;
    loop {
        let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
        let (mut sink, mut stream) = socket.split();
        if first {
            tally.connected.fetch_add(1, Ordering::SeqCst);
            go.wait_for(|go| *go).await?;
            first = false;
        } else {
            tally.reconnects.fetch_add(1, Ordering::SeqCst);
        }
        'subscribe: loop {
            let subscribe =
                json!({"action": "subscribe", "job_id": JOB, "last_seq": cursor}).to_string();
            tally.subscribes.fetch_add(1, Ordering::SeqCst);
            sink.send(Message::text(subscribe)).await?;
            let mut heard_any = Instant::now();
            loop {
                let left = Duration::from_secs(3).saturating_sub(heard_any.elapsed());
                let text = match tokio::time::timeout(left, stream.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => break 'subscribe, // closed by the server: reconnect, resume
                    Err(_) if ever_subscribed => continue,
                    Err(_) => continue 'subscribe, // silence before `subscribed`: ask again
                };
                heard_any = Instant::now();
                let frame: Value = serde_json::from_str(&text)?;
                if frame["type"] == "subscribed" && !ever_subscribed {
                    ever_subscribed = true;
                    tally.subscribed.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(seq) = frame["seq"].as_u64()
                    && seq == cursor + 1
                {
                    cursor = seq;
                    if seq == NEXT_SEQ {
                        tally.heard_next.fetch_add(1, Ordering::SeqCst);
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn event(n: u64) -> Value {
    json!({"job_id": JOB, "event_id": format!("storm-{n}"),
           "event": {"type": "progress_update", "stage": "crawl", "progress": n as f64, "message": format!("step {n}")}})
}

/// One storm against `binary`: a Markdown row.
async fn storm(label: &str, binary: &str, clients: usize) -> Result<String> {
    let server = Server::start(binary, &["--throttle-rps", "10000"])?;
    for n in 1..NEXT_SEQ {
        server.send(event(n)).await?;
    }
    let tally = Arc::new(Tally::default());
    let (go, ready) = watch::channel(false);
    let url = format!("ws://{}/?user_id=storm", server.address);
    let mut tasks = Vec::new();
    let errors = Arc::new(AtomicU64::new(0));
    for _ in 0..clients {
        tasks.push(tokio::spawn(client(
            url.clone(),
            ready.clone(),
            tally.clone(),
        )));
        // Connections open a few at a time: the storm is the subscribes, not the handshakes.
        if tasks.len() % 100 == 0 {
            while tally.connected.load(Ordering::SeqCst) + 50 < tasks.len() as u64 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    while tally.connected.load(Ordering::SeqCst) < clients as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    go.send(true)?;
    while tally.subscribed.load(Ordering::SeqCst) < clients as u64
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_subscribed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let subscribed = tally.subscribed.load(Ordering::SeqCst);
    // The pipeline sends as `jobcast::publish` does: the same request again (0.25, 0.5, 1, 2 s
    // later) while the report says some subscribers may still be reached.
    let report = server.send(event(NEXT_SEQ)).await?;
    let mut last = report.clone();
    let mut resends = 0;
    while resends < 4
        && (last["failed_transient"].as_u64().unwrap_or(0) > 0
            || last["incomplete"].as_bool().unwrap_or(false))
    {
        tokio::time::sleep(Duration::from_millis(250 << resends)).await;
        last = server.send(event(NEXT_SEQ)).await?;
        resends += 1;
    }
    let sent = Instant::now();
    while tally.heard_next.load(Ordering::SeqCst) < tally.subscribed.load(Ordering::SeqCst)
        && sent.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let heard = tally.heard_next.load(Ordering::SeqCst);
    let subscribed = tally.subscribed.load(Ordering::SeqCst).max(subscribed);
    Ok(format!(
        "| {label} | {clients} | {} | {} | {subscribed} | {:.1} s | {} / {} | {resends} | {heard} | **{}** | {} |",
        tally.subscribes.load(Ordering::SeqCst),
        tally.reconnects.load(Ordering::SeqCst),
        all_subscribed.as_secs_f64(),
        report["delivered"],
        report["failed"],
        subscribed.saturating_sub(heard),
        errors.load(Ordering::SeqCst),
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut clients = 5000usize;
    let mut local = None;
    let mut baseline = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--clients" => clients = value()?.parse()?,
            "--local-bin" => local = Some(value()?),
            "--baseline-bin" => baseline = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    let local = local.context("--local-bin")?;
    println!(
        "| build | clients | subscribes sent | reconnects | subscribed | until all subscribed | first send: delivered / failed | resends | heard the next event within 30 s | subscribed but missed it | client errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if let Some(baseline) = baseline {
        println!(
            "{}",
            storm("baseline (before the fix)", &baseline, clients).await?
        );
    }
    println!("{}", storm("jobcast (this build)", &local, clients).await?);
    Ok(())
}
