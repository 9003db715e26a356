//! A retried event (a pipeline's retry, an SQS redelivery) is recognised by its `event_id` —
//! any event still in the log, not only the latest — and posted only to the connections its
//! first fan-out did not reach, when that fan-out recorded them.

use jobcast::handlers::Jobcast;
use jobcast::protocol::{JobId, SendOutcome};
use jobcast::store::{MemoryStore, Store};
use jobcast_tests::*;
use serde_json::{Value, json};

fn with_id(mut request: Value, event_id: &str) -> Value {
    request["event_id"] = json!(event_id);
    request
}

/// Publishes `request`: (seq, duplicate, delivered, failed_transient).
async fn publish<S: Store>(
    service: &Jobcast<S>,
    gateway: &ScriptedGateway,
    request: Value,
) -> (u64, bool, u64, u64) {
    match service.handle_send(gateway, request).await.unwrap() {
        SendOutcome::Published {
            seq,
            duplicate,
            delivery,
            ..
        } => (
            seq,
            duplicate,
            delivery.delivered,
            delivery.failed_transient,
        ),
        other => panic!("not published: {other:?}"),
    }
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .map(|frame| frame["seq"].as_u64().unwrap())
        .collect()
}

async fn a_retry_goes_only_to_those_the_first_fan_out_missed<S: Store>(store: S) {
    let mut settings = test_settings();
    settings.delivery.max_attempts = 2;
    let service = Jobcast::new(store.clone(), settings);
    for id in ["c1", "c2", "c3", "c4", "c5"] {
        listening(&store, id, "missed").await;
    }
    let gateway = ScriptedGateway::throttling(&["c3"]);
    let request = with_id(progress("missed", 10.0, "once"), "e-1");
    assert_eq!(
        publish(&service, &gateway, request.clone()).await,
        (1, false, 4, 1)
    );
    // The quota passes; the pipeline (or SQS) sends the event again.
    gateway.throttle(&[]);
    assert_eq!(
        publish(&service, &gateway, request.clone()).await,
        (1, true, 1, 0),
        "only c3 is posted to"
    );
    for id in ["c1", "c2", "c3", "c4", "c5"] {
        assert_eq!(seqs(&gateway.frames_to(id)), [1], "{id} hears seq 1 once");
    }
    // Once everyone has it, a further retry posts nothing at all; a direct invocation hears
    // that it was a duplicate.
    let answer = service
        .handle_sender_invocation(&gateway, request)
        .await
        .unwrap();
    assert_eq!(
        (
            &answer["outcome"],
            &answer["seq"],
            &answer["duplicate"],
            &answer["delivered"]
        ),
        (&json!("published"), &json!(1), &json!(true), &json!(0)),
        "{answer}"
    );
    assert_eq!(gateway.post_count(), 5);
}

async fn a_large_fan_out_that_reached_everyone_is_not_repeated<S: Store>(store: S) {
    let service = Jobcast::new(store.clone(), test_settings());
    for n in 0..120 {
        listening(&store, &format!("c{n}"), "large").await;
    }
    let gateway = ScriptedGateway::default();
    let request = with_id(progress("large", 10.0, ""), "e-large");
    assert_eq!(
        publish(&service, &gateway, request.clone()).await,
        (1, false, 120, 0)
    );
    assert_eq!(publish(&service, &gateway, request).await, (1, true, 0, 0));
    assert_eq!(gateway.post_count(), 120, "nobody heard it twice");
}

async fn a_redelivered_batch_takes_no_new_seqs<S: Store>(store: S) {
    let service = Jobcast::new(store.clone(), test_settings());
    listening(&store, "c1", "batch").await;
    let gateway = ScriptedGateway::default();
    let batch = || {
        sqs_batch(
            (1..=3)
                .map(|n| {
                    let body = progress("batch", f64::from(n * 10), "").to_string();
                    sqs_record(&format!("m-{n}"), Some("batch"), &body)
                })
                .collect(),
        )
    };
    service
        .handle_sender_invocation(&gateway, batch())
        .await
        .unwrap();
    // The function timed out after the batch was done: SQS sends all of it again.
    service
        .handle_sender_invocation(&gateway, batch())
        .await
        .unwrap();
    let job = store
        .get_job(&JobId::parse("batch").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.last_seq, 3, "no new seqs");
    assert_eq!(
        job.progress.map(|p| p.value()),
        Some(30.0),
        "the snapshot did not go back"
    );
    // Three events, each posted at most twice (a small fan-out records nothing), in order.
    let heard = seqs(&gateway.frames_to("c1"));
    assert_eq!(heard, [1, 2, 3, 1, 2, 3]);
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::MemoryStore::new()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(jobcast_tests::dynamo_store().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_retry_goes_only_to_those_the_first_fan_out_missed,
    a_large_fan_out_that_reached_everyone_is_not_repeated,
    a_redelivered_batch_takes_no_new_seqs,
);
