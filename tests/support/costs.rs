//! The cost of each operation in DynamoDB requests and capacity units, counted by a
//! [`DynamoTap`] between the store and DynamoDB Local: the numbers behind the cost table
//! (`bench/src/costs.rs`) and the ceilings `tests/costs.rs` holds (`jobcast::cost`).
//!
//! Client operations go through jobcast-local (real WebSocket clients); events go through the
//! sender's handler in this process, to subscribers put straight into the store, posting to a
//! gateway that takes every post, so that only the store's part is counted.

use std::time::Duration;

use jobcast::cost::Operation;
use jobcast::handlers::Jobcast;
use jobcast::store::DynamoStore;
use jobcast::store::dynamodb::schema::TableNames;
use serde_json::json;

use crate::{
    Client, DynamoTap, ScriptedGateway, Tally, listening, progress, register_job, sdk_config,
    test_settings,
};

/// One measured operation.
pub struct Measured {
    /// What was done.
    pub operation: Operation,
    /// What it cost.
    pub tally: Tally,
}

/// Long enough for the work a frame or an event sets off after its answer (a replay's
/// release, a disconnect's clean-up) to reach the store.
const SETTLE: Duration = Duration::from_millis(300);

/// Measures every client operation once, and an event to each of `audiences` subscribers
/// (from a cold sender, then warm), against DynamoDB at `upstream`.
pub async fn measure(upstream: &str, audiences: &[usize]) -> Vec<Measured> {
    let tap = DynamoTap::start(upstream).await;
    let suffix: u64 = rand::random();
    let store = DynamoStore::new(
        &sdk_config(&tap.endpoint).await,
        TableNames {
            connections: format!("cost-connections-{suffix:x}"),
            jobs: format!("cost-jobs-{suffix:x}"),
        },
    );
    store.ensure_tables().await.expect("create the tables");
    let emulator = start(&store, Duration::from_secs(3600)).await;
    let mut measured = Vec::new();
    let mut record = |operation: Operation, tally: Tally| {
        measured.push(Measured { operation, tally });
    };

    // Connect.
    tap.take();
    let mut client = Client::connect(&emulator).await;
    tokio::time::sleep(SETTLE).await;
    record(Operation::Connect, tap.take());

    // A first subscribe, to a registered job, and fifty more.
    let follows = 50;
    for n in 0..follows {
        register_job(&emulator, &format!("followed-{n}"), None).await;
    }
    tap.take();
    subscribe(&mut client, "followed-0", None).await;
    tokio::time::sleep(SETTLE).await;
    record(Operation::Subscribe, tap.take());
    for n in 1..follows {
        subscribe(&mut client, &format!("followed-{n}"), None).await;
    }

    // A client frame on a connection following fifty jobs.
    tokio::time::sleep(SETTLE).await;
    tap.take();
    assert_eq!(
        client.request(json!({"action": "ping"})).await["type"],
        "pong"
    );
    tokio::time::sleep(SETTLE).await;
    record(
        Operation::Frame {
            subscriptions: follows,
        },
        tap.take(),
    );

    // A frame that finds less than half the connection's time left extends the connection
    // and every subscription (on an emulator whose connections live twenty seconds: the fifty
    // subscribes, frames themselves, must all come before half of it is gone).
    {
        let ttl = Duration::from_secs(20);
        let short = start(&store, ttl).await;
        let connected = tokio::time::Instant::now();
        let mut client = Client::connect(&short).await;
        for n in 0..follows {
            subscribe(&mut client, &format!("followed-{n}"), None).await;
        }
        assert!(
            connected.elapsed() < ttl / 2,
            "the subscribes took over half the connection's time"
        );
        tokio::time::sleep_until(connected + ttl / 2 + Duration::from_millis(300)).await;
        tap.take();
        assert_eq!(
            client.request(json!({"action": "ping"})).await["type"],
            "pong"
        );
        tokio::time::sleep(SETTLE).await;
        let tally = tap.take();
        assert!(tally.total().calls > 1, "the frame extended the connection");
        record(
            Operation::Extend {
                subscriptions: follows,
            },
            tally,
        );
    }

    // A subscribe that replays a hundred events.
    let replayed = 100;
    register_job(&emulator, "replayed", None).await;
    for n in 0..replayed {
        let answer = crate::invoke_sender(&emulator, &progress("replayed", n as f64, "step")).await;
        assert_eq!(answer.0, 200, "{:?}", answer.2);
    }
    let mut resuming = Client::connect(&emulator).await;
    tokio::time::sleep(SETTLE).await;
    tap.take();
    subscribe(&mut resuming, "replayed", Some(0)).await;
    for _ in 0..replayed {
        resuming.expect("progress_update").await;
    }
    tokio::time::sleep(SETTLE).await;
    record(
        Operation::SubscribeWithReplay { events: replayed },
        tap.take(),
    );

    // Disconnect, with fifty subscriptions.
    client.close().await;
    tokio::time::sleep(SETTLE).await;
    record(
        Operation::Disconnect {
            subscriptions: follows,
        },
        tap.take(),
    );

    // Events, from the sender's handler, to subscribers put straight into the store.
    let sender = Jobcast::new(store.clone(), test_settings());
    let gateway = ScriptedGateway::default();
    for &subscribers in audiences {
        let job = format!("audience-{subscribers}");
        for n in 0..subscribers {
            listening(&store, &format!("a{subscribers}-{n:06}"), &job).await;
        }
        for warm in [false, true] {
            tap.take();
            let before = gateway.post_count();
            sender
                .handle_sender_invocation(&gateway, progress(&job, 50.0, "fan-out"))
                .await
                .expect("the send");
            assert_eq!(
                gateway.post_count() - before,
                subscribers,
                "every subscriber posted"
            );
            // Every subscription was just put: the head names as many as it may.
            let recent = subscribers.min(jobcast::store::MAX_RECENT_SUBSCRIBERS);
            record(
                Operation::Event {
                    subscribers,
                    warm,
                    recent,
                },
                tap.take(),
            );
        }
    }
    drop(emulator);
    measured
}

/// jobcast-local over `store`, its connections living `ttl`. Frames are measured one at a
/// time: no rate limit gets in the way of fifty subscribes.
async fn start(store: &DynamoStore, ttl: Duration) -> jobcast_local::Emulator<DynamoStore> {
    let mut settings = test_settings();
    settings.frame_rate = 1_000;
    settings.frame_burst = 1_000;
    settings.connection_ttl = ttl;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    jobcast_local::Emulator::start(
        listener,
        Jobcast::new(store.clone(), settings),
        jobcast_local::EmulatorConfig::default(),
    )
    .expect("start the emulator")
}

async fn subscribe(client: &mut Client, job: &str, last_seq: Option<u64>) {
    let mut frame = json!({"action": "subscribe", "job_id": job});
    if let Some(last_seq) = last_seq {
        frame["last_seq"] = json!(last_seq);
    }
    let reply = client.request(frame).await;
    assert_eq!(reply["type"], "subscribed", "{reply}");
    if last_seq.is_none() {
        client.expect("job_status").await;
    }
}
