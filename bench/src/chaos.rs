//! The long chaos check: `--schedules N` seeded schedules from `--first-seed` on the in-memory
//! store, or on DynamoDB Local with `--dynamodb ENDPOINT` (see `tests/support/chaos.rs` for what
//! a schedule is and what it checks). Prints a Markdown table row and every violation; exits
//! non-zero if there was one.

use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use jobcast::store::MemoryStore;
use jobcast_tests::chaos::{Outcome, Schedule, run_schedule};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `RUST_LOG=info bench/chaos.sh --seed N` shows what the handlers did.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut schedules = 100u64;
    let mut first_seed = 1u64;
    let mut dynamodb: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value after the flag");
        match arg.as_str() {
            "--schedules" => schedules = value()?.parse()?,
            "--first-seed" => first_seed = value()?.parse()?,
            "--seed" => {
                first_seed = value()?.parse()?;
                schedules = 1;
            }
            "--dynamodb" => dynamodb = Some(value()?),
            other => bail!("unknown argument {other}"),
        }
    }
    let store_name = if dynamodb.is_some() {
        "DynamoDB Local"
    } else {
        "in-memory"
    };
    let dynamo = match &dynamodb {
        Some(endpoint) => {
            // SAFETY: set before any other thread reads the environment.
            unsafe { std::env::set_var("JOBCAST_DYNAMODB_ENDPOINT", endpoint) };
            Some(jobcast_tests::dynamo_store().await)
        }
        None => None,
    };
    let started = Instant::now();
    // Four schedules at a time: they spend most of their time waiting for quiet.
    let outcomes = futures::stream::iter(first_seed..first_seed + schedules)
        .map(|seed| {
            let dynamo = dynamo.clone();
            async move {
                let schedule = Schedule::from_seed(seed);
                let outcome = match dynamo {
                    Some(store) => run_schedule(store, &schedule).await,
                    None => run_schedule(MemoryStore::new(), &schedule).await,
                };
                (seed, outcome)
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let mut total = Outcome::default();
    for (seed, outcome) in outcomes {
        for violation in &outcome.violations {
            eprintln!("seed {seed}: {violation}");
        }
        total.absorb(outcome);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| {store_name} | {schedules} (seeds {first_seed}–{}) | {} | {} | {} | {} | {} | {} | {} | {:.0} s |",
        first_seed + schedules - 1,
        total.events,
        total.deliveries,
        total.duplicates,
        total.reordered,
        total.subscribes,
        total.told,
        total.violations.len(),
        secs
    );
    if !total.violations.is_empty() {
        bail!("{} violations", total.violations.len());
    }
    Ok(())
}
