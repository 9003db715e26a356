//! Routes end to end: real sockets, the real handlers, the sender through the Invoke API.

use std::time::{Duration, Instant};

use jobcast::protocol::{ConnectionId, JobId, UserId};
use jobcast::store::{Connection, ConnectionStore, Subscription};
use jobcast_tests::*;
use serde_json::json;

#[tokio::test]
async fn an_event_reaches_exactly_the_subscribers_of_its_job() {
    let emulator = start().await;
    let mut first = Client::connect(&emulator).await;
    let mut second = Client::connect(&emulator).await;
    let mut other = Client::connect(&emulator).await;
    first.subscribe("job-a").await;
    second.subscribe("job-a").await;
    other.subscribe("job-b").await;

    let (status, headers, report) =
        invoke_sender(&emulator, &progress("job-a", 40.0, "4 of 10 pages")).await;
    assert_eq!(status, 200);
    assert!(headers.get("x-amz-function-error").is_none(), "{report}");
    assert_eq!(report["outcome"], "published");
    assert_eq!(report["seq"], 1);
    assert_eq!(report["delivered"], 2);
    assert_eq!(report["gone"], 0);
    assert_eq!(report["failed"], 0);

    for client in [&mut first, &mut second] {
        let frame = client.expect("progress_update").await;
        assert_eq!(frame["job_id"], "job-a");
        assert_eq!(frame["seq"], 1);
        assert_eq!(frame["stage"], "crawl");
        assert_eq!(frame["progress"], 40.0);
        assert_eq!(frame["message"], "4 of 10 pages");
        assert!(frame["timestamp"].as_str().unwrap().ends_with('Z'));
        client.expect_silence().await;
    }
    other.expect_silence().await;

    let done = json!({"job_id": "job-b", "event": {"type": "job_complete", "results": {"pages": 10}}, "correlation_id": "run-7"});
    let (_, _, report) = invoke_sender(&emulator, &done).await;
    assert_eq!(report["delivered"], 1);
    let frame = other.expect("job_complete").await;
    assert_eq!(frame["results"]["pages"], 10);
    assert_eq!(frame["correlation_id"], "run-7");
    first.expect_silence().await;
    second.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn seq_counts_up_per_job() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-seq").await;
    for expected in 1..=3 {
        let (_, _, report) = invoke_sender(
            &emulator,
            &progress("job-seq", f64::from(expected) * 10.0, ""),
        )
        .await;
        assert_eq!(report["seq"], expected);
        assert_eq!(client.expect("progress_update").await["seq"], expected);
    }
    let (_, _, report) = invoke_sender(&emulator, &progress("another-job", 1.0, "")).await;
    assert_eq!(report["seq"], 1);
    assert_eq!(report["delivered"], 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-u").await;
    let reply = client
        .request(json!({"action": "unsubscribe", "job_id": "job-u"}))
        .await;
    assert_eq!(reply["type"], "unsubscribed");
    let (_, _, report) = invoke_sender(&emulator, &progress("job-u", 5.0, "")).await;
    assert_eq!(report["delivered"], 0);
    client.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn disconnect_removes_the_connection_and_its_subscriptions() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-1").await;
    client.subscribe("job-2").await;
    let store = emulator.service().store().clone();
    assert_eq!(store.connection_count(), 1);
    assert_eq!(store.subscription_count(), 2);
    client.close().await;
    wait_until_store_empty(&emulator, true).await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_connections_listing_shows_exactly_the_open_sockets() {
    let emulator = start().await;
    let listing = || async {
        let body: serde_json::Value = reqwest::get(format!("{}/connections", emulator.http_url()))
            .await
            .expect("GET /connections")
            .json()
            .await
            .expect("a JSON listing");
        let mut ids: Vec<String> = body["connections"]
            .as_array()
            .expect("a connections array")
            .iter()
            .map(|connection| {
                assert!(connection["connected_at"].is_string(), "{connection}");
                connection["connection_id"].as_str().unwrap().to_owned()
            })
            .collect();
        ids.sort();
        ids
    };
    assert!(listing().await.is_empty());

    let first = Client::connect(&emulator).await;
    let second = Client::connect(&emulator).await;
    let first_id = first.connection_id(&emulator).await.to_string();
    let second_id = second.connection_id(&emulator).await.to_string();
    let mut both = vec![first_id, second_id.clone()];
    both.sort();
    assert_eq!(listing().await, both);

    first.close().await;
    eventually("the closed socket leaves the listing", || async {
        listing().await == vec![second_id.clone()]
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_gone_subscriber_is_removed_and_the_rest_still_hear() {
    let emulator = start().await;
    let mut live = Client::connect(&emulator).await;
    live.subscribe("job-g").await;
    // A connection whose socket vanished without $disconnect, as happens in AWS.
    let store = emulator.service().store().clone();
    let stale = ConnectionId::parse("c3RhbGUtY29ubg=").unwrap();
    let expires_at = chrono::Utc::now() + chrono::Duration::hours(1);
    let user_id = UserId::parse("ghost").unwrap();
    store
        .put_connection(&Connection {
            connection_id: stale.clone(),
            user_id: user_id.clone(),
            connected_at: chrono::Utc::now(),
            expires_at,
        })
        .await
        .unwrap();
    store
        .put_subscription(&Subscription {
            connection_id: stale.clone(),
            job_id: JobId::parse("job-g").unwrap(),
            user_id,
            expires_at,
            live_after: 0,
        })
        .await
        .unwrap();

    let (_, _, report) = invoke_sender(&emulator, &progress("job-g", 50.0, "half")).await;
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(report["gone"], 1, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    live.expect("progress_update").await;
    assert!(store.get_connection(&stale).await.unwrap().is_none());
    let (_, _, report) = invoke_sender(&emulator, &progress("job-g", 60.0, "")).await;
    assert_eq!(
        report["gone"], 0,
        "the stale subscription went with its connection: {report}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn ping_answers_pong_with_the_correlation_id() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let reply = client
        .request(json!({"action": "ping", "correlation_id": "req-42"}))
        .await;
    assert_eq!(reply["type"], "pong");
    assert_eq!(reply["correlation_id"], "req-42");
    assert!(reply["timestamp"].is_string());
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_sender_answers_lambda_sdk_clients() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-sdk").await;
    let lambda = aws_sdk_lambda::Client::new(&sdk_config(&emulator.http_url()).await);
    let output = lambda
        .invoke()
        .function_name("jobcast-sender")
        .payload(aws_sdk_lambda::primitives::Blob::new(
            progress("job-sdk", 12.5, "via the SDK").to_string(),
        ))
        .send()
        .await
        .expect("the Lambda SDK invokes the sender");
    assert_eq!(output.status_code(), 200);
    assert!(output.function_error().is_none());
    let report: serde_json::Value =
        serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap();
    assert_eq!(report["delivered"], 1);
    assert_eq!(client.expect("progress_update").await["progress"], 12.5);

    let err = lambda
        .invoke()
        .function_name("no-such-function")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    emulator.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_like_api_gateway_does() {
    let config = jobcast_local::EmulatorConfig {
        limits: jobcast_local::Limits {
            idle_timeout: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let emulator = start_with(test_settings(), config).await;
    let mut client = Client::connect(&emulator).await;
    let close = client.expect_close().await;
    assert_eq!(close_code(&close), Some(1001));
    wait_until_store_empty(&emulator, false).await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn client_frames_keep_a_connection_past_its_ttl() {
    // A 3 s TTL. The clocks are measured, not assumed: an event goes out only once the
    // original expiry has surely passed, and counts only if the refreshed one surely has not;
    // a machine too slow for that tries again rather than passing or failing by luck.
    const TTL: Duration = Duration::from_secs(3);
    const MARGIN: Duration = Duration::from_millis(300);
    let mut settings = jobcast::settings::Settings {
        connection_ttl: TTL,
        ..test_settings()
    };
    // The store's expiry is under test, not the sender's warm cache (whose own TTL would
    // keep serving the expired subscription for up to its length).
    settings.delivery.subscriber_cache_ttl = Duration::ZERO;
    let emulator = start_with(settings, jobcast_local::EmulatorConfig::default()).await;
    for attempt in 1..=3 {
        let job = format!("job-long-{attempt}");
        let mut client = Client::connect(&emulator).await;
        client.subscribe(&job).await;
        // Both expiries were set before this instant.
        let subscribed = Instant::now();
        tokio::time::sleep(TTL / 2).await;
        let pinged = Instant::now();
        assert_eq!(
            client.request(json!({"action": "ping"})).await["type"],
            "pong"
        );
        tokio::time::sleep_until((subscribed + TTL + MARGIN).into()).await;
        let (_, _, report) = invoke_sender(&emulator, &progress(&job, 99.0, "")).await;
        if pinged.elapsed() + MARGIN >= TTL {
            eprintln!(
                "attempt {attempt}: too slow to tell ({:?}); again",
                pinged.elapsed()
            );
            continue;
        }
        assert_eq!(
            report["delivered"], 1,
            "past its first expiry, the ping kept the subscription alive: {report}"
        );
        client.expect("progress_update").await;

        // And without frames, the TTL does end it (the event posted no frame and extended
        // nothing).
        let last_frame = Instant::now();
        tokio::time::sleep_until((last_frame + TTL + MARGIN).into()).await;
        let (_, _, report) = invoke_sender(&emulator, &progress(&job, 100.0, "")).await;
        assert_eq!(report["delivered"], 0, "{report}");
        emulator.shutdown().await;
        return;
    }
    panic!("three attempts were all too slow to tell");
}

#[tokio::test]
async fn health_says_when_the_store_cannot_be_reached() {
    let store = jobcast::store::DynamoStore::new(
        &sdk_config(&refusing_endpoint().await).await,
        jobcast::store::dynamodb::schema::TableNames::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = jobcast_local::Emulator::start(
        listener,
        jobcast::handlers::Jobcast::new(store, test_settings()),
        jobcast_local::EmulatorConfig::default(),
    )
    .unwrap();
    let response = reqwest::get(format!("{}/health", emulator.http_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["reachable"], false, "{health}");
    assert!(health["last_delivery_at"].is_null(), "{health}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_connection_may_follow_only_so_many_jobs() {
    let mut settings = test_settings();
    settings.max_subscriptions_per_connection = 3;
    let emulator = start_with(settings, jobcast_local::EmulatorConfig::default()).await;
    let mut client = Client::connect(&emulator).await;
    for job_id in ["cap-1", "cap-2", "cap-3"] {
        client.subscribe(job_id).await;
    }
    register_job(&emulator, "cap-4", None).await;
    let refused = client
        .request(json!({"action": "subscribe", "job_id": "cap-4"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "too_many_subscriptions");
    assert!(
        refused["message"].as_str().unwrap().contains('3'),
        "{refused}"
    );
    assert_eq!(emulator.service().store().subscription_count(), 3);

    // Subscribing again to a job it follows is no new subscription.
    client.subscribe("cap-2").await;
    let reply = client
        .request(json!({"action": "unsubscribe", "job_id": "cap-1"}))
        .await;
    assert_eq!(reply["type"], "unsubscribed");
    client.subscribe("cap-4").await;
    assert_eq!(emulator.service().store().subscription_count(), 3);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_frames_is_refused_then_closed() {
    let mut settings = test_settings();
    // One token a second, 30 at once: the test sends its frames well within a second or two.
    settings.frame_rate = 1;
    settings.frame_burst = 30;
    let emulator = start_with(settings, jobcast_local::EmulatorConfig::default()).await;
    let mut client = Client::connect(&emulator).await;
    let (mut pongs, mut limited) = (0, 0);
    let started = std::time::Instant::now();
    let closed = loop {
        client.send(json!({"action": "ping"})).await;
        match client.next_event().await {
            Incoming::Text(frame) if frame["type"] == "pong" => pongs += 1,
            Incoming::Text(frame) => {
                assert_eq!(frame["code"], "rate_limited", "{frame}");
                assert!(frame["message"].as_str().unwrap().contains("30"), "{frame}");
                limited += 1;
            }
            Incoming::Closed => break true,
        }
        if pongs + limited > 200 {
            break false;
        }
    };
    assert!(closed, "the flood was never cut off");
    // The bucket refills one token a second: however slow this machine was, the flood earned
    // at most one more frame per second it lasted (and one for the second it started in).
    let refills = started.elapsed().as_secs() + 1;
    assert!(
        (30..=30 + refills).contains(&pongs),
        "{pongs} pongs: the burst of 30, and at most {refills} refills"
    );
    assert!(
        (30..=30 * (refills + 1)).contains(&limited),
        "{limited}: told every time, up to a burst's worth in a row (a refill starts the count \
         again), then cut off"
    );
    wait_until_store_empty(&emulator, true).await;
    emulator.shutdown().await;
}
