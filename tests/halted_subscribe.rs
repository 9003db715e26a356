//! A subscribe that stops half-way never leaves a connection deaf. Whether its answer could
//! not be posted (a storm past the account quota, a post that timed out after reaching the
//! socket) or the store failed under it, the replay claim is released, so the next event
//! reaches the connection, and the client is either told (an error, or its connection closed
//! so it resumes) or kept subscribed. These ran against the code before the fix: the claim
//! stayed, and every sender skipped the connection for a minute.

use jobcast::handlers::Jobcast;
use jobcast::protocol::{ConnectionId, UserId};
use jobcast::store::{Connection, ConnectionStore, MemoryStore};
use jobcast_tests::*;
use serde_json::{Value, json};

struct Scene {
    service: Jobcast<ObservedStore<MemoryStore>>,
    seen: std::sync::Arc<Observations>,
    gateway: ScriptedGateway,
    connection: ConnectionId,
}

/// A job with three events, and one connection of its owner.
async fn scene() -> Scene {
    let store = ObservedStore::new(MemoryStore::new());
    let seen = store.observations();
    let service = Jobcast::new(store.clone(), test_settings());
    let gateway = ScriptedGateway::default();
    for n in 1..=3 {
        service
            .handle_send(&gateway, progress("storm", f64::from(n), ""))
            .await
            .unwrap();
    }
    let connection = ConnectionId::parse("c-storm").unwrap();
    let now = chrono::Utc::now();
    store
        .put_connection(&Connection {
            connection_id: connection.clone(),
            user_id: UserId::parse("ana").unwrap(),
            connected_at: now,
            expires_at: now + chrono::Duration::hours(1),
        })
        .await
        .unwrap();
    Scene {
        service,
        seen,
        gateway,
        connection,
    }
}

impl Scene {
    async fn subscribe(&self, last_seq: u64) {
        let body = json!({"action": "subscribe", "job_id": "storm", "last_seq": last_seq});
        let request = websocket_event(&self.connection, Some(body));
        self.service.handle_message(&self.gateway, &request).await;
    }

    /// The next event, published now: what the sender reached.
    async fn next_event(&self, n: u64) -> Value {
        let outcome = self
            .service
            .handle_send(&self.gateway, progress("storm", n as f64, "next"))
            .await
            .unwrap();
        serde_json::to_value(outcome).unwrap()
    }

    fn heard_seq(&self, seq: u64) -> bool {
        self.gateway
            .frames_to(self.connection.as_str())
            .iter()
            .any(|frame| frame["type"] == "progress_update" && frame["seq"] == seq)
    }
}

#[tokio::test]
async fn a_subscribe_whose_answer_cannot_be_posted_closes_the_connection_and_holds_no_sender_off() {
    let scene = scene().await;
    scene.gateway.fail_after_delivery(&scene.connection, true);
    scene.subscribe(1).await;
    // The client may have heard `subscribed` (the post reached the socket): it is made to
    // reconnect and resume, not left to wait.
    assert_eq!(scene.gateway.closed(), vec![scene.connection.clone()]);
    // And no sender skips the connection meanwhile: the next event is posted to it.
    scene.gateway.fail_after_delivery(&scene.connection, false);
    let outcome = scene.next_event(4).await;
    assert_eq!(outcome["delivered"], 1, "{outcome}");
    assert!(scene.heard_seq(4), "the next event reached the connection");
    assert_eq!(Observations::get(&scene.seen.replays_abandoned), 1);
}

#[tokio::test]
async fn a_store_failure_before_the_answer_is_told_and_undone() {
    for operation in ["put_subscription", "events_after"] {
        let scene = scene().await;
        scene.seen.fail_next(operation);
        scene.subscribe(1).await;
        let frames = scene.gateway.frames_to(scene.connection.as_str());
        assert_eq!(frames.len(), 1, "{operation}: one answer: {frames:?}");
        assert_eq!(frames[0]["type"], "error", "{operation}: {frames:?}");
        assert_eq!(frames[0]["code"], "unavailable", "{operation}: {frames:?}");
        assert!(scene.gateway.closed().is_empty(), "{operation}");
        assert_eq!(
            Observations::get(&scene.seen.replays_abandoned),
            1,
            "{operation}"
        );
        // Told nothing but the error, it holds no subscription: the client subscribes again.
        let outcome = scene.next_event(4).await;
        assert_eq!(outcome["delivered"], 0, "{operation}: {outcome}");
        scene.subscribe(4).await;
        let outcome = scene.next_event(5).await;
        assert_eq!(outcome["delivered"], 1, "{operation}: {outcome}");
        assert!(scene.heard_seq(5), "{operation}");
        assert_eq!(
            Observations::get(&scene.seen.replays_abandoned),
            1,
            "{operation}"
        );
    }
}

#[tokio::test]
async fn a_store_failure_mid_replay_closes_the_connection_and_releases_the_claim() {
    let scene = scene().await;
    // The release fails after `subscribed` and the replayed events went out.
    scene.seen.fail_next("finish_replay");
    scene.subscribe(1).await;
    let kinds: Vec<(Value, Value)> = scene
        .gateway
        .frames_to(scene.connection.as_str())
        .iter()
        .map(|frame| (frame["type"].clone(), frame["seq"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("subscribed"), Value::Null),
            (json!("progress_update"), json!(2)),
            (json!("progress_update"), json!(3)),
        ]
    );
    assert_eq!(scene.gateway.closed(), vec![scene.connection.clone()]);
    let outcome = scene.next_event(4).await;
    assert_eq!(outcome["delivered"], 1, "no sender skips it: {outcome}");
    assert_eq!(Observations::get(&scene.seen.replays_abandoned), 1);
}

#[tokio::test]
async fn a_resume_on_the_same_socket_that_halts_keeps_what_the_connection_had() {
    let scene = scene().await;
    scene.subscribe(1).await;
    assert!(scene.heard_seq(3), "the first subscribe replayed up to 3");
    // The client resumes on the same socket (a gap, a quiet check) and the store fails under
    // it before anything is said: the connection must not lose the subscription it had.
    scene.seen.fail_next("events_after");
    scene.subscribe(2).await;
    assert_eq!(
        scene.gateway.closed(),
        vec![scene.connection.clone()],
        "closed, so the client resumes instead of waiting"
    );
    let outcome = scene.next_event(4).await;
    assert_eq!(
        outcome["delivered"], 1,
        "still subscribed, and no sender skips it: {outcome}"
    );
}
