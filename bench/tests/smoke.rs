//! Small runs of the benchmarks in the test command, so none of them rots between the runs
//! that record numbers: the same binaries, a few clients, the same checks. Each fails when its
//! benchmark would (a lost post, a violated guarantee, an operation over its cost ceiling).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// jobcast-local, built by the same test run (its own tests need it) beside the benchmarks.
fn jobcast_local() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_hostile")).with_file_name("jobcast-local");
    assert!(
        path.exists(),
        "{} is built by the same `cargo nextest run --workspace` (jobcast-local's own tests need it)",
        path.display()
    );
    path
}

/// DynamoDB Local's endpoint, which `scripts/test.sh` starts for the whole run.
fn dynamodb() -> String {
    std::env::var("JOBCAST_DYNAMODB_ENDPOINT")
        .expect("JOBCAST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh")
}

fn succeeded(what: &str, output: std::io::Result<Output>) -> String {
    let output = output.unwrap_or_else(|err| panic!("{what} runs: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what}\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn hostile_clients_take_nothing_from_ordinary_subscribers() {
    // A small flood: 20 attacker connections beside 20 readers; `--check` fails the run when a
    // reader missed an event.
    let output = Command::new(env!("CARGO_BIN_EXE_hostile"))
        .args([
            "--readers",
            "20",
            "--attackers",
            "20",
            "--events",
            "20",
            "--check",
        ])
        .arg("--local-bin")
        .arg(jobcast_local())
        .output();
    succeeded("hostile", output);
}

#[test]
fn fan_out_delivers_everything_in_every_section() {
    // Every section but the baselines, with 20 and 50 clients: the run fails on a lost post.
    let output = Command::new(env!("CARGO_BIN_EXE_fan-out"))
        .arg("--smoke")
        .arg("--local-bin")
        .arg(jobcast_local())
        .output();
    let table = succeeded("fan-out", output);
    assert!(table.contains("| 5 | 50 | jobcast | 50/50 |"), "{table}");
}

#[test]
fn every_operation_is_counted_within_its_ceiling() {
    let output = Command::new(env!("CARGO_BIN_EXE_costs"))
        .args(["--audiences", "1"])
        .env("JOBCAST_DYNAMODB_ENDPOINT", dynamodb())
        .output();
    let table = succeeded("costs", output);
    assert!(table.contains("| first subscribe | 6 ("), "{table}");
}

#[test]
fn the_reconnect_storm_misses_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_storm"))
        .args(["--clients", "20"])
        .arg("--local-bin")
        .arg(jobcast_local())
        .output();
    let table = succeeded("storm", output);
    assert!(table.contains("| jobcast (this build) | 20 |"), "{table}");
}

#[test]
fn a_few_chaos_schedules_hold() {
    let output = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["--schedules", "2", "--first-seed", "1"])
        .output();
    succeeded("chaos", output);
}

#[test]
fn store_reads_counts_both_approaches() {
    let output = Command::new(env!("CARGO_BIN_EXE_store-reads"))
        .args(["--sizes", "20"])
        .env("JOBCAST_DYNAMODB_ENDPOINT", dynamodb())
        .output();
    let table = succeeded("store-reads", output);
    assert!(table.contains("| 20 |"), "{table}");
}

#[test]
fn every_bootstrap_starts_cold_and_answers() {
    // The bootstraps the test command built through cargo lambda (scripts/test.sh does that
    // before the tests); outside it, a developer without them sees why this fails.
    let lambda_dir = Path::new(env!("CARGO_BIN_EXE_cold-start"))
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/")
        .join("lambda");
    assert!(
        lambda_dir.join("sender/bootstrap").exists(),
        "{} has no bootstraps: scripts/test.sh builds them (scripts/lambda-build.sh --check)",
        lambda_dir.display()
    );
    let output = Command::new(env!("CARGO_BIN_EXE_cold-start"))
        // Its events are read from `events/`, beside the workspace's manifest.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .arg("--lambda-dir")
        .arg(&lambda_dir)
        .args([
            "--dynamodb-endpoint",
            &dynamodb(),
            "--runs",
            "1",
            "--no-baseline",
        ])
        .output();
    succeeded("cold-start", output);
}

#[test]
fn the_first_run_bench_reads_the_readmes_first_command() {
    // The timed run is a cold build of minutes; its smoke run reads the command it would time
    // from the README (and the baseline's) and fails unless it is a `cargo run` of
    // jobcast-local.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/first-run.sh");
    let stdout = succeeded(
        "first-run --dry-run",
        Command::new(script).arg("--dry-run").output(),
    );
    assert!(
        stdout.contains("this tree: cargo run -p jobcast-local\n"),
        "{stdout}"
    );
}
