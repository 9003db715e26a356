//! One bridge: a Redis source into a destination, through the lanes, until shut down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::destination::Destination;
use crate::lanes::{Lanes, Persistence};
use crate::status::Status;
use crate::{pubsub, stream};

/// What the bridge reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `PSUBSCRIBE pattern` (the hub's `user_noti:*`): messages published while the bridge is
    /// away are lost.
    PubSub {
        /// The channel pattern.
        pattern: String,
    },
    /// A stream read with a consumer group: nothing added while the bridge is away is lost.
    Stream {
        /// The stream's key.
        key: String,
        /// The consumer group (created at the stream's end if it does not exist).
        group: String,
        /// This bridge's name in the group; give each bridge of one group its own.
        consumer: String,
    },
}

impl Source {
    /// The `pattern` the health block reports: the pattern, or `stream:{key}`.
    pub fn describe(&self) -> String {
        match self {
            Self::PubSub { pattern } => pattern.clone(),
            Self::Stream { key, .. } => format!("stream:{key}"),
        }
    }
}

/// How a bridge runs.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// `redis://host:port` (or `rediss://`, `redis://user:password@host/db`).
    pub redis_url: String,
    /// What to read.
    pub source: Source,
    /// Messages forwarded at once (one lane each; a user's messages keep one lane).
    pub in_flight: usize,
}

/// Why a bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The Redis URL does not parse.
    #[error("the Redis URL is not valid: {0}")]
    RedisUrl(#[from] redis::RedisError),
}

/// How long shutting down waits for messages already read to be forwarded.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);

/// A running bridge.
pub struct Bridge {
    status: Arc<Status>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Bridge {
    /// Starts reading `config.source` into `destination`. Redis need not be up yet: the bridge
    /// connects, and reconnects, with backoff.
    pub fn start<D: Destination>(
        config: BridgeConfig,
        destination: D,
    ) -> Result<Self, BridgeError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let status = Arc::new(Status::new(config.source.describe()));
        let (shutdown, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            client,
            config,
            Arc::new(destination),
            status.clone(),
            stopped,
        ));
        Ok(Self {
            status,
            shutdown,
            task,
        })
    }

    /// Its health and metrics.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Stops reading, forwards what was read (for up to 10 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(DRAIN_WITHIN * 2, self.task)
            .await
            .is_err()
        {
            tracing::warn!("the bridge did not stop in time");
        }
        tracing::info!("bridge stopped");
    }
}

async fn run<D: Destination>(
    client: redis::Client,
    config: BridgeConfig,
    destination: Arc<D>,
    status: Arc<Status>,
    stopped: watch::Receiver<bool>,
) {
    match config.source {
        Source::PubSub { pattern } => {
            let lanes = Lanes::start(
                config.in_flight,
                destination,
                status.clone(),
                None,
                Persistence::Attempts(5),
                stopped.clone(),
            );
            pubsub::read(&client, &pattern, &lanes, &status, stopped).await;
            lanes.drain(DRAIN_WITHIN).await;
        }
        Source::Stream {
            key,
            group,
            consumer,
        } => {
            let (acks, finished) = mpsc::unbounded_channel();
            let acker = tokio::spawn(stream::acknowledge(
                client.clone(),
                key.clone(),
                group.clone(),
                finished,
            ));
            let lanes = Lanes::start(
                config.in_flight,
                destination,
                status.clone(),
                Some(acks.clone()),
                Persistence::UntilShutdown,
                stopped.clone(),
            );
            let source = stream::Group {
                key: &key,
                group: &group,
                consumer: &consumer,
            };
            stream::read(&client, source, &lanes, &status, &acks, stopped).await;
            lanes.drain(DRAIN_WITHIN).await;
            drop(acks);
            let _ = acker.await;
        }
    }
}
