//! Fan-out: deliver one payload to every connection of an audience, concurrently, with retry.

use std::collections::{HashSet, VecDeque};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{Fuse, FusedFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use rand::Rng;

mod limit;

pub use limit::AdaptiveLimit;

use crate::gateway::{ConnectionGateway, PostError};
use crate::protocol::{ConnectionId, DeliveryReport};
use crate::store::{Audience, ConnectionStore, Page, PageRequest, StoreError};

/// Connections read from the store per lookup page, unless the settings say otherwise.
pub const PAGE_SIZE: usize = 500;

/// How a fan-out posts: concurrency, retries and backoff, lookup page size, and the warm
/// sender's subscriber cache. `settings` reads all but the page size from the environment
/// (`SEND_*`, `SUBSCRIBER_CACHE_TTL_MS`).
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// The most posts in flight at once: the ceiling the adaptive limit grows towards.
    pub concurrency: usize,
    /// Posts in flight when a fan-out starts; the limit grows from here while throughput does.
    pub initial_concurrency: usize,
    /// Attempts per connection, the first included.
    pub max_attempts: u32,
    /// Backoff before retry n is uniform in [0, min(max, base × 2ⁿ⁻¹)] ("full jitter").
    pub backoff_base: Duration,
    /// The longest backoff before a retry.
    pub backoff_max: Duration,
    /// Connections read from the store per lookup page.
    pub page_size: usize,
    /// How long a warm sender reuses a job's subscriber list (zero: never). The list is only
    /// reused while the job's subscription version is unchanged, so the TTL bounds staleness
    /// from expired subscriptions, not from new subscribers.
    pub subscriber_cache_ttl: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            // A Lambda has 1,024 file descriptors; each post in flight may hold a socket.
            concurrency: 512,
            initial_concurrency: 64,
            max_attempts: 4,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(1000),
            page_size: PAGE_SIZE,
            subscriber_cache_ttl: Duration::from_secs(5),
        }
    }
}

/// How posting to one connection ended.
enum Outcome {
    Delivered(Attempts),
    Gone(Attempts, ConnectionId),
    Failed {
        attempts: Attempts,
        transient: bool,
        connection_id: ConnectionId,
    },
}

/// Where the connections of a fan-out come from.
#[derive(Debug, Clone)]
pub enum Recipients {
    /// Read from the store, page by page.
    Lookup(Audience),
    /// Already known (a warm sender's cached subscriber list).
    Listed(Arc<[ConnectionId]>),
}

/// A fan-out's report, and the connections it looked up when asked to remember them.
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    /// What the fan-out reached.
    pub report: DeliveryReport,
    /// Every connection the lookup returned, when remembering was asked for and the audience
    /// fit within the limit.
    pub recipients: Option<Vec<ConnectionId>>,
    /// The connections found closed (and removed from the store).
    pub gone: Vec<ConnectionId>,
    /// The connections not reached for reasons that may pass (`failed_transient`): a retry of
    /// the payload may reach them.
    pub missed: Vec<ConnectionId>,
}

/// What it took to post to one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts after the first.
    pub retries: u32,
    /// Attempts answered with 429.
    pub throttled: u32,
}

/// One payload on its way to an audience: who, what, and what the caller wants back.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// Where the connections come from.
    pub recipients: Recipients,
    /// Connections posted to first, whatever the lookup finds (each once): those the lookup
    /// may not show yet.
    pub also: Vec<ConnectionId>,
    /// The frame, as posted to every connection.
    pub payload: Bytes,
    /// Connections left out: they hear the payload another way (their replay).
    pub skip: &'a [ConnectionId],
    /// Hand back the looked-up connections when there are at most this many (for a cache);
    /// zero hands back nothing.
    pub remember: usize,
}

impl Delivery<'static> {
    /// `payload` to every connection of `recipients`, leaving out none, remembering none.
    pub fn new(recipients: Recipients, payload: Bytes) -> Self {
        Self {
            recipients,
            also: Vec::new(),
            payload,
            skip: &[],
            remember: 0,
        }
    }
}

impl<'a> Delivery<'a> {
    /// The same delivery, posting to `also` first whatever the lookup finds.
    pub fn also(self, also: Vec<ConnectionId>) -> Self {
        Self { also, ..self }
    }

    /// The same delivery, leaving out `skip`.
    pub fn skipping<'b>(self, skip: &'b [ConnectionId]) -> Delivery<'b> {
        Delivery {
            recipients: self.recipients,
            also: self.also,
            payload: self.payload,
            skip,
            remember: self.remember,
        }
    }

    /// The same delivery, handing back a lookup of at most `limit` connections.
    pub fn remembering(self, limit: usize) -> Self {
        Self {
            remember: limit,
            ..self
        }
    }
}

/// Posts a delivery's payload to every connection of its audience.
///
/// Lookups go page by page as posts complete, so the first clients hear the event before the
/// last page is read and memory stays bounded by two pages (the one posting, the next being
/// read). A connection that is gone is
/// removed from the store; any other failure is logged and counted, never returned: a
/// pipeline must not stall on one bad socket. Only a failed store lookup is an error, since
/// then the audience itself is unknown.
pub async fn deliver<S, G>(
    store: &S,
    gateway: &G,
    settings: &DeliverySettings,
    delivery: Delivery<'_>,
) -> Result<FanOut, StoreError>
where
    S: ConnectionStore,
    G: ConnectionGateway,
{
    let Delivery {
        recipients,
        also,
        payload,
        skip,
        remember,
    } = delivery;
    let started = Instant::now();
    let mut limit = AdaptiveLimit::new(settings.initial_concurrency, settings.concurrency);
    let page_size = settings.page_size.max(1);
    // `also` first, once each; the lookup or list then leaves them out.
    let mut first = HashSet::new();
    let mut queued: VecDeque<ConnectionId> = also
        .into_iter()
        .filter(|id| first.insert(id.clone()))
        .collect();
    let audience = match recipients {
        Recipients::Lookup(audience) => Some(audience),
        Recipients::Listed(list) => {
            queued.extend(list.iter().filter(|id| !first.contains(*id)).cloned());
            None
        }
    };
    let mut next_page = audience.as_ref().map(|_| PageRequest::first(page_size));
    let mut remembered = (audience.is_some() && remember > 0).then(Vec::new);
    let fetch = |request: PageRequest, nothing_sent: bool| {
        let audience = audience.as_ref();
        async move {
            match audience {
                Some(audience) => look_up(store, settings, audience, request, nothing_sent).await,
                None => Ok(None),
            }
        }
    };
    // At most one page is being read at a time, while the posts of the pages before it go on.
    let mut lookup = pin!(Fuse::terminated());
    let mut in_flight = FuturesUnordered::new();
    let mut report = DeliveryReport::default();
    let mut gone = Vec::new();
    let mut missed = Vec::new();
    loop {
        // The next page is asked for as soon as the queue could run dry within one round of
        // posts, so a page's lookup overlaps the posts of the one before it.
        if lookup.is_terminated()
            && queued.len() < limit.current()
            && let Some(request) = next_page.take()
        {
            // With nothing posted yet, nobody heard anything: the whole send may simply be
            // tried again. Once anything went out, the posts under way are finished instead.
            let nothing_sent =
                in_flight.is_empty() && queued.is_empty() && report == DeliveryReport::default();
            lookup.set(fetch(request, nothing_sent).fuse());
        }
        while in_flight.len() < limit.current() {
            let Some(connection_id) = queued.pop_front() else {
                break;
            };
            if skip.contains(&connection_id) {
                continue;
            }
            in_flight.push(deliver_one(
                store,
                gateway,
                settings,
                connection_id,
                payload.clone(),
            ));
        }
        let page = if in_flight.is_empty() {
            if lookup.is_terminated() {
                break;
            }
            // Nothing to post until the page comes.
            lookup.as_mut().await
        } else {
            tokio::select! {
                biased;
                page = lookup.as_mut(), if !lookup.is_terminated() => page,
                Some(outcome) = in_flight.next() => {
                    let attempts = record(&mut report, &mut gone, &mut missed, outcome);
                    if attempts.throttled > 0 {
                        limit.on_throttled();
                    } else {
                        limit.on_success(Instant::now());
                    }
                    continue;
                }
            }
        };
        // An error only ever comes back for a lookup begun with nothing under way (see
        // `look_up`): returning it drops no post.
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                debug_assert!(in_flight.is_empty() && queued.is_empty());
                return Err(err);
            }
        };
        match page {
            Some(page) => {
                next_page = page.next.map(|after| PageRequest {
                    after: Some(after),
                    limit: page_size,
                });
                if let Some(list) = &mut remembered {
                    if list.len() + page.items.len() <= remember {
                        list.extend(page.items.iter().cloned());
                    } else {
                        remembered = None;
                    }
                }
                queued.extend(page.items.into_iter().filter(|id| !first.contains(id)));
            }
            None => {
                // The rest of the audience is out of reach for now: finish what is under way
                // and say so, rather than drop the posts in flight.
                report.incomplete = true;
                remembered = None;
            }
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(FanOut {
        report,
        recipients: remembered,
        gone,
        missed,
    })
}

/// Counts one post's outcome in the report (and the lists of gone and missed connections);
/// returns what the post took.
fn record(
    report: &mut DeliveryReport,
    gone: &mut Vec<ConnectionId>,
    missed: &mut Vec<ConnectionId>,
    outcome: Outcome,
) -> Attempts {
    let attempts = match outcome {
        Outcome::Delivered(attempts) => {
            report.delivered += 1;
            attempts
        }
        Outcome::Gone(attempts, connection_id) => {
            report.gone += 1;
            gone.push(connection_id);
            attempts
        }
        Outcome::Failed {
            attempts,
            transient,
            connection_id,
        } => {
            report.failed += 1;
            report.failed_transient += u64::from(transient);
            if transient {
                missed.push(connection_id);
            }
            attempts
        }
    };
    report.retried += u64::from(attempts.retries);
    attempts
}

/// Lookups of a page tried before the fan-out gives up on the rest of its audience.
const LOOKUP_ATTEMPTS: u32 = 3;

/// One page of the audience, retried with backoff while the store fails. When it keeps
/// failing: an error if `nothing_sent` (nobody was reached, so the whole send may simply be
/// tried again), else `None` (the caller finishes the posts under way and reports the fan-out
/// incomplete).
async fn look_up<S: ConnectionStore>(
    store: &S,
    settings: &DeliverySettings,
    audience: &Audience,
    request: PageRequest,
    nothing_sent: bool,
) -> Result<Option<Page<ConnectionId>>, StoreError> {
    let mut attempt = 1;
    loop {
        match store.connections_of(audience, request.clone()).await {
            Ok(page) => return Ok(Some(page)),
            Err(err) if attempt < LOOKUP_ATTEMPTS && err.is_transient() => {
                tracing::warn!(attempt, error = %err, "audience lookup failed; trying again");
                tokio::time::sleep(backoff(settings, attempt)).await;
                attempt += 1;
            }
            Err(err) if nothing_sent => return Err(err),
            Err(err) => {
                tracing::error!(error = %err, "audience lookup broke off; the fan-out is incomplete");
                return Ok(None);
            }
        }
    }
}

async fn deliver_one<S: ConnectionStore, G: ConnectionGateway>(
    store: &S,
    gateway: &G,
    settings: &DeliverySettings,
    connection_id: ConnectionId,
    payload: Bytes,
) -> Outcome {
    let (result, attempts) = post_with_retry(gateway, settings, &connection_id, payload).await;
    match result {
        Ok(()) => Outcome::Delivered(attempts),
        Err(PostError::Gone) => {
            tracing::debug!(%connection_id, "connection gone; removing it");
            if let Err(err) = store.delete_connection(&connection_id).await {
                tracing::warn!(%connection_id, error = %err, "could not remove a gone connection");
            }
            Outcome::Gone(attempts, connection_id)
        }
        Err(err) => {
            let tries = attempts.retries + 1;
            match &err {
                PostError::Forbidden(_) => tracing::error!(
                    %connection_id, error = %err, attempts = tries,
                    "post forbidden: check the execute-api:ManageConnections permission and the endpoint"
                ),
                PostError::Misconfigured(_) => tracing::error!(
                    %connection_id, error = %err, attempts = tries,
                    "post impossible as configured: check AWS_REGION, the credentials and WEBSOCKET_ENDPOINT"
                ),
                PostError::PayloadTooLarge { size } => tracing::error!(
                    %connection_id, size, attempts = tries,
                    "post refused as too large (API Gateway's limit is 128 KB); not retried"
                ),
                _ => {
                    tracing::warn!(%connection_id, error = %err, kind = err.kind(), attempts = tries, "post failed")
                }
            }
            Outcome::Failed {
                attempts,
                transient: err.is_retryable(),
                connection_id,
            }
        }
    }
}

/// Posts once, then retries retryable failures with full-jitter exponential backoff.
/// Returns the last result and what it took.
pub async fn post_with_retry<G: ConnectionGateway>(
    gateway: &G,
    settings: &DeliverySettings,
    connection_id: &ConnectionId,
    payload: Bytes,
) -> (Result<(), PostError>, Attempts) {
    let mut attempts = Attempts::default();
    loop {
        let result = gateway
            .post_to_connection(connection_id, payload.clone())
            .await;
        if matches!(result, Err(PostError::Throttled)) {
            attempts.throttled += 1;
        }
        // Throttling is the quota saying "later", not a failing connection: it gets twice the
        // attempts, so a storm at the quota is waited out (about 2.6 s at most, with the default
        // backoff) rather than turned into failures, closed connections and resubscribes.
        let budget = if matches!(result, Err(PostError::Throttled)) {
            settings.max_attempts.saturating_mul(2)
        } else {
            settings.max_attempts
        };
        match result {
            Err(err) if err.is_retryable() && attempts.retries + 1 < budget => {
                attempts.retries += 1;
                tokio::time::sleep(backoff(settings, attempts.retries)).await;
            }
            result => return (result, attempts),
        }
    }
}

/// The pause before retry `n` (1-based): uniform in [0, min(max, base × 2ⁿ⁻¹)].
pub fn backoff(settings: &DeliverySettings, retry: u32) -> Duration {
    let ceiling = settings
        .backoff_base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
        .min(settings.backoff_max);
    let ceiling_ms = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(0..=ceiling_ms))
}
