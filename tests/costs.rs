//! What a client frame costs the store. A frame takes its token in one write, which also reads
//! the connection's expiry back; the connection and every one of its subscriptions are
//! rewritten only once less than half of `CONNECTION_TTL_SECONDS` is left, not on every frame:
//! the clients' keep-alive ping on a connection following many jobs costs one write.

use std::time::Duration;

use jobcast::handlers::Jobcast;
use jobcast::store::MemoryStore;
use jobcast_local::{Emulator, EmulatorConfig};
use jobcast_tests::costs::Measured;
use jobcast_tests::*;
use serde_json::json;

async fn start_observed(
    connection_ttl: Duration,
) -> (
    Emulator<ObservedStore<MemoryStore>>,
    std::sync::Arc<Observations>,
) {
    let store = ObservedStore::new(MemoryStore::new());
    let seen = store.observations();
    let mut settings = test_settings();
    settings.connection_ttl = connection_ttl;
    settings.frame_burst = 1_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::start(
        listener,
        Jobcast::new(store, settings),
        EmulatorConfig::default(),
    )
    .unwrap();
    (emulator, seen)
}

#[tokio::test]
async fn a_ping_rewrites_no_subscription_while_the_connection_has_time_left() {
    let (emulator, seen) = start_observed(Duration::from_secs(3600)).await;
    let mut client = Client::connect(&emulator).await;
    for n in 0..20 {
        client.subscribe(&format!("job-{n}")).await;
    }
    let before = Observations::get(&seen.touches);
    for _ in 0..50 {
        assert_eq!(
            client.request(json!({"action": "ping"})).await["type"],
            "pong"
        );
    }
    assert_eq!(
        Observations::get(&seen.touches) - before,
        0,
        "an hour left: nothing to extend"
    );
}

#[tokio::test]
async fn a_frame_extends_the_connection_once_half_its_time_is_gone() {
    let (emulator, seen) = start_observed(Duration::from_secs(2)).await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("job-1").await;
    let before = Observations::get(&seen.touches);
    assert_eq!(
        client.request(json!({"action": "ping"})).await["type"],
        "pong"
    );
    assert_eq!(Observations::get(&seen.touches), before, "fresh: 2 s left");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        client.request(json!({"action": "ping"})).await["type"],
        "pong"
    );
    assert_eq!(
        Observations::get(&seen.touches),
        before + 1,
        "less than half left: extended"
    );
    assert_eq!(
        client.request(json!({"action": "ping"})).await["type"],
        "pong"
    );
    assert_eq!(
        Observations::get(&seen.touches),
        before + 1,
        "extended again to 2 s: nothing more to do"
    );
    // Past the first TTL, the connection and its subscription still live: the job reaches it.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, _, answer) = invoke_sender(&emulator, &progress("job-1", 50.0, "half")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["delivered"], 1, "{answer}");
    assert_eq!(client.expect("progress_update").await["progress"], 50.0);
}

/// Every operation's DynamoDB requests and capacity units, counted on the wire between the
/// store and DynamoDB Local, stay within the ceilings of `jobcast::cost` (the numbers the
/// cost model and `jobcast cost` bill with).
#[tokio::test]
async fn every_operation_stays_within_its_ceiling_on_the_wire() {
    let Ok(endpoint) = std::env::var("JOBCAST_DYNAMODB_ENDPOINT") else {
        panic!("JOBCAST_DYNAMODB_ENDPOINT is not set: run scripts/test.sh");
    };
    let measured = jobcast_tests::costs::measure(&endpoint, &[1, 1_000]).await;
    let mut over = Vec::new();
    for Measured { operation, tally } in &measured {
        let total = tally.total();
        let cost = tally.store_cost();
        let ceiling = operation.ceiling();
        eprintln!(
            "{operation}: {} calls ({}), {:.1} RCU, {:.1} WCU; ceiling {} / {:.1} / {:.1}",
            total.calls,
            tally.calls_by_operation(),
            total.read_units,
            total.write_units,
            ceiling.calls,
            ceiling.read_units,
            ceiling.write_units
        );
        if !ceiling.holds(&cost) {
            over.push(operation.to_string());
        }
    }
    assert_eq!(measured.len(), 10, "every operation was measured");
    assert!(over.is_empty(), "over their ceilings: {over:?}");
}

/// The ceilings docs/costs.md shows are the ones the test above holds.
#[test]
fn the_documented_ceilings_are_the_ones_held() {
    use jobcast::cost::Operation;
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/costs.md"))
        .expect("docs/costs.md");
    for operation in [
        Operation::Connect,
        Operation::Subscribe,
        Operation::SubscribeWithReplay { events: 100 },
        Operation::Frame { subscriptions: 50 },
        Operation::Extend { subscriptions: 50 },
        Operation::Event {
            subscribers: 1,
            warm: false,
            recent: 0,
        },
        Operation::Event {
            subscribers: 1,
            warm: true,
            recent: 0,
        },
        Operation::Event {
            subscribers: 1_000,
            warm: false,
            recent: 200,
        },
        Operation::Event {
            subscribers: 10_000,
            warm: false,
            recent: 0,
        },
        Operation::Disconnect { subscriptions: 50 },
    ] {
        let ceiling = operation.ceiling();
        let row = format!(
            "| {operation} | {} | {} | {} |",
            ceiling.calls, ceiling.read_units, ceiling.write_units
        );
        assert!(doc.contains(&row), "docs/costs.md lacks the row {row}");
    }
}
