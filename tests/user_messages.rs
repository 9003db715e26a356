//! User-level messages (the notification hub's types): every connection of the user hears
//! them, nobody else does, and a malformed one reaches no one. On both stores.

use jobcast::store::{MemoryStore, Store};
use jobcast_tests::*;
use serde_json::{Value, json};

fn project_progress(user: &str, status: &str) -> Value {
    json!({
        "user_id": user,
        "message": {
            "type": "project_progress",
            "payload": {"project_id": "site-audit-7", "status": status, "total": 120, "done": 48,
                        "errors": 2, "progress_percent": 40.0},
            "timestamp": "2026-11-24T08:00:00.000Z"
        }
    })
}

async fn every_tab_hears_its_user_and_no_one_else<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let mut tabs = vec![
        Client::connect_as(&emulator, "ana").await,
        Client::connect_as(&emulator, "ana").await,
        Client::connect_as(&emulator, "ana").await,
    ];
    let mut other = Client::connect_as(&emulator, "bo").await;

    let notification = json!({
        "user_id": "ana",
        "message": {"type": "notification", "title": "Export ready", "message": "Your CSV is ready.", "level": "success"},
        "correlation_id": "req-42"
    });
    let (status, _, report) = invoke_sender(&emulator, &notification).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcome"], "delivered", "{report}");
    assert_eq!(report["delivered"], 3, "{report}");
    for tab in &mut tabs {
        let frame = tab.expect("notification").await;
        assert_eq!(frame["title"], "Export ready");
        assert_eq!(frame["level"], "success");
        assert_eq!(frame["correlation_id"], "req-42");
    }

    // A hub publisher's shape: the channel name, the message as a JSON string.
    let hub = json!({
        "channel": "user_noti:ana",
        "message": project_progress("ana", "CRAWLING")["message"].to_string()
    });
    let (status, _, report) = invoke_sender(&emulator, &hub).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["delivered"], 3, "{report}");
    for tab in &mut tabs {
        let frame = tab.expect("project_progress").await;
        assert_eq!(
            frame["payload"],
            project_progress("ana", "CRAWLING")["message"]["payload"],
            "forwarded in the hub's envelope, unchanged"
        );
        assert_eq!(frame["timestamp"], "2026-11-24T08:00:00.000Z");
    }

    let alert = json!({"user_id": "ana", "message": {"type": "alert", "title": "Quota", "message": "90 % used", "severity": "high"}});
    let (_, _, report) = invoke_sender(&emulator, &alert).await;
    assert_eq!(report["delivered"], 3, "{report}");
    for tab in &mut tabs {
        assert_eq!(tab.expect("alert").await["severity"], "high");
    }
    other.expect_silence().await;

    // One tab closes: the other two still hear, and the report says two.
    tabs.pop().unwrap().close().await;
    eventually("the closed tab is forgotten", || async {
        let (_, _, report) = invoke_sender(&emulator, &project_progress("ana", "DONE")).await;
        report["delivered"] == 2
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn every_tab_hears_its_user_and_no_one_else_in_memory() {
    every_tab_hears_its_user_and_no_one_else(MemoryStore::new()).await;
}

#[tokio::test]
async fn every_tab_hears_its_user_and_no_one_else_on_dynamodb() {
    every_tab_hears_its_user_and_no_one_else(dynamo_store().await).await;
}

async fn malformed_messages_reach_no_one<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let mut tab = Client::connect_as(&emulator, "ana").await;

    let with_payload = |change: &dyn Fn(&mut Value)| {
        let mut request = project_progress("ana", "CRAWLING");
        change(&mut request["message"]["payload"]);
        request
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unparseable JSON",
            json!({"user_id": "ana", "message": "{\"type\": \"project_progress\", "}),
            "message",
        ),
        (
            "a missing field",
            with_payload(&|p| {
                p.as_object_mut().unwrap().remove("total");
            }),
            "message.payload.total",
        ),
        (
            "a wrong type",
            with_payload(&|p| p["done"] = json!("48")),
            "message.payload.done",
        ),
        (
            "an unknown status",
            with_payload(&|p| p["status"] = json!("PAUSED")),
            "message.payload.status",
        ),
        (
            "a negative count",
            with_payload(&|p| p["errors"] = json!(-3)),
            "message.payload.errors",
        ),
        (
            "a percent over 100",
            with_payload(&|p| p["progress_percent"] = json!(140)),
            "message.payload.progress_percent",
        ),
        (
            "a bad level",
            json!({"user_id": "ana", "message": {"type": "notification", "title": "t", "message": "m", "level": "shout"}}),
            "message.level",
        ),
        (
            "no user",
            json!({"message": {"type": "notification", "title": "t", "message": "m", "level": "info"}}),
            "user_id",
        ),
        (
            "a foreign channel",
            json!({"channel": "team_noti:ana", "message": {"type": "notification", "title": "t", "message": "m", "level": "info"}}),
            "channel",
        ),
    ];
    for (name, request, field) in cases {
        let (status, headers, answer) = invoke_sender(&emulator, &request).await;
        assert_eq!(status, 200, "{name}: Lambda answers errors with 200");
        assert_eq!(
            headers["x-amz-function-error"], "Unhandled",
            "{name}: {answer}"
        );
        assert_eq!(answer["errorType"], "InvalidRequest", "{name}: {answer}");
        let message = answer["errorMessage"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{name}: {message} should name {field}"
        );
    }

    // An unknown type is skipped and said so, not an error.
    let unknown = json!({"user_id": "ana", "message": {"type": "confetti", "colors": 3}});
    let (status, headers, answer) = invoke_sender(&emulator, &unknown).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-amz-function-error").is_none(), "{answer}");
    assert_eq!(answer["outcome"], "ignored", "{answer}");
    assert_eq!(answer["message_type"], "confetti");

    tab.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_messages_reach_no_one_in_memory() {
    malformed_messages_reach_no_one(MemoryStore::new()).await;
}

#[tokio::test]
async fn malformed_messages_reach_no_one_on_dynamodb() {
    malformed_messages_reach_no_one(dynamo_store().await).await;
}

#[tokio::test]
async fn a_redelivered_user_message_carries_the_same_message_id() {
    let emulator = start().await;
    let mut tab = Client::connect_as(&emulator, "ana").await;
    let body = json!({
        "user_id": "ana",
        "message": {"type": "notification", "title": "Export ready", "message": "", "level": "info"}
    });
    let batch = sqs_batch(vec![sqs_record(
        "7b8f2c1e-note",
        Some("user_noti:ana"),
        &body.to_string(),
    )]);
    // SQS delivers it twice (a redelivery after a timeout): both frames name the SQS message,
    // so a client can show it once.
    for _ in 0..2 {
        invoke_sender(&emulator, &batch).await;
        let frame = tab.expect("notification").await;
        assert_eq!(frame["message_id"], "7b8f2c1e-note", "{frame}");
    }
    // A direct request names its own id, or is given a fresh one.
    let mut named = body.clone();
    named["message_id"] = json!("note-1");
    invoke_sender(&emulator, &named).await;
    assert_eq!(tab.expect("notification").await["message_id"], "note-1");
    invoke_sender(&emulator, &body).await;
    let fresh = tab.expect("notification").await;
    assert!(
        fresh["message_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32),
        "{fresh}"
    );
    emulator.shutdown().await;
}
