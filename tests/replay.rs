//! Never miss an event: a client that reconnects mid-job and resubscribes with the last seq it
//! saw hears every event exactly once and in order, while the pipeline keeps sending. On both
//! stores.

use std::time::Duration;

use chrono::Utc;
use jobcast::handlers::Jobcast;
use jobcast::protocol::JobId;
use jobcast::store::{MemoryStore, NewEvent, Store};
use jobcast_local::{Emulator, EmulatorConfig, Faults};
use jobcast_tests::*;
use serde_json::{Value, json};

/// A pipeline that sends `steps` progress events, then `job_complete`, `pause` apart.
fn run_pipeline<S: Store>(
    emulator: &Emulator<S>,
    job_id: &str,
    steps: u64,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let url = emulator.http_url();
    let job_id = job_id.to_owned();
    tokio::spawn(async move {
        for step in 1..=steps {
            let event = progress(
                &job_id,
                (step * 100 / (steps + 1)) as f64,
                &format!("step {step}"),
            );
            let (status, _, outcome) = invoke_sender_at(&url, &event).await;
            assert_eq!(status, 200, "{outcome}");
            assert_eq!(outcome["outcome"], "published", "{outcome}");
            tokio::time::sleep(pause).await;
        }
        let done = json!({"job_id": job_id, "event": {"type": "job_complete", "results": {"steps": steps}}});
        let (_, _, outcome) = invoke_sender_at(&url, &done).await;
        assert_eq!(outcome["outcome"], "published", "{outcome}");
    })
}

/// Waits until the job's last seq is at least `seq`.
async fn wait_until_job_reaches<S: Store>(emulator: &Emulator<S>, job_id: &str, seq: u64) {
    let store = emulator.service().store().clone();
    let job = JobId::parse(job_id).unwrap();
    eventually(&format!("job {job_id} reaches seq {seq}"), || {
        let (store, job) = (store.clone(), job.clone());
        async move {
            let job = store.get_job(&job).await.unwrap();
            job.is_some_and(|job| job.last_seq >= seq)
        }
    })
    .await;
}

/// What one client has seen of a job: the seq it resumes from, checked frame by frame.
struct Watch {
    job_id: String,
    last_seq: u64,
    seen: Vec<u64>,
}

impl Watch {
    fn new(job_id: &str) -> Self {
        Self {
            job_id: job_id.to_owned(),
            last_seq: 0,
            seen: Vec::new(),
        }
    }

    /// Subscribes from `last_seq` and checks the answer says the replay is complete.
    async fn resubscribe(&mut self, client: &mut Client) {
        let subscribed = client
            .request(
                json!({"action": "subscribe", "job_id": self.job_id, "last_seq": self.last_seq}),
            )
            .await;
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        assert_eq!(subscribed["recovered"], true, "{subscribed}");
        assert_eq!(subscribed["after_seq"], self.last_seq, "{subscribed}");
    }

    /// Takes one job event; it must be the very next seq. Returns whether the job is done.
    fn take(&mut self, frame: &Value) -> bool {
        let seq = frame["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("a job event: {frame}"));
        assert_eq!(frame["job_id"], self.job_id.as_str());
        assert_eq!(
            seq,
            self.last_seq + 1,
            "after seq {} came {frame} (seen so far: {:?})",
            self.last_seq,
            self.seen
        );
        self.last_seq = seq;
        self.seen.push(seq);
        frame["type"] == "job_complete"
    }
}

async fn reconnecting_mid_job_loses_and_repeats_nothing<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let job_id = "lid-closed";
    register_job(&emulator, job_id, Some("rita")).await;
    let mut client = Client::connect_as(&emulator, "rita").await;
    let mut watch = Watch::new(job_id);
    let subscribed = client
        .request(json!({"action": "subscribe", "job_id": job_id}))
        .await;
    assert_eq!(subscribed["after_seq"], 0, "{subscribed}");
    assert_eq!(client.expect("job_status").await["status"], "pending");

    let steps = 40;
    let pipeline = run_pipeline(&emulator, job_id, steps, Duration::from_millis(15));
    let mut drops_at = vec![25, 8];
    loop {
        match client.next_event().await {
            Incoming::Text(frame) => {
                if watch.take(&frame) {
                    break;
                }
                if drops_at.last() == Some(&watch.last_seq) {
                    drops_at.pop();
                    let connection_id = client.connection_id(&emulator).await;
                    drop_connection(&emulator, connection_id.as_str()).await;
                }
            }
            Incoming::Closed => {
                // Offline while the pipeline goes on: reconnect only once the job has moved
                // three events past what the client saw, so the replay has something to do.
                wait_until_job_reaches(&emulator, job_id, watch.last_seq + 3).await;
                client = Client::connect_as(&emulator, "rita").await;
                watch.resubscribe(&mut client).await;
            }
        }
    }
    pipeline.await.unwrap();
    assert!(drops_at.is_empty(), "both drops happened");
    assert_eq!(watch.seen, (1..=steps + 1).collect::<Vec<_>>());
    client.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn reconnecting_mid_job_loses_and_repeats_nothing_in_memory() {
    reconnecting_mid_job_loses_and_repeats_nothing(MemoryStore::new()).await;
}

#[tokio::test]
async fn reconnecting_mid_job_loses_and_repeats_nothing_on_dynamodb() {
    reconnecting_mid_job_loses_and_repeats_nothing(dynamo_store().await).await;
}

/// Clients resubscribe from points in the past while the pipeline keeps sending: the replay
/// and the live sends race, and each client must still hear every event after its `last_seq`
/// once, in order. Two lags are longer than a replay page (100 events), and the test shows the
/// race really happened: events were appended while replays held their claims, and replays had
/// to go round again because the job had moved on.
async fn replay_and_live_sends_never_cross<S: Store>(store: S) {
    let store = ObservedStore::new(store);
    let seen = store.observations();
    // Every post takes a millisecond, as a round trip to API Gateway does: a replay of a few
    // hundred events then spans many of the pipeline's sends.
    let config = EmulatorConfig {
        faults: Faults {
            post_latency: Duration::from_millis(1),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::start(listener, Jobcast::new(store, test_settings()), config).unwrap();
    let job_id = "busy-job";
    register_job(&emulator, job_id, None).await;
    let steps = 400;
    let pipeline = run_pipeline(&emulator, job_id, steps, Duration::from_millis(2));
    let mut watchers = Vec::new();
    for lag in [0u64, 3, 25, 150, 260] {
        // Each client starts once the job is far enough along for its lag.
        wait_until_job_reaches(&emulator, job_id, lag + 10).await;
        let url = emulator.websocket_url();
        let http = emulator.http_url();
        watchers.push(tokio::spawn(async move {
            let mut client = Client::connect_to(&url, &http, &format!("lagging-{lag}")).await;
            let status = client
                .request(json!({"action": "request_status", "job_id": job_id}))
                .await;
            let mut watch = Watch::new(job_id);
            watch.last_seq = status["last_seq"].as_u64().unwrap().saturating_sub(lag);
            let from = watch.last_seq;
            watch.resubscribe(&mut client).await;
            loop {
                match client.next_event().await {
                    Incoming::Text(frame) if watch.take(&frame) => break,
                    Incoming::Text(_) => {}
                    Incoming::Closed => panic!("closed mid-job"),
                }
            }
            assert_eq!(watch.seen, (from + 1..=steps + 1).collect::<Vec<_>>());
            client.expect_silence().await;
        }));
    }
    for watcher in watchers {
        watcher.await.unwrap();
    }
    pipeline.await.unwrap();
    let appended_during_replay = Observations::get(&seen.appends_during_replay);
    let behind = Observations::get(&seen.replays_behind);
    assert!(
        appended_during_replay > 0 && behind > 0,
        "the replays never raced the pipeline ({appended_during_replay} appends during a replay, \
         {behind} replays behind): this run proves nothing"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn replay_and_live_sends_never_cross_in_memory() {
    replay_and_live_sends_never_cross(MemoryStore::new()).await;
}

#[tokio::test]
async fn replay_and_live_sends_never_cross_on_dynamodb() {
    replay_and_live_sends_never_cross(dynamo_store().await).await;
}

/// When the log no longer holds what the client missed, it is told so and gets the status.
async fn an_expired_log_is_never_a_silent_partial_replay<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let job_id = "old-news";
    // Three early events whose log entries have already expired (as DynamoDB's TTL and every
    // read see them), written straight to the store: no clock to wait for.
    let store = emulator.service().store();
    let now = Utc::now();
    for step in 1..=3 {
        let event: jobcast::protocol::JobEvent =
            serde_json::from_value(progress(job_id, step as f64 * 10.0, "early")["event"].clone())
                .unwrap();
        store
            .append_event(NewEvent {
                job_id: JobId::parse(job_id).unwrap(),
                event_id: None,
                event,
                correlation_id: None,
                recorded_at: now,
                job_expires_at: now + chrono::Duration::hours(1),
                event_expires_at: now - chrono::Duration::minutes(1),
                owner: None,
            })
            .await
            .unwrap();
    }
    invoke_sender(&emulator, &progress(job_id, 40.0, "fresh")).await;

    let mut client = Client::connect(&emulator).await;
    let subscribed = client
        .request(json!({"action": "subscribe", "job_id": job_id, "last_seq": 1}))
        .await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    assert_eq!(subscribed["recovered"], false, "{subscribed}");
    assert_eq!(subscribed["after_seq"], 4);
    let status = client.expect("job_status").await;
    assert_eq!(status["last_seq"], 4);
    assert_eq!(status["progress"], 40.0);
    client.expect_silence().await;

    // Live events follow as usual.
    invoke_sender(&emulator, &progress(job_id, 50.0, "later")).await;
    assert_eq!(client.expect("progress_update").await["seq"], 5);

    // From a seq still in the log, the replay is complete.
    let mut other = Client::connect(&emulator).await;
    let subscribed = other
        .request(json!({"action": "subscribe", "job_id": job_id, "last_seq": 3}))
        .await;
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    assert_eq!(other.expect("progress_update").await["seq"], 4);
    assert_eq!(other.expect("progress_update").await["seq"], 5);
    other.expect_silence().await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_expired_log_is_never_a_silent_partial_replay_in_memory() {
    an_expired_log_is_never_a_silent_partial_replay(MemoryStore::new()).await;
}

#[tokio::test]
async fn an_expired_log_is_never_a_silent_partial_replay_on_dynamodb() {
    an_expired_log_is_never_a_silent_partial_replay(dynamo_store().await).await;
}

#[tokio::test]
async fn a_last_seq_from_the_future_is_refused_and_nothing_is_stored() {
    let emulator = start().await;
    invoke_sender(&emulator, &progress("young", 10.0, "")).await;
    let mut client = Client::connect(&emulator).await;
    let reply = client
        .request(json!({"action": "subscribe", "job_id": "young", "last_seq": 9, "correlation_id": "r1"}))
        .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "invalid_message");
    assert_eq!(reply["correlation_id"], "r1");
    assert!(
        reply["message"].as_str().unwrap().contains("last seq is 1"),
        "{reply}"
    );
    assert_eq!(emulator.service().store().subscription_count(), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn subscribing_without_last_seq_gives_the_status_then_everything_after_it() {
    let emulator = start().await;
    invoke_sender(&emulator, &progress("midway", 10.0, "")).await;
    invoke_sender(&emulator, &progress("midway", 20.0, "")).await;
    let mut client = Client::connect(&emulator).await;
    let subscribed = client
        .request(json!({"action": "subscribe", "job_id": "midway"}))
        .await;
    assert_eq!(subscribed["after_seq"], 2, "{subscribed}");
    assert_eq!(subscribed["recovered"], true);
    let status = client.expect("job_status").await;
    assert_eq!(status["last_seq"], 2);
    client.expect_silence().await;
    invoke_sender(&emulator, &progress("midway", 30.0, "")).await;
    assert_eq!(client.expect("progress_update").await["seq"], 3);
    emulator.shutdown().await;
}

/// A client more than 5,000 events behind is told (`recovered: false` and the status), not
/// replayed, so a replay never outlasts the route's timeout; at exactly 5,000 it is replayed.
#[tokio::test]
async fn a_client_more_than_5000_events_behind_is_told_not_replayed() {
    use jobcast::protocol::ConnectionId;
    let store = MemoryStore::new();
    let service = Jobcast::new(store.clone(), test_settings());
    let gateway = ScriptedGateway::default();
    for n in 0..5_002u32 {
        let event = progress("long", f64::from(n % 100), "");
        service.handle_send(&gateway, event).await.unwrap();
    }
    for (connection, last_seq) in [("far", 1u64), ("near", 2)] {
        listening_after(&store, connection, "other", 0).await;
        let body = json!({"action": "subscribe", "job_id": "long", "last_seq": last_seq});
        let id = ConnectionId::parse(connection).unwrap();
        service
            .handle_message(&gateway, &websocket_event(&id, Some(body)))
            .await;
    }
    let far = gateway.frames_to("far");
    assert_eq!(
        (&far[0]["type"], &far[0]["after_seq"], &far[0]["recovered"]),
        (&json!("subscribed"), &json!(5_002), &json!(false)),
        "5,001 behind: told"
    );
    assert_eq!(
        (far[1]["type"].as_str(), far.len()),
        (Some("job_status"), 2)
    );
    // 5,000 behind: replayed, 500 events per subscribe. Each page ends with `replay_paused`
    // and the client asks for the next from where it stopped.
    let near = ConnectionId::parse("near").unwrap();
    let mut replayed: Vec<u64> = Vec::new();
    let mut pages = 0;
    let mut frames = gateway.frames_to("near");
    loop {
        pages += 1;
        assert_eq!(frames[0]["type"], "subscribed", "page {pages}");
        assert_eq!(frames[0]["recovered"], true, "page {pages}");
        let events: Vec<u64> = frames[1..]
            .iter()
            .filter_map(|frame| frame["seq"].as_u64())
            .collect();
        assert!(events.len() <= 500, "a frame buys at most 500 events");
        replayed.extend(&events);
        let last = frames.last().unwrap();
        if last["type"] != "replay_paused" {
            break;
        }
        assert_eq!(last["through_seq"], json!(replayed.last().unwrap()));
        assert_eq!(last["last_seq"], 5_002);
        // The replay was charged to the connection's frames (20 tokens for 500 events): it
        // comes back when told to, or is refused.
        let wait = last["retry_after_ms"].as_u64().unwrap();
        assert!(wait <= 2_200, "{wait}");
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        gateway.take();
        let body =
            json!({"action": "subscribe", "job_id": "long", "last_seq": last["through_seq"]});
        service
            .handle_message(&gateway, &websocket_event(&near, Some(body)))
            .await;
        frames = gateway.frames_to("near");
    }
    assert_eq!(pages, 10);
    assert_eq!(
        replayed,
        (3..=5_002).collect::<Vec<_>>(),
        "5,000 behind: replayed, each once, in order"
    );
    // Caught up: live again.
    service
        .handle_send(&gateway, progress("long", 1.0, "live"))
        .await
        .unwrap();
    let live = gateway.frames_to("near");
    assert_eq!(live.last().unwrap()["seq"], 5_003, "{live:?}");
}

#[tokio::test]
async fn a_paused_replay_leaves_no_subscription_so_nothing_slips_in_ahead() {
    use jobcast::protocol::ConnectionId;
    let store = MemoryStore::new();
    let service = Jobcast::new(store.clone(), test_settings());
    let gateway = ScriptedGateway::default();
    for n in 0..700u32 {
        service
            .handle_send(&gateway, progress("paged", f64::from(n % 100), ""))
            .await
            .unwrap();
    }
    listening_after(&store, "pager", "other", 0).await;
    let id = ConnectionId::parse("pager").unwrap();
    let body = json!({"action": "subscribe", "job_id": "paged", "last_seq": 0});
    service
        .handle_message(&gateway, &websocket_event(&id, Some(body)))
        .await;
    let first = gateway.take();
    let paused = first.last().unwrap();
    assert_eq!(paused["type"], "replay_paused");
    // Too soon: the replay's cost is not paid off yet.
    let body = json!({"action": "subscribe", "job_id": "paged", "last_seq": 500});
    service
        .handle_message(&gateway, &websocket_event(&id, Some(body)))
        .await;
    let early = gateway.take();
    if paused["retry_after_ms"].as_u64().unwrap() > 50 {
        assert_eq!(early[0]["code"], "rate_limited", "{early:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(
        paused["retry_after_ms"].as_u64().unwrap(),
    ))
    .await;
    // An event while paused is not posted: it would arrive ahead of seqs 501..=700.
    service
        .handle_send(&gateway, progress("paged", 1.0, "meanwhile"))
        .await
        .unwrap();
    assert!(gateway.frames_to("pager").is_empty());
    let body = json!({"action": "subscribe", "job_id": "paged", "last_seq": 500});
    service
        .handle_message(&gateway, &websocket_event(&id, Some(body)))
        .await;
    let rest: Vec<u64> = gateway
        .frames_to("pager")
        .iter()
        .filter_map(|frame| frame["seq"].as_u64())
        .collect();
    assert_eq!(rest, (501..=701).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_second_replay_to_the_same_connection_waits_for_the_first() {
    use jobcast::protocol::ConnectionId;
    use jobcast::store::{JobStore, ReplayClaim};
    let store = MemoryStore::new();
    let service = Jobcast::new(store.clone(), test_settings());
    let gateway = ScriptedGateway::default();
    service
        .handle_send(&gateway, progress("once", 1.0, ""))
        .await
        .unwrap();
    listening_after(&store, "twice", "other", 0).await;
    let id = ConnectionId::parse("twice").unwrap();
    // A replay to this connection under way (its claim held, as a running subscribe holds it).
    let running = ReplayClaim {
        job_id: jobcast::protocol::JobId::parse("once").unwrap(),
        connection_id: id.clone(),
        until: chrono::Utc::now() + chrono::Duration::seconds(30),
    };
    store.start_replay(&running).await.unwrap();
    let body = json!({"action": "subscribe", "job_id": "once", "last_seq": 0});
    service
        .handle_message(&gateway, &websocket_event(&id, Some(body.clone())))
        .await;
    let refused = gateway.take();
    assert_eq!(refused[0]["code"], "replay_in_progress", "{refused:?}");
    // Its claim gone, the next subscribe replays.
    store.abandon_replay(&running, None).await.unwrap();
    service
        .handle_message(&gateway, &websocket_event(&id, Some(body)))
        .await;
    assert_eq!(gateway.frames_to("twice")[0]["type"], "subscribed");
}
