//! Job status and cancellation, as the store knows them today.

use jobcast_tests::*;
use serde_json::json;

#[tokio::test]
async fn request_status_reports_the_latest_snapshot() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let reply = client
        .request(json!({"action": "request_status", "job_id": "job-s", "correlation_id": "q1"}))
        .await;
    assert_eq!(reply["type"], "error");
    assert_eq!(
        reply["code"], "forbidden",
        "an unknown job reads as not yours"
    );
    assert_eq!(reply["action"], "request_status");
    assert_eq!(reply["correlation_id"], "q1");

    invoke_sender(&emulator, &progress("job-s", 30.0, "3 of 10")).await;
    let stage_done = json!({"job_id": "job-s", "event": {"type": "stage_complete", "stage": "crawl", "results": {"pages": 10}}});
    invoke_sender(&emulator, &stage_done).await;
    let status = client
        .request(json!({"action": "request_status", "job_id": "job-s"}))
        .await;
    assert_eq!(status["type"], "job_status", "{status}");
    assert_eq!(status["status"], "running");
    assert_eq!(status["stage"], "crawl");
    assert_eq!(status["progress"], 30.0);
    assert_eq!(status["message"], "3 of 10");
    assert_eq!(status["last_seq"], 2);
    assert_eq!(status["cancel_requested"], false);
    emulator.shutdown().await;
}

#[tokio::test]
async fn subscribing_to_a_known_job_also_sends_its_status() {
    let emulator = start().await;
    invoke_sender(&emulator, &progress("job-k", 70.0, "")).await;
    let mut client = Client::connect(&emulator).await;
    let status = client.subscribe("job-k").await;
    assert_eq!(status["progress"], 70.0);
    assert_eq!(status["last_seq"], 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn cancel_reaches_every_subscriber_and_finishes_the_job() {
    let emulator = start().await;
    let mut watcher = Client::connect(&emulator).await;
    let mut canceller = Client::connect(&emulator).await;
    watcher.subscribe("job-c").await;
    invoke_sender(&emulator, &progress("job-c", 10.0, "")).await;
    watcher.expect("progress_update").await;

    let reply = canceller
        .request(json!({"action": "cancel_job", "job_id": "job-c", "reason": "user asked"}))
        .await;
    assert_eq!(reply["type"], "job_status", "{reply}");
    assert_eq!(reply["status"], "cancelled");
    assert_eq!(reply["cancel_requested"], true);
    let cancelled = watcher.expect("job_cancelled").await;
    assert_eq!(cancelled["seq"], 2);
    assert_eq!(cancelled["reason"], "user asked");

    // Finished jobs take no more events, and cannot be cancelled twice.
    let (_, _, outcome) = invoke_sender(&emulator, &progress("job-c", 20.0, "")).await;
    assert_eq!(outcome["outcome"], "rejected", "{outcome}");
    assert_eq!(outcome["code"], "job_finished");
    watcher.expect_silence().await;
    let again = canceller
        .request(json!({"action": "cancel_job", "job_id": "job-c"}))
        .await;
    assert_eq!(again["code"], "job_finished");
    let unknown = canceller
        .request(json!({"action": "cancel_job", "job_id": "nope"}))
        .await;
    assert_eq!(unknown["code"], "forbidden");
    emulator.shutdown().await;
}

#[tokio::test]
async fn failed_jobs_carry_their_error() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-f").await;
    let failed = json!({"job_id": "job-f", "event": {"type": "job_failed", "stage": "parse",
        "error": {"code": "PARSE_ERROR", "message": "page 7 is not HTML", "suggested_action": "check the URL"}}});
    let (_, _, report) = invoke_sender(&emulator, &failed).await;
    assert_eq!(report["delivered"], 1);
    let frame = client.expect("job_failed").await;
    assert_eq!(frame["stage"], "parse");
    assert_eq!(frame["error"]["code"], "PARSE_ERROR");
    assert_eq!(frame["error"]["suggested_action"], "check the URL");
    emulator.shutdown().await;
}

/// A pipeline stage polls between steps: `is_cancelled` turns true the moment a user cancels,
/// and `get_job` gives the whole snapshot.
#[tokio::test]
async fn the_pipeline_sees_a_cancel_through_the_sender() {
    let emulator = start().await;
    register_job(&emulator, "job-poll", Some("pia")).await;
    let ask = |action: &str| json!({"action": action, "job_id": "job-poll"});
    let (status, _, answer) = invoke_sender(&emulator, &ask("is_cancelled")).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"outcome": "cancellation", "job_id": "job-poll", "cancelled": false, "status": "pending"})
    );
    invoke_sender(&emulator, &progress("job-poll", 40.0, "halfway-ish")).await;

    let mut owner = Client::connect_as(&emulator, "pia").await;
    let reply = owner
        .request(json!({"action": "cancel_job", "job_id": "job-poll", "reason": "changed my mind"}))
        .await;
    assert_eq!(reply["status"], "cancelled", "{reply}");

    let (_, _, answer) = invoke_sender(&emulator, &ask("is_cancelled")).await;
    assert_eq!(answer["cancelled"], true, "{answer}");
    assert_eq!(answer["status"], "cancelled");
    let (_, _, snapshot) = invoke_sender(&emulator, &ask("get_job")).await;
    assert_eq!(snapshot["outcome"], "job", "{snapshot}");
    assert_eq!(snapshot["status"], "cancelled");
    assert_eq!(snapshot["cancel_requested"], true);
    assert_eq!(snapshot["message"], "changed my mind");
    assert_eq!(snapshot["last_seq"], 2);

    // The stage that did not poll in time is refused, and told why.
    let (_, _, late) = invoke_sender(&emulator, &progress("job-poll", 60.0, "too late")).await;
    assert_eq!(late["outcome"], "rejected", "{late}");
    assert_eq!(late["code"], "job_finished");

    let (_, _, missing) = invoke_sender(
        &emulator,
        &json!({"action": "get_job", "job_id": "never-was"}),
    )
    .await;
    assert_eq!(
        missing,
        json!({"outcome": "not_found", "job_id": "never-was"})
    );
    let (status, _, refused) = invoke_sender(
        &emulator,
        &json!({"action": "is_cancelled", "job_id": "job-poll", "extra": 1}),
    )
    .await;
    assert_eq!(status, 200, "Lambda reports function errors in a 200");
    assert_eq!(refused["errorType"], "InvalidRequest", "{refused}");
    emulator.shutdown().await;
}
