//! Fault injection on the store (off by default): calls that fail as DynamoDB's do, and
//! latency on every call, for any store. A throttled call never happened; an unavailable one
//! (a 500 or a timeout) may have been applied before its caller heard the error, as in AWS.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobcast::protocol::{ConnectionId, EventId, JobId, Seq, UserId};
use jobcast::store::{
    AppendOutcome, Audience, Connection, ConnectionStore, FrameCharge, FrameTake, FrameVerdict,
    JobRecord, JobStore, LogPage, NewEvent, NewJob, Owed, Page, PageRequest, RegisterOutcome,
    Removed, ReplayClaim, ReplayEnd, ReplayStart, StoreError, StoredEvent, Subscription,
};
use rand::Rng;

/// How a failing store call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreFailKind {
    /// `ProvisionedThroughputExceeded`: refused before anything was done.
    Throttled,
    /// A 500 or a timeout: done or not, the caller cannot tell.
    Unavailable,
}

/// Which store faults to inject.
#[derive(Debug, Clone, Default)]
pub struct StoreFaults {
    /// The share of store calls (0.0–1.0) that fail.
    pub fail_rate: f64,
    /// How they fail, chosen at random among these (throttled when empty).
    pub fail_kinds: Vec<StoreFailKind>,
    /// Added to every store call.
    pub latency: Duration,
}

impl StoreFaults {
    /// Whether any fault is injected.
    pub fn is_active(&self) -> bool {
        self.fail_rate > 0.0 || !self.latency.is_zero()
    }
}

/// `S`, failing and slowing as `StoreFaults` say.
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    faults: StoreFaults,
}

/// When an injected failure strikes.
enum Strike {
    None,
    Before(StoreError),
    After(StoreError),
}

impl<S> FaultyStore<S> {
    /// `inner`, with `faults`.
    pub fn new(inner: S, faults: StoreFaults) -> Self {
        Self { inner, faults }
    }

    /// The store behind the faults.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn strike(&self, operation: &str) -> Strike {
        if !self.faults.latency.is_zero() {
            tokio::time::sleep(self.faults.latency).await;
        }
        let mut rng = rand::rng();
        if self.faults.fail_rate <= 0.0 || !rng.random_bool(self.faults.fail_rate.clamp(0.0, 1.0)) {
            return Strike::None;
        }
        let kinds = &self.faults.fail_kinds;
        let kind = match kinds.len() {
            0 => StoreFailKind::Throttled,
            len => kinds[rng.random_range(0..len)],
        };
        match kind {
            StoreFailKind::Throttled => {
                Strike::Before(StoreError::Throttled(format!("{operation}: injected")))
            }
            StoreFailKind::Unavailable => {
                let err = StoreError::Unavailable(format!("{operation}: injected"));
                if rng.random_bool(0.5) {
                    Strike::Before(err)
                } else {
                    Strike::After(err)
                }
            }
        }
    }

    /// Runs `call` under a strike: not at all, or with its result replaced by the error.
    async fn run<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.strike(operation).await {
            Strike::None => call.await,
            Strike::Before(err) => Err(err),
            Strike::After(err) => {
                let _ = call.await;
                Err(err)
            }
        }
    }
}

impl<S: ConnectionStore + Clone> ConnectionStore for FaultyStore<S> {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.run("put_connection", self.inner.put_connection(connection))
            .await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.run("get_connection", self.inner.get_connection(id))
            .await
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<Removed, StoreError> {
        self.run("delete_connection", self.inner.delete_connection(id))
            .await
    }

    async fn touch_connection(
        &self,
        id: &ConnectionId,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let call = self.inner.touch_connection(id, expires_at);
        self.run("touch_connection", call).await
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let call = self.inner.put_subscription(subscription);
        self.run("put_subscription", call).await
    }

    async fn put_claimed_subscription(
        &self,
        subscription: &Subscription,
        claim: &ReplayClaim,
    ) -> Result<(), StoreError> {
        let call = self.inner.put_claimed_subscription(subscription, claim);
        self.run("put_subscription", call).await
    }

    async fn delete_subscription(
        &self,
        id: &ConnectionId,
        job: &JobId,
    ) -> Result<bool, StoreError> {
        let call = self.inner.delete_subscription(id, job);
        self.run("delete_subscription", call).await
    }

    async fn take_frame_token(
        &self,
        id: &ConnectionId,
        take: FrameTake,
    ) -> Result<Option<FrameVerdict>, StoreError> {
        let call = self.inner.take_frame_token(id, take);
        self.run("take_frame_token", call).await
    }

    async fn charge_user_tokens(
        &self,
        user_id: &UserId,
        charge: FrameCharge,
    ) -> Result<i64, StoreError> {
        let call = self.inner.charge_user_tokens(user_id, charge);
        self.run("charge_user_tokens", call).await
    }

    async fn charge_frame_tokens(
        &self,
        id: &ConnectionId,
        charge: FrameCharge,
    ) -> Result<Option<i64>, StoreError> {
        let call = self.inner.charge_frame_tokens(id, charge);
        self.run("charge_frame_tokens", call).await
    }

    async fn subscribed_jobs(
        &self,
        id: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        let call = self.inner.subscribed_jobs(id, limit);
        self.run("subscribed_jobs", call).await
    }

    async fn connections_of(
        &self,
        audience: &Audience,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let call = self.inner.connections_of(audience, page);
        self.run("connections_of", call).await
    }
}

impl<S: JobStore + Clone> JobStore for FaultyStore<S> {
    async fn register_job(&self, job: NewJob) -> Result<RegisterOutcome, StoreError> {
        self.run("register_job", self.inner.register_job(job)).await
    }

    async fn append_event(&self, event: NewEvent) -> Result<AppendOutcome, StoreError> {
        self.run("append_event", self.inner.append_event(event))
            .await
    }

    async fn note_delivery(
        &self,
        job: &JobId,
        event_id: &EventId,
        owed: &Owed,
    ) -> Result<(), StoreError> {
        let call = self.inner.note_delivery(job, event_id, owed);
        self.run("note_delivery", call).await
    }

    async fn get_job(&self, job: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.run("get_job", self.inner.get_job(job)).await
    }

    async fn events_after(
        &self,
        job: &JobId,
        page: LogPage,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.run("events_after", self.inner.events_after(job, page))
            .await
    }

    async fn start_replay(&self, claim: &ReplayClaim) -> Result<ReplayStart, StoreError> {
        self.run("start_replay", self.inner.start_replay(claim))
            .await
    }

    async fn abandon_replay(
        &self,
        claim: &ReplayClaim,
        kept: Option<&Subscription>,
    ) -> Result<(), StoreError> {
        self.run("abandon_replay", self.inner.abandon_replay(claim, kept))
            .await
    }

    async fn finish_replay(
        &self,
        claim: &ReplayClaim,
        through: Seq,
        joined: Option<&Subscription>,
    ) -> Result<ReplayEnd, StoreError> {
        let call = self.inner.finish_replay(claim, through, joined);
        self.run("finish_replay", call).await
    }
}
