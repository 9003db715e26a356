//! A store that counts what the handlers asked of it, around any real store: so a test can
//! show that the case it names happened (a replay raced live sends, a fan-out was served from
//! the warm cache) instead of hoping it did.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use jobcast::protocol::{ConnectionId, EventId, JobId, Seq, UserId};
use jobcast::store::{
    AppendOutcome, Audience, Connection, ConnectionStore, FrameCharge, FrameTake, FrameVerdict,
    JobRecord, JobStore, LogPage, NewEvent, NewJob, Owed, Page, PageRequest, RegisterOutcome,
    Removed, ReplayClaim, ReplayEnd, ReplayStart, StoreError, StoredEvent, Subscription,
};

/// What an [`ObservedStore`] has seen.
#[derive(Debug, Default)]
pub struct Observations {
    /// Lookups of an audience's connections (a fan-out that did not use the warm cache).
    pub audience_lookups: AtomicU64,
    /// Appends made while some connection held a replay claim on the job: a live send that
    /// left a replaying connection to its replay.
    pub appends_during_replay: AtomicU64,
    /// Replays that could not be released at once because the job had moved on.
    pub replays_behind: AtomicU64,
    /// Claims released unconditionally: subscribes that halted and were undone.
    pub replays_abandoned: AtomicU64,
    /// Extensions of a connection's expiry (and of every one of its subscriptions').
    pub touches: AtomicU64,
    /// While set, appends name no recent subscribers, as for subscriptions made longer ago than
    /// a head names them.
    pub forget_recent: std::sync::atomic::AtomicBool,
    /// While set, the job index hides subscriptions younger than this, as DynamoDB's `by_job`
    /// index may for a moment after the write.
    pub index_lag: std::sync::Mutex<Option<std::time::Duration>>,
    /// When each subscription was made, for the index lag.
    subscribed_at:
        std::sync::Mutex<std::collections::HashMap<(ConnectionId, JobId), std::time::Instant>>,
    /// Posts begun, counted by a gateway that shares these observations.
    pub posts_started: AtomicU64,
    /// How many posts began while each audience lookup was under way: more than zero is a
    /// lookup that overlapped the posts of the pages before it.
    pub posts_during_lookups: std::sync::Mutex<Vec<u64>>,
    /// How long each audience lookup takes, as a store's round trip does.
    pub lookup_delay: std::sync::Mutex<std::time::Duration>,
    /// Calls of this name fail as unavailable (before doing anything): after passing the
    /// first so many, this many times.
    pub fail_next: std::sync::Mutex<Option<FailPlan>>,
}

impl Observations {
    /// A counter's value now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// Which calls fail: those named `operation`, after `pass` of them went through, `times` times.
#[derive(Debug, Clone, Copy)]
pub struct FailPlan {
    operation: &'static str,
    pass: u32,
    times: u32,
}

/// `S`, counting as it goes.
#[derive(Clone)]
pub struct ObservedStore<S> {
    inner: S,
    seen: Arc<Observations>,
}

impl<S> ObservedStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            seen: Arc::default(),
        }
    }

    /// The counters, shared with every clone.
    pub fn observations(&self) -> Arc<Observations> {
        self.seen.clone()
    }
}

impl<S> ObservedStore<S> {
    /// A subscription is about to be put (either way): fails if told to, and notes when, for
    /// the index lag.
    fn subscribing(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.seen.strikes("put_subscription")?;
        let key = (
            subscription.connection_id.clone(),
            subscription.job_id.clone(),
        );
        let now = std::time::Instant::now();
        self.seen.subscribed_at.lock().unwrap().insert(key, now);
        Ok(())
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

impl Observations {
    /// Makes the next call named `operation` fail, once.
    pub fn fail_next(&self, operation: &'static str) {
        self.fail_after(operation, 0, 1);
    }

    /// Lets the next `pass` calls named `operation` through, then fails `times` of them.
    pub fn fail_after(&self, operation: &'static str, pass: u32, times: u32) {
        *self.fail_next.lock().unwrap() = Some(FailPlan {
            operation,
            pass,
            times,
        });
    }

    /// Fails nothing more.
    pub fn stop_failing(&self) {
        *self.fail_next.lock().unwrap() = None;
    }

    /// Whether `operation` is to fail now (the plan moves on by one call).
    fn strikes(&self, operation: &str) -> Result<(), StoreError> {
        let mut next = self.fail_next.lock().unwrap();
        let Some(plan) = next.as_mut().filter(|plan| plan.operation == operation) else {
            return Ok(());
        };
        if plan.pass > 0 {
            plan.pass -= 1;
            return Ok(());
        }
        plan.times -= 1;
        if plan.times == 0 {
            *next = None;
        }
        Err(StoreError::Unavailable(format!("{operation}: injected")))
    }
}

impl<S: ConnectionStore + Clone> ConnectionStore for ObservedStore<S> {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.inner.put_connection(connection).await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.inner.get_connection(id).await
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<Removed, StoreError> {
        self.inner.delete_connection(id).await
    }

    async fn touch_connection(
        &self,
        id: &ConnectionId,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        count(&self.seen.touches);
        self.inner.touch_connection(id, expires_at).await
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.subscribing(subscription)?;
        self.inner.put_subscription(subscription).await
    }

    async fn put_claimed_subscription(
        &self,
        subscription: &Subscription,
        claim: &ReplayClaim,
    ) -> Result<(), StoreError> {
        self.subscribing(subscription)?;
        self.inner
            .put_claimed_subscription(subscription, claim)
            .await
    }

    async fn delete_subscription(
        &self,
        id: &ConnectionId,
        job: &JobId,
    ) -> Result<bool, StoreError> {
        self.inner.delete_subscription(id, job).await
    }

    async fn take_frame_token(
        &self,
        id: &ConnectionId,
        take: FrameTake,
    ) -> Result<Option<FrameVerdict>, StoreError> {
        self.seen.strikes("take_frame_token")?;
        self.inner.take_frame_token(id, take).await
    }

    async fn charge_user_tokens(
        &self,
        user_id: &UserId,
        charge: FrameCharge,
    ) -> Result<i64, StoreError> {
        self.seen.strikes("charge_user_tokens")?;
        self.inner.charge_user_tokens(user_id, charge).await
    }

    async fn charge_frame_tokens(
        &self,
        id: &ConnectionId,
        charge: FrameCharge,
    ) -> Result<Option<i64>, StoreError> {
        self.seen.strikes("charge_frame_tokens")?;
        self.inner.charge_frame_tokens(id, charge).await
    }

    async fn subscribed_jobs(
        &self,
        id: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        self.inner.subscribed_jobs(id, limit).await
    }

    async fn connections_of(
        &self,
        audience: &Audience,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        count(&self.seen.audience_lookups);
        let started_before = Observations::get(&self.seen.posts_started);
        let delay = *self.seen.lookup_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.seen
            .posts_during_lookups
            .lock()
            .unwrap()
            .push(Observations::get(&self.seen.posts_started) - started_before);
        self.seen.strikes("connections_of")?;
        let mut page = self.inner.connections_of(audience, page).await?;
        let lag = *self.seen.index_lag.lock().unwrap();
        if let (Some(lag), Audience::Job(job_id, _, _)) = (lag, audience) {
            let made = self.seen.subscribed_at.lock().unwrap();
            page.items.retain(|id| {
                made.get(&(id.clone(), job_id.clone()))
                    .is_none_or(|at| at.elapsed() >= lag)
            });
        }
        Ok(page)
    }
}

impl<S: JobStore + Clone> JobStore for ObservedStore<S> {
    async fn register_job(&self, job: NewJob) -> Result<RegisterOutcome, StoreError> {
        self.inner.register_job(job).await
    }

    async fn append_event(&self, event: NewEvent) -> Result<AppendOutcome, StoreError> {
        let mut outcome = self.inner.append_event(event).await?;
        if let AppendOutcome::Appended(appended) = &mut outcome
            && self.seen.forget_recent.load(Ordering::SeqCst)
        {
            appended.recent.clear();
        }
        if let AppendOutcome::Appended(appended) = &outcome
            && !appended.replaying.is_empty()
        {
            count(&self.seen.appends_during_replay);
        }
        Ok(outcome)
    }

    async fn note_delivery(
        &self,
        job: &JobId,
        event_id: &EventId,
        owed: &Owed,
    ) -> Result<(), StoreError> {
        self.seen.strikes("note_delivery")?;
        self.inner.note_delivery(job, event_id, owed).await
    }

    async fn get_job(&self, job: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.inner.get_job(job).await
    }

    async fn events_after(
        &self,
        job: &JobId,
        page: LogPage,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.seen.strikes("events_after")?;
        self.inner.events_after(job, page).await
    }

    async fn start_replay(&self, claim: &ReplayClaim) -> Result<ReplayStart, StoreError> {
        self.inner.start_replay(claim).await
    }

    async fn abandon_replay(
        &self,
        claim: &ReplayClaim,
        kept: Option<&Subscription>,
    ) -> Result<(), StoreError> {
        count(&self.seen.replays_abandoned);
        self.seen.strikes("abandon_replay")?;
        self.inner.abandon_replay(claim, kept).await
    }

    async fn finish_replay(
        &self,
        claim: &ReplayClaim,
        through: Seq,
        joined: Option<&Subscription>,
    ) -> Result<ReplayEnd, StoreError> {
        self.seen.strikes("finish_replay")?;
        let end = self.inner.finish_replay(claim, through, joined).await?;
        if matches!(end, ReplayEnd::Behind { .. }) {
            count(&self.seen.replays_behind);
        }
        Ok(end)
    }
}
