//! The delivery engine against jobcast-local's fault injection: injected 429s and 500s,
//! latency, a quota, and connections that close mid-fan-out.

use std::time::Duration;

use aws_sdk_apigatewaymanagement::primitives::Blob;
use jobcast::protocol::UserId;
use jobcast::store::{ConnectionStore, PageRequest};
use jobcast_local::{EmulatorConfig, Faults};
use jobcast_tests::*;

fn with_faults(faults: Faults) -> EmulatorConfig {
    EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn with_10_percent_injected_429s_and_500s_every_event_arrives_exactly_once_in_order() {
    let mut settings = test_settings();
    // 10 attempts: the chance that one post fails all of them is 10⁻¹⁰.
    settings.delivery.max_attempts = 10;
    let faults = Faults {
        fail_rate: 0.1,
        fail_statuses: vec![429, 500],
        ..Faults::default()
    };
    let emulator = start_with(settings, with_faults(faults)).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut client = Client::connect(&emulator).await;
        // Replies are retried like fan-out posts: the `subscribed` reply gets through.
        client.subscribe("flaky").await;
        clients.push(client);
    }

    let mut retried = 0;
    for n in 1..=10 {
        let (_, _, report) =
            invoke_sender(&emulator, &progress("flaky", f64::from(n) * 10.0, "")).await;
        assert_eq!(report["delivered"], 20, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        retried += report["retried"].as_u64().unwrap();
    }
    assert!(retried > 0, "faults were injected and retried");
    futures::future::join_all(clients.iter_mut().map(|client| async move {
        let mut seqs = Vec::new();
        while seqs.len() < 10 {
            let frame = client.recv().await;
            if frame["type"] == "progress_update" {
                seqs.push(frame["seq"].as_u64().unwrap());
            }
        }
        assert_eq!(
            seqs,
            (1..=10).collect::<Vec<u64>>(),
            "each event once, in seq order"
        );
        client.expect_silence().await;
    }))
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_connection_closed_mid_fan_out_is_removed_and_the_rest_hear() {
    let mut settings = test_settings();
    // One post at a time, 40 ms each: the fan-out to 10 takes ~400 ms.
    settings.delivery.concurrency = 1;
    let faults = Faults {
        post_latency: Duration::from_millis(40),
        ..Faults::default()
    };
    // Subscriptions as if made a while ago: none is named as recent on the job's head, so the
    // posts go in the lookup's order, by connection id.
    let store = ObservedStore::new(jobcast::store::MemoryStore::new());
    store
        .observations()
        .forget_recent
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = jobcast_local::Emulator::start(
        listener,
        jobcast::handlers::Jobcast::new(store, settings),
        with_faults(faults),
    )
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut client = Client::connect(&emulator).await;
        client.subscribe("midway").await;
        clients.push(client);
    }
    // Posts go in connection-id order: close the client that comes last.
    let store = emulator.service().store().clone();
    let mut ids = Vec::new();
    for client in &clients {
        ids.push((client.connection_id(&emulator).await, client.user.clone()));
    }
    ids.sort();
    let (last_id, last_user) = ids.last().unwrap().clone();
    let position = clients.iter().position(|c| c.user == last_user).unwrap();
    let last = clients.remove(position);

    let sender = {
        let url = format!(
            "{}/2015-03-31/functions/sender/invocations",
            emulator.http_url()
        );
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .body(progress("midway", 50.0, "").to_string())
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    // The fan-out has begun once the client posted to first has its frame; eight posts of
    // 40 ms each still stand before the last client's.
    let (first_id, first_user) = ids.first().unwrap().clone();
    assert_ne!(first_id, last_id);
    let first = clients.iter().position(|c| c.user == first_user).unwrap();
    clients[first].expect("progress_update").await;
    last.close().await;
    let report = sender.await.unwrap();
    assert_eq!(report["delivered"], 9, "{report}");
    assert_eq!(report["gone"], 1, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    for (n, client) in clients.iter_mut().enumerate() {
        if n != first {
            client.expect("progress_update").await;
        }
    }
    assert!(store.get_connection(&last_id).await.unwrap().is_none());
    let user = UserId::parse(last_user).unwrap();
    assert!(
        store
            .connections_of(
                &jobcast::store::Audience::User(user.clone()),
                PageRequest::first(10)
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_quota_answers_429_limit_exceeded_through_the_sdk() {
    let faults = Faults {
        throttle_rps: std::num::NonZeroU32::new(1),
        ..Faults::default()
    };
    let emulator = start_with(test_settings(), with_faults(faults)).await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    // The SDK's own retries would wait for the bucket to refill and hide the 429.
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(
        &sdk_config(&emulator.http_url()).await,
    )
    .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled())
    .build();
    let sdk = aws_sdk_apigatewaymanagement::Client::from_conf(config);
    sdk.post_to_connection()
        .connection_id(id.as_str())
        .data(Blob::new("{\"type\":\"first\"}"))
        .send()
        .await
        .expect("within the quota");
    client.expect("first").await;
    let err = sdk
        .post_to_connection()
        .connection_id(id.as_str())
        .data(Blob::new("{}"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_limit_exceeded_exception());
    emulator.shutdown().await;
}

#[tokio::test]
async fn when_every_post_fails_the_pipeline_still_gets_its_report() {
    let mut settings = test_settings();
    settings.delivery.max_attempts = 3;
    // Every post fails, replies included, so the subscription goes in through the store.
    let faults = Faults {
        fail_rate: 1.0,
        fail_statuses: vec![500],
        ..Faults::default()
    };
    let emulator = start_with(settings, with_faults(faults)).await;
    let client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    let store = emulator.service().store().clone();
    store
        .put_subscription(&jobcast::store::Subscription {
            connection_id: id,
            job_id: jobcast::protocol::JobId::parse("doomed").unwrap(),
            user_id: UserId::parse(client.user.clone()).unwrap(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            live_after: 0,
        })
        .await
        .unwrap();
    let (status, headers, report) = invoke_sender(&emulator, &progress("doomed", 1.0, "")).await;
    assert_eq!(status, 200);
    assert!(
        headers.get("x-amz-function-error").is_none(),
        "a failed send is not a pipeline error"
    );
    assert_eq!(report["outcome"], "published");
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["retried"], 2, "3 attempts: 2 retries; {report}");
    assert_eq!(report["delivered"], 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn under_a_quota_the_fan_out_backs_off_and_loses_nothing() {
    let mut settings = test_settings();
    settings.delivery.max_attempts = 15;
    settings.delivery.backoff_base = Duration::from_millis(20);
    settings.delivery.backoff_max = Duration::from_millis(500);
    let emulator = start_with(settings, EmulatorConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut client = Client::connect(&emulator).await;
        client.subscribe("quota").await;
        clients.push(client);
    }
    // Turn the quota on only now, so the subscribe replies above were not throttled.
    emulator
        .registry()
        .set_throttle_rps(std::num::NonZeroU32::new(100));
    let (_, _, report) = invoke_sender(&emulator, &progress("quota", 50.0, "")).await;
    assert_eq!(report["delivered"], 200, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        report["retried"].as_u64().unwrap() > 0,
        "the quota pushed back: {report}"
    );
    futures::future::join_all(clients.iter_mut().map(|client| async move {
        client.expect("progress_update").await;
    }))
    .await;
    emulator.shutdown().await;
}
