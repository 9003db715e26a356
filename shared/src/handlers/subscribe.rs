//! `subscribe`, with replay: a client that resumes from `last_seq` hears every event after it
//! exactly once and in order, even while the pipeline keeps sending.
//!
//! The handler claims the connection on the job (a replay claim, stored beside the job's seq
//! counter) before it subscribes, so any sender that appends from then on leaves that
//! connection to the replay. It posts the logged events after `last_seq`, then releases the
//! claim only if the job's last seq is still the last one it posted; if the job moved on, it
//! posts the rest first and tries again. Every event is therefore delivered by the replay (it
//! was appended before the release) or by its sender (after), never both and never out of
//! order.

use std::time::Duration;

use chrono::Utc;

use super::message::{Caller, status_report};
use super::{ActionError, Jobcast};
use crate::gateway::ConnectionGateway;
use crate::protocol::{JobId, Seq, ServerMessage, Subscribe, Subscribed};
use crate::store::{JobRecord, ReplayClaim, ReplayEnd, Store, StoredEvent, Subscription};

/// Events read from the log at a time.
const REPLAY_PAGE: usize = 100;
/// A client further behind than this gets the job's status instead of a replay: replaying
/// more would outlast the route's 29 s integration timeout.
pub const MAX_REPLAY_EVENTS: Seq = 5_000;
/// How long senders leave a connection to its replay if the handler never releases it.
const REPLAY_CLAIM_TTL: Duration = Duration::from_secs(60);
/// Looks at the log again this many times when the job's head is ahead of it (a sender took
/// a seq and has not logged its event yet) before giving the client a status instead.
const LOG_CATCH_UP_ATTEMPTS: u32 = 8;

impl<S: Store> Jobcast<S> {
    /// Subscribes the caller and replays what it missed. Posts its own replies, in order:
    /// `subscribed`, then `job_status` (no `last_seq`, or the log no longer has the events),
    /// then the replayed events.
    pub(super) async fn subscribe<G: ConnectionGateway>(
        &self,
        gateway: &G,
        caller: &Caller,
        Subscribe { job_id, last_seq }: Subscribe,
    ) -> Result<(), ActionError> {
        let (user_id, job) = self.accessible_job(caller, &job_id).await?;
        if let Some(last_seq) = last_seq
            && last_seq > job.last_seq
        {
            return Err(ActionError::SeqAhead {
                job_id,
                last_seq,
                job_last_seq: job.last_seq,
            });
        }
        // Subscribing again to a job already followed is fine at the limit.
        let limit = self.settings.max_subscriptions_per_connection;
        let held = self
            .store
            .subscribed_jobs(&caller.connection_id, limit)
            .await?;
        if held.len() >= limit && !held.contains(&job_id) {
            return Err(ActionError::TooManySubscriptions { limit });
        }

        let now = Utc::now();
        let claim = ReplayClaim {
            connection_id: caller.connection_id.clone(),
            until: self.expiry(now, REPLAY_CLAIM_TTL),
        };
        // The claim first. An event appended after it lists the claim, so its sender skips
        // this connection; one appended before it has a seq of at most `live_after`, which its
        // sender skips too should it find the subscription. The replay covers both.
        let live_after = self.store.start_replay(&job_id, &claim).await?;
        let subscription = Subscription {
            connection_id: caller.connection_id.clone(),
            job_id: job_id.clone(),
            user_id,
            expires_at: self.expiry(now, self.settings.connection_ttl),
            live_after,
        };
        self.store.put_subscription(&subscription).await?;

        let (after_seq, recovered, first_page) = match last_seq {
            None => (job.last_seq, true, Vec::new()),
            Some(last_seq) => self.first_replay_page(&job, last_seq).await?,
        };
        let subscribed = ServerMessage::Subscribed(Subscribed {
            job_id: job_id.clone(),
            after_seq,
            recovered,
        });
        if !self.answer(gateway, caller, subscribed).await {
            return Ok(());
        }
        if !recovered || last_seq.is_none() {
            // The snapshot read before subscribing, whose last seq is `after_seq`: anything
            // newer is still to come, as events.
            let status = ServerMessage::JobStatus(status_report(job));
            if !self.answer(gateway, caller, status).await {
                return Ok(());
            }
        }
        self.replay(gateway, caller, &job_id, &claim, after_seq, first_page)
            .await
    }

    /// Where the replay starts, whether it can be complete, and its first page. When the log
    /// no longer holds `last_seq + 1` (expired), or the client is too far behind, the replay
    /// starts from the job's last seq and the client is told it was not recovered.
    async fn first_replay_page(
        &self,
        job: &JobRecord,
        last_seq: Seq,
    ) -> Result<(Seq, bool, Vec<StoredEvent>), ActionError> {
        if last_seq == job.last_seq {
            return Ok((last_seq, true, Vec::new()));
        }
        if job.last_seq - last_seq <= MAX_REPLAY_EVENTS {
            let page = self
                .store
                .events_after(&job.job_id, last_seq, REPLAY_PAGE)
                .await?;
            if page.first().is_some_and(|event| event.seq == last_seq + 1) {
                return Ok((last_seq, true, page));
            }
        }
        tracing::info!(
            last_seq,
            job_last_seq = job.last_seq,
            "cannot replay from last_seq; sending the status instead"
        );
        Ok((job.last_seq, false, Vec::new()))
    }

    /// Posts the events after `cursor` until the claim can be released at the job's last seq.
    async fn replay<G: ConnectionGateway>(
        &self,
        gateway: &G,
        caller: &Caller,
        job_id: &JobId,
        claim: &ReplayClaim,
        mut cursor: Seq,
        mut pending: Vec<StoredEvent>,
    ) -> Result<(), ActionError> {
        let mut replayed = 0u64;
        let mut log_misses = 0;
        loop {
            for event in pending.drain(..) {
                if event.seq != cursor + 1 {
                    // A hole in the middle of the log (expired, or lost): never skip silently.
                    tracing::warn!(cursor, next = event.seq, "the job's log has a hole");
                    break;
                }
                let message = ServerMessage::job_event(job_id.clone(), event.seq, event.event);
                if !self
                    .reply(
                        gateway,
                        &caller.connection_id,
                        message,
                        event.correlation_id,
                    )
                    .await
                {
                    // The client will resubscribe from what it has; the claim lapses.
                    return Ok(());
                }
                cursor = event.seq;
                replayed += 1;
            }
            let last_seq = match self.store.finish_replay(job_id, claim, cursor).await? {
                ReplayEnd::Live => {
                    tracing::info!(replayed, through = cursor, "replay done; live");
                    return Ok(());
                }
                ReplayEnd::Behind { last_seq } => last_seq,
            };
            pending = self.store.events_after(job_id, cursor, REPLAY_PAGE).await?;
            if pending.first().is_some_and(|event| event.seq == cursor + 1) {
                log_misses = 0;
                continue;
            }
            log_misses += 1;
            if log_misses < LOG_CATCH_UP_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(10 << log_misses.min(5))).await;
                continue;
            }
            // The events between cursor and last_seq are not coming: say where the job is
            // and go on from there.
            tracing::warn!(
                cursor,
                last_seq,
                "events missing from the log; sending the status instead"
            );
            let Some(job) = self.store.get_job(job_id).await? else {
                return Ok(());
            };
            cursor = job.last_seq;
            pending.clear();
            log_misses = 0;
            if !self
                .answer(
                    gateway,
                    caller,
                    ServerMessage::JobStatus(status_report(job)),
                )
                .await
            {
                return Ok(());
            }
        }
    }

    async fn answer<G: ConnectionGateway>(
        &self,
        gateway: &G,
        caller: &Caller,
        message: ServerMessage,
    ) -> bool {
        self.reply(
            gateway,
            &caller.connection_id,
            message,
            caller.correlation_id.clone(),
        )
        .await
    }
}
