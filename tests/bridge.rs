//! The Redis bridge against a real `redis-server`: the hub's publishers (`redis-cli PUBLISH
//! user_noti:{id} '…'`) reach every tab of that user and no one else's; a malformed message is
//! logged and counted, never forwarded; a Redis restart is survived; and read from a stream,
//! nothing added while the bridge is away is lost.

use std::time::Duration;

use jobcast::store::MemoryStore;
use jobcast_bridge::destination::InvokeApi;
use jobcast_bridge::{Bridge, BridgeConfig, Source};
use jobcast_local::{Emulator, EmulatorConfig};
use jobcast_tests::*;
use redis::AsyncCommands;
use serde_json::{Value, json};

fn pubsub(redis: &RedisServer) -> BridgeConfig {
    BridgeConfig {
        redis_url: redis.url(),
        source: Source::PubSub {
            pattern: "user_noti:*".to_owned(),
        },
        in_flight: 8,
    }
}

/// jobcast-local as the hub's frontend meets it: `--auth jwt --stage ws --redis-url …`.
async fn hub(redis: &RedisServer) -> Emulator<MemoryStore> {
    let config = EmulatorConfig {
        stage: "ws".to_owned(),
        bridge: Some(pubsub(redis)),
        ..EmulatorConfig::default()
    };
    let emulator = start_secured_with(MemoryStore::new(), test_settings(), config).await;
    let status = emulator.bridge_status().expect("a bridge");
    eventually("the bridge is subscribed", || {
        let status = status.clone();
        async move { status.is_connected() }
    })
    .await;
    emulator
}

/// A tab of the hub's frontend: `wss://host/ws?token=…`.
async fn tab(emulator: &Emulator<MemoryStore>, user: &str) -> Client {
    let url = format!("{}/ws?token={}", emulator.websocket_url(), token_for(user));
    Client::open(&url, &emulator.http_url(), user).await
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn metrics(emulator: &Emulator<MemoryStore>) -> String {
    reqwest::get(format!("{}/metrics", emulator.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one line of Prometheus text, 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_hubs_publishers_reach_every_tab_of_their_user_and_no_one_else() {
    let redis = RedisServer::start().await;
    let emulator = hub(&redis).await;
    let mut tabs = vec![tab(&emulator, "u1").await, tab(&emulator, "u1").await];
    let mut other = tab(&emulator, "u2").await;
    let project = json!({"project_id": "p-1", "status": "CRAWLING", "total": 10, "done": 4, "errors": 0, "progress_percent": 40.0});
    let published = [
        json!({"type": "notification", "payload": {"title": "Export ready", "message": "Download it", "level": "success"}, "timestamp": "2026-11-24T08:00:00Z"}),
        json!({"type": "alert", "payload": {"title": "Quota", "message": "90% used", "severity": "high"}}),
        json!({"type": "project_progress", "payload": project, "timestamp": "2026-11-24T08:00:01Z"}),
        json!({"type": "project_completed", "payload": project, "timestamp": 1_790_000_000_123u64}),
        json!({"type": "update", "payload": {"anything": ["the", "hub", "sends"]}}),
        json!({"type": "notification", "title": "Flat", "message": "jobcast's own form", "level": "info"}),
    ];
    for message in &published {
        // The publishers' own command line.
        let receivers = redis.cli(&["PUBLISH", "user_noti:u1", &message.to_string()]);
        assert_eq!(receivers, "1", "the bridge is the one subscriber");
        for tab in &mut tabs {
            let frame = tab.expect(message["type"].as_str().unwrap()).await;
            match message.get("payload") {
                Some(payload) => assert_eq!(&frame["payload"], payload, "{frame}"),
                None => assert_eq!(frame["title"], "Flat", "{frame}"),
            }
            assert!(frame["timestamp"].is_string(), "{frame}");
        }
    }
    other.expect_silence().await;

    // Malformed messages: logged and counted, reaching no one.
    for bad in [
        "{not json",
        r#"{"type": "notification", "payload": {"title": "t", "message": "m", "level": "loud"}}"#,
        r#"{"type": "confetti"}"#,
        r#"{"type": "update", "payload": [1, 2]}"#,
    ] {
        redis.cli(&["PUBLISH", "user_noti:u1", bad]);
    }
    let good = published[0].to_string();
    redis.cli(&["PUBLISH", "user_noti:u2", &good]);
    assert_eq!(
        other.expect("notification").await["payload"]["title"],
        "Export ready"
    );
    for tab in &mut tabs {
        tab.expect_silence().await;
    }

    let text = metrics(&emulator).await;
    assert_eq!(
        metric(&text, "jobcast_bridge_messages_received_total"),
        11.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "jobcast_bridge_messages_forwarded_total"),
        7.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "jobcast_bridge_messages_rejected_total{reason=\"malformed\"}"
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "jobcast_bridge_messages_rejected_total{reason=\"unknown_type\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "websocket_messages_sent_total{type=\"notification\"}"
        ),
        5.0,
        "{text}"
    );
    assert_eq!(metric(&text, "websocket_active_connections"), 3.0, "{text}");
    assert_eq!(metric(&text, "websocket_connections_total"), 3.0, "{text}");

    let health = get_json(format!("{}/health", emulator.http_url())).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["subscriber"]["active"], true, "{health}");
    assert_eq!(health["subscriber"]["pattern"], "user_noti:*", "{health}");
    assert!(
        health["subscriber"]["last_message_at"].is_string(),
        "{health}"
    );
}

#[tokio::test]
async fn a_redis_restart_is_survived() {
    let mut redis = RedisServer::start().await;
    let emulator = hub(&redis).await;
    let mut ana = tab(&emulator, "ana").await;
    let note = |n: u32| {
        json!({"type": "notification", "title": format!("note {n}"), "message": "", "level": "info"}).to_string()
    };
    redis.cli(&["PUBLISH", "user_noti:ana", &note(1)]);
    assert_eq!(ana.expect("notification").await["title"], "note 1");

    redis.kill();
    let status = emulator.bridge_status().unwrap();
    eventually("the bridge notices Redis is gone", || {
        let status = status.clone();
        async move { !status.is_connected() }
    })
    .await;
    let health = get_json(format!("{}/health", emulator.http_url())).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["subscriber"]["active"], false, "{health}");

    redis.restart().await;
    eventually("the bridge subscribes again", || {
        let status = status.clone();
        async move { status.is_connected() }
    })
    .await;
    redis.cli(&["PUBLISH", "user_noti:ana", &note(2)]);
    assert_eq!(ana.expect("notification").await["title"], "note 2");
    let text = metrics(&emulator).await;
    assert!(
        metric(&text, "jobcast_bridge_redis_reconnects_total") >= 1.0,
        "{text}"
    );
}

fn stream(redis: &RedisServer) -> BridgeConfig {
    BridgeConfig {
        redis_url: redis.url(),
        source: Source::Stream {
            key: "user_noti_stream".to_owned(),
            group: "jobcast".to_owned(),
            consumer: "bridge-1".to_owned(),
        },
        in_flight: 4,
    }
}

async fn add(redis: &RedisServer, user: &str, n: u32) -> String {
    let message = json!({"type": "notification", "title": format!("entry {n}"), "message": "", "level": "info"});
    let mut connection = redis.connection().await;
    connection
        .xadd(
            "user_noti_stream",
            "*",
            &[
                ("channel", format!("user_noti:{user}")),
                ("message", message.to_string()),
            ],
        )
        .await
        .expect("XADD")
}

async fn pending(redis: &RedisServer) -> usize {
    let mut connection = redis.connection().await;
    let reply: redis::streams::StreamPendingReply = connection
        .xpending("user_noti_stream", "jobcast")
        .await
        .expect("XPENDING");
    reply.count()
}

#[tokio::test]
async fn a_stream_loses_nothing_while_the_bridge_or_redis_is_away() {
    let mut redis = RedisServer::start_persistent().await;
    let emulator = start().await;
    let mut ana = Client::connect_as(&emulator, "ana").await;
    // The bridge as `jobcast bridge redis --stream … --local URL` runs it.
    let destination = || InvokeApi::new(&emulator.http_url());
    let bridge = Bridge::start(stream(&redis), destination()).unwrap();
    let status = bridge.status();
    eventually("the group is read", || {
        let status = status.clone();
        async move { status.is_connected() }
    })
    .await;
    let first = add(&redis, "ana", 1).await;
    let frame = ana.expect("notification").await;
    assert_eq!(frame["title"], "entry 1");
    assert_eq!(
        frame["message_id"], first,
        "the entry id, for the client to drop a redelivery"
    );

    // The bridge goes away (a deploy); entries keep coming.
    bridge.shutdown().await;
    for n in 2..=4 {
        add(&redis, "ana", n).await;
    }
    ana.expect_silence().await;
    let bridge = Bridge::start(stream(&redis), destination()).unwrap();
    let mut seen = std::collections::HashSet::from([first]);
    for n in 2..=4 {
        let frame = ana.expect("notification").await;
        assert_eq!(frame["title"], format!("entry {n}"));
        seen.insert(frame["message_id"].as_str().unwrap().to_owned());
    }

    // Redis restarts (its data on disk): the bridge reads on from where the group stood. An
    // entry forwarded whose acknowledgement the restart cut off is forwarded again, under its
    // own message id: the client shows it once.
    redis.restart().await;
    let fifth = add(&redis, "ana", 5).await;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), ana.recv())
            .await
            .expect("entry 5 in time");
        let id = frame["message_id"].as_str().unwrap().to_owned();
        if id == fifth {
            assert_eq!(frame["title"], "entry 5");
            break;
        }
        assert!(
            seen.contains(&id),
            "only a redelivery comes before entry 5: {frame}"
        );
    }
    eventually("every entry is acknowledged", || async {
        pending(&redis).await == 0
    })
    .await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_stream_entry_the_sender_cannot_take_yet_stays_pending() {
    let redis = RedisServer::start().await;
    // Nothing listens here: every forward fails as unavailable.
    let nowhere = refusing_endpoint().await;
    let bridge = Bridge::start(stream(&redis), InvokeApi::new(&nowhere)).unwrap();
    let status = bridge.status();
    eventually("the group is read", || {
        let status = status.clone();
        async move { status.is_connected() }
    })
    .await;
    add(&redis, "ana", 1).await;
    eventually("the entry is read", || {
        let status = status.clone();
        async move { status.received_count() == 1 }
    })
    .await;
    bridge.shutdown().await;
    assert_eq!(
        pending(&redis).await,
        1,
        "unacknowledged: the next bridge forwards it"
    );

    // The next bridge, with the sender back, forwards it.
    let emulator = start().await;
    let mut ana = Client::connect_as(&emulator, "ana").await;
    let bridge = Bridge::start(stream(&redis), InvokeApi::new(&emulator.http_url())).unwrap();
    assert_eq!(ana.expect("notification").await["title"], "entry 1");
    eventually("acknowledged", || async { pending(&redis).await == 0 }).await;
    bridge.shutdown().await;
}
