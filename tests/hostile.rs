//! What an attacker, or a broken client, tries after authentication holds: each hole over real
//! sockets against jobcast-local, shown closed. (Cross-site WebSocket hijacking and the JWKS
//! are in `auth.rs`, ownership in `ownership.rs`.)

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jobcast::protocol::MAX_FRAME_BYTES;
use jobcast::store::{ConnectionStore, JobStore, MemoryStore, NewEvent, Store};
use jobcast_local::{EmulatorConfig, Faults, Limits};
use jobcast_tests::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Logs `count` progress events for `job_id` straight through the sender's handler.
async fn logged<S: Store>(emulator: &jobcast_local::Emulator<S>, job_id: &str, count: u32) {
    for n in 0..count {
        emulator
            .service()
            .handle_send(
                emulator.registry(),
                progress(job_id, f64::from(n % 100), ""),
            )
            .await
            .expect("logged");
    }
}

/// The frames a client reads until `done` says it has seen enough (or the patience runs out).
async fn read_until(client: &mut Client, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    while !done(&frames) {
        match client.next_event().await {
            Incoming::Text(frame) => frames.push(frame),
            Incoming::Closed => break,
        }
    }
    frames
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|frame| frame["seq"].as_u64())
        .collect()
}

/// One replay at a time per connection and job: a second `subscribe` while one is being
/// replayed (each frame is its own invocation, so they overlap) is told to wait, and the
/// client hears every event once.
#[tokio::test]
async fn a_second_subscribe_during_a_replay_is_told_to_wait() {
    let config = EmulatorConfig {
        faults: Faults {
            post_latency: Duration::from_millis(5),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    };
    let emulator = start_with(test_settings(), config).await;
    logged(&emulator, "replayed", 300).await;
    let mut client = Client::connect(&emulator).await;
    let subscribe = json!({"action": "subscribe", "job_id": "replayed", "last_seq": 0});
    client.send(subscribe.clone()).await;
    client.send(subscribe).await;
    let frames = read_until(&mut client, |frames| {
        seqs(frames).last() == Some(&300) && frames.iter().any(|f| f["type"] == "error")
    })
    .await;
    let refusal = frames.iter().find(|f| f["type"] == "error").unwrap();
    assert_eq!(refusal["code"], "replay_in_progress", "{refusal}");
    assert_eq!(seqs(&frames), (1..=300).collect::<Vec<_>>(), "each once");
    emulator.shutdown().await;
}

/// A user holds at most MAX_CONNECTIONS_PER_USER connections; others are unaffected, and a
/// closed connection frees its place.
#[tokio::test]
async fn a_user_opens_at_most_max_connections_per_user() {
    let mut settings = test_settings();
    settings.max_connections_per_user = 3;
    let emulator = start_secured(MemoryStore::new(), settings).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Client::connect_secured(&emulator, "ana").await);
    }
    let url = format!("{}/?token={}", emulator.websocket_url(), token_for("ana"));
    let refused = tokio_tungstenite::connect_async(url.clone()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("too_many_connections"), "{body}");
        }
        other => panic!(
            "a fourth connection of ana's was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    let _bo = Client::connect_secured(&emulator, "bo").await;
    held.pop().unwrap().close().await;
    eventually("ana's closed connection frees its place", || {
        let url = url.clone();
        async move { tokio_tungstenite::connect_async(url).await.is_ok() }
    })
    .await;
    emulator.shutdown().await;
}

/// The frame limit fails closed: while the store cannot take frame tokens, this process's own
/// buckets do, so a flood is still refused.
#[tokio::test]
async fn the_frame_limit_holds_while_the_store_cannot_count() {
    let store = ObservedStore::new(MemoryStore::new());
    let seen = store.observations();
    let emulator = start_on(store).await;
    let mut client = Client::connect(&emulator).await;
    seen.fail_after("take_frame_token", 0, 10_000);
    for _ in 0..40 {
        client.send(json!({"action": "ping"})).await;
    }
    let frames = read_until(&mut client, |frames| frames.len() >= 40).await;
    let pongs = frames.iter().filter(|f| f["type"] == "pong").count();
    let limited = frames
        .iter()
        .filter(|f| f["code"] == "rate_limited")
        .count();
    // FRAME_BURST is 20 and the bucket refills 10 a second: a few more may pass meanwhile.
    assert!(pongs <= 25, "{pongs} of 40 frames served with no limit");
    assert!(limited >= 15, "{limited} refused");
    emulator.shutdown().await;
}

/// A connection the store does not know (never recorded, or expired) is not served for free:
/// it is told and closed, so its client reconnects and is recorded.
#[tokio::test]
async fn a_connection_the_store_lost_is_closed_not_served() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    emulator
        .service()
        .store()
        .delete_connection(&id)
        .await
        .unwrap();
    client.send(json!({"action": "ping"})).await;
    let told = client.recv().await;
    assert_eq!(told["type"], "error", "{told}");
    assert_eq!(told["code"], "forbidden", "{told}");
    eventually("the connection is closed", || async {
        !open_connections(&emulator).await.contains(&id.to_string())
    })
    .await;
    emulator.shutdown().await;
}

/// With `--auth jwt`, the side doors (listing, `@connections`, Invoke) refuse what a web page
/// could send: a foreign `Host` (DNS rebinding), a foreign `Origin`, a form or text body. The
/// SDKs and curl, which send none of these, still work.
#[tokio::test]
async fn the_side_doors_refuse_what_a_web_page_could_send() {
    let emulator = start_secured(MemoryStore::new(), test_settings()).await;
    register_job(&emulator, "ana-job", Some("ana")).await;
    let mut ana = Client::connect_secured(&emulator, "ana").await;
    let id = ana.connection_id(&emulator).await;
    let http = reqwest::Client::new();
    let base = emulator.http_url();
    let port = emulator.addr().port();
    let invoke = format!("{base}/2015-03-31/functions/sender/invocations");
    let post_to = format!("{base}/@connections/{id}");
    let forged = json!({"job_id": "ana-job", "user_id": "ana",
        "event": {"type": "progress_update", "stage": "x", "progress": 99.0, "message": "forged"}})
    .to_string();

    let rebound = http
        .get(format!("{base}/connections"))
        .header("Host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403, "DNS rebinding: a foreign Host");
    let cases = [
        (
            "a form body",
            http.post(&invoke)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(forged.clone()),
        ),
        (
            "a text body",
            http.post(&invoke)
                .header("Content-Type", "text/plain;charset=UTF-8")
                .body(forged.clone()),
        ),
        (
            "a foreign page",
            http.post(&invoke)
                .header("Origin", "https://evil.example")
                .header("Content-Type", "application/json")
                .body(forged.clone()),
        ),
        (
            "a post from a foreign page",
            http.post(&post_to)
                .header("Origin", "https://evil.example")
                .body("{\"type\":\"forged\"}"),
        ),
        (
            "a delete from a foreign page",
            http.delete(&post_to)
                .header("Origin", "https://evil.example"),
        ),
        (
            "a listing from a foreign page",
            http.get(format!("{base}/connections"))
                .header("Origin", "https://evil.example"),
        ),
        (
            "a demo job from a foreign page",
            http.post(format!("{base}/demo/jobs"))
                .header("Content-Type", "text/plain")
                .body("{\"user_id\":\"ana\"}"),
        ),
    ];
    for (name, request) in cases {
        let status = request.send().await.unwrap().status().as_u16();
        assert!(matches!(status, 403 | 415), "{name}: {status}");
    }
    ana.expect_silence().await;
    let job = emulator
        .service()
        .store()
        .get_job(&jobcast::protocol::JobId::parse("ana-job").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.last_seq, 0, "nothing was published");

    // What tools send goes through: the SDK's post, and an invoke with no Content-Type.
    let sdk = management_client(&base).await;
    sdk.post_to_connection()
        .connection_id(id.as_str())
        .data(aws_sdk_apigatewaymanagement::primitives::Blob::new(
            br#"{"type":"hello"}"#.to_vec(),
        ))
        .send()
        .await
        .expect("the SDK posts");
    assert_eq!(ana.recv().await["type"], "hello");
    let (status, _, report) =
        invoke_sender(&emulator, &serde_json::from_str(&forged).unwrap()).await;
    assert_eq!(
        (status, report["outcome"].as_str()),
        (200, Some("published"))
    );
    emulator.shutdown().await;
}

/// A client that never reads is closed with 1008 once its queue is full; the sender never
/// waits on it, so everyone else hears every event.
#[tokio::test]
async fn a_client_that_never_reads_stalls_nobody() {
    let config = EmulatorConfig {
        limits: Limits {
            max_queued_bytes: 256 * 1024,
            ..Limits::default()
        },
        ..EmulatorConfig::default()
    };
    let emulator = start_with(test_settings(), config).await;
    let mut reader = Client::connect(&emulator).await;
    reader.subscribe("flood").await;
    // The slow one: a tiny receive buffer, and after its subscribe it reads nothing at all.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(emulator.addr()).await.unwrap();
    let request = format!("{}/?user_id=sloth", emulator.websocket_url())
        .into_client_request()
        .unwrap();
    let (mut sloth, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    sloth
        .send(Message::text(
            json!({"action": "subscribe", "job_id": "flood"}).to_string(),
        ))
        .await
        .unwrap();
    eventually("the sloth follows the job", || async {
        emulator.service().store().subscription_count() == 2
    })
    .await;
    let payload = "x".repeat(60 * 1024);
    let started = Instant::now();
    let publisher = {
        let http = emulator.http_url();
        tokio::spawn(async move {
            for n in 0..400u32 {
                invoke_sender_at(&http, &progress("flood", f64::from(n % 100), &payload)).await;
            }
        })
    };
    let frames = read_until(&mut reader, |frames| seqs(frames).last() == Some(&400)).await;
    assert_eq!(seqs(&frames), (1..=400).collect::<Vec<_>>());
    tokio::time::timeout(PATIENCE, publisher)
        .await
        .unwrap()
        .unwrap();
    eventually("the sloth was closed", || async {
        open_connections(&emulator).await.len() == 1
    })
    .await;
    let close = loop {
        match sloth.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    if let Some(frame) = close {
        assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    }
    println!(
        "400 events of 60 KB with a client that never reads: {:?}",
        started.elapsed()
    );
    emulator.shutdown().await;
}

/// Frames run on their own tasks: while a long replay is being posted, a `DELETE` of the
/// connection still closes it at once.
#[tokio::test]
async fn a_delete_closes_a_connection_in_the_middle_of_its_replay() {
    let config = EmulatorConfig {
        faults: Faults {
            post_latency: Duration::from_millis(20),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    };
    let emulator = start_with(test_settings(), config).await;
    logged(&emulator, "long", 300).await;
    let mut client = Client::connect(&emulator).await;
    let id = client.connection_id(&emulator).await;
    client
        .send(json!({"action": "subscribe", "job_id": "long", "last_seq": 0}))
        .await;
    assert_eq!(client.recv().await["type"], "subscribed");
    let asked = Instant::now();
    drop_connection(&emulator, id.as_str()).await;
    loop {
        if let Incoming::Closed = client.next_event().await {
            break;
        }
    }
    // The replay alone takes 300 × 20 ms = 6 s.
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        asked.elapsed()
    );
    emulator.shutdown().await;
}

/// Asynchronous invocations are bounded, as Lambda's concurrency bounds them: past the bound
/// they are throttled (429), never piled up.
#[tokio::test]
async fn asynchronous_invocations_are_bounded() {
    let config = EmulatorConfig {
        faults: Faults {
            post_latency: Duration::from_millis(500),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    };
    let emulator = start_with(test_settings(), config).await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("busy").await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/2015-03-31/functions/sender/invocations",
        emulator.http_url()
    );
    let answers = futures::future::join_all((0..150).map(|n| {
        http.post(&url)
            .header("X-Amz-Invocation-Type", "Event")
            .body(progress("busy", f64::from(n % 100), "").to_string())
            .send()
    }))
    .await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|answer| answer.unwrap().status().as_u16())
        .collect();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(accepted + throttled, 150, "{statuses:?}");
    assert!(accepted <= 64, "{accepted} running at once");
    assert!(throttled > 0);
    emulator.shutdown().await;
}

/// A snapshot keeps at most 4 KB of a message, so a `job_status` always fits in a frame even
/// when the event it comes from filled one.
#[tokio::test]
async fn a_job_status_fits_in_a_frame_whatever_the_events_carried() {
    let emulator = start().await;
    register_job(&emulator, "verbose", None).await;
    let message = "m".repeat(MAX_FRAME_BYTES - 200);
    let (_, _, report) = invoke_sender(&emulator, &progress("verbose", 5.0, &message)).await;
    assert_eq!(report["outcome"], "published", "{report}");
    let mut client = Client::connect(&emulator).await;
    let status = client.subscribe("verbose").await;
    let shown = status["message"].as_str().unwrap();
    assert!(
        shown.len() <= 4096 && shown.ends_with('…'),
        "{}",
        shown.len()
    );
    // The event itself keeps its whole message.
    client
        .send(json!({"action": "subscribe", "job_id": "verbose", "last_seq": 0}))
        .await;
    let frames = read_until(&mut client, |frames| !seqs(frames).is_empty()).await;
    let event = frames.iter().find(|f| f["seq"] == 1).unwrap();
    assert_eq!(event["message"].as_str().unwrap().len(), message.len());
    emulator.shutdown().await;
}

/// Identifiers that would look like another's: bidi controls and zero-width characters are
/// refused in user ids (at connect) and stage names (from pipelines).
#[tokio::test]
async fn identifiers_that_hide_or_reorder_text_are_refused() {
    let emulator = start().await;
    for user in ["ana%E2%80%AEevil", "an%E2%80%8Ba", "%EF%BB%BFana"] {
        let url = format!("{}/?user_id={user}", emulator.websocket_url());
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "{user}")
            }
            other => panic!("{user}: {:?}", other.map(|_| ())),
        }
    }
    let mut event = progress("stages", 1.0, "");
    event["event"]["stage"] = json!("crawl\u{202E}lwarc");
    let (status, _, answer) = invoke_sender(&emulator, &event).await;
    assert_eq!(status, 200);
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("stage"),
        "{answer}"
    );
    emulator.shutdown().await;
}

/// The embedded store forgets what expired, as DynamoDB's TTL does: a long-running
/// jobcast-local does not grow without bound.
#[tokio::test]
async fn the_embedded_store_forgets_what_expired() {
    let store = MemoryStore::new();
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    for n in 0..50 {
        let connection_id = jobcast::protocol::ConnectionId::parse(format!("old-{n}")).unwrap();
        store
            .put_connection(&jobcast::store::Connection {
                connection_id: connection_id.clone(),
                user_id: jobcast::protocol::UserId::parse("ana").unwrap(),
                connected_at: past,
                expires_at: past,
            })
            .await
            .unwrap();
        let job_id = jobcast::protocol::JobId::parse(format!("old-job-{n}")).unwrap();
        store
            .append_event(NewEvent {
                job_id: job_id.clone(),
                event_id: Some(jobcast::protocol::EventId::random()),
                event: serde_json::from_value(json!({"type": "job_complete"})).unwrap(),
                correlation_id: None,
                recorded_at: past,
                job_expires_at: past,
                event_expires_at: past,
                owner: None,
            })
            .await
            .unwrap();
        store
            .put_subscription(&jobcast::store::Subscription {
                connection_id,
                job_id,
                user_id: jobcast::protocol::UserId::parse("ana").unwrap(),
                expires_at: past,
                live_after: 0,
            })
            .await
            .unwrap();
    }
    assert!(store.item_count() > 0);
    store.prune_expired();
    assert_eq!(store.item_count(), 0, "everything had expired");
}

/// A replay is charged to its user too, so a client cannot start each replay afresh on a new
/// connection: past the user's allowance (2,000 events at once, 500 a second), a replay on a
/// fresh connection pauses early and says when to come back.
#[tokio::test]
async fn a_new_connection_does_not_renew_a_users_replay_allowance() {
    let emulator = start().await;
    logged(&emulator, "history", 3_000).await;
    let mut pages = Vec::new();
    for _ in 0..6 {
        let mut client = Client::connect_as(&emulator, "replayer").await;
        client
            .send(json!({"action": "subscribe", "job_id": "history", "last_seq": 0}))
            .await;
        let frames = read_until(&mut client, |frames| {
            frames.iter().any(|f| f["type"] == "replay_paused")
        })
        .await;
        let paused = frames
            .iter()
            .find(|f| f["type"] == "replay_paused")
            .unwrap();
        pages.push((
            seqs(&frames).len(),
            paused["retry_after_ms"].as_u64().unwrap(),
        ));
        client.close().await;
    }
    let replayed: usize = pages.iter().map(|(events, _)| events).sum();
    // 2,000 at once, plus what refills while the test runs (500 a second).
    assert!(replayed < 2_000 + 1_000, "{pages:?}");
    let (last_events, last_wait) = *pages.last().unwrap();
    assert!(last_events < 500 && last_wait > 0, "{pages:?}");
    emulator.shutdown().await;
}

/// Pruning never shifts a job's log: with its first events expired and its last ones not, the
/// log reads back by seq as before, and a retry is still recognised.
#[tokio::test]
async fn pruning_keeps_a_live_logs_seqs() {
    use jobcast::store::{AppendOutcome, LogPage};
    let store = MemoryStore::new();
    let now = chrono::Utc::now();
    let job_id = jobcast::protocol::JobId::parse("long-running").unwrap();
    let event = |n: i64, expires: chrono::DateTime<chrono::Utc>| {
        NewEvent {
        job_id: job_id.clone(),
        event_id: Some(jobcast::protocol::EventId::parse(format!("e-{n}")).unwrap()),
        event: serde_json::from_value(
            json!({"type": "progress_update", "stage": "s", "progress": 1.0, "message": format!("{n}")}),
        )
        .unwrap(),
        correlation_id: None,
        recorded_at: now,
        job_expires_at: now + chrono::Duration::hours(1),
        event_expires_at: expires,
        owner: None,
    }
    };
    for n in 1..=3 {
        store
            .append_event(event(n, now - chrono::Duration::minutes(1)))
            .await
            .unwrap();
    }
    for n in 4..=6 {
        store
            .append_event(event(n, now + chrono::Duration::hours(1)))
            .await
            .unwrap();
    }
    store.prune_expired();
    let read: Vec<u64> = store
        .events_after(&job_id, LogPage::after(4, 10))
        .await
        .unwrap()
        .iter()
        .map(|stored| stored.seq)
        .collect();
    assert_eq!(read, [5, 6]);
    let AppendOutcome::Appended(retry) = store
        .append_event(event(5, now + chrono::Duration::hours(1)))
        .await
        .unwrap()
    else {
        panic!("the job takes events");
    };
    assert!(retry.duplicate);
    assert_eq!(
        retry.event.seq, 5,
        "the retry is recognised as the event it repeats"
    );
}
