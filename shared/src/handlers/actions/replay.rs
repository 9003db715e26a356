//! The replay half of `subscribe`: the logged events after the client's `last_seq`, posted in
//! order until the replay claim can be released at the job's last seq (see `subscribe.rs`
//! for why that keeps replayed and live events from crossing).

use std::time::Duration;

use crate::gateway::ConnectionGateway;
use crate::handlers::access::Caller;
use crate::handlers::errors::ActionError;
use crate::handlers::reply::reply;
use crate::handlers::service::Jobcast;
use crate::protocol::{CorrelationId, JobId, ReplayPaused, Seq, ServerMessage};
use crate::store::{
    JobRecord, LogPage, REPLAY_PAGE, ReplayClaim, ReplayEnd, Store, StoreError, StoredEvent,
    Subscription,
};

/// A client further behind than this gets the job's status instead of a replay: replaying
/// more would outlast the route's 29 s integration timeout.
const MAX_REPLAY_EVENTS: Seq = 5_000;
/// Looks at the log again this many times when the job's head is ahead of it (a sender took
/// a seq and has not logged its event yet) before giving the client a status instead.
const LOG_CATCH_UP_ATTEMPTS: u32 = 8;

/// Where the replay starts, whether it can be complete, and its first page. When the log no
/// longer holds `last_seq + 1` (expired), or the client is too far behind, the replay starts
/// from the job's last seq and the client is told it was not recovered.
pub(super) async fn first_page<S: Store>(
    service: &Jobcast<S>,
    job: &JobRecord,
    last_seq: Seq,
) -> Result<(Seq, bool, Vec<StoredEvent>), StoreError> {
    if last_seq == job.last_seq {
        return Ok((last_seq, true, Vec::new()));
    }
    if job.last_seq - last_seq <= MAX_REPLAY_EVENTS {
        let page = service
            .store()
            .events_after(&job.job_id, LogPage::after(last_seq, REPLAY_PAGE))
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

/// Why a subscribe stopped before its connection was live.
#[derive(Debug)]
pub(super) enum Halt {
    /// The store failed before the client was told anything: it hears the error and may
    /// subscribe again.
    Untold(StoreError),
    /// The client may have heard `subscribed`, and part of its replay, but not all of it (a
    /// post failed: it may even have reached the socket), or the store failed mid-replay.
    Told,
}

/// A store failure after the client was told `subscribed`.
fn told(err: StoreError) -> Halt {
    tracing::warn!(error = %err, "the store failed mid-replay");
    Halt::Told
}

/// How many times a claim's release is tried before it is left to lapse.
const RELEASE_ATTEMPTS: u32 = 3;

/// One connection's replay of one job, under its claim.
pub(super) struct Replay<'a, S, G> {
    pub service: &'a Jobcast<S>,
    pub gateway: &'a G,
    pub caller: &'a Caller,
    pub job_id: &'a JobId,
    pub claim: &'a ReplayClaim,
    /// Whether the connection followed the job before this subscribe (a resume on the same
    /// socket): undoing must not take away the subscription it already had.
    pub already_subscribed: bool,
    /// The most events this replay may post (paid for up front from the connection's frames
    /// and the user's replay allowance), and how long until the connection may ask for more.
    pub budget: (u64, u64),
}

impl<S: Store, G: ConnectionGateway> Replay<'_, S, G> {
    /// Posts `message` to the replaying connection.
    pub async fn answer(&self, message: ServerMessage) -> Result<(), Halt> {
        let correlation_id = self.caller.correlation_id.clone();
        self.post(message, correlation_id).await
    }

    async fn post(
        &self,
        message: ServerMessage,
        correlation_id: Option<CorrelationId>,
    ) -> Result<(), Halt> {
        let connection_id = &self.caller.connection_id;
        let posted = reply(
            self.service,
            self.gateway,
            connection_id,
            message,
            correlation_id,
        );
        if posted.await {
            Ok(())
        } else {
            Err(Halt::Told)
        }
    }

    /// Undoes a subscribe that stopped half-way, and never leaves the client waiting in
    /// silence. A client told nothing, that did not follow the job before, loses the half-made
    /// subscription (removed while the claim still holds senders off) and hears the store's
    /// error, so it may try again. Any other client (one that may have heard `subscribed`, or
    /// that was following the job already and now lacks part of its stream) has its connection
    /// closed, so it reconnects and resumes from the last seq it has. Either way the claim is
    /// released whatever the job's seq, so no sender goes on skipping the connection; should
    /// even the close fail, the connection keeps its subscription, live from `live_after`, and
    /// notices what the replay missed by the gap in seqs.
    ///
    /// `put` is the subscription this subscribe recorded, if it got that far: one the undo
    /// leaves in place is made known to senders as the claim goes.
    pub async fn undo(
        &self,
        halt: Halt,
        put: Option<&Subscription>,
    ) -> Result<Vec<ServerMessage>, ActionError> {
        tracing::warn!(
            ?halt,
            already_subscribed = self.already_subscribed,
            "subscribe halted; undoing it"
        );
        if let Halt::Untold(err) = halt
            && !self.already_subscribed
        {
            if self.remove_subscription().await {
                self.release(None).await;
                return Err(err.into());
            }
            tracing::warn!("could not remove a half-made subscription; closing instead");
        }
        self.release(put).await;
        self.close().await;
        Ok(Vec::new())
    }

    /// Removes the subscription this subscribe made, trying a few times.
    async fn remove_subscription(&self) -> bool {
        let store = self.service.store();
        for attempt in 1..=RELEASE_ATTEMPTS {
            match store
                .delete_subscription(&self.caller.connection_id, self.job_id)
                .await
            {
                Ok(_) => return true,
                Err(err) => {
                    tracing::warn!(attempt, error = %err, "could not remove a half-made subscription");
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
            }
        }
        false
    }

    /// Closes the connection, so its client reconnects and resumes.
    async fn close(&self) {
        match self
            .gateway
            .delete_connection(&self.caller.connection_id)
            .await
        {
            Ok(()) => tracing::info!("closed; the client resumes when it reconnects"),
            Err(err) => {
                tracing::warn!(error = %err, "could not close the connection; it stays subscribed")
            }
        }
    }

    /// Releases the claim unconditionally, trying a few times before leaving it to lapse.
    async fn release(&self, kept: Option<&Subscription>) {
        for attempt in 1..=RELEASE_ATTEMPTS {
            match self.service.store().abandon_replay(self.claim, kept).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(attempt, error = %err, "could not release a replay claim");
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
            }
        }
        tracing::error!("a replay claim is left to lapse");
    }

    /// Stops a replay that spent its frame's share with events still to come: the connection
    /// stops following the job (its subscription removed while the claim still holds senders
    /// off, so no live event slips in ahead of the rest), the claim goes, and the client is
    /// told where to subscribe again from. If the subscription cannot be removed, the
    /// connection is closed instead, and its client resumes from the last seq it has.
    async fn pause(&self, through: Seq, next: Seq, retry_after_ms: u64) -> Result<(), Halt> {
        if !self.remove_subscription().await {
            return Err(Halt::Told);
        }
        self.release(None).await;
        let last_seq = self
            .service
            .store()
            .get_job(self.job_id)
            .await
            .ok()
            .flatten()
            .map_or(next, |job| job.last_seq);
        tracing::info!(through, last_seq, "replay paused at its per-frame bound");
        let paused = ServerMessage::ReplayPaused(ReplayPaused {
            job_id: self.job_id.clone(),
            through_seq: through,
            last_seq,
            retry_after_ms,
        });
        // Told or not, the connection no longer follows the job: nothing to undo.
        let _ = self.answer(paused).await;
        Ok(())
    }

    /// Posts the events after `cursor` until the claim can be released at the job's last seq,
    /// or until this frame's share of events is spent (then it pauses).
    /// The release names `joined`, the subscription the claim was made for, to senders.
    pub async fn run(
        &self,
        mut cursor: Seq,
        mut pending: Vec<StoredEvent>,
        joined: &Subscription,
    ) -> Result<(), Halt> {
        let store = self.service.store();
        let mut replayed = 0u64;
        let mut log_misses = 0;
        loop {
            for event in pending.drain(..) {
                if event.seq != cursor + 1 {
                    // A hole in the middle of the log (expired, or lost): never skip silently.
                    tracing::warn!(cursor, next = event.seq, "the job's log has a hole");
                    break;
                }
                if replayed >= self.budget.0 {
                    return self.pause(cursor, event.seq, self.budget.1).await;
                }
                let message = ServerMessage::job_event(self.job_id.clone(), event.seq, event.event);
                self.post(message, event.correlation_id).await?;
                cursor = event.seq;
                replayed += 1;
            }
            let finished = store.finish_replay(self.claim, cursor, Some(joined)).await;
            let last_seq = match finished.map_err(told)? {
                ReplayEnd::Live => {
                    tracing::info!(replayed, through = cursor, "replay done; live");
                    return Ok(());
                }
                ReplayEnd::Behind { last_seq } => last_seq,
            };
            pending = store
                .events_after(self.job_id, LogPage::after(cursor, REPLAY_PAGE))
                .await
                .map_err(told)?;
            if pending.first().is_some_and(|event| event.seq == cursor + 1) {
                log_misses = 0;
                continue;
            }
            log_misses += 1;
            if log_misses < LOG_CATCH_UP_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(10 << log_misses.min(5))).await;
                continue;
            }
            // The events between cursor and last_seq are not coming: say where the job is and
            // go on from there.
            tracing::warn!(
                cursor,
                last_seq,
                "events missing from the log; sending the status instead"
            );
            let Some(job) = store.get_job(self.job_id).await.map_err(told)? else {
                return Err(Halt::Told);
            };
            cursor = job.last_seq;
            pending.clear();
            log_misses = 0;
            self.answer(ServerMessage::JobStatus(job.into())).await?;
        }
    }
}
