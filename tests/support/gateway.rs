//! A gateway for in-process tests of the handlers, and connections put straight in the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::protocol::{ConnectionId, JobId, UserId};
use jobcast::store::{Connection, ConnectionStore, Subscription};
use serde_json::Value;

/// Every post that went through: (connection, frame).
pub type RecordingPosts = Arc<Mutex<Vec<(String, Value)>>>;

/// Posts to the `throttled` connections fail as throttled; the others take `delay` each, and
/// are recorded in `posts`; those to the `failing` connections then answer 500, as a post that
/// timed out after reaching the socket does. Which connections are throttled or failing may
/// change between sends; closes are recorded in `closed`.
#[derive(Default)]
pub struct ScriptedGateway {
    /// Connections whose posts answer 429.
    pub throttled: Mutex<HashSet<ConnectionId>>,
    /// Connections whose posts are delivered, then answer 500.
    pub failing: Mutex<HashSet<ConnectionId>>,
    /// Connections closed through the gateway, in order.
    pub closed: Mutex<Vec<ConnectionId>>,
    /// How long each post that goes through takes.
    pub delay: Duration,
    /// What went through.
    pub posts: RecordingPosts,
}

impl ScriptedGateway {
    /// A gateway that throttles `ids`.
    pub fn throttling(ids: &[&str]) -> Self {
        let gateway = Self::default();
        gateway.throttle(ids);
        gateway
    }

    /// Throttles exactly `ids` from now on.
    pub fn throttle(&self, ids: &[&str]) {
        *self.throttled.lock().unwrap() = ids.iter().map(|id| connection(id)).collect();
    }

    /// Makes posts to `id` answer 500 after delivering (or stop doing so).
    pub fn fail_after_delivery(&self, id: &ConnectionId, failing: bool) {
        let mut set = self.failing.lock().unwrap();
        if failing {
            set.insert(id.clone());
        } else {
            set.remove(id);
        }
    }

    /// The connections closed so far.
    pub fn closed(&self) -> Vec<ConnectionId> {
        self.closed.lock().unwrap().clone()
    }

    /// The posts that went through to `id`: their frames.
    pub fn frames_to(&self, id: &str) -> Vec<Value> {
        let posts = self.posts.lock().unwrap();
        posts
            .iter()
            .filter(|(to, _)| to == id)
            .map(|(_, frame)| frame.clone())
            .collect()
    }

    /// The posts that went through so far, as frames, forgetting them.
    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.posts.lock().unwrap())
            .into_iter()
            .map(|(_, frame)| frame)
            .collect()
    }

    /// How many posts went through.
    pub fn post_count(&self) -> usize {
        self.posts.lock().unwrap().len()
    }
}

impl ConnectionGateway for ScriptedGateway {
    async fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> Result<(), PostError> {
        if self.throttled.lock().unwrap().contains(connection_id) {
            return Err(PostError::Throttled);
        }
        if !self.delay.is_zero() {
            // Even a zero sleep waits for the timer's next millisecond tick.
            tokio::time::sleep(self.delay).await;
        }
        let frame = serde_json::from_slice(&payload).unwrap();
        self.posts
            .lock()
            .unwrap()
            .push((connection_id.to_string(), frame));
        if self.failing.lock().unwrap().contains(connection_id) {
            return Err(PostError::ServerError { status: 500 });
        }
        Ok(())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), PostError> {
        self.closed.lock().unwrap().push(id.clone());
        Ok(())
    }
}

fn connection(id: &str) -> ConnectionId {
    ConnectionId::parse(id).unwrap()
}

/// Connection `id`, of user `u`, subscribed to `job` (live after seq 0), straight in the store.
pub async fn listening<S: ConnectionStore>(store: &S, id: &str, job: &str) {
    listening_after(store, id, job, 0).await;
}

/// Connection `id`, of user `u`, subscribed to `job` live after `live_after` (as a subscribe
/// whose claim came after that seq leaves it), straight in the store.
pub async fn listening_after<S: ConnectionStore>(store: &S, id: &str, job: &str, live_after: u64) {
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::hours(1);
    let user_id = UserId::parse("u").unwrap();
    store
        .put_connection(&Connection {
            connection_id: connection(id),
            user_id: user_id.clone(),
            connected_at: now,
            expires_at: later,
        })
        .await
        .unwrap();
    store
        .put_subscription(&Subscription {
            connection_id: connection(id),
            job_id: JobId::parse(job).unwrap(),
            user_id,
            expires_at: later,
            live_after,
        })
        .await
        .unwrap();
}
