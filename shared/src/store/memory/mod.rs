//! The embedded store: everything in one process's memory. jobcast-local's default, and the
//! reference the DynamoDB adapter is tested against.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{
    AppendOutcome, Appended, Audience, Connection, ConnectionStore, FrameCharge, FrameTake,
    FrameVerdict, JobRecord, JobStore, LogPage, MAX_RECENT_SUBSCRIBERS, NewEvent, NewJob, Owed,
    Page, PageRequest, PageToken, RECENT_SUBSCRIBER_WINDOW, RegisterOutcome, Removed, ReplayClaim,
    ReplayEnd, ReplayStart, StoreError, StoredEvent, Subscription,
};
use crate::protocol::{ConnectionId, EventId, JobId, JobState, Seq, UserId};

mod prune;

/// The embedded store: every connection, subscription, job and event in this process's memory,
/// behind one lock. Clones share the same state.
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    connections: HashMap<ConnectionId, Connection>,
    /// job → connection → subscription, ordered so pages resume where they stopped.
    subscriptions: BTreeMap<JobId, BTreeMap<ConnectionId, Subscription>>,
    jobs_of_connection: HashMap<ConnectionId, BTreeSet<JobId>>,
    connections_of_user: BTreeMap<UserId, BTreeSet<ConnectionId>>,
    jobs: HashMap<JobId, JobRecord>,
    /// Every event id a job recorded, to recognise a retry: the event's seq, when the id is
    /// forgotten (with the event), and the event's delivery record.
    event_ids: HashMap<(JobId, EventId), EventIdRecord>,
    /// Raised by every subscribe and unsubscribe: see `ConnectionStore::put_subscription`.
    subscribers_versions: HashMap<JobId, u64>,
    /// Each job's recent subscribers, and until when they count as recent.
    recent: HashMap<JobId, Vec<(ConnectionId, DateTime<Utc>)>>,
    events: HashMap<JobId, Vec<(StoredEvent, DateTime<Utc>)>>,
    /// Each connection's frame bucket: its theoretical arrival time, and refusals in a row.
    frame_buckets: HashMap<ConnectionId, (i64, u64)>,
    /// Each job's replay claims: see `JobStore::start_replay`.
    replay_claims: HashMap<JobId, HashSet<ReplayClaim>>,
    /// When expired items were last removed.
    pruned_at: Option<DateTime<Utc>>,
    /// Each user's replay bucket: its theoretical arrival time (Unix ms).
    user_buckets: HashMap<UserId, i64>,
}

/// What the store keeps of an event id.
struct EventIdRecord {
    seq: Seq,
    expires_at: DateTime<Utc>,
    owed: Option<Owed>,
}

impl State {
    /// A live connection's frame bucket (its time and refusals in a row); `None` for a
    /// connection not known or expired.
    fn frame_bucket(&mut self, connection_id: &ConnectionId) -> Option<&mut (i64, u64)> {
        let now = Utc::now();
        self.connections
            .get(connection_id)
            .is_some_and(|c| c.expires_at > now)
            .then(|| {
                self.frame_buckets
                    .entry(connection_id.clone())
                    .or_insert((i64::MIN, 0))
            })
    }

    /// Records a subscription, telling no sender.
    fn record_subscription(&mut self, subscription: &Subscription) {
        self.jobs_of_connection
            .entry(subscription.connection_id.clone())
            .or_default()
            .insert(subscription.job_id.clone());
        self.subscriptions
            .entry(subscription.job_id.clone())
            .or_default()
            .insert(subscription.connection_id.clone(), subscription.clone());
    }

    /// Tells senders of a subscription: raises the job's subscription version and names the
    /// connection among its recent subscribers.
    fn announce_subscription(&mut self, subscription: &Subscription) {
        *self
            .subscribers_versions
            .entry(subscription.job_id.clone())
            .or_default() += 1;
        let now = Utc::now();
        let recent = self.recent.entry(subscription.job_id.clone()).or_default();
        recent.retain(|(_, until)| *until > now);
        if recent.len() < MAX_RECENT_SUBSCRIBERS {
            let window = chrono::Duration::from_std(RECENT_SUBSCRIBER_WINDOW).unwrap_or_default();
            recent.push((subscription.connection_id.clone(), now + window));
        }
    }

    /// The job's recent subscribers whose window still holds.
    fn recent(&self, job_id: &JobId) -> Vec<ConnectionId> {
        let now = Utc::now();
        self.recent
            .get(job_id)
            .into_iter()
            .flatten()
            .filter(|(_, until)| *until > now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The connections whose replay claim on the job still holds.
    fn replaying(&self, job_id: &JobId) -> Vec<ConnectionId> {
        let now = Utc::now();
        self.replay_claims
            .get(job_id)
            .into_iter()
            .flatten()
            .filter(|claim| claim.holds_at(now))
            .map(|claim| claim.connection_id.clone())
            .collect()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind, which are still consistent
        // enough to serve; don't let one panic take the whole emulator down.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lock, for a write that adds items: expired ones are removed first, now and then.
    fn lock_to_add(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.prune_now_and_then(Utc::now());
        state
    }

    /// How many unexpired connections there are (for health reports and tests).
    pub fn connection_count(&self) -> usize {
        let now = Utc::now();
        self.lock()
            .connections
            .values()
            .filter(|c| c.expires_at > now)
            .count()
    }

    /// Items held, expired or not: connections, subscriptions, jobs, logged events and event
    /// ids (for tests of clean-up, and health reports).
    pub fn item_count(&self) -> usize {
        self.lock().item_count()
    }

    /// Removes every expired item now, as DynamoDB's TTL would (writes also do it every ten
    /// seconds or so); returns how many went. A job's snapshot stays ten minutes past its
    /// expiry, so an id used again soon goes on counting seqs.
    pub fn prune_expired(&self) -> usize {
        self.lock().prune(Utc::now())
    }

    /// How many subscriptions are stored, expired or not (for tests of clean-up).
    pub fn subscription_count(&self) -> usize {
        self.lock().subscriptions.values().map(BTreeMap::len).sum()
    }
}

fn page_of<'a>(ids: impl Iterator<Item = &'a ConnectionId>, limit: usize) -> Page<ConnectionId> {
    let limit = limit.max(1);
    let mut items: Vec<ConnectionId> = ids.take(limit + 1).cloned().collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| PageToken(last.to_string()))
    } else {
        None
    };
    Page { items, next }
}

fn resume_after(page: &PageRequest) -> Result<Bound<ConnectionId>, StoreError> {
    match &page.after {
        None => Ok(Bound::Unbounded),
        Some(PageToken(token)) => ConnectionId::parse(token.clone())
            .map(Bound::Excluded)
            .map_err(|err| StoreError::Corrupt(format!("page token: {err}"))),
    }
}

impl ConnectionStore for MemoryStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let mut state = self.lock_to_add();
        state
            .connections_of_user
            .entry(connection.user_id.clone())
            .or_default()
            .insert(connection.connection_id.clone());
        state
            .connections
            .insert(connection.connection_id.clone(), connection.clone());
        Ok(())
    }

    async fn get_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Option<Connection>, StoreError> {
        let now = Utc::now();
        Ok(self
            .lock()
            .connections
            .get(connection_id)
            .filter(|c| c.expires_at > now)
            .cloned())
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<Removed, StoreError> {
        let mut state = self.lock();
        let connection = state.connections.remove(connection_id);
        if let Some(connection) = &connection
            && let Some(ids) = state.connections_of_user.get_mut(&connection.user_id)
        {
            ids.remove(connection_id);
            if ids.is_empty() {
                state.connections_of_user.remove(&connection.user_id);
            }
        }
        state.frame_buckets.remove(connection_id);
        let jobs = state
            .jobs_of_connection
            .remove(connection_id)
            .unwrap_or_default();
        for job_id in &jobs {
            if let Some(subscribers) = state.subscriptions.get_mut(job_id) {
                subscribers.remove(connection_id);
                if subscribers.is_empty() {
                    state.subscriptions.remove(job_id);
                }
            }
        }
        Ok(Removed {
            user_id: connection.map(|connection| connection.user_id),
            subscriptions: jobs.len(),
        })
    }

    async fn touch_connection(
        &self,
        connection_id: &ConnectionId,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let mut state = self.lock();
        let state = &mut *state;
        match state.connections.get_mut(connection_id) {
            Some(connection) if connection.expires_at > now => connection.expires_at = expires_at,
            _ => return Ok(false),
        }
        for job_id in state
            .jobs_of_connection
            .get(connection_id)
            .into_iter()
            .flatten()
        {
            if let Some(subscription) = state
                .subscriptions
                .get_mut(job_id)
                .and_then(|subscribers| subscribers.get_mut(connection_id))
            {
                subscription.expires_at = expires_at;
            }
        }
        Ok(true)
    }

    async fn take_frame_token(
        &self,
        connection_id: &ConnectionId,
        FrameTake { bucket, now_ms }: FrameTake,
    ) -> Result<Option<FrameVerdict>, StoreError> {
        let mut state = self.lock();
        let (expires_at, user_id) = state
            .connections
            .get(connection_id)
            .map(|connection| (connection.expires_at, connection.user_id.clone()))
            .unzip();
        let Some((tat, refused)) = state.frame_bucket(connection_id) else {
            return Ok(None);
        };
        if let Some(next) = (FrameTake { bucket, now_ms }).take(*tat) {
            *tat = next;
            *refused = 0;
            Ok(Some(FrameVerdict::Admitted {
                expires_at,
                user_id,
            }))
        } else {
            *refused += 1;
            Ok(Some(FrameVerdict::Refused { in_a_row: *refused }))
        }
    }

    async fn charge_frame_tokens(
        &self,
        connection_id: &ConnectionId,
        charge: FrameCharge,
    ) -> Result<Option<i64>, StoreError> {
        let mut state = self.lock();
        let Some((tat, _)) = state.frame_bucket(connection_id) else {
            return Ok(None);
        };
        *tat = charge.charged(*tat);
        Ok(Some(*tat))
    }

    async fn charge_user_tokens(
        &self,
        user_id: &UserId,
        charge: FrameCharge,
    ) -> Result<i64, StoreError> {
        let mut state = self.lock();
        let tat = state
            .user_buckets
            .entry(user_id.clone())
            .or_insert(i64::MIN);
        *tat = charge.charged(*tat);
        Ok(*tat)
    }

    async fn subscribed_jobs(
        &self,
        connection_id: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        let now = Utc::now();
        let state = self.lock();
        Ok(state
            .jobs_of_connection
            .get(connection_id)
            .into_iter()
            .flatten()
            .filter(|job_id| {
                state
                    .subscriptions
                    .get(*job_id)
                    .and_then(|subscribers| subscribers.get(connection_id))
                    .is_some_and(|subscription| subscription.expires_at > now)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let mut state = self.lock_to_add();
        state.record_subscription(subscription);
        state.announce_subscription(subscription);
        Ok(())
    }

    async fn put_claimed_subscription(
        &self,
        subscription: &Subscription,
        _claim: &ReplayClaim,
    ) -> Result<(), StoreError> {
        self.lock_to_add().record_subscription(subscription);
        Ok(())
    }

    async fn delete_subscription(
        &self,
        connection_id: &ConnectionId,
        job_id: &JobId,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if let Some(jobs) = state.jobs_of_connection.get_mut(connection_id) {
            jobs.remove(job_id);
        }
        let Some(subscribers) = state.subscriptions.get_mut(job_id) else {
            return Ok(false);
        };
        let existed = subscribers.remove(connection_id).is_some();
        if subscribers.is_empty() {
            state.subscriptions.remove(job_id);
        }
        // An unsubscribe is heard at once: no longer named among the job's recent subscribers.
        if let Some(recent) = state.recent.get_mut(job_id) {
            recent.retain(|(id, _)| id != connection_id);
        }
        if existed {
            *state
                .subscribers_versions
                .entry(job_id.clone())
                .or_default() += 1;
        }
        Ok(existed)
    }

    async fn connections_of(
        &self,
        audience: &Audience,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let after = resume_after(&page)?;
        let now = Utc::now();
        let state = self.lock();
        let empty = BTreeSet::new();
        let live: Vec<&ConnectionId> = match audience {
            Audience::Job(job_id, event_seq, owner) => state
                .subscriptions
                .get(job_id)
                .into_iter()
                .flat_map(|subscribers| subscribers.range((after.clone(), Bound::Unbounded)))
                .filter(|(_, s)| s.expires_at > now && s.live_after < *event_seq)
                .filter(|(_, s)| owner.as_ref().is_none_or(|owner| s.user_id == *owner))
                .map(|(id, _)| id)
                .collect(),
            Audience::User(user_id) => state
                .connections_of_user
                .get(user_id)
                .unwrap_or(&empty)
                .range((after, Bound::Unbounded))
                .filter(|id| {
                    state
                        .connections
                        .get(*id)
                        .is_some_and(|c| c.expires_at > now)
                })
                .collect(),
        };
        Ok(page_of(live.into_iter(), page.limit))
    }
}

impl JobStore for MemoryStore {
    async fn register_job(&self, job: NewJob) -> Result<RegisterOutcome, StoreError> {
        let now = Utc::now();
        let mut state = self.lock_to_add();
        if let Some(existing) = state.jobs.get(&job.job_id).filter(|j| j.expires_at > now) {
            return Ok(RegisterOutcome::Exists(existing.clone()));
        }
        // An expired job starts afresh, but its seq keeps counting: a number is never reused.
        let last_seq = state.jobs.get(&job.job_id).map_or(0, |j| j.last_seq);
        let record = JobRecord {
            job_id: job.job_id.clone(),
            state: JobState::Pending,
            stage: None,
            progress: None,
            message: None,
            last_seq,
            cancel_requested: false,
            updated_at: job.registered_at,
            expires_at: job.expires_at,
            owner: job.owner,
            replaying: Vec::new(),
        };
        state.jobs.insert(job.job_id, record.clone());
        Ok(RegisterOutcome::Registered(record))
    }

    async fn append_event(&self, new: NewEvent) -> Result<AppendOutcome, StoreError> {
        let now = Utc::now();
        let mut state = self.lock_to_add();
        let stored_job = state.jobs.get(&new.job_id);
        // An expired job starts afresh, but its seq keeps counting: a number is never reused.
        let last_seq = stored_job.map_or(0, |job| job.last_seq);
        let previous = stored_job.filter(|job| job.expires_at > now);
        let subscribers_version = state
            .subscribers_versions
            .get(&new.job_id)
            .copied()
            .unwrap_or(0);
        if let Some(event_id) = &new.event_id
            && let Some(record) = state
                .event_ids
                .get(&(new.job_id.clone(), event_id.clone()))
                .filter(|record| record.expires_at > now)
            && let Some((event, _)) = state
                .events
                .get(&new.job_id)
                .and_then(|log| log.get(usize::try_from(record.seq).ok()?.checked_sub(1)?))
        {
            return Ok(AppendOutcome::Appended(Appended {
                event: event.clone(),
                duplicate: true,
                owed: record.owed.clone(),
                subscribers_version,
                replaying: state.replaying(&new.job_id),
                recent: state.recent(&new.job_id),
                owner: previous.and_then(|job| job.owner.clone()),
                owner_named: false,
            }));
        }
        if let Some(job) = previous
            && let (Some(owner), Some(claimed)) = (&job.owner, &new.owner)
            && owner != claimed
        {
            return Ok(AppendOutcome::OwnedByAnother(job.clone()));
        }
        if let Some(job) = previous
            && job.state.is_terminal()
        {
            return Ok(AppendOutcome::JobFinished(job.clone()));
        }
        let seq = last_seq + 1;
        let owner_before = previous.and_then(|job| job.owner.clone());
        let record = JobRecord::after_event(previous, &new, seq);
        let owner = record.owner.clone();
        let stored = new.recorded_as(seq);
        state.jobs.insert(new.job_id.clone(), record);
        let replaying = state.replaying(&new.job_id);
        let recent = state.recent(&new.job_id);
        if let Some(event_id) = new.event_id {
            let record = EventIdRecord {
                seq,
                expires_at: new.event_expires_at,
                owed: None,
            };
            state
                .event_ids
                .insert((new.job_id.clone(), event_id), record);
        }
        state
            .events
            .entry(new.job_id)
            .or_default()
            .push((stored.clone(), new.event_expires_at));
        let appended = Appended::new(stored, subscribers_version, replaying, recent)
            .owned_by(owner, owner_before.is_none());
        Ok(AppendOutcome::Appended(appended))
    }

    async fn note_delivery(
        &self,
        job_id: &JobId,
        event_id: &EventId,
        owed: &Owed,
    ) -> Result<(), StoreError> {
        let key = (job_id.clone(), event_id.clone());
        if let Some(record) = self.lock().event_ids.get_mut(&key) {
            record.owed = Some(owed.clone());
        }
        Ok(())
    }

    async fn get_job(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let now = Utc::now();
        let state = self.lock();
        Ok(state
            .jobs
            .get(job_id)
            .filter(|job| job.expires_at > now)
            .map(|job| JobRecord {
                replaying: state.replaying(job_id),
                ..job.clone()
            }))
    }

    async fn events_after(
        &self,
        job_id: &JobId,
        LogPage { after, limit }: LogPage,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let now = Utc::now();
        let state = self.lock();
        let Some(log) = state.events.get(job_id) else {
            return Ok(Vec::new());
        };
        // seq n sits at index n - 1.
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(log.len());
        Ok(log[start..]
            .iter()
            .filter(|(_, expires_at)| *expires_at > now)
            .take(limit)
            .map(|(event, _)| event.clone())
            .collect())
    }

    async fn start_replay(&self, claim: &ReplayClaim) -> Result<ReplayStart, StoreError> {
        let job_id = &claim.job_id;
        let now = Utc::now();
        let mut state = self.lock();
        let claims = state.replay_claims.entry(job_id.clone()).or_default();
        let concurrent = claims.iter().any(|other| {
            other.connection_id == claim.connection_id && other != claim && other.holds_at(now)
        });
        claims.insert(claim.clone());
        Ok(ReplayStart {
            live_after: state.jobs.get(job_id).map_or(0, |job| job.last_seq),
            concurrent,
        })
    }

    async fn abandon_replay(
        &self,
        claim: &ReplayClaim,
        kept: Option<&Subscription>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(claims) = state.replay_claims.get_mut(&claim.job_id) {
            claims.remove(claim);
            if claims.is_empty() {
                state.replay_claims.remove(&claim.job_id);
            }
        }
        if kept.is_some() {
            *state
                .subscribers_versions
                .entry(claim.job_id.clone())
                .or_default() += 1;
        }
        Ok(())
    }

    async fn finish_replay(
        &self,
        claim: &ReplayClaim,
        through: Seq,
        joined: Option<&Subscription>,
    ) -> Result<ReplayEnd, StoreError> {
        let job_id = &claim.job_id;
        let mut state = self.lock();
        let last_seq = state.jobs.get(job_id).map_or(0, |job| job.last_seq);
        if last_seq != through {
            return Ok(ReplayEnd::Behind { last_seq });
        }
        let now = Utc::now();
        if let Some(claims) = state.replay_claims.get_mut(job_id) {
            // Lapsed claims (their handler died) go too.
            claims.retain(|held| held != claim && held.holds_at(now));
            if claims.is_empty() {
                state.replay_claims.remove(job_id);
            }
        }
        // Unless the subscription went while its replay ran: then there is nobody to name.
        if let Some(subscription) = joined
            && state
                .subscriptions
                .get(&subscription.job_id)
                .is_some_and(|held| held.contains_key(&subscription.connection_id))
        {
            state.announce_subscription(subscription);
        }
        Ok(ReplayEnd::Live)
    }
}
