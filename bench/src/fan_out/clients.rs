//! The benchmark's WebSocket clients: they subscribe through jobcast-local and count every
//! frame after that, with its arrival time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::local_server::Server;

/// Microseconds since the epoch, the clock every arrival is stamped with.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as u64
}

/// What the clients received: a count and each frame's arrival time.
#[derive(Default)]
pub struct Received {
    pub count: AtomicU64,
    pub stamps: std::sync::Mutex<Vec<u64>>,
}

impl Received {
    pub fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
        self.stamps.lock().unwrap().clear();
    }

    pub async fn wait_for(&self, expected: u64, patience: Duration) -> u64 {
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

/// Registers `job` for the benchmark's user, then opens `n` WebSocket clients subscribed to it;
/// each counts every text frame after that. A refused subscribe fails the run.
pub async fn open_clients(
    server: &Server,
    n: usize,
    job: &str,
    received: Arc<Received>,
) -> Result<()> {
    let registered: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/sender/invocations",
            server.http()
        ))
        .body(json!({"action": "register_job", "job_id": job, "user_id": "bench"}).to_string())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if registered["outcome"] != "registered" {
        bail!("registering {job}: {registered}");
    }
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
                // The `subscribed` reply and the job's status after it, then count everything
                // else.
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Text(text))) if text.contains("\"job_status\"") => break,
                        Some(Ok(Message::Text(text))) if text.contains("\"error\"") => {
                            bail!("subscribe refused: {text}")
                        }
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
pub struct Run {
    pub delivered: u64,
    pub expected: u64,
    pub seconds_to_last: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.seconds_to_last
    }

    pub fn from(received: &Received, expected: u64, started_micros: u64) -> Run {
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
            delivered: received.count.load(Ordering::SeqCst),
            expected,
            seconds_to_last: latencies.last().copied().unwrap_or(0) as f64 / 1e6,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}
