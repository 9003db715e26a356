//! Users see their own jobs and nobody else's: two users, on both stores.

use jobcast::store::{MemoryStore, Store};
use jobcast_tests::*;
use serde_json::{Value, json};

/// The reply with the job id and the time blanked, to compare refusals of different jobs.
fn without_job_id(mut reply: Value, job_id: &str) -> Value {
    let message = reply["message"].as_str().unwrap().replace(job_id, "<job>");
    reply["message"] = json!(message);
    reply.as_object_mut().unwrap().remove("timestamp");
    reply
}

async fn two_users_see_only_their_own_jobs<S: Store>(store: S) {
    let emulator = start_on(store).await;
    // Unique ids: the DynamoDB tables are per test, but keep runs readable.
    let registered = register_job(&emulator, "ana-export", Some("ana")).await;
    assert_eq!(registered["outcome"], "registered", "{registered}");
    assert_eq!(registered["status"], "pending");

    let mut ana = Client::connect_as(&emulator, "ana").await;
    let mut bo = Client::connect_as(&emulator, "bo").await;

    let subscribed = ana
        .request(json!({"action": "subscribe", "job_id": "ana-export"}))
        .await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(ana.expect("job_status").await["status"], "pending");

    // Bo is refused everything about Ana's job, exactly as about a job that does not exist.
    for action in ["subscribe", "request_status", "cancel_job"] {
        let theirs = bo
            .request(json!({"action": action, "job_id": "ana-export"}))
            .await;
        assert_eq!(theirs["type"], "error", "{action}: {theirs}");
        assert_eq!(theirs["code"], "forbidden", "{action}: {theirs}");
        let missing = bo
            .request(json!({"action": action, "job_id": "no-such-job"}))
            .await;
        assert_eq!(
            without_job_id(theirs, "ana-export"),
            without_job_id(missing, "no-such-job"),
            "{action}: an existing job of another user must read as a missing one"
        );
    }

    // The pipeline's events reach Ana only; one naming Bo as the owner is refused.
    let mut event = progress("ana-export", 25.0, "a quarter");
    event["user_id"] = json!("ana");
    let (_, _, report) = invoke_sender(&emulator, &event).await;
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(ana.expect("progress_update").await["seq"], 1);
    let mut hijack = progress("ana-export", 99.0, "mine now");
    hijack["user_id"] = json!("bo");
    let (_, _, refused) = invoke_sender(&emulator, &hijack).await;
    assert_eq!(refused["outcome"], "rejected", "{refused}");
    assert_eq!(refused["code"], "forbidden");
    let again = register_job(&emulator, "ana-export", Some("bo")).await;
    assert_eq!(again["code"], "forbidden", "{again}");
    ana.expect_silence().await;
    bo.expect_silence().await;

    // A job whose first event names its owner is private from that event on.
    let mut first = progress("bo-crawl", 10.0, "started");
    first["user_id"] = json!("bo");
    invoke_sender(&emulator, &first).await;
    let status = bo
        .request(json!({"action": "request_status", "job_id": "bo-crawl"}))
        .await;
    assert_eq!(status["type"], "job_status", "{status}");
    let peek = ana
        .request(json!({"action": "request_status", "job_id": "bo-crawl"}))
        .await;
    assert_eq!(peek["code"], "forbidden", "{peek}");

    // The owner may cancel; the job's subscribers hear it.
    let cancelled = ana
        .request(
            json!({"action": "cancel_job", "job_id": "ana-export", "reason": "changed my mind"}),
        )
        .await;
    assert_eq!(cancelled["type"], "job_cancelled", "{cancelled}");
    assert_eq!(ana.expect("job_status").await["status"], "cancelled");
    emulator.shutdown().await;
}

#[tokio::test]
async fn two_users_see_only_their_own_jobs_in_memory() {
    two_users_see_only_their_own_jobs(MemoryStore::new()).await;
}

#[tokio::test]
async fn two_users_see_only_their_own_jobs_on_dynamodb() {
    two_users_see_only_their_own_jobs(dynamo_store().await).await;
}
