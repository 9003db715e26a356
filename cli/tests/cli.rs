//! The `jobcast` binary against a real jobcast-local, on both stores: `send` through the
//! Lambda Invoke path (with the real AWS SDK Lambda client), `watch` over a real WebSocket,
//! through a server-side drop of its connection.

use std::process::Stdio;
use std::time::Duration;

use jobcast::store::{JobStore, MemoryStore, Store};
use jobcast_local::Emulator;
use jobcast_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const JOBCAST: &str = env!("CARGO_BIN_EXE_jobcast");

async fn jobcast<S: Store>(emulator: &Emulator<S>, args: &[&str]) -> (i32, String) {
    let output = Command::new(JOBCAST)
        .args(args)
        .env("JOBCAST_LOCAL", emulator.http_url())
        .output()
        .await
        .expect("run jobcast");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (
        output.status.code().unwrap_or(-1),
        format!("{stdout}{stderr}"),
    )
}

/// `jobcast watch --plain --from-start` on the emulator with `args`, and its output lines.
fn watch<S: Store>(
    emulator: &Emulator<S>,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut watch = Command::new(JOBCAST)
        .args(["watch", "--plain", "--from-start"])
        .args(args)
        .args(["--url", &emulator.websocket_url()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start jobcast watch");
    let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    (watch, lines)
}

async fn watch_survives_a_drop_and_shows_every_event_once<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let (code, out) = jobcast(
        &emulator,
        &["send", "--job", "cli-job", "register", "--user", "cleo"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(r#""outcome": "registered""#), "{out}");

    let (mut watch, mut lines) = watch(&emulator, &["--job", "cli-job", "--user", "cleo"]);
    let mut shown = Vec::new();

    for step in 1..=6 {
        let progress = (step * 10).to_string();
        let message = format!("step {step}");
        let (code, out) = jobcast(
            &emulator,
            &[
                "send",
                "--job",
                "cli-job",
                "progress",
                "--stage",
                "crawl",
                "--progress",
                &progress,
                "--message",
                &message,
                "--eta",
                "30",
            ],
        )
        .await;
        assert_eq!(code, 0, "{out}");
        if step == 3 {
            // Wait until the watcher has shown seq 3, then drop it from the server side.
            while shown.len() < 3 {
                let line = tokio::time::timeout(PATIENCE, lines.next_line())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if line.starts_with("seq=") {
                    shown.push(line);
                }
            }
            let connections = open_connections(&emulator).await;
            drop_connection(&emulator, &connections[0]).await;
        }
    }
    let (code, out) = jobcast(
        &emulator,
        &[
            "send",
            "--job",
            "cli-job",
            "stage",
            "--stage",
            "crawl",
            "--results",
            r#"{"pages":6}"#,
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = jobcast(
        &emulator,
        &[
            "send",
            "--job",
            "cli-job",
            "complete",
            "--results",
            r#"{"ok":true}"#,
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");

    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
    {
        if line.starts_with("seq=") {
            shown.push(line);
        }
    }
    let status = tokio::time::timeout(PATIENCE, watch.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "a completed job exits 0; shown: {shown:#?}"
    );
    let seqs: Vec<&str> = shown
        .iter()
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    let expected: Vec<String> = (1..=8).map(|seq| format!("seq={seq}")).collect();
    assert_eq!(seqs, expected, "{shown:#?}");
    assert_eq!(
        shown[0],
        "seq=1 progress_update 10% crawl step 1 (about 30 s left)"
    );
    assert_eq!(shown[6], "seq=7 stage_complete crawl done");
    assert_eq!(shown[7], r#"seq=8 job_complete completed {"ok":true}"#);

    // Finished: the snapshot says so, and a late event is refused with exit code 1.
    let (code, out) = jobcast(&emulator, &["status", "--job", "cli-job"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(r#""status": "completed""#), "{out}");
    assert!(out.contains(r#""last_seq": 8"#), "{out}");
    let (code, out) = jobcast(
        &emulator,
        &[
            "send",
            "--job",
            "cli-job",
            "progress",
            "--stage",
            "crawl",
            "--progress",
            "99",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("job_finished"), "{out}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn watch_survives_a_drop_and_shows_every_event_once_in_memory() {
    watch_survives_a_drop_and_shows_every_event_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn watch_survives_a_drop_and_shows_every_event_once_on_dynamodb() {
    watch_survives_a_drop_and_shows_every_event_once(dynamo_store().await).await;
}

#[tokio::test]
async fn watch_exits_by_how_the_job_ended_and_bad_input_is_refused() {
    let emulator = start().await;
    jobcast(&emulator, &["send", "--job", "doomed", "register"]).await;
    jobcast(
        &emulator,
        &[
            "send",
            "--job",
            "doomed",
            "failed",
            "--code",
            "oom",
            "--message",
            "out of memory",
            "--suggested-action",
            "use a bigger worker",
        ],
    )
    .await;
    let url = emulator.websocket_url();
    let (code, out) = jobcast(
        &emulator,
        &["watch", "--job", "doomed", "--plain", "--url", &url],
    )
    .await;
    assert_eq!(code, 3, "a failed job exits 3: {out}");
    assert!(out.contains("status failed"), "{out}");

    let (code, out) = jobcast(
        &emulator,
        &["watch", "--job", "nobody-knows", "--plain", "--url", &url],
    )
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("forbidden"), "{out}");

    let (code, out) = jobcast(
        &emulator,
        &[
            "send",
            "--job",
            "doomed",
            "progress",
            "--stage",
            "x",
            "--progress",
            "140",
        ],
    )
    .await;
    assert_eq!(code, 2, "clap refuses it: {out}");
    assert!(out.contains("140"), "{out}");
    let (code, out) = jobcast(&emulator, &["send", "--job", "bad job id!", "complete"]).await;
    assert_eq!(code, 2, "{out}");
    let (code, out) = jobcast(&emulator, &["status", "--job", "never-registered"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not exist"), "{out}");
    emulator.shutdown().await;
}

/// `send --queue`: the event goes to the queue as SendMessage with the job id as its message
/// group and the event's JSON as its body, and that body, handed to the sender as SQS hands it,
/// reaches the job's subscriber. SQS itself cannot run here: a stub records the SendMessage.
#[tokio::test]
async fn send_through_the_queue_uses_the_job_as_the_message_group() {
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    let captured: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let record = captured.clone();
    let stub = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
                let target = headers["x-amz-target"].to_str().unwrap().to_owned();
                record.lock().unwrap().push((target, serde_json::from_str(&body).unwrap()));
                (
                    [("content-type", "application/x-amz-json-1.0")],
                    r#"{"MessageId":"5fea7756-0ea4-451a-a703-a558b933e274","SequenceNumber":"18849496460467696128"}"#,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sqs = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, stub).await });

    let emulator = start().await;
    register_job(&emulator, "queued-job", Some("quinn")).await;
    let mut client = Client::connect_as(&emulator, "quinn").await;
    client
        .request(serde_json::json!({"action": "subscribe", "job_id": "queued-job"}))
        .await;
    client.expect("job_status").await;

    let queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobcast-EventQueue.fifo";
    let output = Command::new(JOBCAST)
        .args([
            "send",
            "--queue",
            queue_url,
            "--job",
            "queued-job",
            "progress",
            "--stage",
            "crawl",
            "--progress",
            "25",
        ])
        .env("AWS_ENDPOINT_URL_SQS", &sqs)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(r#""queued": "5fea7756-0ea4-451a-a703-a558b933e274""#),
        "{stdout}"
    );

    let (target, request) = captured.lock().unwrap().pop().expect("one SendMessage");
    assert_eq!(target, "AmazonSQS.SendMessage");
    assert_eq!(request["QueueUrl"], queue_url);
    assert_eq!(request["MessageGroupId"], "queued-job");
    // Every event goes with an id of its own, which is also SQS's deduplication id: a retry of
    // the send is dropped by the queue, and a redelivery is recognised by the sender.
    let body = request["MessageBody"].as_str().unwrap();
    let sent: serde_json::Value = serde_json::from_str(body).unwrap();
    let event_id = sent["event_id"].as_str().expect("an event id");
    assert_eq!(request["MessageDeduplicationId"], event_id);
    // What SQS would hand the sender: the same body, in a batch.
    let mut batch = aws_fixture("example-sqs-event.json");
    batch["Records"] = serde_json::json!([{
        "messageId": "5fea7756-0ea4-451a-a703-a558b933e274",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {"MessageGroupId": "queued-job", "ApproximateReceiveCount": "1", "SentTimestamp": "1795860000000",
                       "SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1795860000001"},
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:jobcast-EventQueue.fifo",
        "awsRegion": "eu-west-1"
    }]);
    let (_, _, answer) = invoke_sender(&emulator, &batch).await;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let event = client.expect("progress_update").await;
    assert_eq!(event["seq"], 1);
    assert_eq!(event["progress"], 25.0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn watch_notices_a_lost_final_event_after_a_quiet_spell() {
    let emulator = start().await;
    jobcast(&emulator, &["send", "--job", "lossy", "register"]).await;
    let (mut watch, mut lines) = watch(&emulator, &["--job", "lossy", "--quiet-check-secs", "1"]);
    let (code, out) = jobcast(
        &emulator,
        &[
            "send",
            "--job",
            "lossy",
            "progress",
            "--stage",
            "s",
            "--progress",
            "50",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if line.starts_with("seq=1 ") {
            break;
        }
    }
    // The final event is recorded, but its post never reaches the watcher (written straight
    // to the store, as if every post of it had been lost).
    let now = chrono::Utc::now();
    let complete = jobcast::store::NewEvent {
        job_id: jobcast::protocol::JobId::parse("lossy").unwrap(),
        event_id: None,
        event: serde_json::from_value(
            serde_json::json!({"type": "job_complete", "results": {"pages": 2}}),
        )
        .unwrap(),
        correlation_id: None,
        recorded_at: now,
        job_expires_at: now + chrono::Duration::hours(1),
        event_expires_at: now + chrono::Duration::hours(1),
        owner: None,
    };
    emulator
        .service()
        .store()
        .append_event(complete)
        .await
        .unwrap();
    // About a second later the watcher asks, resumes, shows the end, and exits 0.
    let mut shown_end = false;
    while let Ok(Some(line)) = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap()
    {
        if line.starts_with("seq=2 job_complete") {
            shown_end = true;
        }
    }
    assert!(shown_end, "the lost final event was shown");
    let status = tokio::time::timeout(PATIENCE, watch.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `jobcast bridge redis --local … --listen …` as an operator runs it beside the hub's Redis:
/// a `PUBLISH` reaches the user, `/health` and `/metrics` answer, and SIGTERM stops it cleanly.
#[tokio::test]
async fn the_redis_bridge_forwards_reports_and_stops_on_sigterm() {
    let redis = RedisServer::start().await;
    let emulator = start_on(MemoryStore::new()).await;
    let mut ana = Client::connect_as(&emulator, "ana").await;
    let mut bridge = Command::new(JOBCAST)
        .args(["bridge", "redis", "--redis-url", &redis.url()])
        .args(["--local", &emulator.http_url(), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start jobcast bridge redis");
    let mut lines = BufReader::new(bridge.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the listen address in time")
        .unwrap()
        .expect("a line");
    let health_url = line
        .split_whitespace()
        .last()
        .expect("the address")
        .to_owned();
    let health = || async {
        reqwest::get(format!("{health_url}/health"))
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()
    };
    eventually("the bridge is subscribed", || async {
        health()
            .await
            .is_some_and(|h| h["subscriber"]["active"] == true)
    })
    .await;

    let message =
        r#"{"type":"alert","payload":{"title":"Quota","message":"90% used","severity":"high"}}"#;
    assert_eq!(redis.cli(&["PUBLISH", "user_noti:ana", message]), "1");
    let frame = ana.expect("alert").await;
    assert_eq!(frame["payload"]["severity"], "high");
    // The frame can reach the client before the sender's answer reaches the bridge.
    let metrics = || async {
        reqwest::get(format!("{health_url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    eventually("the bridge counted the delivery", || async {
        metrics()
            .await
            .contains("jobcast_bridge_messages_forwarded_total 1")
    })
    .await;
    let metrics = metrics().await;
    assert!(
        metrics.contains("websocket_messages_sent_total{type=\"alert\"} 1"),
        "{metrics}"
    );

    let pid = bridge.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), bridge.wait())
        .await
        .expect("the bridge stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    // Nobody listens on the channel any more.
    assert_eq!(redis.cli(&["PUBLISH", "user_noti:ana", message]), "0");
}

/// `jobcast cost` prints the bill docs/costs.md shows for the same traffic, and refuses
/// numbers that are no traffic.
#[test]
fn cost_prints_the_documented_bill_and_refuses_nonsense() {
    let args = [
        "cost",
        "--connections",
        "10000",
        "--subscriptions-per-connection",
        "50",
        "--events",
        "10000000",
        "--subscribers-per-event",
        "5",
    ];
    let output = std::process::Command::new(JOBCAST)
        .args(args)
        .output()
        .expect("run jobcast cost");
    assert!(output.status.success());
    let bill = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(bill.contains("total a month"), "{bill}");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/costs.md"))
        .expect("docs/costs.md");
    let example = format!("$ jobcast {}\n{}", args.join(" "), bill.trim_end());
    assert!(
        doc.contains(&example),
        "docs/costs.md should show this bill:\n{example}"
    );
    for bad in [
        ["--connections", "-1"],
        ["--events", "lots"],
        ["--connections", "inf"],
    ] {
        let mut with_bad: Vec<&str> = args.to_vec();
        let at = with_bad.iter().position(|a| *a == bad[0]).unwrap();
        with_bad[at + 1] = bad[1];
        let refused = std::process::Command::new(JOBCAST)
            .args(&with_bad)
            .output()
            .expect("run jobcast cost");
        assert_eq!(refused.status.code(), Some(2), "{bad:?} is refused");
    }
}
