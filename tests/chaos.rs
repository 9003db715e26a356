//! The chaos check, short: 24 seeded schedules on the in-memory store and 2 on DynamoDB Local,
//! each with pipelines, clients that drop and resume, and faults in posts and store calls (see
//! `support/chaos.rs`). `bench/chaos.sh` runs the long version (1,000 and 100 schedules).
//! Any violation fails the test, naming its seed: `bench/chaos.sh --seed N` replays its plan.

use jobcast::store::MemoryStore;
use jobcast_tests::chaos::{Outcome, Schedule, run_schedule, run_schedules};

fn check(outcome: &Outcome, schedules: usize) {
    println!(
        "{schedules} schedules: {} events, {} deliveries ({} duplicates dropped, {} held for an earlier seq), {} subscribes, {} connections, {} told",
        outcome.events,
        outcome.deliveries,
        outcome.duplicates,
        outcome.reordered,
        outcome.subscribes,
        outcome.connections,
        outcome.told
    );
    assert!(outcome.events > 0 && outcome.deliveries > 0, "{outcome:?}");
    assert!(
        outcome.violations.is_empty(),
        "{} violations: {:#?}",
        outcome.violations.len(),
        outcome.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_four_schedules_keep_the_promise_in_memory() {
    let total = run_schedules(1..=24, MemoryStore::new).await;
    check(&total, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedules_keep_the_promise_on_dynamodb() {
    let store = jobcast_tests::dynamo_store().await;
    let total = run_schedules(1001..=1002, || store.clone()).await;
    check(&total, 2);
}

/// The check can fail: when the direct pipelines never send again what the sender reports
/// unreached, and 45 % of the posts answer 500 (4 % fail every attempt), their
/// clients lose those events for good, and the check reports the silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_finds_events_that_are_lost() {
    let mut total = Outcome::default();
    for seed in 1..=3 {
        let mut schedule = Schedule::from_seed(seed);
        schedule.resend = false;
        schedule.throttle_rate = 0.0;
        schedule.error_rate = 0.45;
        total.absorb(run_schedule(MemoryStore::new(), &schedule).await);
    }
    let silent = total
        .violations
        .iter()
        .filter(|v| v.starts_with("silence"))
        .count();
    println!("{silent} silent clients found in 3 schedules without resends");
    assert!(silent > 0, "{total:?}");
}
