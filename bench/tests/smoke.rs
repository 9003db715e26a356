//! Small runs of the benchmarks in the test command, so none of them rots between the runs
//! that record numbers: the same binaries, a few clients, the same checks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// jobcast-local, built by the same test run (its own tests need it) beside the benchmarks.
fn jobcast_local() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_hostile")).with_file_name("jobcast-local");
    assert!(
        path.exists(),
        "{} is built by `cargo nextest run --workspace` (jobcast-local's own tests need it)",
        path.display()
    );
    path
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
        .output()
        .expect("the hostile benchmark runs");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
