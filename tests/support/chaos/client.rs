//! The chaos check's clients: each follows one job as `web/jobcast.js` does, and records every
//! broken promise it finds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobcast::protocol::{ConnectionId, JobId};
use jobcast::store::Store;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;

use super::gateway::ChaosGateway;
use super::{ChaosService, Finish, Outcome};
use crate::websocket_event;

/// One simulated client, following one job as `web/jobcast.js` does.
pub(super) struct Client<S: Store> {
    pub(super) service: Arc<ChaosService<S>>,
    pub(super) gateway: Arc<ChaosGateway>,
    pub(super) finish: Arc<Finish>,
    pub(super) job: JobId,
    pub(super) rng: StdRng,
    pub(super) ids: Arc<AtomicU64>,
    pub(super) seed: u64,
    pub(super) drop_rate: f64,
    pub(super) cancels: bool,
    pub(super) events_per_job: u64,
}

/// Where a client's subscription stands on its current connection.
#[derive(Debug, PartialEq, Eq)]
enum Session {
    /// A subscribe is on its way; no promise holds yet.
    Asking,
    /// `subscribed` heard: every event after the cursor is owed.
    Live,
}

/// How long a quiet inbox is taken as silence once every pipeline has finished.
const QUIET: Duration = Duration::from_millis(400);
/// How long a client waits for its subscribe's answer before asking again.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(300);
/// A client still not done this long after the pipelines finished is stuck.
const GIVE_UP: Duration = Duration::from_secs(60);

impl<S: Store> Client<S> {
    pub(super) async fn run(mut self) -> Outcome {
        let mut outcome = Outcome::default();
        let mut cursor: Option<u64> = None;
        'connections: loop {
            let id = ConnectionId::parse(format!(
                "c{}-{}",
                self.seed,
                self.ids.fetch_add(1, Ordering::SeqCst)
            ))
            .unwrap();
            let mut inbox = self.gateway.open(&id);
            outcome.connections += 1;
            if !self.connect(&id).await {
                self.gateway.close(&id);
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            // What this connection heard and did, for a violation's report.
            let mut history: Vec<String> = vec![format!("connect at {cursor:?}")];
            // Events ahead of the cursor, waiting for the seqs before them.
            let mut held: BTreeSet<u64> = BTreeSet::new();
            // The latest subscribe: its correlation id, and the seq it asked from.
            let mut asked = (self.subscribe(&id, cursor, &mut outcome).await, cursor);
            let mut session = Session::Asking;
            let mut asked_at = Instant::now();
            loop {
                if self.finish.since().is_some_and(|since| since > GIVE_UP) {
                    outcome.violations.push(format!(
                        "stuck: {id} on {} at {cursor:?} after {GIVE_UP:?}",
                        self.job
                    ));
                    self.leave(&id).await;
                    return outcome;
                }
                let wait = if session == Session::Asking {
                    ANSWER_TIMEOUT
                } else {
                    QUIET
                };
                let frame = match tokio::time::timeout(wait, inbox.recv()).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => {
                        // Closed by the server: reconnect and resume.
                        self.leave(&id).await;
                        continue 'connections;
                    }
                    Err(_) if session == Session::Asking => {
                        if asked_at.elapsed() >= ANSWER_TIMEOUT {
                            history.push(format!("subscribe from {cursor:?}"));
                            asked = (self.subscribe(&id, cursor, &mut outcome).await, cursor);
                            session = Session::Asking;
                            asked_at = Instant::now();
                        }
                        continue;
                    }
                    Err(_) => {
                        // Quiet since the pipelines finished (a cancel's fan-out may still be
                        // under way just after), not only since the last frame.
                        if self.finish.since().is_none_or(|since| since < QUIET) {
                            continue;
                        }
                        let job_last = self.job_last_seq().await;
                        if cursor.is_some_and(|cursor| cursor >= job_last) && job_last > 0 {
                            // Caught up with a finished job: the status check confirms it ended.
                            if self.finished().await {
                                self.leave(&id).await;
                                return outcome;
                            }
                            continue;
                        }
                        let recent = history.len().saturating_sub(16);
                        outcome.violations.push(format!(
                            "silence: {id} on {} heard up to {cursor:?} of {job_last} (holding {held:?}) after {:?}",
                            self.job,
                            &history[recent..]
                        ));
                        history.push(format!("subscribe from {cursor:?}"));
                        asked = (self.subscribe(&id, cursor, &mut outcome).await, cursor);
                        session = Session::Asking;
                        asked_at = Instant::now();
                        continue;
                    }
                };
                // Errors may name no job (a frame refused before it was read).
                if frame["job_id"] != self.job.as_str() && frame["type"] != "error" {
                    continue;
                }
                history.push(format!(
                    "{} {}",
                    frame["type"].as_str().unwrap_or("?"),
                    frame
                        .get("seq")
                        .or(frame.get("after_seq"))
                        .unwrap_or(&frame["code"])
                ));
                match frame["type"].as_str().unwrap_or_default() {
                    // A late or repeated answer to an earlier subscribe (a reply posted again
                    // after a 500 that followed its delivery) promises nothing more.
                    "subscribed" if frame["correlation_id"] != asked.0.as_str() => {}
                    "subscribed" => {
                        let after = frame["after_seq"].as_u64().unwrap();
                        let recovered = frame["recovered"].as_bool().unwrap_or(true);
                        if !recovered {
                            // These schedules keep every event in the log and stay far under
                            // 5,000: being told instead of replayed means the log has a hole.
                            outcome.told += 1;
                            outcome.violations.push(format!(
                                "told: {id} asked from {:?}, not recovered",
                                asked.1
                            ));
                        }
                        match asked.1 {
                            Some(c) if recovered && after != c => {
                                let recent = history.len().saturating_sub(16);
                                outcome.violations.push(format!(
                                    "resume: {id} asked from {c}, told after_seq {after} after {:?}",
                                    &history[recent..]
                                ));
                            }
                            // Without a last seq: the status at `after` stands for what came
                            // before it.
                            None => cursor = Some(cursor.map_or(after, |at| at.max(after))),
                            Some(_) if !recovered => cursor = Some(after),
                            Some(_) => {}
                        }
                        held.retain(|seq| *seq > after);
                        cursor = cursor.map(|at| advance(at, &mut held));
                        session = Session::Live;
                    }
                    // An error for another request (a cancel) is not the subscribe's.
                    "error" if frame["correlation_id"] != asked.0.as_str() => {}
                    "error" => {
                        // Told: ask again.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        history.push(format!("subscribe from {cursor:?}"));
                        asked = (self.subscribe(&id, cursor, &mut outcome).await, cursor);
                        session = Session::Asking;
                        asked_at = Instant::now();
                    }
                    "job_status" => {}
                    _ => {
                        let Some(seq) = frame["seq"].as_u64() else {
                            continue;
                        };
                        outcome.deliveries += 1;
                        if cursor.is_some_and(|at| seq <= at) || !held.insert(seq) {
                            outcome.duplicates += 1;
                        } else if let Some(at) = cursor {
                            if seq > at + 1 {
                                // Ahead of a seq still on its way (another sender's, retried):
                                // held until it comes, as the clients do.
                                outcome.reordered += 1;
                            }
                            cursor = Some(advance(at, &mut held));
                        }
                        if self.cancels && seq == self.events_per_job / 2 && !self.finish.is_done()
                        {
                            let body = json!({"action": "cancel_job", "job_id": self.job.as_str()});
                            self.service
                                .handle_message(&*self.gateway, &websocket_event(&id, Some(body)))
                                .await;
                        }
                    }
                }
                if session == Session::Live
                    && !self.finish.is_done()
                    && self.rng.random_bool(self.drop_rate)
                {
                    // The network drops the connection; the client resumes on a new one.
                    self.gateway.close(&id);
                    self.leave(&id).await;
                    continue 'connections;
                }
            }
        }
    }

    async fn connect(&self, id: &ConnectionId) -> bool {
        let response = self
            .service
            .handle_connect(&websocket_event(id, None))
            .await;
        response.status_code == 200
    }

    /// Sends a subscribe from `cursor`; returns its correlation id.
    async fn subscribe(
        &self,
        id: &ConnectionId,
        cursor: Option<u64>,
        outcome: &mut Outcome,
    ) -> String {
        outcome.subscribes += 1;
        let correlation = format!("sub-{}", outcome.subscribes);
        let mut body = json!({
            "action": "subscribe", "job_id": self.job.as_str(), "correlation_id": correlation
        });
        if let Some(cursor) = cursor {
            body["last_seq"] = json!(cursor);
        }
        self.service
            .handle_message(&*self.gateway, &websocket_event(id, Some(body)))
            .await;
        correlation
    }

    async fn leave(&self, id: &ConnectionId) {
        self.gateway.close(id);
        self.service
            .handle_disconnect(&websocket_event(id, None))
            .await;
    }

    /// The job's last seq, read past the faults.
    async fn job_last_seq(&self) -> u64 {
        loop {
            match self.service.store().inner().get_job(&self.job).await {
                Ok(job) => return job.map_or(0, |job| job.last_seq),
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    /// Whether the job has ended, read past the faults.
    async fn finished(&self) -> bool {
        loop {
            match self.service.store().inner().get_job(&self.job).await {
                Ok(job) => return job.is_some_and(|job| job.state.is_terminal()),
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
}

/// The cursor moved past every held seq that follows it.
fn advance(mut at: u64, held: &mut BTreeSet<u64>) -> u64 {
    while held.remove(&(at + 1)) {
        at += 1;
    }
    held.retain(|seq| *seq > at);
    at
}
