//! The `jobcast-local` binary itself, as the README runs it: started as a process on a free
//! port, driven by a real WebSocket client and HTTP, stopped by its PID.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

struct Running {
    child: Child,
    address: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` and reads the address from its banner.
fn start(args: &[&str], env: &[(&str, String)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jobcast-local"));
    command
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start jobcast-local");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let banner = lines
        .next()
        .expect("a banner line")
        .expect("readable stdout");
    let address = banner
        .strip_prefix("jobcast-local listening on ws://")
        .unwrap_or_else(|| panic!("unexpected banner: {banner}"))
        .to_owned();
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, address }
}

async fn next_json(
    socket: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Invokes the sender over the Lambda Invoke API path, as `curl` would.
async fn invoke_sender(running: &Running, event: &Value) -> Value {
    reqwest::Client::new()
        .post(format!(
            "http://{}/2015-03-31/functions/sender/invocations",
            running.address
        ))
        .body(event.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn subscribe_publish_receive(running: &Running, job_id: &str) {
    // A pipeline registers its job before handing out the id.
    let registered = invoke_sender(
        running,
        &json!({"action": "register_job", "job_id": job_id}),
    )
    .await;
    assert_eq!(registered["outcome"], "registered", "{registered}");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/?user_id=cli-test", running.address))
            .await
            .expect("connect");
    socket
        .send(Message::Text(
            json!({"action": "subscribe", "job_id": job_id})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "subscribed");
    assert_eq!(next_json(&mut socket).await["status"], "pending");

    let event = json!({"job_id": job_id, "event": {"type": "progress_update", "stage": "s", "progress": 10, "message": "m"}});
    let report = invoke_sender(running, &event).await;
    assert_eq!(report["delivered"], 1, "{report}");
    let frame = next_json(&mut socket).await;
    assert_eq!(frame["type"], "progress_update");
    assert_eq!(frame["seq"], 1);

    let health: Value = reqwest::get(format!("http://{}/health", running.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["connections"], 1);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["store"]["reachable"], true, "{health}");
    let last = health["last_delivery_at"]
        .as_str()
        .expect("a delivery time");
    assert!(chrono::DateTime::parse_from_rfc3339(last).is_ok(), "{last}");
}

#[tokio::test]
async fn the_readme_run_command_serves_the_embedded_store() {
    let running = start(&[], &[]);
    subscribe_publish_receive(&running, "cli-memory").await;
}

/// Every `cargo run -p jobcast-local` the README and `docs/` show: its features exist, a flag
/// that needs one (`--store dynamodb`) comes with it, and every flag is one the binary takes.
/// The README's first command builds no feature and no `--release`: its first build stays
/// quick (bench/first-run.sh times it).
#[test]
fn the_documented_commands_build_what_they_run() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let manifest = std::fs::read_to_string(format!("{root}/local/Cargo.toml")).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_jobcast-local"))
        .arg("--help")
        .output()
        .expect("jobcast-local --help");
    let help = String::from_utf8(help.stdout).unwrap();
    let mut pages = vec![format!("{root}/README.md")];
    for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            pages.push(path.display().to_string());
        }
    }
    let mut commands = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for line in text.lines() {
            if let Some(start) = line.find("cargo run ")
                && line.contains("-p jobcast-local")
            {
                let command = line[start..].split('`').next().unwrap_or_default();
                commands.push((page.clone(), command.trim().to_owned()));
            }
        }
    }
    assert!(commands.len() >= 4, "{commands:?}");
    for (page, command) in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let (build, run) = match words.iter().position(|word| *word == "--") {
            Some(split) => (&words[..split], &words[split + 1..]),
            None => (&words[..], &[][..]),
        };
        // `--features a,b`, `--features=a,b` or `-F a,b`, as often as given.
        let mut features: Vec<&str> = Vec::new();
        for (at, word) in build.iter().enumerate() {
            let list = match *word {
                "--features" | "-F" => build.get(at + 1).copied(),
                _ => word.strip_prefix("--features="),
            };
            features.extend(list.into_iter().flat_map(|list| list.split(',')));
        }
        for feature in &features {
            assert!(
                manifest.contains(&format!("\n{feature} = [")),
                "{page}: `{command}` asks for a feature jobcast-local does not have: {feature}"
            );
        }
        if run.windows(2).any(|pair| pair == ["--store", "dynamodb"]) {
            assert!(
                features.contains(&"dynamodb"),
                "{page}: `{command}` runs on DynamoDB without building the dynamodb feature"
            );
        }
        for flag in run.iter().filter(|word| word.starts_with("--")) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{page}: `{command}`: jobcast-local takes no {flag}"
            );
        }
    }
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let first = readme
        .split("## The two commands")
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.lines().next())
        .expect("the README's first command");
    assert_eq!(
        first, "cargo run -p jobcast-local",
        "the first run should stay quick"
    );
}

// The binary has the DynamoDB store in the test command's build: the workspace's tests crate
// turns the `dynamodb` feature on.
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn it_runs_on_dynamodb_local_creating_its_tables() {
    let endpoint = std::env::var("JOBCAST_DYNAMODB_ENDPOINT").expect(
        "JOBCAST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh (it starts DynamoDB Local)",
    );
    let suffix: u64 = rand::random();
    let env = [
        (
            "CONNECTIONS_TABLE_NAME",
            format!("cli-connections-{suffix:x}"),
        ),
        ("JOBS_TABLE_NAME", format!("cli-jobs-{suffix:x}")),
    ];
    let running = start(
        &["--store", "dynamodb", "--dynamodb-endpoint", &endpoint],
        &env,
    );
    subscribe_publish_receive(&running, "cli-dynamo").await;
    // A second start finds the tables there and keeps the job's history: seq goes on from 1.
    drop(running);
    let running = start(
        &["--store", "dynamodb", "--dynamodb-endpoint", &endpoint],
        &env,
    );
    let event = json!({"job_id": "cli-dynamo", "event": {"type": "job_complete"}});
    let report = invoke_sender(&running, &event).await;
    assert_eq!(report["seq"], 2, "{report}");
}

#[tokio::test]
async fn store_faults_are_injected_as_asked() {
    // Every store call fails as unavailable: the sender says so, /health says so.
    let running = start(
        &["--store-fail-rate", "1", "--store-fail-kind", "unavailable"],
        &[],
    );
    let event = json!({"job_id": "faulty", "event": {"type": "job_complete"}});
    let refused = invoke_sender(&running, &event).await;
    assert_eq!(refused["errorType"], "StoreUnavailable", "{refused}");
    let health = reqwest::get(format!("http://{}/health", running.address))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    drop(running);

    // Throttled, 1 ms slower per call, on half the calls: some requests get through.
    let running = start(
        &[
            "--store-fail-rate",
            "0.5",
            "--store-fail-kind",
            "throttled",
            "--store-latency-ms",
            "1",
        ],
        &[],
    );
    let mut answers = std::collections::BTreeSet::new();
    for n in 0..40 {
        let event = json!({"action": "get_job", "job_id": format!("j{n}")});
        let answer = invoke_sender(&running, &event).await;
        answers.insert(
            answer["outcome"]
                .as_str()
                .or(answer["errorType"].as_str())
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        answers,
        ["StoreThrottled".to_owned(), "not_found".to_owned()].into(),
        "both answers, over 40 tries at 50 %"
    );
}

#[tokio::test]
async fn a_post_can_fail_after_it_was_delivered() {
    let running = start(&["--fail-after-delivery-rate", "1"], &[]);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/?user_id=cli-test", running.address))
            .await
            .expect("connect");
    invoke_sender(
        &running,
        &json!({"action": "register_job", "job_id": "late-500"}),
    )
    .await;
    socket
        .send(Message::Text(
            json!({"action": "subscribe", "job_id": "late-500"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    // The answer reached the socket though every post of it was answered 500: the retries
    // delivered it again, then the half-done subscribe closed the connection, so the client
    // resumes rather than wait on a subscription nobody could confirm.
    let mut subscribed = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame or the close in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(frame["type"], "subscribed", "{frame}");
                subscribed += 1;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
    assert!(
        subscribed >= 2,
        "each retry delivered it again: {subscribed}"
    );
}
