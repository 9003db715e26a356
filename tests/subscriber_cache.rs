//! The sender's warm cache of job subscribers never hides a new subscriber, and forgets a
//! connection that turned out to be gone.

use jobcast_tests::*;

#[tokio::test]
async fn a_subscriber_who_joins_after_a_cached_fan_out_hears_the_next_event() {
    let store = ObservedStore::new(jobcast::store::MemoryStore::new());
    let seen = store.observations();
    let lookups = || Observations::get(&seen.audience_lookups);
    let emulator = start_on(store).await;
    assert!(
        !emulator
            .service()
            .settings()
            .delivery
            .subscriber_cache_ttl
            .is_zero(),
        "the cache is on by default"
    );
    let mut early = Client::connect(&emulator).await;
    early.subscribe("cached").await;
    // Two events: the first reads the subscribers from the store and fills the cache, the
    // second is served from it without a lookup.
    for (n, lookups_after) in [(1, 1), (2, 1)] {
        let (_, _, report) = invoke_sender(&emulator, &progress("cached", f64::from(n), "")).await;
        assert_eq!(report["delivered"], 1, "{report}");
        early.expect("progress_update").await;
        assert_eq!(lookups(), lookups_after, "store lookups after event {n}");
    }
    let mut late = Client::connect(&emulator).await;
    assert_eq!(late.subscribe("cached").await["last_seq"], 2);
    let (_, _, report) = invoke_sender(&emulator, &progress("cached", 3.0, "")).await;
    assert_eq!(
        report["delivered"], 2,
        "the new subscriber was not missed: {report}"
    );
    assert_eq!(
        lookups(),
        2,
        "the new subscription made the cached list stale"
    );
    assert_eq!(late.expect("progress_update").await["seq"], 3);
    assert_eq!(early.expect("progress_update").await["seq"], 3);

    // An unsubscribe is seen at once too.
    let reply = late
        .request(serde_json::json!({"action": "unsubscribe", "job_id": "cached"}))
        .await;
    assert_eq!(reply["type"], "unsubscribed", "{reply}");
    let (_, _, report) = invoke_sender(&emulator, &progress("cached", 4.0, "")).await;
    assert_eq!(report["delivered"], 1, "{report}");
    late.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_gone_connection_drops_the_cached_list() {
    use jobcast::store::ConnectionStore;
    let emulator = start().await;
    let mut stays = Client::connect(&emulator).await;
    stays.subscribe("cached-gone").await;
    let mut leaves = Client::connect(&emulator).await;
    leaves.subscribe("cached-gone").await;
    let leaving_id = leaves.connection_id(&emulator).await;
    let (_, _, report) = invoke_sender(&emulator, &progress("cached-gone", 1.0, "")).await;
    assert_eq!(report["delivered"], 2, "{report}");
    // A disconnect removes the subscription but does not touch the job's subscription
    // version (it cannot know the jobs cheaply): the warm list still names the connection.
    leaves.close().await;
    let store = emulator.service().store().clone();
    eventually("the disconnect is recorded", || {
        let store = store.clone();
        let id = leaving_id.clone();
        async move { store.get_connection(&id).await.unwrap().is_none() }
    })
    .await;
    let counts =
        |report: &serde_json::Value| (report["delivered"].as_u64(), report["gone"].as_u64());
    let (_, _, report) = invoke_sender(&emulator, &progress("cached-gone", 2.0, "")).await;
    assert_eq!(
        counts(&report),
        (Some(1), Some(1)),
        "posted from the cache: {report}"
    );
    // The gone connection dropped the cached list: the next event reads the store afresh.
    let (_, _, report) = invoke_sender(&emulator, &progress("cached-gone", 3.0, "")).await;
    assert_eq!(counts(&report), (Some(1), Some(0)), "{report}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_the_index_does_not_show_yet_still_hears_the_next_event() {
    // DynamoDB's by_job index is eventually consistent: for a moment after a subscribe, the
    // sender's lookup may not find it. A final event sent in that moment has nothing after it
    // to reveal the gap.
    let store = ObservedStore::new(jobcast::store::MemoryStore::new());
    let seen = store.observations();
    *seen.index_lag.lock().unwrap() = Some(std::time::Duration::from_secs(60));
    let emulator = start_on(store).await;
    register_job(&emulator, "quick", None).await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("quick").await;
    let done = serde_json::json!({"job_id": "quick", "event": {"type": "job_complete"}});
    let (_, _, report) = invoke_sender(&emulator, &done).await;
    assert_eq!(
        report["delivered"], 1,
        "named on the head, heard at once: {report}"
    );
    assert_eq!(client.expect("job_complete").await["seq"], 1);
    client.expect_silence().await;
    emulator.shutdown().await;
}

/// Found by the chaos check: a retry of an earlier event looked its subscribers up for that seq,
/// which leaves out a subscriber live after it, and the warm sender cached that list for the
/// current version; the next event, at the same version, then missed the subscriber.
#[tokio::test]
async fn a_retry_of_an_earlier_event_does_not_leave_a_new_subscriber_out_of_the_cache() {
    use jobcast::handlers::Jobcast;
    use jobcast::store::MemoryStore;
    let store = ObservedStore::new(MemoryStore::new());
    // The head no longer names anyone as recent: only the lookup (or the cache) finds them.
    store
        .observations()
        .forget_recent
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let service = Jobcast::new(store.clone(), test_settings());
    let gateway = ScriptedGateway::default();
    listening(&store, "early", "cached").await;
    let first = serde_json::json!({
        "job_id": "cached", "event_id": "e-1",
        "event": {"type": "progress_update", "stage": "s", "progress": 10.0}
    });
    service.handle_send(&gateway, first.clone()).await.unwrap();
    // A subscriber whose replay gave it seq 1; then seq 1 is sent again (SQS redelivers it).
    listening_after(&store, "late", "cached", 1).await;
    service.handle_send(&gateway, first).await.unwrap();
    service
        .handle_send(&gateway, progress("cached", 20.0, "next"))
        .await
        .unwrap();
    let heard: Vec<u64> = gateway
        .frames_to("late")
        .iter()
        .map(|frame| frame["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        heard,
        [2],
        "the late subscriber hears seq 2 (and not seq 1)"
    );
}
