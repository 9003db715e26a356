//! The JSON Schemas in `schemas/` are what the Rust types generate (regenerate with
//! `cargo run -p jobcast-cli -- schemas`), and every example we publish — the event files in
//! `events/`, the JSON of the README and of `docs/`, frames the server really writes — is valid
//! against them.

use std::path::{Path, PathBuf};

use jobcast::protocol::{
    ErrorCode, ErrorReply, JobEvent, JobId, JobRef, JobState, JobStatusReport, ServerFrame,
    ServerMessage, Subscribed,
};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = repo().join("schemas").join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {instance}\n{errors:#?}");
}

#[test]
fn the_schema_files_are_what_the_types_generate() {
    for (name, document) in jobcast::schemas::documents() {
        let path = repo().join("schemas").join(name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(
            on_disk == jobcast::schemas::to_file_text(&document),
            "schemas/{name} has drifted from the Rust types: run `cargo run -p jobcast-cli -- schemas`"
        );
    }
}

#[test]
fn every_event_file_is_valid_against_the_contract() {
    let client = validator("client-message.json");
    let sender = validator("sender-request.json");
    let read = |path: PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("events/messages")).unwrap() {
        let path = entry.unwrap().path();
        let event = read(path.clone());
        let body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
        if path.ends_with("default_unknown_action.json") {
            // Deliberately outside the contract: what $default refuses.
            assert!(!client.is_valid(&body), "{}", path.display());
        } else {
            assert_valid(&client, &body, &path.display().to_string());
        }
        checked += 1;
    }
    for entry in std::fs::read_dir(repo().join("events/sender")).unwrap() {
        let path = entry.unwrap().path();
        let input = read(path.clone());
        match input["Records"].as_array() {
            Some(records) => {
                for record in records {
                    let body: Value =
                        serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
                    assert_valid(&sender, &body, &path.display().to_string());
                    checked += 1;
                }
            }
            None => {
                assert_valid(&sender, &input, &path.display().to_string());
                checked += 1;
            }
        }
    }
    assert!(checked >= 18, "{checked}");
}

/// The JSON examples of the README and of every page in `docs/`, each against the schema for
/// what it is.
#[test]
fn every_json_example_in_the_readme_is_valid() {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ has no .md page");
    let pages = std::iter::once(repo().join("README.md")).chain(docs);
    let client = validator("client-message.json");
    let sender = validator("sender-request.json");
    let server = validator("server-message.json");
    let outcome = validator("sender-outcome.json");
    let pick = |example: &Value| {
        if example.get("outcome").is_some() {
            &outcome
        } else if ["event", "message", "channel"]
            .iter()
            .any(|key| example.get(key).is_some())
        {
            &sender
        } else if example.get("action").is_some() {
            &client
        } else {
            &server
        }
    };
    let mut checked = 0;
    for path in pages {
        let name = path
            .strip_prefix(repo())
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        // A block is one JSON value, or one per line.
        for block in text.split("```json\n").skip(1) {
            let block = block.split("```").next().unwrap();
            let examples: Vec<Value> = match serde_json::from_str(block) {
                Ok(one) => vec![one],
                Err(_) => block
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| {
                        serde_json::from_str(line)
                            .unwrap_or_else(|err| panic!("{name}: not JSON ({err}): {line}"))
                    })
                    .collect(),
            };
            for example in examples {
                assert_valid(pick(&example), &example, &name);
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 3,
        "{checked} examples found in README.md and docs/*.md"
    );
}

/// What the server really writes is what the schema says it writes.
#[test]
fn frames_the_server_writes_are_valid() {
    let server = validator("server-message.json");
    let job = JobId::parse("crawl-42").unwrap();
    let events = [
        json!({"type": "progress_update", "stage": "crawl", "progress": 40, "message": "4 of 10", "estimated_seconds_remaining": 30}),
        json!({"type": "stage_complete", "stage": "crawl", "results": {"pages": 10}}),
        json!({"type": "job_complete", "results": null}),
        json!({"type": "job_failed", "stage": "parse", "error": {"code": "oom", "message": "out of memory", "suggested_action": "retry"}}),
        json!({"type": "job_cancelled", "reason": "user asked"}),
    ];
    let mut messages: Vec<ServerMessage> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            ServerMessage::job_event(
                job.clone(),
                i as u64 + 1,
                JobEvent::from_value(event).unwrap(),
            )
        })
        .collect();
    messages.extend([
        ServerMessage::JobStatus(JobStatusReport {
            job_id: job.clone(),
            status: JobState::Running,
            stage: None,
            progress: None,
            message: Some("working".into()),
            last_seq: 3,
            cancel_requested: false,
            updated_at: chrono::Utc::now(),
        }),
        ServerMessage::Subscribed(Subscribed {
            job_id: job.clone(),
            after_seq: 3,
            recovered: false,
        }),
        ServerMessage::Unsubscribed(JobRef {
            job_id: job.clone(),
        }),
        ServerMessage::Pong,
        ServerMessage::Error(ErrorReply {
            code: ErrorCode::Forbidden,
            message: "job crawl-42 does not exist or is not yours".into(),
            suggested_action: None,
            action: Some("subscribe".into()),
        }),
    ]);
    for message in messages {
        let frame = ServerFrame::new(message, None).to_json();
        assert_valid(
            &server,
            &serde_json::from_str(&frame).unwrap(),
            "a server frame",
        );
    }
}

/// The schemas refuse what the parsers refuse, so they are worth validating against.
#[test]
fn the_schemas_refuse_what_the_parsers_refuse() {
    let client = validator("client-message.json");
    let sender = validator("sender-request.json");
    for bad in [
        json!({"action": "subscribe"}),
        json!({"action": "subscribe", "job_id": "a b"}),
        json!({"action": "subscribe", "job_id": "j", "lastSeq": 3}),
        json!({"action": "launch", "job_id": "j"}),
        json!({"action": "ping", "extra": true}),
    ] {
        assert!(!client.is_valid(&bad), "client schema took {bad}");
        assert!(
            jobcast::protocol::ClientRequest::parse(&bad.to_string()).is_err(),
            "{bad}"
        );
    }
    for bad in [
        json!({"job_id": "j", "event": {"type": "progress_update", "stage": "s", "progress": 140}}),
        json!({"job_id": "j", "event": {"type": "teleport"}}),
        json!({"action": "register_job"}),
        json!({"user_id": "u", "message": {"type": "notification", "title": "t", "message": "m", "level": "loud"}}),
    ] {
        assert!(!sender.is_valid(&bad), "sender schema took {bad}");
        assert!(
            jobcast::protocol::SenderRequest::from_value(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// `asyncapi.yaml` is an AsyncAPI 3.0 document whose references all resolve: internal ones to
/// its own components, files to the generated schemas; and its examples are valid payloads.
#[test]
fn the_asyncapi_document_references_the_schemas_and_its_examples_hold() {
    let text = std::fs::read_to_string(repo().join("asyncapi.yaml")).unwrap();
    let document: Value = serde_norway::from_str(&text).expect("asyncapi.yaml is YAML");
    assert_eq!(document["asyncapi"], "3.0.0");
    let generated: Vec<&str> = jobcast::schemas::documents()
        .iter()
        .map(|(name, _)| *name)
        .collect();

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(fields) => {
                if let Some(Value::String(target)) = fields.get("$ref") {
                    found.push(target.clone());
                }
                fields.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > 10);
    for target in &found {
        if let Some(pointer) = target.strip_prefix('#') {
            // JSON pointers escape '/' inside a name as "~1"; these names have none.
            assert!(
                document.pointer(pointer).is_some(),
                "{target} resolves to nothing"
            );
        } else {
            let file = target
                .strip_prefix("./schemas/")
                .unwrap_or_else(|| panic!("{target}"));
            assert!(
                generated.contains(&file),
                "{target} is not a generated schema"
            );
        }
    }
    let mut examples = 0;
    for (name, message) in document["components"]["messages"].as_object().unwrap() {
        let file = message["payload"]["$ref"]
            .as_str()
            .unwrap()
            .trim_start_matches("./schemas/");
        let schema = validator(file);
        for example in message["examples"].as_array().unwrap() {
            assert_valid(&schema, &example["payload"], &format!("asyncapi {name}"));
            examples += 1;
        }
    }
    assert!(examples >= 5);
}
