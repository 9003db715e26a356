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

/// With authentication on, a job without an owner is nobody's: not followed, not read, not
/// cancelled; unless the deployment opens ownerless jobs on purpose.
async fn ownerless_jobs_are_nobodys<S: Store>(store: S) {
    let emulator = start_secured(store, test_settings()).await;
    register_job(&emulator, "nobodys", None).await;
    let mut ana = Client::connect_secured(&emulator, "ana").await;
    for action in ["subscribe", "request_status", "cancel_job"] {
        let reply = ana
            .request(json!({"action": action, "job_id": "nobodys"}))
            .await;
        assert_eq!(reply["code"], "forbidden", "{action}: {reply}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn ownerless_jobs_are_nobodys_in_memory() {
    ownerless_jobs_are_nobodys(MemoryStore::new()).await;
}

#[tokio::test]
async fn ownerless_jobs_are_nobodys_on_dynamodb() {
    ownerless_jobs_are_nobodys(dynamo_store().await).await;
}

/// Where ownerless jobs are open, naming the owner later (the first event that names one)
/// removes everyone else: a user who followed the job while it had no owner hears nothing of
/// it afterwards.
async fn naming_an_owner_removes_every_other_user<S: Store>(store: S) {
    let mut settings = test_settings();
    settings.open_ownerless_jobs = true;
    let emulator = start_secured(store, settings).await;
    register_job(&emulator, "shared", None).await;
    let mut bo = Client::connect_secured(&emulator, "bo").await;
    assert_eq!(bo.subscribe("shared").await["status"], "pending");
    let bo_id = bo.connection_id(&emulator).await;

    let mut named = progress("shared", 10.0, "ana's now");
    named["user_id"] = json!("ana");
    let (_, _, report) = invoke_sender(&emulator, &named).await;
    assert_eq!(report["outcome"], "published", "{report}");
    assert_eq!(
        report["delivered"], 0,
        "bo is not served ana's job: {report}"
    );
    let held = emulator
        .service()
        .store()
        .subscribed_jobs(&bo_id, 10)
        .await
        .unwrap();
    assert!(held.is_empty(), "bo's subscription is gone: {held:?}");

    let mut ana = Client::connect_secured(&emulator, "ana").await;
    assert_eq!(ana.subscribe("shared").await["status"], "running");
    let (_, _, report) = invoke_sender(&emulator, &progress("shared", 20.0, "on")).await;
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(ana.expect("progress_update").await["seq"], 2);
    bo.expect_silence().await;
    let refused = bo
        .request(json!({"action": "subscribe", "job_id": "shared"}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn naming_an_owner_removes_every_other_user_in_memory() {
    naming_an_owner_removes_every_other_user(MemoryStore::new()).await;
}

#[tokio::test]
async fn naming_an_owner_removes_every_other_user_on_dynamodb() {
    naming_an_owner_removes_every_other_user(dynamo_store().await).await;
}

/// Fan-out compares each subscriber with the job's owner: a subscription of another user
/// (left by a race with the naming of the owner, or written by a bug) is never served.
async fn fan_out_serves_the_owner_only<S: Store>(store: S) {
    let emulator = start_secured(store, test_settings()).await;
    register_job(&emulator, "ana-only", Some("ana")).await;
    let mut ana = Client::connect_secured(&emulator, "ana").await;
    assert_eq!(ana.subscribe("ana-only").await["status"], "pending");
    let mut bo = Client::connect_secured(&emulator, "bo").await;
    let planted = jobcast::store::Subscription {
        connection_id: bo.connection_id(&emulator).await,
        job_id: jobcast::protocol::JobId::parse("ana-only").unwrap(),
        user_id: jobcast::protocol::UserId::parse("bo").unwrap(),
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(5),
        live_after: 0,
    };
    emulator
        .service()
        .store()
        .put_subscription(&planted)
        .await
        .unwrap();
    // Past the window in which a new subscription is posted to whatever the index says.
    tokio::time::sleep(jobcast::store::RECENT_SUBSCRIBER_WINDOW).await;
    let (_, _, report) = invoke_sender(&emulator, &progress("ana-only", 50.0, "half")).await;
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(ana.expect("progress_update").await["seq"], 1);
    bo.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn fan_out_serves_the_owner_only_in_memory() {
    fan_out_serves_the_owner_only(MemoryStore::new()).await;
}

#[tokio::test]
async fn fan_out_serves_the_owner_only_on_dynamodb() {
    fan_out_serves_the_owner_only(dynamo_store().await).await;
}
