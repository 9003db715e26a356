//! `jobcast`: watch a job live in a terminal, or publish its events by hand, against
//! jobcast-local or a deployed stack.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use jobcast::protocol::SendOutcome;
use jobcast::protocol::{
    FailureDetail, JobCancelled, JobComplete, JobEvent, JobFailed, JobId, Percent, ProgressUpdate,
    StageComplete, StageName, UserId,
};
use jobcast::publish::{PublishError, Publisher, Receipt};
use serde_json::Value;

mod bridge;
mod cost;
mod watch;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "jobcast from a terminal: watch a job live, publish its events by hand, bridge Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow a job with a progress bar until it completes, fails or is cancelled
    /// (exit 0, 3, 4). Reconnects by itself and resumes from the last seq seen.
    Watch(watch::WatchArgs),
    /// Publish one event (or register a job) through the sender, as a pipeline stage would.
    Send {
        #[command(flatten)]
        target: SenderTarget,
        #[arg(long = "job", value_parser = parse_job)]
        job_id: JobId,
        #[command(subcommand)]
        what: SendKind,
    },
    /// Write the message contract's JSON Schemas (generated from the Rust types) to a folder.
    Schemas {
        #[arg(long, default_value = "schemas")]
        out: std::path::PathBuf,
    },
    /// Forward what a notification hub's publishers put on Redis to jobcast.
    #[command(subcommand)]
    Bridge(bridge::BridgeKind),
    /// Price a month of traffic at list prices: jobcast (its measured per-operation store
    /// costs), the seed design, and a hosted service.
    Cost(cost::CostArgs),
    /// Print a job's latest snapshot, as the sender's `get_job` answers it.
    Status {
        #[command(flatten)]
        target: SenderTarget,
        #[arg(long = "job", value_parser = parse_job)]
        job_id: JobId,
    },
}

#[derive(Debug, Subcommand)]
enum SendKind {
    /// Declare the job (and its owner) before its first event.
    Register {
        #[arg(long = "user", value_parser = parse_user)]
        user_id: Option<UserId>,
    },
    #[command(flatten)]
    Event(EventKind),
}

#[derive(Debug, Subcommand)]
enum EventKind {
    Progress {
        #[arg(long, value_parser = parse_stage)]
        stage: StageName,
        /// 0 to 100.
        #[arg(long, value_parser = parse_percent)]
        progress: Percent,
        #[arg(long, default_value = "")]
        message: String,
        /// Estimated seconds remaining.
        #[arg(long)]
        eta: Option<u64>,
    },
    /// A stage finished.
    Stage {
        #[arg(long, value_parser = parse_stage)]
        stage: StageName,
        /// JSON.
        #[arg(long, default_value = "null", value_parser = parse_json)]
        results: Value,
    },
    Complete {
        /// JSON.
        #[arg(long, default_value = "null", value_parser = parse_json)]
        results: Value,
    },
    Failed {
        #[arg(long)]
        code: String,
        #[arg(long)]
        message: String,
        #[arg(long)]
        suggested_action: Option<String>,
        #[arg(long, value_parser = parse_stage)]
        stage: Option<StageName>,
    },
    Cancelled {
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Where the sender is: jobcast-local's Lambda Invoke path, or a deployed function (and,
/// for events, optionally its queue).
#[derive(Debug, Args)]
struct SenderTarget {
    /// Send events through the stack's FIFO queue (its EventQueueUrl output) instead of
    /// invoking; registrations and questions still invoke.
    #[arg(long, env = "JOBCAST_QUEUE_URL", conflicts_with = "local")]
    queue: Option<String>,
    /// jobcast-local's HTTP address, e.g. http://127.0.0.1:3001 (no AWS credentials needed).
    #[arg(long, env = "JOBCAST_LOCAL", conflicts_with = "function")]
    local: Option<String>,
    /// The deployed sender's name or ARN (the stack's SenderFunctionArn output); AWS
    /// credentials and region come from the usual places.
    #[arg(
        long,
        env = "JOBCAST_SENDER_FUNCTION",
        default_value = "jobcast-sender"
    )]
    function: String,
}

impl SenderTarget {
    async fn publisher(&self) -> Publisher {
        let mut loader = jobcast::sdk::loader();
        let function = match &self.local {
            Some(endpoint) => {
                loader = loader
                    .endpoint_url(endpoint)
                    .region(aws_config::Region::new("us-east-1"))
                    .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                        "jobcastlocal",
                        "jobcastlocal",
                        None,
                        None,
                        "jobcast-local",
                    ));
                "sender".to_owned()
            }
            None => self.function.clone(),
        };
        let config = loader.load().await;
        let lambda = aws_sdk_lambda::Client::new(&config);
        match &self.queue {
            Some(queue_url) => Publisher::queue(aws_sdk_sqs::Client::new(&config), queue_url)
                .with_invoke(lambda, function),
            None => Publisher::invoke(lambda, function),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jobcast: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Watch(args) => watch::run(args).await,
        Command::Bridge(kind) => bridge::run(kind).await,
        Command::Cost(args) => {
            cost::run(&args);
            Ok(ExitCode::SUCCESS)
        }
        Command::Send {
            target,
            job_id,
            what,
        } => {
            let publisher = target.publisher().await;
            let outcome = match what {
                SendKind::Register { user_id } => publisher
                    .register(&job_id, user_id.as_ref())
                    .await
                    .map(Receipt::Answered),
                SendKind::Event(kind) => publisher.event(&job_id, event_of(kind)).await,
            };
            answer(outcome)
        }
        Command::Schemas { out } => {
            std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
            for (name, document) in jobcast::schemas::documents() {
                let path = out.join(name);
                std::fs::write(&path, jobcast::schemas::to_file_text(&document))
                    .with_context(|| path.display().to_string())?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { target, job_id } => {
            let publisher = target.publisher().await;
            match publisher.get_job(&job_id).await? {
                Some(job) => {
                    println!("{}", serde_json::to_string_pretty(&job)?);
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("jobcast: job {job_id} does not exist (or has expired)");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// Prints the sender's answer (or the queue's receipt); a refusal (a finished job, another
/// owner) exits 1.
fn answer(receipt: Result<Receipt, PublishError>) -> anyhow::Result<ExitCode> {
    match receipt.context("the sender did not take the request")? {
        Receipt::Answered(outcome) => {
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(match outcome {
                SendOutcome::Rejected { .. } => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            })
        }
        Receipt::Queued {
            message_id,
            sequence_number,
        } => {
            let receipt =
                serde_json::json!({"queued": message_id, "sequence_number": sequence_number});
            println!("{}", serde_json::to_string_pretty(&receipt)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn event_of(kind: EventKind) -> JobEvent {
    use EventKind as SendKind;
    match kind {
        SendKind::Progress {
            stage,
            progress,
            message,
            eta,
        } => JobEvent::ProgressUpdate(ProgressUpdate {
            stage,
            progress,
            message,
            estimated_seconds_remaining: eta,
        }),
        SendKind::Stage { stage, results } => {
            JobEvent::StageComplete(StageComplete { stage, results })
        }
        SendKind::Complete { results } => JobEvent::JobComplete(JobComplete { results }),
        SendKind::Failed {
            code,
            message,
            suggested_action,
            stage,
        } => JobEvent::JobFailed(JobFailed {
            stage,
            error: FailureDetail {
                code,
                message,
                suggested_action,
            },
        }),
        SendKind::Cancelled { reason } => JobEvent::JobCancelled(JobCancelled { reason }),
    }
}

fn parse_job(text: &str) -> Result<JobId, String> {
    JobId::parse(text.to_owned()).map_err(|err| err.to_string())
}

fn parse_user(text: &str) -> Result<UserId, String> {
    UserId::parse(text.to_owned()).map_err(|err| err.to_string())
}

fn parse_stage(text: &str) -> Result<StageName, String> {
    StageName::parse(text.to_owned()).map_err(|err| err.to_string())
}

fn parse_percent(text: &str) -> Result<Percent, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    Percent::new(value).map_err(|err| err.to_string())
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))
}
