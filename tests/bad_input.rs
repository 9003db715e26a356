//! Hostile input gets a clear, typed answer: no panic, no silent drop, nothing stored.

use jobcast_tests::*;
use serde_json::json;

#[tokio::test]
async fn bad_frames_get_typed_error_replies() {
    let emulator = start().await;
    register_job(&emulator, "j", None).await;
    let mut client = Client::connect(&emulator).await;
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{not json".into(), "invalid_json", None),
        ("[1,2]".into(), "invalid_message", None),
        (
            json!({"job_id": "j"}).to_string(),
            "invalid_message",
            Some("action"),
        ),
        (
            json!({"action": "launch"}).to_string(),
            "unknown_action",
            Some("subscribe, unsubscribe, cancel_job, request_status, ping"),
        ),
        (
            json!({"action": "subscribe", "job_id": 42}).to_string(),
            "invalid_message",
            Some("job_id"),
        ),
        (
            json!({"action": "subscribe", "job_id": "no spaces"}).to_string(),
            "invalid_message",
            Some("job_id"),
        ),
        (
            json!({"action": "subscribe", "job_id": "x".repeat(129)}).to_string(),
            "invalid_message",
            Some("job_id"),
        ),
        (
            json!({"action": "subscribe", "job_id": "j", "last_seq": "7"}).to_string(),
            "invalid_message",
            Some("last_seq"),
        ),
        (
            json!({"action": "subscribe", "job_id": "j", "lastSeq": 7}).to_string(),
            "invalid_message",
            Some("lastSeq"),
        ),
        (
            json!({"action": "cancel_job"}).to_string(),
            "invalid_message",
            Some("job_id"),
        ),
    ];
    for (frame, code, mentions) in cases {
        let reply = client.request_text(frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame} → {reply}");
        assert_eq!(reply["code"], code, "{frame} → {reply}");
        if let Some(text) = mentions {
            assert!(
                reply["message"].as_str().unwrap().contains(text),
                "{frame} → {reply}"
            );
        }
        assert!(reply["suggested_action"].is_string(), "{frame} → {reply}");
    }
    let store = emulator.service().store();
    assert_eq!(store.subscription_count(), 0, "nothing was stored half-way");
    assert_eq!(
        store.connection_count(),
        1,
        "and the connection is still there"
    );
    // The same connection, with a frame that is right, does store a subscription: the count
    // above would have seen one.
    client.subscribe("j").await;
    assert_eq!(store.subscription_count(), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn binary_frames_are_refused_with_a_reason() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.send_binary(b"{\"action\":\"ping\"}".to_vec()).await;
    let reply = client.expect("error").await;
    assert_eq!(reply["code"], "invalid_message");
    assert!(reply["message"].as_str().unwrap().contains("binary"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_128_kb_closes_the_connection_with_1009() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-big").await;
    let frame = json!({"action": "ping", "pad": "x".repeat(128 * 1024)}).to_string();
    client.send_text(frame).await;
    let close = client.expect_close().await;
    assert_eq!(close_code(&close), Some(1009));
    wait_until_store_empty(&emulator, true).await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_refuses_the_upgrade_and_stores_nothing() {
    let emulator = start().await;
    let url = format!("{}/?user_id=bad%20user", emulator.websocket_url());
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 400),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    assert_eq!(emulator.service().store().connection_count(), 0);
    assert_eq!(emulator.registry().len(), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn bad_sender_input_is_refused_with_the_field_named() {
    let emulator = start().await;
    let cases = [
        (
            json!({"job_id": "j", "event": {"type": "progress_update", "stage": "s", "progress": 150}}),
            "event.progress",
        ),
        (
            json!({"job_id": "j", "event": {"type": "progress_update", "stage": "", "progress": 5}}),
            "event.stage",
        ),
        (
            json!({"job_id": "j", "event": {"type": "progress_update", "stage": "s"}}),
            "event.progress",
        ),
        (
            json!({"job_id": "j", "event": {"type": "warp_speed"}}),
            "warp_speed",
        ),
        (
            json!({"job_id": "bad id", "event": {"type": "job_complete"}}),
            "job_id",
        ),
        (json!({"event": {"type": "job_complete"}}), "job_id"),
        (json!({"job_id": "j"}), "event"),
        (
            json!({"job_id": "j", "event": {"type": "job_complete"}, "extra": 1}),
            "extra",
        ),
        (json!({"job_id": "j", "event": "done"}), "event"),
    ];
    for (payload, field) in cases {
        let (status, headers, body) = invoke_sender(&emulator, &payload).await;
        assert_eq!(status, 200, "a function error, as Lambda reports one");
        assert_eq!(
            headers.get("x-amz-function-error").unwrap(),
            "Unhandled",
            "{payload}"
        );
        assert_eq!(body["errorType"], "InvalidRequest", "{payload} → {body}");
        assert!(
            body["errorMessage"].as_str().unwrap().contains(field),
            "{payload} → {body}"
        );
    }
    // Nothing was recorded: the first valid event still gets seq 1.
    let (_, _, report) = invoke_sender(&emulator, &progress("j", 1.0, "")).await;
    assert_eq!(report["seq"], 1);

    let (status, headers, body) = invoke_raw(&emulator, "sender", "{oops".into()).await;
    assert_eq!(status, 400);
    assert_eq!(
        headers.get("x-amzn-errortype").unwrap(),
        "InvalidRequestContentException"
    );
    assert!(body["message"].is_string());

    let too_big = json!({"job_id": "j", "event": {"type": "job_complete", "results": {"blob": "x".repeat(130 * 1024)}}});
    let (_, _, body) = invoke_sender(&emulator, &too_big).await;
    assert_eq!(body["errorType"], "PayloadTooLarge", "{body}");
    emulator.shutdown().await;
}
