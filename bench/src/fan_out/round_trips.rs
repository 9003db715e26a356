//! Fan-out at real round trips and the account's quota: every post slowed to a round trip
//! (`--post-latency-ms`) under `--throttle-rps 10000` (burst 5,000), jobcast's sender as it is
//! beside three baselines, each different from it in one thing: the same sender posting
//! through the AWS SDK's client (what it did before it signed its own posts), the same sender
//! held at a fixed 64 posts in flight (what it did before its concurrency grew), and a bare
//! HTTP client (the CPU floor). Each run reports the time to the last client's receipt, what
//! was lost, and the sender's CPU time per delivered post.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};

use super::clients::{Received, Run, now_micros, open_clients};
use super::sender::{Posting, RawHttp, Sender, bench_settings, fixed_settings};
use crate::local_server::Server;

/// One measured cell: a round trip, an audience, an approach.
pub struct Cell {
    latency_ms: u64,
    subscribers: usize,
    approach: &'static str,
    /// Seconds to the last receipt, per run, sorted.
    seconds: Vec<f64>,
    /// The fewest delivered in any run.
    worst_delivered: u64,
    /// CPU µs per delivered post, per run, sorted.
    cpu_micros: Vec<f64>,
    /// Retries (429s waited out), per run, sorted.
    retries: Vec<u64>,
}

impl Cell {
    /// Whether a run of jobcast's sender lost a post.
    pub fn lost(&self) -> bool {
        self.approach == "jobcast" && self.worst_delivered < self.subscribers as u64
    }
}

/// jobcast's sender at 64 in flight, as before its concurrency grew.
const FIXED: &str = "fixed 64 in flight (before)";
/// jobcast's sender posting through the AWS SDK's client, as before it signed its own posts.
const SDK: &str = "posting through the AWS SDK's client (before)";
/// The CPU floor: what a bare HTTP client spends per post on this machine.
const RAW: &str = "floor: bare HTTP POSTs (reqwest, 64 in flight; no store, SDK or signing)";
const APPROACHES: [&str; 4] = ["jobcast", SDK, FIXED, RAW];

fn median<T: Copy>(sorted: &[T]) -> T {
    sorted[sorted.len() / 2]
}

/// Runs every round trip in `latencies` for every size in `sizes`, `repeats` runs each after
/// one unmeasured warm-up, both approaches.
pub async fn measure(
    local_bin: &str,
    latencies: &[u64],
    sizes: &[usize],
    repeats: usize,
) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    let largest = *sizes.iter().max().expect("a size");
    for &latency_ms in latencies {
        eprintln!("== {latency_ms} ms per post");
        let server = Server::start(
            local_bin,
            &[
                "--post-latency-ms",
                &latency_ms.to_string(),
                "--throttle-rps",
                "10000",
            ],
        )?;
        let received = Arc::new(Received::default());
        let job = "bench-round-trips";
        open_clients(&server, largest, job, received.clone()).await?;
        let ids = server_ids(&server, largest).await?;
        for &subscribers in sizes {
            for approach in APPROACHES {
                let ids = &ids[..subscribers];
                let sender = match approach {
                    "jobcast" => {
                        Sender::start(&server.http(), ids, job, bench_settings(), Posting::Signed)
                            .await?
                    }
                    SDK => {
                        Sender::start(&server.http(), ids, job, bench_settings(), Posting::Sdk)
                            .await?
                    }
                    FIXED => {
                        Sender::start(
                            &server.http(),
                            ids,
                            job,
                            fixed_settings(64),
                            Posting::Signed,
                        )
                        .await?
                    }
                    _ => Sender::start_raw(&server.http(), ids, RawHttp { in_flight: 64 }).await?,
                };
                let patience = Duration::from_secs(60);
                let mut seconds = Vec::new();
                let mut cpu_micros = Vec::new();
                let mut retries = Vec::new();
                let mut worst_delivered = u64::MAX;
                for round in 0..=repeats {
                    // The quota's bucket refills (5,000 at 10,000/s) between fan-outs.
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    received.reset();
                    let started = now_micros();
                    let sent = sender.send(job, round as u32).await?;
                    received.wait_for(subscribers as u64, patience).await;
                    if round == 0 {
                        continue;
                    }
                    let run = Run::from(&received, subscribers as u64, started);
                    worst_delivered = worst_delivered.min(run.delivered);
                    seconds.push(run.seconds_to_last);
                    cpu_micros.push(sent.cpu_micros_per_post());
                    retries.push(sent.report["retried"].as_u64().unwrap_or(0));
                }
                seconds.sort_by(f64::total_cmp);
                cpu_micros.sort_by(f64::total_cmp);
                retries.sort_unstable();
                cells.push(Cell {
                    latency_ms,
                    subscribers,
                    approach,
                    seconds,
                    worst_delivered,
                    cpu_micros,
                    retries,
                });
            }
        }
    }
    Ok(cells)
}

async fn server_ids(server: &Server, expected: usize) -> Result<Vec<String>> {
    let ids = server.connection_ids().await?;
    if ids.len() != expected {
        bail!("{} connections open, expected {expected}", ids.len());
    }
    Ok(ids)
}

/// The cells as a Markdown table, and whether the goals at 20 ms were met.
pub fn table(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| ms per post | subscribers | approach | delivered (worst run) | time to last: min / median / max (ms) | delivered/s (median) | sender CPU per post (µs, median) | retries (median) |\n|---:|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for cell in cells {
        let (min, mid, max) = (
            cell.seconds[0],
            median(&cell.seconds),
            cell.seconds[cell.seconds.len() - 1],
        );
        out.push_str(&format!(
            "| {} | {} | {} | {}/{} | {:.0} / {:.0} / {:.0} | {:.0} | {:.1} | {} |\n",
            cell.latency_ms,
            cell.subscribers,
            cell.approach,
            cell.worst_delivered,
            cell.subscribers,
            min * 1e3,
            mid * 1e3,
            max * 1e3,
            cell.subscribers as f64 / mid,
            median(&cell.cpu_micros),
            median(&cell.retries),
        ));
    }
    for (subscribers, goal) in [(5_000, 1.0), (10_000, 1.5)] {
        if let Some(cell) = cells
            .iter()
            .find(|c| c.latency_ms == 20 && c.subscribers == subscribers && c.approach == "jobcast")
        {
            let worst = cell.seconds[cell.seconds.len() - 1];
            let lost = cell.worst_delivered < subscribers as u64;
            out.push_str(&format!(
                "\nGoal at 20 ms per post, {subscribers} subscribers in ≤ {goal:.1} s with nothing lost: slowest run {worst:.2} s, {}: **{}**.",
                if lost { "some lost" } else { "nothing lost" },
                if worst <= goal && !lost { "met" } else { "not met" },
            ));
        }
    }
    if let Some(cpu) = cells
        .iter()
        .filter(|c| c.approach == "jobcast")
        .map(|c| median(&c.cpu_micros))
        .max_by(f64::total_cmp)
    {
        out.push_str(&format!(
            "\nSender CPU per delivered post: at most {cpu:.1} µs (median of a cell) across these runs; goal ≤ 25 µs: **{}**.\n",
            if cpu <= 25.0 { "met" } else { "not met" }
        ));
    }
    out
}
