//! jobcast's sender under test: the real handler and delivery engine over an in-process store
//! holding the subscribers, posting through jobcast's Management API adapter (signed requests
//! on reqwest) to jobcast-local's `@connections` — or, as before, through the AWS SDK's client.
//!
//! It runs on a thread of its own, with a single-threaded runtime that also drives its HTTP
//! connections, so the thread's CPU time is the sender's whole cost (handler, delivery,
//! signing, HTTP), apart from the clients and jobcast-local sharing the machine.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use bytes::Bytes;
use chrono::Utc;
use jobcast::gateway::{ConnectionGateway, ManagementApiGateway, PostError};
use jobcast::handlers::Jobcast;
use jobcast::protocol::{ConnectionId, JobId, UserId};
use jobcast::settings::{AuthMode, Settings};
use jobcast::store::{Connection, ConnectionStore, MemoryStore, Subscription};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// One fan-out's answer: the sender's report and the CPU time the sender's thread spent on it.
pub struct Sent {
    /// The sender's report (`delivered`, `retried`, …).
    pub report: Value,
    /// User and system time of the sender's thread during the send.
    pub cpu: Duration,
}

impl Sent {
    /// CPU time per delivered post, in microseconds.
    pub fn cpu_micros_per_post(&self) -> f64 {
        let delivered = self.report["delivered"].as_u64().unwrap_or(0).max(1);
        self.cpu.as_secs_f64() * 1e6 / delivered as f64
    }
}

type Request = (String, u32, oneshot::Sender<Result<Sent>>);

/// jobcast's sender on its own thread, posting to the jobcast-local at `base_url`.
pub struct Sender {
    requests: mpsc::Sender<Request>,
}

/// Settings as jobcast's defaults, without authentication.
pub fn bench_settings() -> Settings {
    Settings {
        auth_mode: AuthMode::None,
        ..Settings::default()
    }
}

/// The settings of the sender before its fan-out learnt its concurrency: a fixed 64 in flight.
pub fn fixed_settings(in_flight: usize) -> Settings {
    let mut settings = bench_settings();
    settings.delivery.concurrency = in_flight;
    settings.delivery.initial_concurrency = in_flight;
    settings
}

/// How the sender posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posting {
    /// jobcast's adapter: each post signed by `aws-sigv4` and sent on reqwest.
    Signed,
    /// The AWS SDK's `PostToConnection`, as jobcast posted before.
    Sdk,
}

/// The CPU floor beside jobcast's sender: each post a bare, unsigned HTTP POST from reqwest
/// (no store, no AWS SDK, no signing), this many in flight.
pub struct RawHttp {
    /// Posts in flight.
    pub in_flight: usize,
}

impl Sender {
    /// The CPU floor's sender: posts the same payload to `ids` with [`RawHttp`].
    pub async fn start_raw(base_url: &str, ids: &[String], raw: RawHttp) -> Result<Self> {
        let (requests, mut incoming) = mpsc::channel::<Request>(1);
        let client = reqwest::Client::new();
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{base_url}/@connections/{}", urlencode(id)))
            .collect();
        on_own_thread("raw-sender", move || async move {
            while let Some((_, n, reply)) = incoming.recv().await {
                let _ = reply.send(raw_send(&client, &urls, raw.in_flight, n).await);
            }
        })?;
        Ok(Self { requests })
    }

    /// A sender whose store has `ids` subscribed to `job`, posting as `posting` says.
    pub async fn start(
        base_url: &str,
        ids: &[String],
        job: &str,
        settings: Settings,
        posting: Posting,
    ) -> Result<Self> {
        let (requests, mut incoming) = mpsc::channel::<Request>(1);
        let (ready, started) = oneshot::channel::<Result<()>>();
        let base_url = base_url.to_owned();
        let ids = ids.to_vec();
        let job = job.to_owned();
        on_own_thread("jobcast-sender", move || async move {
            let service = match subscribed(&ids, &job, settings).await {
                Ok(service) => service,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            let sdk = sdk_config().await;
            let _ = ready.send(Ok(()));
            match posting {
                Posting::Signed => {
                    let gateway = ManagementApiGateway::new(&sdk, &base_url);
                    serve(&service, &gateway, &mut incoming).await;
                }
                Posting::Sdk => {
                    let gateway = SdkGateway::new(&sdk, &base_url);
                    serve(&service, &gateway, &mut incoming).await;
                }
            }
        })?;
        started.await.context("the sender's thread")??;
        Ok(Self { requests })
    }

    /// Sends event `n` of `job` and waits for the fan-out's report.
    pub async fn send(&self, job: &str, n: u32) -> Result<Sent> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((job.to_owned(), n, reply))
            .await
            .context("the sender's thread ended")?;
        answer.await.context("the sender's thread ended")?
    }
}

/// Runs `work` on a thread of its own, on a single-threaded runtime that also drives its
/// connections: the thread's CPU time is the work's whole cost.
fn on_own_thread<F, W>(name: &str, work: F) -> std::io::Result<()>
where
    F: FnOnce() -> W + Send + 'static,
    W: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(work())
        })
        .map(drop)
}

async fn subscribed(ids: &[String], job: &str, settings: Settings) -> Result<Jobcast<MemoryStore>> {
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
    Ok(Jobcast::new(store, settings))
}

/// Answers each request for a fan-out with its report, until the sender is dropped.
async fn serve<G: ConnectionGateway>(
    service: &Jobcast<MemoryStore>,
    gateway: &G,
    incoming: &mut mpsc::Receiver<Request>,
) {
    while let Some((job, n, reply)) = incoming.recv().await {
        let _ = reply.send(send(service, gateway, &job, n).await);
    }
}

async fn sdk_config() -> aws_config::SdkConfig {
    jobcast::sdk::loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await
}

/// The baseline: posts through the AWS SDK's client, as jobcast's adapter did before it
/// signed its own requests (no SDK retries, the same timeouts).
struct SdkGateway {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl SdkGateway {
    fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Self {
        use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
        use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        Self {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }
}

impl ConnectionGateway for SdkGateway {
    async fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> Result<(), PostError> {
        let answer = self
            .client
            .post_to_connection()
            .connection_id(connection_id.as_str())
            .data(Blob::new(payload))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            // Only what the bench's emulator answers: gone, the quota, a fault; the rest is
            // counted as a transport failure (retried), which the bench never sees.
            Err(err) => Err(match err.raw_response().map(|r| r.status().as_u16()) {
                Some(410) => PostError::Gone,
                Some(429) => PostError::Throttled,
                Some(status) if status >= 500 => PostError::ServerError { status },
                _ => PostError::Transport(err.to_string()),
            }),
        }
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<(), PostError> {
        self.client
            .delete_connection()
            .connection_id(connection_id.as_str())
            .send()
            .await
            .map(drop)
            .map_err(|err| PostError::Transport(err.to_string()))
    }
}

async fn send<G: ConnectionGateway>(
    service: &Jobcast<MemoryStore>,
    gateway: &G,
    job: &str,
    n: u32,
) -> Result<Sent> {
    let before = thread_cpu()?;
    let outcome = service
        .handle_send(
            gateway,
            json!({"job_id": job, "event": {"type": "progress_update", "stage": "bench",
                "progress": f64::from(n % 100), "message": "fan-out benchmark"}}),
        )
        .await?;
    let cpu = thread_cpu()?.saturating_sub(before);
    Ok(Sent {
        report: serde_json::to_value(outcome)?,
        cpu,
    })
}

fn urlencode(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

async fn raw_send(
    client: &reqwest::Client,
    urls: &[String],
    in_flight: usize,
    n: u32,
) -> Result<Sent> {
    use futures::StreamExt;
    let before = thread_cpu()?;
    let payload = json!({"type": "progress_update", "job_id": "bench", "seq": n,
        "stage": "bench", "progress": f64::from(n % 100), "message": "fan-out benchmark"})
    .to_string();
    let delivered = futures::stream::iter(urls)
        .map(|url| {
            let request = client.post(url).body(payload.clone());
            async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .buffer_unordered(in_flight)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let cpu = thread_cpu()?.saturating_sub(before);
    Ok(Sent {
        report: json!({"delivered": delivered, "retried": 0}),
        cpu,
    })
}

/// This thread's time on a CPU so far, in nanoseconds (the first field of its `schedstat`).
fn thread_cpu() -> Result<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .context("/proc/thread-self/schedstat")?;
    let nanos: u64 = text
        .split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .context("schedstat's first field")?;
    Ok(Duration::from_nanos(nanos))
}
