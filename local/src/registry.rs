//! The live sockets, and the gateway adapter that posts to them in-process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::protocol::ConnectionId;
use tokio::sync::{mpsc, oneshot};

use crate::faults::{FaultInjector, Faults};
use crate::metrics::Counters;

/// What a connection's writer sends to its client.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    Binary(Bytes),
}

impl Outbound {
    /// The frame's payload size, as counted against the connection's queue.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
        }
    }
}

/// Frames queued for one client at most, whatever their size.
pub(crate) const OUTBOUND_FRAMES: usize = 4096;

/// Why the emulator ends a connection from its side.
#[derive(Debug, Clone)]
pub(crate) struct ServerClose {
    pub code: u16,
    pub reason: &'static str,
}

/// One open WebSocket.
pub(crate) struct LiveConnection {
    pub outbound: mpsc::Sender<Outbound>,
    /// Bytes posted and not yet written to the socket.
    pub queued_bytes: AtomicUsize,
    /// Frames written to the socket so far: whether the client is reading at all.
    pub written: AtomicU64,
    pub close: Mutex<Option<oneshot::Sender<ServerClose>>>,
    pub connected_at: DateTime<Utc>,
    last_active_ms: AtomicI64,
    pub source_ip: String,
    pub user_agent: Option<String>,
}

impl LiveConnection {
    pub fn new(
        outbound: mpsc::Sender<Outbound>,
        close: oneshot::Sender<ServerClose>,
        connected_at: DateTime<Utc>,
        source_ip: String,
        user_agent: Option<String>,
    ) -> Self {
        Self {
            outbound,
            queued_bytes: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            close: Mutex::new(Some(close)),
            connected_at,
            last_active_ms: AtomicI64::new(connected_at.timestamp_millis()),
            source_ip,
            user_agent,
        }
    }

    pub fn touch(&self) {
        self.last_active_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub fn last_active_at(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.last_active_ms.load(Ordering::Relaxed))
            .single()
            .unwrap_or(self.connected_at)
    }

    /// Asks the connection's task to close the socket (at most once).
    pub fn request_close(&self, close: ServerClose) {
        let sender = self.close.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(close);
        }
    }
}

/// Every open connection, by id. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    connections: Arc<RwLock<HashMap<ConnectionId, Arc<LiveConnection>>>>,
    max_message_bytes: usize,
    max_queued_bytes: usize,
    faults: Arc<FaultInjector>,
    /// When a post last reached a socket, in epoch milliseconds (0: never).
    last_delivery_millis: Arc<std::sync::atomic::AtomicI64>,
    /// Posts and connections, for `/metrics`.
    counters: Arc<Counters>,
}

/// How long a post waits on a full queue whose client reads nothing at all before the client
/// is closed with 1008. A client that reads, however slowly, is waited for: a replay posts its
/// events faster than any socket is written.
const STALL_PATIENCE: Duration = Duration::from_millis(250);

impl Registry {
    /// Puts `message` on the connection's queue. Past the queue's share (`max_queued_bytes`, or
    /// [`OUTBOUND_FRAMES`]) it waits while the client is reading; a client that has read
    /// nothing for [`STALL_PATIENCE`] is closed with 1008, and the post answers 410. So a
    /// client that stops reading holds a post up for a quarter of a second, once.
    async fn enqueue(
        &self,
        connection_id: &ConnectionId,
        connection: &LiveConnection,
        mut message: Outbound,
    ) -> Result<(), PostError> {
        let size = message.len();
        let mut progress = connection.written.load(Ordering::Relaxed);
        let mut stalled_since = tokio::time::Instant::now();
        loop {
            let queued = connection.queued_bytes.fetch_add(size, Ordering::Relaxed) + size;
            // A frame larger than the share still goes through an empty queue.
            if queued <= self.max_queued_bytes || queued == size {
                match connection.outbound.try_send(message) {
                    Ok(()) => return Ok(()),
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        connection.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                        return Err(PostError::Gone);
                    }
                    Err(mpsc::error::TrySendError::Full(back)) => message = back,
                }
            }
            connection.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            let written = connection.written.load(Ordering::Relaxed);
            if written != progress {
                progress = written;
                stalled_since = tokio::time::Instant::now();
            } else if stalled_since.elapsed() >= STALL_PATIENCE {
                tracing::warn!(%connection_id, queued, "a client that does not read; closing it with 1008");
                connection.request_close(ServerClose {
                    code: 1008,
                    reason: "Not reading: message queue full",
                });
                return Err(PostError::Gone);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(crate) fn new(limits: &crate::Limits, faults: Faults) -> Self {
        Self {
            connections: Arc::default(),
            max_message_bytes: limits.max_message_bytes,
            max_queued_bytes: limits.max_queued_bytes,
            faults: Arc::new(FaultInjector::new(faults)),
            last_delivery_millis: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// Posts and connections counted for `/metrics`.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn insert(&self, id: ConnectionId, connection: Arc<LiveConnection>) {
        self.write().insert(id, connection);
    }

    pub(crate) fn remove(&self, id: &ConnectionId) -> Option<Arc<LiveConnection>> {
        self.write().remove(id)
    }

    pub(crate) fn get(&self, id: &ConnectionId) -> Option<Arc<LiveConnection>> {
        self.connections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// When a post last reached a client, if one ever did.
    pub fn last_delivery(&self) -> Option<DateTime<Utc>> {
        match self
            .last_delivery_millis
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }

    /// Puts an account quota on posts, or lifts it (`None`), while running.
    pub fn set_throttle_rps(&self, rps: Option<std::num::NonZeroU32>) {
        self.faults.set_throttle_rps(rps);
    }

    /// Every open socket's id and connection time.
    pub fn snapshot(&self) -> Vec<(ConnectionId, DateTime<Utc>)> {
        let connections = self.connections.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = connections
            .iter()
            .map(|(id, connection)| (id.clone(), connection.connected_at))
            .collect();
        list.sort();
        list
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.connections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionId, Arc<LiveConnection>>> {
        self.connections.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Posting in-process behaves as `@connections` does: 410 for a closed connection, 413 above
/// the message limit. Text goes out as a text frame, anything else as binary.
impl ConnectionGateway for Registry {
    async fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> Result<(), PostError> {
        self.faults.before_post().await?;
        if payload.len() > self.max_message_bytes {
            return Err(PostError::PayloadTooLarge {
                size: payload.len(),
            });
        }
        let connection = self.get(connection_id).ok_or(PostError::Gone)?;
        let message = match std::str::from_utf8(&payload) {
            Ok(text) => Outbound::Text(text.to_owned()),
            Err(_) => Outbound::Binary(payload.clone()),
        };
        let result = self.enqueue(connection_id, &connection, message).await;
        tracing::debug!(%connection_id, ok = result.is_ok(), "post");
        match &result {
            Ok(()) => self.counters.sent(&payload),
            Err(_) => {
                self.counters.failed.inc();
            }
        }
        if result.is_ok() {
            self.last_delivery_millis.store(
                Utc::now().timestamp_millis(),
                std::sync::atomic::Ordering::Relaxed,
            );
            self.faults.after_delivery()?;
        }
        result
    }

    async fn connection_open(&self, connection_id: &ConnectionId) -> Result<bool, PostError> {
        Ok(self.get(connection_id).is_some())
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<(), PostError> {
        let connection = self.get(connection_id).ok_or(PostError::Gone)?;
        connection.request_close(ServerClose {
            code: 1000,
            reason: "Connection deleted",
        });
        Ok(())
    }
}
