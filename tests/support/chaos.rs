//! The chaos check: seeded random schedules of pipelines publishing (directly, and through a
//! simulated SQS queue that redelivers what it is handed back, and now and then a whole batch, as
//! after a timeout), clients connecting, dropping and resuming from their last seq, posts that
//! fail (429, 500, 410, a 500 after the frame was delivered) and store calls that fail
//! (throttled, unavailable, before or after doing their work). The handlers are the real ones;
//! only API Gateway is simulated.
//!
//! It checks the README's promise for every client: after `subscribed {after_seq: A}` on a
//! connection, every event of the job with a seq after A arrives on it, or the client is told
//! (`recovered: false` and a status, an error, or its connection closed). A seq seen already may
//! come again and is dropped; one that comes ahead of an earlier seq still on its way (two
//! senders of one job at once, a pipeline and a cancel, one of them retrying) is held until the
//! earlier one comes, as the clients do, and counted. A **violation** is a subscription still
//! behind the job's last seq once everything has gone quiet (**silence**: an event lost), an
//! answer that resumes from another seq than asked, a `recovered: false` (these schedules keep
//! every event in the log, so it would mean a hole), or a client or pipeline that never finishes.
//! A client that finds silence records it and resubscribes, so one fault is counted once.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::handlers::Jobcast;
use jobcast::protocol::{ConnectionId, JobId, SendOutcome};
use jobcast::settings::Settings;
use jobcast::store::Store;
use jobcast_local::{FaultyStore, StoreFailKind, StoreFaults};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::{sqs_batch, sqs_record, test_settings, websocket_event};

/// One schedule's shape, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed everything random in the schedule's plan comes from.
    pub seed: u64,
    /// Jobs, each with its own pipeline: even ones invoke the sender, odd ones go through SQS.
    pub jobs: usize,
    /// Events each pipeline sends, the last one final (unless a client cancels first).
    pub events_per_job: usize,
    /// Clients, each following one job.
    pub clients: usize,
    /// Share of posts answered 429.
    pub throttle_rate: f64,
    /// Share of posts answered 500 without delivering.
    pub error_rate: f64,
    /// Share of posts delivered, then answered 500.
    pub after_delivery_rate: f64,
    /// Share of store calls that fail.
    pub store_fail_rate: f64,
    /// Chance, at each frame a client reads, that it drops its connection.
    pub drop_rate: f64,
    /// Chance that an SQS invocation is taken as timed out: its whole batch comes back.
    pub sqs_timeout_rate: f64,
    /// Whether a client cancels one of the jobs half-way.
    pub cancel: bool,
    /// Whether the direct pipelines send an event again while the sender reports subscribers
    /// it did not reach (SQS always redelivers what is handed back). Off only to show that the
    /// check finds the loss.
    pub resend: bool,
}

impl Schedule {
    /// The schedule of `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Self {
            seed,
            jobs: rng.random_range(2..=4),
            events_per_job: rng.random_range(8..=24),
            clients: rng.random_range(30..=90),
            throttle_rate: rng.random_range(0.0..0.15),
            error_rate: rng.random_range(0.0..0.05),
            after_delivery_rate: rng.random_range(0.0..0.05),
            store_fail_rate: rng.random_range(0.0..0.05),
            drop_rate: rng.random_range(0.0..0.03),
            sqs_timeout_rate: rng.random_range(0.0..0.2),
            cancel: rng.random_bool(0.3),
            resend: true,
        }
    }
}

/// What a schedule came to.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Events recorded (the jobs' last seqs, summed).
    pub events: u64,
    /// Event frames the clients received, duplicates included.
    pub deliveries: u64,
    /// Event frames dropped by the clients as already seen.
    pub duplicates: u64,
    /// Subscribes the clients sent.
    pub subscribes: u64,
    /// Connections the clients opened.
    pub connections: u64,
    /// Times a client was told rather than given the events (`recovered: false`).
    pub told: u64,
    /// Events that arrived ahead of an earlier seq still on its way (two senders of one job
    /// at once: a pipeline and a cancel), held by the client until it came.
    pub reordered: u64,
    /// Every broken promise, described.
    pub violations: Vec<String>,
}

impl Outcome {
    /// Adds `other`'s counts and violations to these.
    pub fn absorb(&mut self, other: Outcome) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.duplicates += other.duplicates;
        self.subscribes += other.subscribes;
        self.connections += other.connections;
        self.told += other.told;
        self.reordered += other.reordered;
        self.violations.extend(other.violations);
    }
}

/// API Gateway, simulated: each connection is a client's inbox; posts fail as the schedule says.
struct ChaosGateway {
    inboxes: Mutex<HashMap<ConnectionId, UnboundedSender<Value>>>,
    rng: Mutex<StdRng>,
    schedule: Schedule,
}

impl ChaosGateway {
    fn open(&self, id: &ConnectionId) -> UnboundedReceiver<Value> {
        let (sender, receiver) = unbounded_channel();
        self.inboxes.lock().unwrap().insert(id.clone(), sender);
        receiver
    }

    fn close(&self, id: &ConnectionId) {
        self.inboxes.lock().unwrap().remove(id);
    }

    fn roll(&self) -> f64 {
        self.rng.lock().unwrap().random()
    }
}

impl ConnectionGateway for ChaosGateway {
    async fn post_to_connection(&self, id: &ConnectionId, payload: Bytes) -> Result<(), PostError> {
        let Some(inbox) = self.inboxes.lock().unwrap().get(id).cloned() else {
            return Err(PostError::Gone);
        };
        let s = &self.schedule;
        let roll = self.roll();
        if roll < s.throttle_rate {
            return Err(PostError::Throttled);
        }
        if roll < s.throttle_rate + s.error_rate {
            return Err(PostError::ServerError { status: 500 });
        }
        let frame: Value = serde_json::from_slice(&payload).expect("frames are JSON");
        if inbox.send(frame).is_err() {
            return Err(PostError::Gone);
        }
        if roll < s.throttle_rate + s.error_rate + s.after_delivery_rate {
            return Err(PostError::ServerError { status: 500 });
        }
        Ok(())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), PostError> {
        self.close(id);
        Ok(())
    }
}

type ChaosService<S> = Jobcast<FaultyStore<S>>;

/// What the pipelines left, for the clients' final check.
struct Finish {
    done: AtomicBool,
    /// When `done` was set.
    at: Mutex<Option<Instant>>,
}

impl Finish {
    /// Set when every pipeline has finished.
    fn set(&self) {
        *self.at.lock().unwrap() = Some(Instant::now());
        self.done.store(true, Ordering::SeqCst);
    }

    /// How long ago every pipeline finished, if they have.
    fn since(&self) -> Option<Duration> {
        self.at.lock().unwrap().map(|at| at.elapsed())
    }
}

/// Runs one schedule on `store` (which may hold other schedules' jobs: ids carry the seed).
pub async fn run_schedule<S: Store>(store: S, schedule: &Schedule) -> Outcome {
    let mut settings: Settings = test_settings();
    settings.delivery.backoff_base = Duration::from_millis(1);
    settings.delivery.backoff_max = Duration::from_millis(10);
    settings.sqs_deadline_reserve = Duration::ZERO;
    let faults = StoreFaults {
        fail_rate: schedule.store_fail_rate,
        fail_kinds: vec![StoreFailKind::Throttled, StoreFailKind::Unavailable],
        latency: Duration::ZERO,
    };
    let service = Arc::new(Jobcast::new(
        FaultyStore::new(store.clone(), faults),
        settings,
    ));
    let gateway = Arc::new(ChaosGateway {
        inboxes: Mutex::default(),
        rng: Mutex::new(StdRng::seed_from_u64(schedule.seed ^ 0x9e37)),
        schedule: schedule.clone(),
    });
    let finish = Arc::new(Finish {
        done: AtomicBool::new(false),
        at: Mutex::new(None),
    });
    let jobs: Vec<JobId> = (0..schedule.jobs)
        .map(|k| JobId::parse(format!("s{}-j{k}", schedule.seed)).unwrap())
        .collect();
    // The jobs exist before anyone subscribes (as a registered job does).
    for job in &jobs {
        let request = json!({"action": "register_job", "job_id": job.as_str()});
        retry_send(&service, &gateway, request).await;
    }
    let mut clients = Vec::new();
    let ids = Arc::new(AtomicU64::new(0));
    for n in 0..schedule.clients {
        let client = Client {
            service: service.clone(),
            gateway: gateway.clone(),
            finish: finish.clone(),
            job: jobs[n % jobs.len()].clone(),
            rng: StdRng::seed_from_u64(schedule.seed.wrapping_mul(1_000_003) + n as u64),
            ids: ids.clone(),
            seed: schedule.seed,
            drop_rate: schedule.drop_rate,
            cancels: schedule.cancel && n == 0,
            events_per_job: schedule.events_per_job as u64,
        };
        clients.push(tokio::spawn(client.run()));
    }
    let mut pipelines = Vec::new();
    for (k, job) in jobs.iter().enumerate() {
        let (service, gateway, job) = (service.clone(), gateway.clone(), job.clone());
        let schedule = schedule.clone();
        pipelines.push(tokio::spawn(async move {
            if k % 2 == 0 {
                direct_pipeline(&service, &gateway, &job, &schedule).await
            } else {
                sqs_pipeline(&service, &gateway, &job, &schedule).await
            }
        }));
    }
    let mut outcome = Outcome::default();
    for pipeline in pipelines {
        if let Err(violation) = pipeline.await.expect("pipeline task") {
            outcome.violations.push(violation);
        }
    }
    finish.set();
    for client in clients {
        outcome.absorb(client.await.expect("client task"));
    }
    for job in &jobs {
        outcome.events += store
            .get_job(job)
            .await
            .ok()
            .flatten()
            .map_or(0, |job| job.last_seq);
    }
    outcome
}

/// Sends until the sender answers (the store may fail): the request's outcome.
async fn retry_send<S: Store>(
    service: &ChaosService<S>,
    gateway: &ChaosGateway,
    request: Value,
) -> SendOutcome {
    loop {
        match service.handle_send(gateway, request.clone()).await {
            Ok(outcome) => return outcome,
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// The request for event `i` of `job`: progress, and a final `job_complete` last.
fn event_request(job: &JobId, i: usize, last: usize) -> Value {
    let event = if i == last {
        json!({"type": "job_complete", "results": {"n": i}})
    } else {
        json!({"type": "progress_update", "stage": "crawl", "progress": (i * 100 / last) as f64, "message": format!("step {i}")})
    };
    json!({"job_id": job.as_str(), "event": event})
}

/// A pipeline that invokes the sender, and sends an event again (same id) while its report
/// says someone was not reached, as the protocol asks.
async fn direct_pipeline<S: Store>(
    service: &ChaosService<S>,
    gateway: &ChaosGateway,
    job: &JobId,
    schedule: &Schedule,
) -> Result<(), String> {
    let last = schedule.events_per_job;
    for i in 1..=last {
        let mut request = event_request(job, i, last);
        request["event_id"] = json!(format!("{job}-e{i}"));
        for attempt in 0.. {
            if attempt == 50 {
                return Err(format!("{job}: event {i} never reached everyone"));
            }
            match retry_send(service, gateway, request.clone()).await {
                SendOutcome::Published { delivery, .. }
                    if schedule.resend
                        && (delivery.failed_transient > 0 || delivery.incomplete) =>
                {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                SendOutcome::Rejected { .. } => return Ok(()), // cancelled by a client
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(i as u64 % 3)).await;
    }
    Ok(())
}

/// A pipeline that queues its events on a FIFO queue (one message group: the job), drained by
/// a simulated SQS: batches of up to 10; what the sender hands back, and now and then a whole
/// batch (a timeout), is delivered again.
async fn sqs_pipeline<S: Store>(
    service: &ChaosService<S>,
    gateway: &ChaosGateway,
    job: &JobId,
    schedule: &Schedule,
) -> Result<(), String> {
    let last = schedule.events_per_job;
    let mut rng = StdRng::seed_from_u64(
        schedule
            .seed
            .wrapping_mul(31)
            .wrapping_add(job.as_str().bytes().map(u64::from).sum::<u64>()),
    );
    let mut queue: VecDeque<(String, String)> = (1..=last)
        .map(|i| {
            let body = event_request(job, i, last).to_string();
            (format!("{job}-m{i}"), body)
        })
        .collect();
    let mut invocations = 0;
    while !queue.is_empty() {
        invocations += 1;
        if invocations > 40 * last {
            return Err(format!("{job}: the queue never drained"));
        }
        let take = queue.len().min(rng.random_range(1..=10));
        let records = queue
            .iter()
            .take(take)
            .map(|(id, body)| sqs_record(id, Some(job.as_str()), body))
            .collect();
        let answer = match service
            .handle_sender_invocation(gateway, sqs_batch(records))
            .await
        {
            Ok(answer) => answer,
            Err(_) => continue, // the whole batch comes back
        };
        if rng.random_bool(schedule.sqs_timeout_rate) {
            continue; // timed out after doing its work: the whole batch comes back
        }
        let failed: HashSet<String> = answer["batchItemFailures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
            .collect();
        let batch: Vec<(String, String)> = queue.drain(..take).collect();
        // What was handed back goes back to the front, in order.
        for record in batch.into_iter().rev() {
            if failed.contains(&record.0) {
                queue.push_front(record);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// One simulated client, following one job as `web/jobcast.js` does.
struct Client<S: Store> {
    service: Arc<ChaosService<S>>,
    gateway: Arc<ChaosGateway>,
    finish: Arc<Finish>,
    job: JobId,
    rng: StdRng,
    ids: Arc<AtomicU64>,
    seed: u64,
    drop_rate: f64,
    cancels: bool,
    events_per_job: u64,
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
    async fn run(mut self) -> Outcome {
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
                        if self.cancels
                            && seq == self.events_per_job / 2
                            && !self.finish.done.load(Ordering::SeqCst)
                        {
                            let body = json!({"action": "cancel_job", "job_id": self.job.as_str()});
                            self.service
                                .handle_message(&*self.gateway, &websocket_event(&id, Some(body)))
                                .await;
                        }
                    }
                }
                if session == Session::Live
                    && !self.finish.done.load(Ordering::SeqCst)
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
