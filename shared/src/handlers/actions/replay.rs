//! The replay half of `subscribe`: the logged events after the client's `last_seq`, posted in
//! order until the replay claim can be released at the job's last seq (see `subscribe.rs`
//! for why that keeps replayed and live events from crossing).

use std::time::Duration;

use crate::gateway::ConnectionGateway;
use crate::handlers::access::Caller;
use crate::handlers::errors::ActionError;
use crate::handlers::reply::reply;
use crate::handlers::service::Jobcast;
use crate::protocol::{JobId, Seq, ServerMessage};
use crate::store::{JobRecord, LogPage, ReplayClaim, ReplayEnd, Store, StoredEvent};

/// Events read from the log at a time.
const REPLAY_PAGE: usize = 100;
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
) -> Result<(Seq, bool, Vec<StoredEvent>), ActionError> {
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

/// One connection's replay of one job, under its claim.
pub(super) struct Replay<'a, S, G> {
    pub service: &'a Jobcast<S>,
    pub gateway: &'a G,
    pub caller: &'a Caller,
    pub job_id: &'a JobId,
    pub claim: &'a ReplayClaim,
}

impl<S: Store, G: ConnectionGateway> Replay<'_, S, G> {
    /// Posts `message` to the replaying connection; returns whether it was posted.
    pub async fn answer(&self, message: ServerMessage) -> bool {
        let correlation_id = self.caller.correlation_id.clone();
        reply(
            self.service,
            self.gateway,
            &self.caller.connection_id,
            message,
            correlation_id,
        )
        .await
    }

    /// Posts the events after `cursor` until the claim can be released at the job's last seq.
    pub async fn run(
        &self,
        mut cursor: Seq,
        mut pending: Vec<StoredEvent>,
    ) -> Result<(), ActionError> {
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
                let message = ServerMessage::job_event(self.job_id.clone(), event.seq, event.event);
                let posted = reply(
                    self.service,
                    self.gateway,
                    &self.caller.connection_id,
                    message,
                    event.correlation_id,
                )
                .await;
                if !posted {
                    // The client will resubscribe from what it has; the claim lapses.
                    return Ok(());
                }
                cursor = event.seq;
                replayed += 1;
            }
            let last_seq = match store.finish_replay(self.claim, cursor).await? {
                ReplayEnd::Live => {
                    tracing::info!(replayed, through = cursor, "replay done; live");
                    return Ok(());
                }
                ReplayEnd::Behind { last_seq } => last_seq,
            };
            pending = store
                .events_after(self.job_id, LogPage::after(cursor, REPLAY_PAGE))
                .await?;
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
            let Some(job) = store.get_job(self.job_id).await? else {
                return Ok(());
            };
            cursor = job.last_seq;
            pending.clear();
            log_misses = 0;
            if !self.answer(ServerMessage::JobStatus(job.into())).await {
                return Ok(());
            }
        }
    }
}
