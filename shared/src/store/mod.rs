//! The store port: who is connected, who listens to which job, and what each job has said.
//!
//! Shaped for DynamoDB: every call is async and fallible, lookups that can grow without bound
//! are paginated, `seq` is assigned atomically by the store, and every item carries an expiry
//! that reads honour (DynamoDB's TTL deletes items up to ~48 h late).

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::protocol::{
    ConnectionId, CorrelationId, EventId, JobEvent, JobId, JobState, JobStatusReport, Percent, Seq,
    StageName, UserId,
};

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod frames;
mod memory;
mod snapshot;
mod tables;
#[cfg(feature = "dynamodb")]
pub use dynamodb::DynamoStore;
pub use frames::{FrameBucket, FrameCharge, FrameTake, FrameVerdict};
pub use memory::MemoryStore;
pub use snapshot::{MAX_SNAPSHOT_MESSAGE_BYTES, SnapshotChange};
pub use tables::TableNames;

/// A client's open WebSocket, as recorded on `$connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// API Gateway's id for the connection.
    pub connection_id: ConnectionId,
    /// The user the connection was accepted for.
    pub user_id: UserId,
    /// When `$connect` accepted it.
    pub connected_at: DateTime<Utc>,
    /// When the record lapses unless client activity extends it (`touch_connection`); reads ignore
    /// it after.
    pub expires_at: DateTime<Utc>,
}

/// A connection listening to a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The subscribed connection.
    pub connection_id: ConnectionId,
    /// The job it follows.
    pub job_id: JobId,
    /// The connection's user.
    pub user_id: UserId,
    /// When the subscription lapses unless its connection's activity extends it.
    pub expires_at: DateTime<Utc>,
    /// The job's last seq when the subscription was made (its replay claim taken): events up
    /// to it reach the connection through its replay, so senders deliver only later ones.
    pub live_after: Seq,
}

/// What removing a connection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The connection's user; none when the connection item was already gone.
    pub user_id: Option<UserId>,
    /// How many subscriptions went with it.
    pub subscriptions: usize,
}

/// Whose connections a lookup finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    /// Every connection subscribed to a job that should hear its event of this seq from the
    /// sender: subscriptions made before it (`live_after < seq`); given the job's owner, only
    /// the owner's subscriptions (nobody else's is ever served a job with an owner).
    Job(JobId, Seq, Option<UserId>),
    /// Every connection of a user: all tabs and devices.
    User(UserId),
}

/// Where a paginated lookup resumes. Opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(pub(crate) String);

/// One page of a lookup, and where the next one starts if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}

/// Which page to read, and at most how many items.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Resume after this token; `None` for the first page.
    pub after: Option<PageToken>,
    /// At most this many items.
    pub limit: usize,
}

impl PageRequest {
    /// The first page, of at most `limit` items.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }
}

/// What the store knows about a job: its latest snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The job.
    pub job_id: JobId,
    /// Where the job stands.
    pub state: JobState,
    /// The stage an event last named, if any.
    pub stage: Option<StageName>,
    /// The progress last reported (100 once the job completed), if any.
    pub progress: Option<Percent>,
    /// The latest message: a progress update's, a failure's, or a cancel's reason.
    pub message: Option<String>,
    /// The seq of the job's latest event: the counter the next append increments.
    pub last_seq: Seq,
    /// Whether the job has been cancelled.
    pub cancel_requested: bool,
    /// When the job was registered or last recorded an event.
    pub updated_at: DateTime<Utc>,
    /// When the job lapses (each event pushes it out); reads ignore it after.
    pub expires_at: DateTime<Utc>,
    /// The user the job belongs to, when its pipeline declared one; who may see a job without
    /// one is the handlers' to say (`Settings::ownerless_jobs_open`).
    pub owner: Option<UserId>,
    /// The connections whose replay claim on the job held when it was read (see
    /// [`JobStore::start_replay`]); empty on a snapshot just written.
    pub replaying: Vec<ConnectionId>,
}

/// A job event as recorded, with the `seq` the store gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The job.
    pub job_id: JobId,
    /// Its seq within the job.
    pub seq: Seq,
    /// The event.
    pub event: JobEvent,
    /// The correlation id it was sent with, echoed on its frames.
    pub correlation_id: Option<CorrelationId>,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// An event as recorded, and what the sender needs to fan it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    /// The event as stored (for a duplicate, as it was first recorded).
    pub event: StoredEvent,
    /// True when this was a retry of an event already recorded (its `event_id` was seen): no
    /// new seq was taken.
    pub duplicate: bool,
    /// For a retry: who its earlier fan-out left unreached, when that fan-out recorded it
    /// ([`JobStore::note_delivery`]); `None` when it is not known, and for a new event.
    pub owed: Option<Owed>,
    /// The job's subscription version at the time of the append, or just before it (see
    /// [`ConnectionStore::put_subscription`]): a subscriber list looked up after the append and
    /// cached under this version is dropped by any subscription made since.
    pub subscribers_version: u64,
    /// Connections catching up on the job when the event was appended (see
    /// [`JobStore::start_replay`]): their replay delivers this event, so the sender must not.
    pub replaying: Vec<ConnectionId>,
    /// Connections that subscribed within the last [`RECENT_SUBSCRIBER_WINDOW`] (at most
    /// [`MAX_RECENT_SUBSCRIBERS`] of them), read with the seq: DynamoDB's `by_job` index may not
    /// show them yet, so the sender posts to them whatever the lookup finds.
    pub recent: Vec<ConnectionId>,
    /// The job's owner as of the append, if it has one.
    pub owner: Option<UserId>,
    /// Whether this append named the job's owner: the job had none before (or started
    /// afresh). Subscriptions of other users must then go.
    pub owner_named: bool,
}

impl Appended {
    /// A new event, as recorded (not a retry), with what the sender needs to fan it out.
    pub fn new(
        event: StoredEvent,
        subscribers_version: u64,
        replaying: Vec<ConnectionId>,
        recent: Vec<ConnectionId>,
    ) -> Self {
        Self {
            event,
            duplicate: false,
            owed: None,
            subscribers_version,
            replaying,
            recent,
            owner: None,
            owner_named: false,
        }
    }

    /// The same, with the job's owner after the append, and whether the append named it.
    pub fn owned_by(mut self, owner: Option<UserId>, named: bool) -> Self {
        self.owner = owner;
        self.owner_named = named && self.owner.is_some();
        self
    }
}

/// Who an event's fan-out left unreached, recorded after it so that a retry of the event posts
/// only to them rather than to every subscriber again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owed {
    /// Every connection the fan-out looked for was reached (or found closed).
    Nobody,
    /// Only these connections were not reached, for reasons that may pass (throttling, 5xx,
    /// timeouts): at most [`MAX_OWED`] of them.
    Only(Vec<ConnectionId>),
}

/// The most unreached connections an event's delivery record names; a fan-out that missed
/// more records nothing, and a retry goes to every subscriber.
pub const MAX_OWED: usize = 100;

/// How long a new subscription is named on its job's head, beside the eventually consistent
/// index; the index catches up in well under a second. (On DynamoDB a connection that closes or
/// unsubscribes meanwhile stays named until the window ends: posts to it answer 410, or reach a
/// client that ignores a job it no longer follows.)
pub const RECENT_SUBSCRIBER_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

/// How long senders leave a connection to its replay if the handler never releases it (a
/// claim's `until` is this, plus up to ten seconds of jitter, after it was made).
pub const REPLAY_CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// At most this many recent subscribers are named on a job's head (an item is at most 400 KB);
/// beyond them, a new subscription relies on the index alone, and its client's check after a
/// quiet spell.
pub const MAX_RECENT_SUBSCRIBERS: usize = 200;

/// Events a replay reads from a job's log at a time.
pub const REPLAY_PAGE: usize = 100;

/// A connection's claim to deliver a job's events itself while it replays the log to that
/// connection. Senders skip the connection until the claim is released or lapses, so a
/// replayed event and a live one can never cross or repeat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplayClaim {
    /// The job being replayed.
    pub job_id: JobId,
    /// The connection it is replayed to.
    pub connection_id: ConnectionId,
    /// After this the claim no longer holds (the replaying handler died): senders deliver
    /// again, and the client's seq dedupe absorbs any overlap.
    pub until: DateTime<Utc>,
}

impl ReplayClaim {
    /// Whether senders should still leave the connection to its replay at `now`.
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.until > now
    }

    /// Until when a subscription made under this claim is named among its job's recent
    /// subscribers: [`RECENT_SUBSCRIBER_WINDOW`] after the claim was made (plus the claim's
    /// jitter). A function of the claim alone, so the subscription's item and the release that
    /// names it agree without a read.
    pub fn recent_until(&self) -> DateTime<Utc> {
        let window = chrono::Duration::from_std(RECENT_SUBSCRIBER_WINDOW).unwrap_or_default();
        let ttl = chrono::Duration::from_std(REPLAY_CLAIM_TTL).unwrap_or_default();
        self.until - ttl + window
    }

    /// As stored in DynamoDB's string set: `{connection_id} {until_ms}`.
    #[cfg(feature = "dynamodb")]
    pub(crate) fn encode(&self) -> String {
        format!("{} {}", self.connection_id, self.until.timestamp_millis())
    }
}

/// What recording a replay claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStart {
    /// The job's last seq as the claim was recorded.
    pub live_after: Seq,
    /// The connection already held another claim on the job that had not lapsed: a replay to
    /// it is under way, and this one should not run beside it.
    pub concurrent: bool,
}

/// How releasing a replay claim went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Released: the connection is live, senders deliver every event after the replayed ones.
    Live,
    /// Not released: the job has moved on; replay the rest first.
    Behind {
        /// The job's last seq now.
        last_seq: Seq,
    },
}

/// An event to record, with how long the job and the event are kept.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The job the event is about.
    pub job_id: JobId,
    /// The pipeline's id for this event. When the job already recorded an event with this id,
    /// the append is a retry: nothing new is recorded and the event already stored is returned.
    pub event_id: Option<EventId>,
    /// The event.
    pub event: JobEvent,
    /// The correlation id it was sent with, echoed on its frames.
    pub correlation_id: Option<CorrelationId>,
    /// When the event arrived; becomes the snapshot's `updated_at`.
    pub recorded_at: DateTime<Utc>,
    /// When the job lapses, pushed out by this event.
    pub job_expires_at: DateTime<Utc>,
    /// When this event leaves the log.
    pub event_expires_at: DateTime<Utc>,
    /// Declares the job's owner when it has none yet; an event naming another owner than the
    /// job's is refused.
    pub owner: Option<UserId>,
}

impl NewEvent {
    /// The event as logged with `seq`.
    pub fn recorded_as(&self, seq: Seq) -> StoredEvent {
        StoredEvent {
            job_id: self.job_id.clone(),
            seq,
            event: self.event.clone(),
            correlation_id: self.correlation_id.clone(),
            recorded_at: self.recorded_at,
        }
    }
}

/// Which of a job's logged events to read: those with `seq > after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPage {
    /// Read events after this seq.
    pub after: Seq,
    /// At most this many.
    pub limit: usize,
}

impl LogPage {
    /// At most `limit` events after `seq`.
    pub fn after(seq: Seq, limit: usize) -> Self {
        Self { after: seq, limit }
    }
}

/// A pipeline declaring a job before its first event, so its owner can subscribe at once.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The job.
    pub job_id: JobId,
    /// Its owner, if the pipeline named one.
    pub owner: Option<UserId>,
    /// When the pipeline registered it.
    pub registered_at: DateTime<Utc>,
    /// When the job lapses unless an event extends it.
    pub expires_at: DateTime<Utc>,
}

/// What registering a job came to.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterOutcome {
    /// Recorded as pending.
    Registered(JobRecord),
    /// The job already existed (live); registering again changes nothing.
    Exists(JobRecord),
}

/// The result of recording an event.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Recorded with a new seq, or recognised as a retry of the job's latest event.
    Appended(Appended),
    /// The job had already finished; nothing was recorded.
    JobFinished(JobRecord),
    /// The event named an owner other than the job's; nothing was recorded.
    OwnedByAnother(JobRecord),
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The store is throttling requests (DynamoDB: after the SDK's own retries).
    #[error("the store is throttling requests: {0}")]
    Throttled(String),
    /// The store could not be reached, or failed in any other way.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A table or index is missing: a configuration error, not a passing one.
    #[error("not found in the store: {0}")]
    NotFound(String),
    /// A conditional write kept failing against concurrent writers.
    #[error("a conditional write failed: {0}")]
    ConditionFailed(String),
    /// A stored item (or a page token) could not be read as what it should be.
    #[error("a stored item could not be read: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same call may succeed later: throttling, an outage, a write that lost to
    /// concurrent writers. The one answer every caller (client replies, SQS redelivery) uses.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Throttled(_) | Self::Unavailable(_) | Self::ConditionFailed(_) => true,
            Self::NotFound(_) | Self::Corrupt(_) => false,
        }
    }
}

/// What a client is shown of a job: its snapshot, without what only the store needs (its
/// expiry and owner).
impl From<JobRecord> for JobStatusReport {
    fn from(job: JobRecord) -> Self {
        JobStatusReport {
            job_id: job.job_id,
            status: job.state,
            stage: job.stage,
            progress: job.progress,
            message: job.message,
            last_seq: job.last_seq,
            cancel_requested: job.cancel_requested,
            updated_at: job.updated_at,
        }
    }
}

/// Connections and subscriptions.
pub trait ConnectionStore: Send + Sync + 'static {
    /// Records a connection, on `$connect`.
    fn put_connection(
        &self,
        connection: &Connection,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The connection if it exists and has not expired.
    fn get_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;

    /// Removes the connection and all of its subscriptions; says whose it was and how many
    /// subscriptions went.
    fn delete_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> impl Future<Output = Result<Removed, StoreError>> + Send;

    /// Extends the expiry of a live connection and of all its subscriptions; returns false
    /// when the connection is gone (or already expired). Called on client activity, so a
    /// connection outlives its TTL for as long as API Gateway keeps it open (up to 2 h).
    fn touch_connection(
        &self,
        connection_id: &ConnectionId,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a subscription, then raises the job's subscription version, so a sender that
    /// appends after this returns sees the new version and reads the subscribers afresh, and
    /// names the connection among the job's recent subscribers (see [`Appended::recent`]).
    fn put_subscription(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a subscription made under a replay claim, without telling senders yet: the claim
    /// keeps them off the connection, and its release ([`JobStore::finish_replay`] given the
    /// subscription) raises the job's subscription version and names the connection among
    /// the recent subscribers in the same write. A subscribe costs one write less.
    fn put_claimed_subscription(
        &self,
        subscription: &Subscription,
        claim: &ReplayClaim,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Returns whether the subscription existed; if it did, raises the job's subscription
    /// version.
    fn delete_subscription(
        &self,
        connection_id: &ConnectionId,
        job_id: &JobId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes a token from the connection's frame bucket at `take.now_ms`, as GCRA does (a token
    /// bucket kept as one timestamp, the theoretical arrival time): a token every
    /// `interval_ms`, at most `burst` saved up. `None` when the connection is not known.
    fn take_frame_token(
        &self,
        connection_id: &ConnectionId,
        take: FrameTake,
    ) -> impl Future<Output = Result<Option<FrameVerdict>, StoreError>> + Send;

    /// Charges the connection's frame bucket `tokens` more, whatever is left in it: the work a
    /// frame did beyond itself (a replay's posts). The bucket may go into debt, and the
    /// connection's next frames wait until it is paid off. Returns the bucket's theoretical
    /// arrival time after the charge (Unix ms), or `None` for a connection the store does not
    /// know (nothing is charged).
    fn charge_frame_tokens(
        &self,
        connection_id: &ConnectionId,
        charge: FrameCharge,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Charges a user's replay bucket (shared by all of the user's connections, so a new
    /// connection does not start a replay allowance afresh) `charge.tokens`, whatever is left,
    /// as [`ConnectionStore::charge_frame_tokens`] does; zero tokens only reads it. Returns the
    /// bucket's theoretical arrival time after the charge (Unix ms). The bucket lapses an hour
    /// after it was last charged.
    fn charge_user_tokens(
        &self,
        user_id: &UserId,
        charge: FrameCharge,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Up to `limit` of the jobs a connection is subscribed to (live subscriptions only).
    fn subscribed_jobs(
        &self,
        connection_id: &ConnectionId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<JobId>, StoreError>> + Send;

    /// The live connections of `audience`, a page at a time.
    fn connections_of(
        &self,
        audience: &Audience,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<ConnectionId>, StoreError>> + Send;
}

/// Job snapshots and the per-job event log.
pub trait JobStore: Send + Sync + 'static {
    /// Creates the job as pending with its owner, unless a live job of that id exists.
    fn register_job(
        &self,
        job: NewJob,
    ) -> impl Future<Output = Result<RegisterOutcome, StoreError>> + Send;

    /// Assigns the next `seq`, updates the snapshot and logs the event, all at once (the log
    /// never has a hole) — unless the job has already finished. An event whose `event_id` the
    /// store has seen for the job (until the event leaves the log) is a retry: nothing is
    /// recorded, and the event as first recorded is returned, with its delivery record.
    fn append_event(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Records who the fan-out of the event with `event_id` left unreached, for a retry of it
    /// ([`Appended::owed`]). Nothing happens if the event is not known.
    fn note_delivery(
        &self,
        job_id: &JobId,
        event_id: &EventId,
        owed: &Owed,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The job's snapshot, if it exists and has not expired.
    fn get_job(
        &self,
        job_id: &JobId,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;

    /// Unexpired events with `seq > after`, in `seq` order, at most `limit` of them.
    fn events_after(
        &self,
        job_id: &JobId,
        page: LogPage,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Records `claim` on its job, atomically with the seq counter: every append from now on
    /// lists the connection in [`Appended::replaying`] until the claim is released or lapses.
    /// Returns the job's last seq at that moment (the subscription's `live_after`), and whether
    /// the connection already held another live claim on the job (a replay under way).
    fn start_replay(
        &self,
        claim: &ReplayClaim,
    ) -> impl Future<Output = Result<ReplayStart, StoreError>> + Send;

    /// Releases `claim` whatever the job's seq: its replay stopped half-way and was undone.
    /// Given a subscription the undo leaves in place, the same write raises the job's
    /// subscription version, so no sender's cached list goes on leaving it out.
    fn abandon_replay(
        &self,
        claim: &ReplayClaim,
        kept: Option<&Subscription>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Releases `claim` if, and only if, the job's last seq is still `through` (the replay
    /// delivered everything up to it); otherwise says how far the job has gone. Given the
    /// subscription the claim was made for (recorded by
    /// [`ConnectionStore::put_claimed_subscription`]), the release also raises the job's
    /// subscription version and names the connection among its recent subscribers, as
    /// [`ConnectionStore::put_subscription`] does.
    fn finish_replay(
        &self,
        claim: &ReplayClaim,
        through: Seq,
        joined: Option<&Subscription>,
    ) -> impl Future<Output = Result<ReplayEnd, StoreError>> + Send;
}

/// Everything the handlers need from storage.
pub trait Store: ConnectionStore + JobStore + Clone {}
impl<T: ConnectionStore + JobStore + Clone> Store for T {}
