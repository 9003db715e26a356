//! The sender's SQS ingress, through jobcast-local's Lambda Invoke API: which records come
//! back in `batchItemFailures`, and that a redelivered record is recorded once.

use std::num::NonZeroU32;
use std::time::Duration;

use jobcast::handlers::Jobcast;
use jobcast::protocol::JobId;
use jobcast::settings::Settings;
use jobcast::store::JobStore;
use jobcast_local::EmulatorConfig;
use jobcast_tests::*;
use serde_json::{Value, json};

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("a batch response: {answer}"))
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

async fn last_seq(emulator: &TestEmulator, job: &str) -> u64 {
    let job = JobId::parse(job).unwrap();
    emulator
        .service()
        .store()
        .get_job(&job)
        .await
        .unwrap()
        .map_or(0, |job| job.last_seq)
}

#[tokio::test]
async fn bad_records_are_dropped_not_retried_and_good_ones_are_published() {
    let emulator = start().await;
    let mut client = Client::connect(&emulator).await;
    client.subscribe("sqs-good").await;
    let finished = json!({"job_id": "sqs-done", "event": {"type": "job_complete", "results": {}}});
    invoke_sender(&emulator, &finished).await;

    let answer = invoke_sender(
        &emulator,
        &sqs_batch(vec![
            sqs_record("m-good", None, &progress("sqs-good", 40.0, "half").to_string()),
            sqs_record("m-not-json", None, "{not json"),
            sqs_record(
                "m-bad-field",
                None,
                &json!({"job_id": "sqs-good", "event": {"type": "progress_update", "stage": "s", "progress": 140, "message": ""}}).to_string(),
            ),
            sqs_record("m-unknown", None, &json!({"job_id": "sqs-good", "event": {"type": "teleport"}}).to_string()),
            sqs_record("m-finished", None, &progress("sqs-done", 1.0, "").to_string()),
        ]),
    )
    .await
    .2;
    assert_eq!(
        failures(&answer),
        Vec::<String>::new(),
        "nothing is worth retrying: {answer}"
    );
    let frame = client.expect("progress_update").await;
    assert_eq!(frame["seq"], 1);
    assert_eq!(frame["message"], "half");
    client.expect_silence().await;
    assert_eq!(
        last_seq(&emulator, "sqs-good").await,
        1,
        "bad records stored nothing"
    );
    assert_eq!(last_seq(&emulator, "sqs-done").await, 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn throttled_out_records_come_back_with_their_group_and_a_redelivery_takes_no_new_seq() {
    let mut settings = test_settings();
    settings.delivery.max_attempts = 2;
    let emulator = start_with(settings, EmulatorConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut client = Client::connect(&emulator).await;
        client.subscribe("sqs-busy").await;
        clients.push(client);
    }
    let mut quiet = Client::connect(&emulator).await;
    quiet.subscribe("sqs-other").await;

    // One post a second: most of the six subscribers are throttled out.
    emulator.registry().set_throttle_rps(NonZeroU32::new(1));
    let first_body = progress("sqs-busy", 10.0, "first").to_string();
    let second_body = progress("sqs-busy", 20.0, "second").to_string();
    let other_body = json!({"job_id": "sqs-other", "event": {"type": "stage_complete", "stage": "s", "results": {}}}).to_string();
    let records = vec![
        sqs_record("m-1", Some("sqs-busy"), &first_body),
        sqs_record("m-2", Some("sqs-busy"), &second_body),
        sqs_record("m-3", Some("sqs-other"), &other_body),
    ];
    let answer = invoke_sender(&emulator, &sqs_batch(records.clone()))
        .await
        .2;
    let failed = failures(&answer);
    assert!(failed.contains(&"m-1".to_owned()), "{answer}");
    assert!(
        failed.contains(&"m-2".to_owned()),
        "held back behind m-1, or the group's order breaks: {answer}"
    );
    assert_eq!(
        last_seq(&emulator, "sqs-busy").await,
        1,
        "m-2 was not recorded"
    );
    // m-3 belongs to another group: its one post may or may not have found a token.
    let other_retried = failed.contains(&"m-3".to_owned());

    // The quota lifts; SQS redelivers the failed records (same message ids).
    emulator.registry().set_throttle_rps(None);
    let redelivered: Vec<Value> = records
        .into_iter()
        .filter(|r| failed.contains(&r["messageId"].as_str().unwrap().to_owned()))
        .collect();
    let answer = invoke_sender(&emulator, &sqs_batch(redelivered)).await.2;
    assert_eq!(failures(&answer), Vec::<String>::new(), "{answer}");
    assert_eq!(
        last_seq(&emulator, "sqs-busy").await,
        2,
        "m-1 was recognised as a retry: no third seq"
    );
    assert_eq!(
        last_seq(&emulator, "sqs-other").await,
        1,
        "m-3 recorded once whether or not it was retried ({other_retried})"
    );

    // Every subscriber saw seq 1 (once or twice: a retry fans out again), then seq 2 once.
    for client in &mut clients {
        let mut seen = Vec::new();
        while seen.last() != Some(&2) {
            let frame = client.expect("progress_update").await;
            seen.push(frame["seq"].as_u64().unwrap());
        }
        assert!(seen == [1, 2] || seen == [1, 1, 2], "{seen:?}");
        client.expect_silence().await;
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn one_failed_group_leaves_the_other_groups_alone() {
    let store = jobcast::store::MemoryStore::new();
    let mut settings = test_settings();
    settings.delivery.max_attempts = 2;
    let service = Jobcast::new(store.clone(), settings);
    // Connection "busy" follows job-busy and is always throttled; "calm" follows job-calm.
    listening(&store, "busy", "job-busy").await;
    listening(&store, "calm", "job-calm").await;
    let gateway = ScriptedGateway::throttling(&["busy"]);
    let posts = gateway.posts.clone();
    // The calm group's records come before, between and after the busy group's.
    let records = sqs_batch(vec![
        sqs_record(
            "c-1",
            Some("job-calm"),
            &progress("job-calm", 10.0, "c1").to_string(),
        ),
        sqs_record(
            "b-1",
            Some("job-busy"),
            &progress("job-busy", 10.0, "b1").to_string(),
        ),
        sqs_record(
            "c-2",
            Some("job-calm"),
            &progress("job-calm", 20.0, "c2").to_string(),
        ),
        sqs_record(
            "b-2",
            Some("job-busy"),
            &progress("job-busy", 20.0, "b2").to_string(),
        ),
        sqs_record(
            "c-3",
            Some("job-calm"),
            &progress("job-calm", 30.0, "c3").to_string(),
        ),
    ]);
    let answer = service
        .handle_sender_invocation(&gateway, records)
        .await
        .unwrap();
    assert_eq!(
        failures(&answer),
        ["b-1", "b-2"],
        "the busy group comes back whole, the calm one not at all: {answer}"
    );
    let calm: Vec<(String, Value)> = posts.lock().unwrap().clone();
    let messages: Vec<&str> = calm
        .iter()
        .map(|(to, frame)| {
            assert_eq!(to, "calm");
            frame["message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(messages, ["c1", "c2", "c3"], "in order, each once");
    let job_calm = store.get_job(&JobId::parse("job-calm").unwrap()).await;
    assert_eq!(job_calm.unwrap().unwrap().last_seq, 3);
    let job_busy = store.get_job(&JobId::parse("job-busy").unwrap()).await;
    assert_eq!(
        job_busy.unwrap().unwrap().last_seq,
        1,
        "b-2 waited behind b-1; b-1 keeps its seq for the redelivery"
    );
}

#[tokio::test]
async fn an_unreachable_store_hands_every_record_back() {
    // A DynamoDB store whose endpoint hangs up on every request: the store is "unavailable".
    let store = jobcast::store::DynamoStore::new(
        &sdk_config(&refusing_endpoint().await).await,
        jobcast::store::dynamodb::schema::TableNames {
            connections: "connections".into(),
            jobs: "jobs".into(),
        },
    );
    let service = Jobcast::new(store, Settings::default());
    let records = sqs_batch(vec![
        sqs_record("m-a", None, &progress("job-a", 1.0, "").to_string()),
        sqs_record("m-b", None, &progress("job-b", 1.0, "").to_string()),
        sqs_record("m-poison", None, "not json at all"),
    ]);
    let started = std::time::Instant::now();
    let answer = service
        .handle_sender_invocation(&NoConnections, records)
        .await
        .unwrap();
    assert_eq!(failures(&answer), ["m-a", "m-b"], "{answer}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A gateway for a test whose store never gets as far as posting.
struct NoConnections;

impl jobcast::gateway::ConnectionGateway for NoConnections {
    async fn post_to_connection(
        &self,
        _: &jobcast::protocol::ConnectionId,
        _: Bytes,
    ) -> Result<(), jobcast::gateway::PostError> {
        Err(jobcast::gateway::PostError::Gone)
    }

    async fn delete_connection(
        &self,
        _: &jobcast::protocol::ConnectionId,
    ) -> Result<(), jobcast::gateway::PostError> {
        Err(jobcast::gateway::PostError::Gone)
    }
}

#[tokio::test]
async fn near_the_deadline_the_rest_of_a_batch_is_handed_back_untried() {
    use std::time::Instant;
    let store = jobcast::store::MemoryStore::new();
    let mut settings = test_settings();
    settings.sqs_deadline_reserve = Duration::from_millis(50);
    let service = Jobcast::new(store.clone(), settings);
    listening(&store, "listener", "slow").await;
    let records = || {
        sqs_batch(
            (1..=4)
                .map(|n| {
                    let body = progress("slow", f64::from(n), "").to_string();
                    sqs_record(&format!("s-{n}"), Some("slow"), &body)
                })
                .collect(),
        )
    };
    // Already inside the reserve: nothing is started, everything comes back.
    let answer = service
        .handle_sender_invocation_until(
            &ScriptedGateway::default(),
            records(),
            Some(Instant::now()),
        )
        .await
        .unwrap();
    assert_eq!(failures(&answer), ["s-1", "s-2", "s-3", "s-4"], "{answer}");
    assert_eq!(
        store.get_job(&JobId::parse("slow").unwrap()).await.unwrap(),
        None
    );

    // Time for one record: its fan-out (400 ms) runs past the deadline, the rest come back.
    let deadline = Instant::now() + Duration::from_millis(200);
    let answer = service
        .handle_sender_invocation_until(
            &ScriptedGateway {
                delay: Duration::from_millis(400),
                ..ScriptedGateway::default()
            },
            records(),
            Some(deadline),
        )
        .await
        .unwrap();
    assert_eq!(failures(&answer), ["s-2", "s-3", "s-4"], "{answer}");
    let job = store.get_job(&JobId::parse("slow").unwrap()).await.unwrap();
    assert_eq!(
        job.map(|job| job.last_seq),
        Some(1),
        "only s-1 was recorded"
    );
}
