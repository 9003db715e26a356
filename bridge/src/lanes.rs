//! Forwarding with a bound and an order: each user's messages go down one lane, one at a
//! time, so they reach the sender in the order Redis gave them; the number of lanes bounds
//! what is in flight, and a full lane holds the reader back.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::destination::{Destination, DestinationError};
use crate::message::Forward;
use crate::status::Status;

/// Messages waiting in one lane.
const LANE_DEPTH: usize = 64;
/// The first pause before trying an unavailable destination again; it doubles to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// How long a message is tried while the destination is unavailable.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Persistence {
    /// A few times, then given up (Pub/Sub: nothing could bring it back anyway).
    Attempts(u32),
    /// Until the bridge shuts down, leaving it unacknowledged in the stream.
    UntilShutdown,
}

/// The lanes and their workers.
pub(crate) struct Lanes {
    senders: Vec<mpsc::Sender<Forward>>,
    workers: JoinSet<()>,
}

/// What a worker needs.
struct Worker<D> {
    destination: Arc<D>,
    status: Arc<Status>,
    acks: Option<mpsc::UnboundedSender<String>>,
    persistence: Persistence,
    shutdown: watch::Receiver<bool>,
}

impl Lanes {
    /// Starts `count` lanes forwarding to `destination`; a stream entry's id goes to `acks`
    /// once the sender has taken (or refused) it.
    pub(crate) fn start<D: Destination>(
        count: usize,
        destination: Arc<D>,
        status: Arc<Status>,
        acks: Option<mpsc::UnboundedSender<String>>,
        persistence: Persistence,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut senders = Vec::new();
        let mut workers = JoinSet::new();
        for _ in 0..count.max(1) {
            let (sender, mut receiver) = mpsc::channel::<Forward>(LANE_DEPTH);
            senders.push(sender);
            let worker = Worker {
                destination: destination.clone(),
                status: status.clone(),
                acks: acks.clone(),
                persistence,
                shutdown: shutdown.clone(),
            };
            workers.spawn(async move {
                while let Some(forward) = receiver.recv().await {
                    worker.deliver(forward).await;
                }
            });
        }
        Self { senders, workers }
    }

    /// Queues `forward` in its user's lane, waiting while the lane is full.
    pub(crate) async fn send(&self, forward: Forward) {
        let mut hasher = DefaultHasher::new();
        forward.user_id.hash(&mut hasher);
        let lane = (hasher.finish() % self.senders.len() as u64) as usize;
        if self.senders[lane].send(forward).await.is_err() {
            tracing::error!("a lane's worker has stopped; message dropped");
        }
    }

    /// Stops taking messages and waits up to `within` for the lanes to empty.
    pub(crate) async fn drain(self, within: Duration) {
        let Self {
            senders,
            mut workers,
        } = self;
        drop(senders);
        let drained = tokio::time::timeout(within, async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("the lanes did not empty in time; what was left is not forwarded");
            workers.abort_all();
        }
    }
}

impl<D: Destination> Worker<D> {
    async fn deliver(&self, forward: Forward) {
        let mut pause = FIRST_RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            match self.destination.forward(&forward).await {
                Ok(accepted) => {
                    self.status.forwarded(
                        forward.message_type,
                        accepted.delivered,
                        accepted.failed,
                    );
                    tracing::debug!(user_id = %forward.user_id, message_type = forward.message_type, delivered = accepted.delivered, "forwarded");
                    return self.ack(&forward);
                }
                Err(DestinationError::Refused(reason)) => {
                    self.status.rejected("refused");
                    tracing::warn!(user_id = %forward.user_id, message_type = forward.message_type, reason, "the sender refused a message; not forwarded");
                    return self.ack(&forward);
                }
                Err(DestinationError::Unavailable(reason)) => {
                    let give_up = match self.persistence {
                        Persistence::Attempts(most) => attempt >= most,
                        Persistence::UntilShutdown => *self.shutdown.borrow(),
                    };
                    if give_up {
                        if let Persistence::UntilShutdown = self.persistence {
                            tracing::warn!(user_id = %forward.user_id, entry = ?forward.entry_id, reason, "shutting down with the sender unreachable: the entry stays pending for the next bridge");
                        } else {
                            self.status.failed();
                            tracing::error!(user_id = %forward.user_id, attempt, reason, "the sender could not be reached; message given up");
                        }
                        return;
                    }
                    tracing::warn!(user_id = %forward.user_id, attempt, reason, "the sender could not be reached; trying again");
                    let mut shutdown = self.shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = crate::pause::stopping(&mut shutdown) => {}
                    }
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    attempt += 1;
                }
            }
        }
    }

    fn ack(&self, forward: &Forward) {
        if let (Some(acks), Some(entry_id)) = (&self.acks, &forward.entry_id) {
            let _ = acks.send(entry_id.clone());
        }
    }
}
