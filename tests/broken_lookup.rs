//! A store failure in the middle of a fan-out: the posts already under way are finished, the
//! lookup is tried again, and what could not be reached is reported, so that SQS hands the
//! record back and its redelivery reaches the rest under the same seq. Before, the sender
//! returned an error and dropped the posts in flight.

use jobcast::handlers::Jobcast;
use jobcast::store::MemoryStore;
use jobcast_local::EmulatorConfig;
use jobcast_tests::*;
use serde_json::json;

/// Five subscribers, read two at a time: the fan-out looks up three pages.
async fn five_subscribers() -> (
    jobcast_local::Emulator<ObservedStore<MemoryStore>>,
    std::sync::Arc<Observations>,
    Vec<Client>,
) {
    let store = ObservedStore::new(MemoryStore::new());
    let seen = store.observations();
    // Subscriptions as if made a while ago: the head no longer names them as recent, so the
    // sender finds them by the lookup alone.
    seen.forget_recent
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut settings = test_settings();
    settings.delivery.page_size = 2;
    // Room for more posts than a page: the next page is looked up while the first page's
    // posts (50 ms each) are still under way.
    settings.delivery.concurrency = 4;
    settings.delivery.subscriber_cache_ttl = std::time::Duration::ZERO;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = jobcast_local::Emulator::start(
        listener,
        Jobcast::new(store, settings),
        EmulatorConfig {
            faults: jobcast_local::Faults {
                post_latency: std::time::Duration::from_millis(50),
                ..Default::default()
            },
            ..EmulatorConfig::default()
        },
    )
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut client = Client::connect(&emulator).await;
        client.subscribe("paged").await;
        clients.push(client);
    }
    (emulator, seen, clients)
}

#[tokio::test]
async fn a_lookup_that_fails_once_is_tried_again_and_everyone_hears() {
    let (emulator, seen, mut clients) = five_subscribers().await;
    // The first page is read; the second fails once, then answers.
    let before = Observations::get(&seen.audience_lookups);
    seen.fail_next("connections_of");
    let (_, _, report) = invoke_sender(&emulator, &progress("paged", 10.0, "")).await;
    assert_eq!(report["delivered"], 5, "{report}");
    assert_eq!(report.get("incomplete"), None, "{report}");
    assert!(
        Observations::get(&seen.audience_lookups) - before >= 4,
        "a retried lookup"
    );
    for client in &mut clients {
        assert_eq!(client.expect("progress_update").await["seq"], 1);
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_lookup_that_keeps_failing_mid_fan_out_is_reported_and_sqs_reaches_the_rest() {
    let (emulator, seen, mut clients) = five_subscribers().await;
    let body = progress("paged", 10.0, "").to_string();
    let batch = sqs_batch(vec![sqs_record("m-paged", Some("paged"), &body)]);
    // The first page is read; every lookup after it fails, more often than the sender tries.
    seen.fail_after("connections_of", 1, 100);
    let (_, _, answer) = invoke_sender(&emulator, &batch).await;
    assert_eq!(
        answer["batchItemFailures"],
        json!([{"itemIdentifier": "m-paged"}]),
        "the record comes back for redelivery: {answer}"
    );
    // The first page's two subscribers heard it: their posts were under way when the lookup
    // broke off, and were finished, not dropped. The other three did not, yet.
    let mut heard = 0;
    for client in &mut clients {
        if let Some(frame) = client.try_expect("progress_update").await {
            assert_eq!(frame["seq"], 1);
            heard += 1;
        }
    }
    assert_eq!(heard, 2);

    // The store answers again; SQS redelivers the same message: same seq, everyone reached.
    seen.stop_failing();
    let (_, _, answer) = invoke_sender(&emulator, &batch).await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    for client in &mut clients {
        let frame = client.expect("progress_update").await;
        assert_eq!(frame["seq"], 1, "a redelivery takes no new seq");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn posts_already_under_way_are_finished_when_the_first_lookup_fails() {
    let (emulator, seen, mut clients) = five_subscribers().await;
    // The five are recent subscribers again, named on the job's head: they are posted to
    // before any lookup, which then fails for good.
    seen.forget_recent
        .store(false, std::sync::atomic::Ordering::SeqCst);
    seen.fail_after("connections_of", 0, 100);
    let (_, _, report) = invoke_sender(&emulator, &progress("paged", 10.0, "")).await;
    assert_eq!(report["incomplete"], true, "{report}");
    assert_eq!(report["delivered"], 5, "{report}");
    for client in &mut clients {
        assert_eq!(client.expect("progress_update").await["seq"], 1);
    }
    emulator.shutdown().await;
}
