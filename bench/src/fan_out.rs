//! Fan-out throughput on jobcast-local, side by side in one run: jobcast's sender (the real
//! handler and delivery engine, posting SigV4-signed requests to `@connections` over HTTP, as
//! in AWS), Python boto3 in a plain loop and with a 32-thread pool, and the emulator's own
//! ceiling under raw POST load from wrk. Every message is counted by real WebSocket clients.
//!
//! Then the fan-out at real round trips under the account's quota (`round_trips`), jobcast's
//! sender beside itself posting through the AWS SDK's client and at the fixed 64 posts in
//! flight it used before, and a bare HTTP client, with the CPU time per post. Every approach gets one unmeasured warm-up and the same repetitions; min, median and
//! max are reported.
//!
//! Run by `bench/fan-out.sh`, which builds, installs the baselines' tools and records the
//! table in bench/RESULTS.md; `--smoke` is the test command's small run (no baselines).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

#[path = "fan_out/clients.rs"]
mod clients;
mod local_server;
#[path = "fan_out/round_trips.rs"]
mod round_trips;
#[path = "fan_out/sender.rs"]
mod sender;

use clients::{Received, Run, now_micros, open_clients};
use local_server::Server;
use sender::{Posting, Sender, bench_settings, fixed_settings};

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

    /// The connections jobcast-local holds open.
    pub async fn connection_ids(&self) -> Result<Vec<String>> {
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

/// boto3 in a plain loop or a thread pool, as a separate Python process: warmed up once, then
/// one fan-out per line it is sent.
struct Boto3 {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Boto3 {
    fn start(python: &str, server: &Server, ids_file: &str, mode: &str) -> Result<Self> {
        use std::io::BufRead;
        let mut child = Command::new(python)
            .args(["bench/boto3_baseline.py", "--endpoint", &server.http()])
            .args(["--ids-file", ids_file, "--mode", mode, "--payload", PAYLOAD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("running the boto3 baseline")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line == "ready" => Ok(Self { child, lines }),
            other => bail!("boto3 baseline did not start: {other:?}"),
        }
    }

    /// One fan-out: when it started, and how many posts failed.
    fn fan_out(&mut self) -> Result<(u64, u64)> {
        let stdin = self.child.stdin.as_mut().context("stdin")?;
        writeln!(stdin, "go")?;
        let line = self.lines.next().context("boto3 baseline ended")??;
        let report: Value = serde_json::from_str(&line)?;
        let started = report["started_micros"]
            .as_u64()
            .context("started_micros")?;
        Ok((started, report["errors"].as_u64().unwrap_or(0)))
    }
}

impl Drop for Boto3 {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

const PAYLOAD: &str = r#"{"type":"progress_update","job_id":"bench","seq":1,"stage":"bench","progress":50.0,"message":"fan-out benchmark"}"#;

/// One approach at one size: its runs, sorted by time to the last receipt.
struct Approach {
    name: String,
    runs: Vec<Run>,
}

impl Approach {
    fn new(name: &str, mut runs: Vec<Run>) -> Self {
        runs.sort_by(|a, b| a.seconds_to_last.total_cmp(&b.seconds_to_last));
        Self {
            name: name.to_owned(),
            runs,
        }
    }

    fn median(&self) -> &Run {
        &self.runs[self.runs.len() / 2]
    }
}

struct Row {
    subscribers: usize,
    approaches: Vec<Approach>,
}

fn fmt_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| subscribers | approach | delivered (worst run) | delivered/s (median run) | time to last: min / median / max (ms) | p50 (ms) | p99 (ms) | jobcast is × faster |\n");
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let jobcast = row
            .approaches
            .iter()
            .find(|a| a.name.starts_with("jobcast"));
        for approach in &row.approaches {
            let run = approach.median();
            let ratio = match jobcast {
                Some(j) if !approach.name.starts_with("jobcast") => {
                    format!("{:.1}×", j.median().rate() / run.rate())
                }
                _ => String::new(),
            };
            let worst = approach.runs.iter().map(|r| r.delivered).min().unwrap_or(0);
            out.push_str(&format!(
                "| {} | {} | {}/{} | {:.0} | {:.0} / {:.0} / {:.0} | {:.1} | {:.1} | {} |\n",
                row.subscribers,
                approach.name,
                worst,
                run.expected,
                run.rate(),
                approach.runs[0].seconds_to_last * 1000.0,
                run.seconds_to_last * 1000.0,
                approach.runs[approach.runs.len() - 1].seconds_to_last * 1000.0,
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
    repeats: usize,
    sweep: Vec<usize>,
    latencies: Vec<u64>,
    round_trip_sizes: Vec<usize>,
    smoke: bool,
}

fn list<T: std::str::FromStr>(value: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?)
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        local_bin: "target/release/jobcast-local".into(),
        python: "python3".into(),
        sizes: vec![100, 1_000, 10_000],
        repeats: 3,
        sweep: vec![16, 32, 64, 128, 256, 512],
        latencies: vec![0, 5, 20, 50],
        round_trip_sizes: vec![5_000, 10_000],
        smoke: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--smoke" {
            // The test command's run: a few clients, every section but the baselines.
            args.smoke = true;
            args.sizes = vec![20];
            args.repeats = 1;
            args.sweep = vec![8];
            args.latencies = vec![5];
            args.round_trip_sizes = vec![20, 50];
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--local-bin" => args.local_bin = value,
            "--python" => args.python = value,
            "--sizes" => args.sizes = list(&value)?,
            "--repeats" => args.repeats = value.parse()?,
            "--sweep" => args.sweep = list(&value)?,
            "--latencies" => args.latencies = list(&value)?,
            "--round-trip-sizes" => args.round_trip_sizes = list(&value)?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// `repeats` fan-outs after one unmeasured warm-up, each timed from its start to the last
/// client's receipt.
async fn jobcast_runs(
    sender: &Sender,
    job: &str,
    received: &Received,
    n: usize,
    repeats: usize,
) -> Result<Vec<Run>> {
    let patience = Duration::from_secs(30 + n as u64 / 100);
    let mut runs = Vec::new();
    for round in 0..=repeats {
        received.reset();
        let started = now_micros();
        let sent = sender.send(job, round as u32).await?;
        received.wait_for(n as u64, patience).await;
        eprintln!("jobcast report: {}", sent.report);
        if round > 0 {
            runs.push(Run::from(received, n as u64, started));
        }
    }
    Ok(runs)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let mut rows = Vec::new();
    let mut memory_line = String::new();
    let mut ceiling_lines = Vec::new();
    let scratch = std::env::temp_dir().join(format!("jobcast-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let largest = *args.sizes.iter().max().context("a size")?;

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
        if n == largest {
            memory_line = format!(
                "jobcast-local resident memory: {rss_before} KiB idle, {rss_after} KiB with {n} open, subscribed connections: {:.1} KiB per connection.",
                rss_after.saturating_sub(rss_before) as f64 / n as f64
            );
        }
        let ids_file = scratch.join(format!("ids-{n}.txt"));
        std::fs::write(&ids_file, ids.join("\n"))?;
        let ids_file = ids_file.to_string_lossy().into_owned();
        let patience = Duration::from_secs(30 + n as u64 / 100);
        let mut approaches = Vec::new();

        let sender = Sender::start(
            &server.http(),
            &ids,
            &job,
            bench_settings(),
            Posting::Signed,
        )
        .await?;
        let runs = jobcast_runs(&sender, &job, &received, n, args.repeats).await?;
        approaches.push(Approach::new("jobcast sender", runs));

        if !args.smoke {
            for (mode, label) in [
                ("loop", "boto3 plain loop"),
                ("pool", "boto3, 32-thread pool"),
            ] {
                let mut boto3 = Boto3::start(&args.python, &server, &ids_file, mode)?;
                received.wait_for(n as u64, patience).await;
                let mut runs = Vec::new();
                for _ in 0..args.repeats {
                    received.reset();
                    let (started, errors) = boto3.fan_out()?;
                    received.wait_for(n as u64, patience).await;
                    if errors > 0 {
                        eprintln!("{label}: {errors} errors");
                    }
                    runs.push(Run::from(&received, n as u64, started));
                }
                approaches.push(Approach::new(label, runs));
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
            ceiling_lines.push((n, requests_per_second));
        }
        rows.push(Row {
            subscribers: n,
            approaches,
        });
        drop(server);
    }

    // Fixed concurrencies beside the adaptive sender, at the largest size, no round trip.
    let mut sweep_lines = Vec::new();
    if !args.sweep.is_empty() {
        let server = Server::start(&args.local_bin, &[])?;
        let received = Arc::new(Received::default());
        let job = "bench-sweep";
        open_clients(&server, largest, job, received.clone()).await?;
        let ids = server.connection_ids().await?;
        let mut settings: Vec<(String, jobcast::settings::Settings)> = args
            .sweep
            .iter()
            .map(|&c| (format!("fixed {c}"), fixed_settings(c)))
            .collect();
        settings.push(("jobcast (grows from 64)".into(), bench_settings()));
        for (label, settings) in settings.into_iter() {
            let sender =
                Sender::start(&server.http(), &ids, job, settings, Posting::Signed).await?;
            let runs = jobcast_runs(&sender, job, &received, largest, args.repeats).await?;
            let approach = Approach::new(&label, runs);
            let run = approach.median();
            sweep_lines.push(format!(
                "| {label} | {:.0} | {:.0} / {:.0} / {:.0} |",
                run.rate(),
                approach.runs[0].seconds_to_last * 1000.0,
                run.seconds_to_last * 1000.0,
                approach.runs[approach.runs.len() - 1].seconds_to_last * 1000.0,
            ));
        }
    }

    let cells = round_trips::measure(
        &args.local_bin,
        &args.latencies,
        &args.round_trip_sizes,
        args.repeats,
    )
    .await?;

    let mut out = String::new();
    out.push_str(&fmt_table(&rows));
    if !ceiling_lines.is_empty() {
        out.push_str("\nEmulator ceiling (wrk, 2 threads, 64 connections, 5 s of POST /@connections/{id} over the same clients):\n\n");
        out.push_str(
            "| subscribers | wrk requests/s | jobcast's delivered/s as % of it |\n|---:|---:|---:|\n",
        );
        for (n, rps) in &ceiling_lines {
            let jobcast = rows
                .iter()
                .find(|r| r.subscribers == *n)
                .and_then(|r| r.approaches.first())
                .map(|a| a.median().rate())
                .unwrap_or(f64::NAN);
            out.push_str(&format!(
                "| {n} | {rps:.0} | {:.0} % |\n",
                jobcast / rps * 100.0
            ));
        }
    }
    if !sweep_lines.is_empty() {
        out.push_str(&format!(
            "\nPosts in flight at {largest} subscribers, no round trip (a warm-up, then {} fan-outs each):\n\n| sender | delivered/s (median run) | time to last: min / median / max (ms) |\n|---|---:|---:|\n",
            args.repeats
        ));
        for line in &sweep_lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\nAt real round trips: every post slowed by `--post-latency-ms`, under `--throttle-rps 10000` (burst 5,000); a warm-up, then {} fan-outs per cell, 0.8 s apart so the bucket refills. CPU is the sender's thread's time on a CPU (`/proc/thread-self/schedstat`: handler, delivery, signing, HTTP) over the posts delivered.\n\n",
        args.repeats
    ));
    out.push_str(&round_trips::table(&cells));
    out.push('\n');
    out.push_str(&memory_line);
    out.push('\n');
    println!("{out}");
    std::io::stdout().flush()?;
    let _ = std::fs::remove_dir_all(&scratch);
    let lost = rows
        .iter()
        .flat_map(|row| &row.approaches)
        .filter(|a| a.name.starts_with("jobcast"))
        .flat_map(|a| &a.runs)
        .any(|run| run.delivered < run.expected)
        || cells.iter().any(round_trips::Cell::lost);
    if lost {
        bail!("jobcast's sender lost posts");
    }
    Ok(())
}
