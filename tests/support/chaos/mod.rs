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

mod client;
mod gateway;
mod pipelines;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobcast::handlers::Jobcast;
use jobcast::protocol::JobId;
use jobcast::settings::Settings;
use jobcast::store::Store;
use jobcast_local::{FaultyStore, StoreFailKind, StoreFaults};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::test_settings;
use client::Client;
use gateway::ChaosGateway;
use pipelines::{direct_pipeline, retry_send, sqs_pipeline};

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

/// The handlers under test, over a store that fails as the schedule says.
type ChaosService<S> = Jobcast<FaultyStore<S>>;

/// What the pipelines left, for the clients' final check.
pub(super) struct Finish {
    /// When every pipeline finished, once they have.
    at: Mutex<Option<Instant>>,
}

impl Finish {
    /// Set when every pipeline has finished.
    pub(super) fn set(&self) {
        *self.at.lock().unwrap() = Some(Instant::now());
    }

    /// Whether every pipeline has finished.
    pub(super) fn is_done(&self) -> bool {
        self.since().is_some()
    }

    /// How long ago every pipeline finished, if they have.
    pub(super) fn since(&self) -> Option<Duration> {
        self.at.lock().unwrap().map(|at| at.elapsed())
    }
}

/// Runs the schedules of `seeds` one after the other, each on the store `store` gives, and
/// names every violation with its seed on stderr.
pub async fn run_schedules<S: Store>(
    seeds: impl IntoIterator<Item = u64>,
    store: impl Fn() -> S,
) -> Outcome {
    let mut total = Outcome::default();
    for seed in seeds {
        let outcome = run_schedule(store(), &Schedule::from_seed(seed)).await;
        for violation in &outcome.violations {
            eprintln!("seed {seed}: {violation}");
        }
        total.absorb(outcome);
    }
    total
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
