//! `jobcast watch`: one job, live, with the same guarantees as the JS client: each event shown
//! once and in seq order, across reconnects (resubscribe from the last seq seen; drop what was
//! seen; on a gap, ask again from the last seq).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jobcast::protocol::JobId;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// API Gateway closes connections idle for 10 minutes.
const PING_EVERY: Duration = Duration::from_secs(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[arg(long = "job", value_parser = super::parse_job)]
    job_id: JobId,
    /// The WebSocket URL: jobcast-local's, or the stack's WebSocketUrl output.
    #[arg(long, env = "JOBCAST_URL", default_value = "ws://127.0.0.1:3001")]
    url: String,
    /// A JWT, sent as the `bearer.<jwt>` subprotocol (deployed stacks, `--auth jwt`).
    #[arg(long, env = "JOBCAST_TOKEN")]
    token: Option<String>,
    /// Connect as this user (jobcast-local with `--auth none` only).
    #[arg(long)]
    user: Option<String>,
    /// Show every event the job has had, not only those after its current status.
    #[arg(long)]
    from_start: bool,
    /// One line per event instead of a progress bar (for logs and scripts).
    #[arg(long)]
    plain: bool,
    /// Ask for the job's status after this many seconds without a word about it, and resume
    /// from the last seq shown if the job went further (a lost final event has nothing after
    /// it to reveal the gap); 0 turns the check off.
    #[arg(long, default_value_t = 60)]
    quiet_check_secs: u64,
}

/// The correlation id of the status asked for after a quiet spell.
const QUIET_CHECK: &str = "quiet-check";

/// How the watch ended.
enum End {
    Completed,
    Failed,
    Cancelled,
    Refused(String),
}

impl End {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Completed => ExitCode::SUCCESS,
            Self::Refused(_) => ExitCode::from(2),
            Self::Failed => ExitCode::from(3),
            Self::Cancelled => ExitCode::from(4),
        }
    }
}

pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let bar = if args.plain {
        ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::hidden())
    } else {
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {prefix} {wide_msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    bar.set_prefix(args.job_id.to_string());
    let mut view = View {
        bar,
        plain: args.plain,
        last_seq: args.from_start.then_some(0),
    };
    let mut attempt = 0u32;
    loop {
        match view.session(&args).await {
            Ok(Some(end)) => {
                view.bar.finish();
                if let End::Refused(reason) = &end {
                    eprintln!("jobcast: {reason}");
                }
                return Ok(end.exit_code());
            }
            Ok(None) => attempt = 0,
            Err(err) => view.note(&format!("connection problem: {err:#}")),
        }
        // Exponential backoff with full jitter.
        let ceiling = (Duration::from_millis(500) * 2u32.saturating_pow(attempt)).min(MAX_BACKOFF);
        let delay = ceiling.mul_f64(rand::random::<f64>());
        attempt = attempt.saturating_add(1);
        view.note(&format!(
            "disconnected; reconnecting in {:.1} s",
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
    }
}

struct View {
    bar: ProgressBar,
    plain: bool,
    /// The last seq shown; None until the first `subscribed`.
    last_seq: Option<u64>,
}

impl View {
    fn note(&self, text: &str) {
        if self.plain {
            println!("# {text}");
        } else {
            self.bar.set_message(text.to_owned());
        }
    }

    /// One connection: subscribe (from the last seq shown) and follow until the job ends
    /// (Some) or the connection does (None).
    async fn session(&mut self, args: &WatchArgs) -> anyhow::Result<Option<End>> {
        let mut url = args.url.clone();
        let authority_and_path = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        if !authority_and_path.contains('/') {
            url.push('/');
        }
        if let Some(user) = &args.user {
            url.push_str(if url.contains('?') { "&" } else { "?" });
            url.push_str(&format!("user_id={user}"));
        }
        let mut request = url.into_client_request().context("the WebSocket URL")?;
        if let Some(token) = &args.token {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                format!("jobcast, bearer.{token}")
                    .parse()
                    .context("the token is not a valid header value")?,
            );
        }
        let mut socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            // Refused at the door (bad token, not allowed): retrying will not help.
            Err(tokio_tungstenite::tungstenite::Error::Http(response))
                if response.status().is_client_error() =>
            {
                return Ok(Some(End::Refused(format!(
                    "the server refused the connection: {}",
                    response.status()
                ))));
            }
            Err(err) => return Err(anyhow::Error::new(err).context("connecting")),
        };
        let subscribe = |last_seq: Option<u64>| {
            let mut frame = json!({"action": "subscribe", "job_id": args.job_id});
            if let Some(seq) = last_seq {
                frame["last_seq"] = json!(seq);
            }
            Message::Text(frame.to_string().into())
        };
        socket.send(subscribe(self.last_seq)).await?;
        let mut resyncing = false;
        // A replay paused at its 500 events, until the next part is `subscribed`.
        let mut paused = false;
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let quiet = Duration::from_secs(args.quiet_check_secs);
        let check_every = (quiet / 4).max(Duration::from_millis(250));
        let mut quiet_check =
            tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        let mut heard_at = tokio::time::Instant::now();
        loop {
            let message = tokio::select! {
                message = socket.next() => message,
                _ = ping.tick() => {
                    socket.send(Message::Text(json!({"action": "ping"}).to_string().into())).await?;
                    continue;
                }
                _ = quiet_check.tick(), if !quiet.is_zero() => {
                    if !resyncing && heard_at.elapsed() >= quiet {
                        heard_at = tokio::time::Instant::now();
                        let ask = json!({"action": "request_status", "job_id": args.job_id, "correlation_id": QUIET_CHECK});
                        socket.send(Message::Text(ask.to_string().into())).await?;
                    }
                    continue;
                }
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(err.into()),
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            heard_at = tokio::time::Instant::now();
            match frame["type"].as_str().unwrap_or_default() {
                "subscribed" => {
                    // Never back: a late answer to an earlier subscribe must not repeat events.
                    self.last_seq = self.last_seq.max(frame["after_seq"].as_u64());
                    resyncing = false;
                    paused = false;
                    if frame["recovered"] == false {
                        self.note("the missed events have expired; showing the current status");
                    }
                }
                "job_status" if frame["correlation_id"] == QUIET_CHECK => {
                    // The job went further than what was shown: resume from there, and the
                    // replay brings what was lost, its end included.
                    let last = self.last_seq.unwrap_or(0);
                    if frame["last_seq"].as_u64().is_some_and(|seq| seq > last) {
                        self.note("events were lost in transit; resuming");
                        resyncing = true;
                        socket.send(subscribe(Some(last))).await?;
                    }
                }
                "replay_paused" => {
                    // One subscribe replays at most 500 events: ask for the next ones when the
                    // server says the connection may.
                    resyncing = true;
                    paused = true;
                    let wait = frame["retry_after_ms"].as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(wait.min(60_000))).await;
                    socket.send(subscribe(self.last_seq)).await?;
                }
                "job_status" => {
                    if let Some(end) = self.show_status(&frame) {
                        return Ok(Some(end));
                    }
                }
                "error" => {
                    let code = frame["code"].as_str().unwrap_or_default();
                    let message = frame["message"].as_str().unwrap_or_default();
                    if code == "forbidden" || code == "invalid_message" {
                        return Ok(Some(End::Refused(format!("{code}: {message}"))));
                    }
                    if paused && (code == "rate_limited" || code == "replay_in_progress") {
                        // The next part of a paused replay, asked for too soon: ask again.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        socket.send(subscribe(self.last_seq)).await?;
                        continue;
                    }
                    self.note(&format!("{code}: {message}"));
                    // A resubscribe that was refused for now (the service busy): events and
                    // the quiet check go on, and the next gap asks again.
                    resyncing = false;
                }
                "progress_update" | "stage_complete" | "job_complete" | "job_failed"
                | "job_cancelled" => {
                    let Some(seq) = frame["seq"].as_u64() else {
                        continue;
                    };
                    let last = self.last_seq.unwrap_or(0);
                    if seq <= last || resyncing {
                        continue; // seen already, or the replay will bring it in order
                    }
                    if seq > last + 1 {
                        resyncing = true;
                        socket.send(subscribe(Some(last))).await?;
                        continue;
                    }
                    self.last_seq = Some(seq);
                    if let Some(end) = self.show_event(&frame) {
                        return Ok(Some(end));
                    }
                }
                _ => {}
            }
        }
    }

    fn show_status(&self, status: &Value) -> Option<End> {
        if let Some(progress) = status["progress"].as_f64() {
            self.bar.set_position(progress.round() as u64);
        }
        let state = status["status"].as_str().unwrap_or_default();
        let line = format!(
            "{state} {} {}",
            status["stage"].as_str().unwrap_or_default(),
            status["message"].as_str().unwrap_or_default()
        );
        if self.plain {
            println!("status {}", line.trim_end());
        } else {
            self.bar.set_message(line.trim_end().to_owned());
        }
        match state {
            "completed" => Some(End::Completed),
            "failed" => Some(End::Failed),
            "cancelled" => Some(End::Cancelled),
            _ => None,
        }
    }

    fn show_event(&self, event: &Value) -> Option<End> {
        let kind = event["type"].as_str().unwrap_or_default();
        let seq = event["seq"].as_u64().unwrap_or_default();
        let (line, end) = match kind {
            "progress_update" => {
                let progress = event["progress"].as_f64().unwrap_or_default();
                self.bar.set_position(progress.round() as u64);
                let eta = event["estimated_seconds_remaining"]
                    .as_u64()
                    .map(|s| format!(" (about {s} s left)"))
                    .unwrap_or_default();
                (
                    format!(
                        "{progress:.0}% {} {}{eta}",
                        event["stage"].as_str().unwrap_or_default(),
                        event["message"].as_str().unwrap_or_default()
                    ),
                    None,
                )
            }
            "stage_complete" => (
                format!("{} done", event["stage"].as_str().unwrap_or_default()),
                None,
            ),
            "job_complete" => {
                self.bar.set_position(100);
                (
                    format!("completed {}", event["results"]),
                    Some(End::Completed),
                )
            }
            "job_failed" => (
                format!(
                    "failed: {} {}",
                    event["error"]["message"].as_str().unwrap_or_default(),
                    event["error"]["suggested_action"]
                        .as_str()
                        .unwrap_or_default()
                ),
                Some(End::Failed),
            ),
            _ => (
                format!("cancelled {}", event["reason"].as_str().unwrap_or_default()),
                Some(End::Cancelled),
            ),
        };
        let line = line.trim_end().to_owned();
        if self.plain {
            println!("seq={seq} {kind} {line}");
        } else if end.is_some() {
            self.bar.println(&line);
            self.bar.set_message(line);
        } else {
            self.bar.set_message(line);
        }
        end
    }
}
