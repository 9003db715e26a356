//! Every input is hostile until parsed. Random and mutated client frames and sender requests,
//! seeded from the repository's own examples (`events/`), go through the real handlers: none
//! panics, every client frame is answered with a frame the contract describes (a reply, or an
//! `error` with a known code), and every sender request with an outcome or a typed refusal.
//!
//! The test command runs 60,000 client frames and 40,000 sender requests;
//! `JOBCAST_FUZZ_CASES=N` runs N of each (bench/fuzz.sh runs a million).

use std::path::PathBuf;

use jobcast::handlers::{Jobcast, SendError};
use jobcast::protocol::{ConnectionId, ServerFrame, ServerMessage, UserId};
use jobcast::store::{Connection, ConnectionStore, MemoryStore};
use jobcast_tests::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn examples(dir: &str) -> Vec<Value> {
    let mut found: Vec<Value> = std::fs::read_dir(events_dir().join(dir))
        .unwrap()
        .map(|entry| {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    found.sort_by_key(|value| value.to_string());
    found
}

/// Client frames to start from: the examples' bodies, and a few more.
fn client_corpus() -> Vec<String> {
    let mut corpus: Vec<String> = examples("messages")
        .into_iter()
        .filter_map(|event| event["body"].as_str().map(str::to_owned))
        .collect();
    corpus.extend(
        [
            json!({"action": "subscribe", "job_id": "fuzz-job", "last_seq": 3, "correlation_id": "c-1"}),
            json!({"action": "cancel_job", "job_id": "fuzz-job", "reason": "enough"}),
            json!({"action": "request_status", "job_id": "fuzz-job"}),
        ]
        .iter()
        .map(Value::to_string),
    );
    corpus
}

/// Values a mutation puts where a value was.
fn hostile_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..16) {
        0 => Value::Null,
        1 => json!(rng.random::<i64>()),
        2 => json!(rng.random::<f64>() * 1e300),
        3 => json!(-0.0),
        4 => json!(u64::MAX),
        5 => json!("x".repeat(rng.random_range(0..200_000))),
        6 => json!("ana\u{202E}evil"),
        7 => json!("\u{200B}"),
        8 => json!(""),
        9 => json!([1, "two", null]),
        10 => json!({"nested": {"deeper": [{}]}}),
        11 => json!(true),
        12 => json!("subscribe"),
        13 => json!("job_complete"),
        14 => json!("../../etc/passwd"),
        _ => {
            let length = rng.random_range(0..40);
            json!(
                (0..length)
                    .map(|_| char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('?'))
                    .collect::<String>()
            )
        }
    }
}

/// Changes a JSON value somewhere: replace, remove or add a field, wrap, or nest deeply.
fn mutate_value(value: &mut Value, rng: &mut StdRng) {
    match value {
        Value::Object(fields) if !fields.is_empty() && rng.random_bool(0.7) => {
            let keys: Vec<String> = fields.keys().cloned().collect();
            let key = &keys[rng.random_range(0..keys.len())];
            match rng.random_range(0..5) {
                0 => {
                    fields.remove(key);
                }
                1 => {
                    fields.insert(key.clone(), hostile_value(rng));
                }
                2 => {
                    let extra = ["admin", "user_id", "owner", "__proto__", "type", "seq"];
                    fields.insert(
                        extra[rng.random_range(0..extra.len())].into(),
                        hostile_value(rng),
                    );
                }
                _ => mutate_value(fields.get_mut(key).unwrap(), rng),
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let at = rng.random_range(0..items.len());
            mutate_value(&mut items[at], rng);
        }
        _ => {
            *value = match rng.random_range(0..4) {
                0 => {
                    let mut deep = json!(1);
                    for _ in 0..rng.random_range(1..200) {
                        deep = json!([deep]);
                    }
                    deep
                }
                _ => hostile_value(rng),
            }
        }
    }
}

/// Changes the text: flip, insert or delete bytes, cut it short, repeat it.
fn mutate_text(text: &str, rng: &mut StdRng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    match rng.random_range(0..5) {
        0 if !bytes.is_empty() => {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let at = rng.random_range(0..=bytes.len());
            bytes.insert(at, rng.random());
        }
        2 if !bytes.is_empty() => {
            bytes.truncate(rng.random_range(0..bytes.len()));
        }
        3 => {
            let copy = bytes.clone();
            bytes.extend_from_slice(&copy);
        }
        _ if !bytes.is_empty() => {
            let at = rng.random_range(0..bytes.len());
            bytes.remove(at);
        }
        _ => {}
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One hostile input from the corpus: mutated as JSON, as text, or random.
fn hostile_text(corpus: &[String], seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = &corpus[rng.random_range(0..corpus.len())];
    match rng.random_range(0..10) {
        0 => (0..rng.random_range(0..64))
            .map(|_| char::from_u32(rng.random_range(0..0x800)).unwrap_or(' '))
            .collect(),
        1..=3 => {
            let mut text = base.clone();
            for _ in 0..rng.random_range(1..4) {
                text = mutate_text(&text, &mut rng);
            }
            text
        }
        _ => {
            let mut value: Value = serde_json::from_str(base).unwrap();
            for _ in 0..rng.random_range(1..4) {
                mutate_value(&mut value, &mut rng);
            }
            value.to_string()
        }
    }
}

fn cases(default: u32) -> u32 {
    std::env::var("JOBCAST_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

fn fuzz_settings() -> jobcast::settings::Settings {
    let mut settings = test_settings();
    // The frame limit is not what is under test here.
    settings.frame_rate = 1_000_000;
    settings.frame_burst = 1_000_000;
    settings
}

#[test]
fn client_frames_random_and_mutated_are_each_answered_as_the_contract_says() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let service = Jobcast::new(store.clone(), fuzz_settings());
    let gateway = ScriptedGateway::default();
    let connection_id = ConnectionId::parse("fuzzer").unwrap();
    runtime.block_on(async {
        store
            .put_connection(&Connection {
                connection_id: connection_id.clone(),
                user_id: UserId::anonymous(),
                connected_at: chrono::Utc::now(),
                expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            })
            .await
            .unwrap();
        for job in ["fuzz-job", "job-42", "crawl-7f3a"] {
            service
                .handle_send(&gateway, progress(job, 10.0, "started"))
                .await
                .unwrap();
        }
    });
    let corpus = client_corpus();
    let template = websocket_event(&connection_id, None);
    let mut runner = TestRunner::new(Config {
        cases: cases(60_000),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            let frame = hostile_text(&corpus, seed);
            let binary = seed % 97 == 0;
            let mut event = template.clone();
            event.body = Some(frame.clone());
            event.is_base64_encoded = binary;
            gateway.take();
            let answer = runtime.block_on(service.handle_message(&gateway, &event));
            prop_assert!(
                answer.status_code < 500,
                "{} for {frame:?}",
                answer.status_code
            );
            let posted = gateway.take();
            prop_assert!(!posted.is_empty(), "no answer to {frame:?}");
            for reply in posted {
                let typed: ServerFrame = serde_json::from_value(reply.clone())
                    .map_err(|err| TestCaseError::fail(format!("{err}: {reply} for {frame:?}")))?;
                if let ServerMessage::Error(error) = &typed.message {
                    prop_assert!(
                        error.message.len() <= 1024,
                        "a refusal of {} bytes: {}",
                        error.message.len(),
                        error.message.chars().take(300).collect::<String>()
                    );
                }
            }
            // The connection is still known and still served.
            Ok(())
        })
        .unwrap();
}

#[test]
fn sender_requests_random_and_mutated_get_an_outcome_or_a_typed_refusal() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let service = Jobcast::new(MemoryStore::new(), fuzz_settings());
    let gateway = ScriptedGateway::default();
    let corpus: Vec<String> = examples("sender").iter().map(Value::to_string).collect();
    let mut runner = TestRunner::new(Config {
        cases: cases(40_000),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any::<u64>(), |seed| {
            let text = hostile_text(&corpus, seed);
            // The Lambda runtime hands over JSON only; anything else never reaches the handler.
            let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                return Ok(());
            };
            gateway.take();
            match runtime.block_on(service.handle_sender_invocation(&gateway, payload)) {
                Ok(outcome) => prop_assert!(outcome.is_object(), "{outcome} for {text}"),
                Err(SendError::InvalidRequest(err)) => {
                    prop_assert!(
                        err.to_string().len() <= 1024,
                        "a refusal of {} bytes: {}",
                        err.to_string().len(),
                        err.to_string().chars().take(300).collect::<String>()
                    );
                }
                Err(SendError::PayloadTooLarge { size, limit }) => prop_assert!(size > limit),
                Err(other) => prop_assert!(false, "{other} ({}) for {text}", other.error_type()),
            }
            for posted in gateway.take() {
                let typed: Result<ServerFrame, _> = serde_json::from_value(posted.clone());
                prop_assert!(typed.is_ok(), "an untyped post {posted}");
            }
            Ok(())
        })
        .unwrap();
}
