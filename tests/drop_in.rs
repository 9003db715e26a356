//! jobcast as a drop-in for the systems it replaces: the notification hub's path (`/ws`) and
//! message shapes, its "has other connections" (presence), and one-job sockets (`?job_id=`)
//! that never send a frame. On both stores where the store matters.

use jobcast::store::{MemoryStore, Store};
use jobcast_local::{Emulator, EmulatorConfig};
use jobcast_tests::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

async fn start_at_stage(stage: &str) -> Emulator<MemoryStore> {
    start_with(
        test_settings(),
        EmulatorConfig {
            stage: stage.to_owned(),
            ..EmulatorConfig::default()
        },
    )
    .await
}

#[tokio::test]
async fn the_upgrade_is_served_at_the_stage_path_as_well_as_the_root() {
    let emulator = start_at_stage("ws").await;
    let ws = emulator.websocket_url();
    let http = emulator.http_url();
    let mut at_stage = Client::open(&format!("{ws}/ws?user_id=ana"), &http, "ana").await;
    let mut at_root = Client::open(&format!("{ws}/?user_id=ana"), &http, "ana").await;
    for tab in [&mut at_stage, &mut at_root] {
        assert_eq!(tab.request(json!({"action": "ping"})).await["type"], "pong");
    }
    // Another stage's path is not this server's.
    let refused = tokio_tungstenite::connect_async(format!("{ws}/production?user_id=ana")).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected 404, got {other:?}"),
    }
    // The side doors keep their paths.
    let health = reqwest::get(format!("{http}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}

async fn hub_shapes_reach_every_tab_in_the_form_they_were_published<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let mut tabs = vec![
        Client::connect_as(&emulator, "ana").await,
        Client::connect_as(&emulator, "ana").await,
    ];
    let mut other = Client::connect_as(&emulator, "bo").await;
    let published = [
        json!({"type": "notification", "payload": {"title": "Export ready", "message": "Your CSV is ready.", "level": "success"}, "timestamp": "2026-11-24T08:00:00Z"}),
        json!({"type": "alert", "payload": {"title": "Quota", "message": "90% used", "severity": "high"}}),
        json!({"type": "update", "payload": {"project_id": "p-7", "pages": [1, 2, 3], "note": null}}),
        json!({"type": "notification", "title": "Flat", "message": "jobcast's own form", "level": "info"}),
    ];
    for message in &published {
        // As the hub's publishers put it on `user_noti:{id}`: a JSON string.
        let request = json!({"channel": "user_noti:ana", "message": message.to_string()});
        let (status, _, report) = invoke_sender(&emulator, &request).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["outcome"], "delivered", "{report}");
        assert_eq!(report["delivered"], 2, "{report}");
        for tab in &mut tabs {
            let frame = tab.expect(message["type"].as_str().unwrap()).await;
            if let Some(payload) = message.get("payload") {
                assert_eq!(&frame["payload"], payload, "the hub's envelope, unchanged");
                assert!(frame.get("title").is_none(), "{frame}");
            } else {
                assert_eq!(frame["title"], "Flat");
                assert!(frame.get("payload").is_none(), "{frame}");
            }
            assert!(frame["timestamp"].is_string(), "{frame}");
        }
    }
    other.expect_silence().await;
}

#[tokio::test]
async fn hub_shapes_on_memory() {
    hub_shapes_reach_every_tab_in_the_form_they_were_published(MemoryStore::new()).await;
}

#[tokio::test]
async fn hub_shapes_on_dynamodb() {
    hub_shapes_reach_every_tab_in_the_form_they_were_published(dynamo_store().await).await;
}

async fn presence(emulator: &Emulator<impl Store>, user: &str) -> Value {
    let (status, _, answer) = invoke_sender(
        emulator,
        &json!({"action": "get_presence", "user_id": user}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "presence", "{answer}");
    answer
}

/// Log lines, captured: what an operator's log search would find.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    /// JSON log lines mentioning the user going offline.
    fn offline(&self, user: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|line| {
                line.contains(r#""presence":"offline""#)
                    && line.contains(&format!(r#""user_id":"{user}""#))
            })
            .count()
    }
}

async fn presence_counts_the_users_open_connections<S: Store>(store: S) {
    // The test's runtime runs every task on this thread: the emulator's log lines come here.
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(logs.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let emulator = start_on(store).await;
    let answer = presence(&emulator, "ana").await;
    assert_eq!(
        (answer["connections"].as_u64(), answer["online"].as_bool()),
        (Some(0), Some(false))
    );
    let first = Client::connect_as(&emulator, "ana").await;
    let second = Client::connect_as(&emulator, "ana").await;
    let _bo = Client::connect_as(&emulator, "bo").await;
    let answer = presence(&emulator, "ana").await;
    assert_eq!(
        (answer["connections"].as_u64(), answer["online"].as_bool()),
        (Some(2), Some(true))
    );
    first.close().await;
    eventually("one tab left", || async {
        presence(&emulator, "ana").await["connections"] == 1
    })
    .await;
    assert_eq!(logs.offline("ana"), 0, "one tab is still open");
    second.close().await;
    eventually("ana is offline", || async {
        presence(&emulator, "ana").await["online"] == false
    })
    .await;
    eventually("the last connection's close is logged", || async {
        logs.offline("ana") == 1
    })
    .await;
    // A question, never a fan-out, and parsed like every request.
    let (_, _, refused) = invoke_sender(
        &emulator,
        &json!({"action": "get_presence", "user_id": "ana", "job_id": "x"}),
    )
    .await;
    assert_eq!(refused["errorType"], "InvalidRequest", "{refused}");
}

#[tokio::test]
async fn presence_on_memory() {
    presence_counts_the_users_open_connections(MemoryStore::new()).await;
}

#[tokio::test]
async fn presence_on_dynamodb() {
    presence_counts_the_users_open_connections(dynamo_store().await).await;
}

/// A pipeline's event for `job_id`, with its progress.
async fn publish(emulator: &Emulator<impl Store>, job_id: &str, percent: f64) -> u64 {
    let (status, _, answer) =
        invoke_sender(emulator, &progress(job_id, percent, &format!("{percent}%"))).await;
    assert_eq!(status, 200, "{answer}");
    answer["seq"].as_u64().expect("a seq")
}

async fn a_one_job_socket_hears_its_whole_job_without_a_frame<S: Store>(store: S) {
    let emulator = start_on(store).await;
    let ws = emulator.websocket_url();
    let http = emulator.http_url();
    register_job(&emulator, "crawl-1", Some("ana")).await;
    for percent in [10.0, 20.0, 30.0] {
        publish(&emulator, "crawl-1", percent).await;
    }

    // From the start: the snapshot, then everything live. The client never sends a frame.
    let mut fresh = Client::open(&format!("{ws}/?user_id=ana&job_id=crawl-1"), &http, "ana").await;
    let subscribed = fresh.expect("subscribed").await;
    assert_eq!(subscribed["job_id"], "crawl-1");
    assert_eq!(fresh.expect("job_status").await["last_seq"], 3);

    // Resuming: every event after last_seq, replayed in order, then live.
    let mut resumed = Client::open(
        &format!("{ws}/?user_id=ana&job_id=crawl-1&last_seq=1"),
        &http,
        "ana",
    )
    .await;
    assert_eq!(resumed.expect("subscribed").await["after_seq"], 1);
    for seq in [2, 3] {
        assert_eq!(resumed.expect("progress_update").await["seq"], seq);
    }
    let live = publish(&emulator, "crawl-1", 40.0).await;
    for socket in [&mut fresh, &mut resumed] {
        assert_eq!(socket.expect("progress_update").await["seq"], live);
    }
    let (status, _, done) = invoke_sender(
        &emulator,
        &json!({"job_id": "crawl-1", "event": {"type": "job_complete", "results": {"pages": 4}}}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    for socket in [&mut fresh, &mut resumed] {
        assert_eq!(socket.expect("job_complete").await["seq"], live + 1);
    }
}

#[tokio::test]
async fn one_job_socket_on_memory() {
    a_one_job_socket_hears_its_whole_job_without_a_frame(MemoryStore::new()).await;
}

#[tokio::test]
async fn one_job_socket_on_dynamodb() {
    a_one_job_socket_hears_its_whole_job_without_a_frame(dynamo_store().await).await;
}

/// The status an upgrade to `url` is refused with.
async fn refused_with(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("{url} was accepted"),
        Err(other) => panic!("{url}: {other}"),
    }
}

#[tokio::test]
async fn a_one_job_socket_is_refused_what_subscribe_would_refuse() {
    let emulator = start_secured(MemoryStore::new(), test_settings()).await;
    let ws = emulator.websocket_url();
    register_job(&emulator, "ana-job", Some("ana")).await;
    register_job(&emulator, "nobodys-job", None).await;
    let token = token_for("bo");
    // Another user's job, a job with no owner, a job that does not exist: one answer.
    for job in ["ana-job", "nobodys-job", "no-such-job"] {
        assert_eq!(
            refused_with(&format!("{ws}/?token={token}&job_id={job}")).await,
            403,
            "{job}"
        );
    }
    // Bad input on the URL.
    assert_eq!(
        refused_with(&format!("{ws}/?token={token}&job_id=%00x")).await,
        400
    );
    assert_eq!(
        refused_with(&format!("{ws}/?token={token}&job_id=ana-job&last_seq=-1")).await,
        400
    );
    assert_eq!(
        refused_with(&format!("{ws}/?token={token}&last_seq=3")).await,
        400
    );
    // Nothing was left behind by the refusals, and the owner gets in.
    assert!(open_connections(&emulator).await.is_empty());
    let url = format!("{ws}/?token={}&job_id=ana-job", token_for("ana"));
    let mut owner = Client::open(&url, &emulator.http_url(), "ana").await;
    owner.expect("subscribed").await;
    owner.expect("job_status").await;
}

#[tokio::test]
async fn a_subscribe_for_a_connection_that_never_opened_changes_nothing() {
    let emulator = start().await;
    register_job(&emulator, "crawl-2", None).await;
    let (status, _, answer) = invoke_sender(
        &emulator,
        &json!({"action": "subscribe_connection", "connection_id": "never-opened=", "job_id": "crawl-2"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "connection_gone", "{answer}");
    assert_eq!(emulator.service().store().subscription_count(), 0);
}
