//! Replays every file in `events/` through the handler it is for, in a scenario that uses
//! them together, and checks each outcome. A file with no expectation here fails the test.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use common::{RecordingGateway, read_json};
use jobcast::handlers::Jobcast;
use jobcast::protocol::SendOutcome;
use jobcast::settings::Settings;
use jobcast::store::MemoryStore;
use serde_json::Value;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn all_event_files() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, found);
            } else if path.extension().is_some_and(|e| e == "json") {
                found.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&events_dir(), &events_dir(), &mut found);
    found
}

/// What replaying one file should do.
enum Expect {
    /// A route handler answers with this status and posts frames of these types to the caller.
    Route {
        status: i64,
        replies: &'static [&'static str],
    },
    /// The sender records the event with this seq and delivers it to this many connections.
    Published { seq: u64, delivered: u64 },
    /// The sender takes an SQS batch: no record handed back, this many posts made.
    Batch { delivered: u64 },
    /// The sender registers a job.
    Registered,
    /// The sender posts a user message to this many of the user's connections.
    Delivered {
        message_type: &'static str,
        delivered: u64,
    },
    /// The sender answers a pipeline's query with this outcome, whose `field` is `value`
    /// (JSON text).
    Answered {
        outcome: &'static str,
        field: &'static str,
        value: &'static str,
    },
    /// The REQUEST authorizer allows this user (with the example secret below).
    Authorized { user_id: &'static str },
}

/// The secret `events/authorizer.json`'s token is signed with: an example for replays, never a
/// real deployment's.
const EXAMPLE_SECRET: &str = "jobcast-example-secret-for-event-replays-only";

const SCENARIO: &[(&str, Expect)] = &[
    ("authorizer.json", Expect::Authorized { user_id: "alice" }),
    (
        "connect.json",
        Expect::Route {
            status: 200,
            replies: &[],
        },
    ),
    (
        "messages/ping.json",
        Expect::Route {
            status: 200,
            replies: &["pong"],
        },
    ),
    // An action no route names reaches $default, which answers with the valid ones.
    (
        "messages/default_unknown_action.json",
        Expect::Route {
            status: 200,
            replies: &["error"],
        },
    ),
    ("sender/register_job.json", Expect::Registered),
    (
        "messages/subscribe.json",
        Expect::Route {
            status: 200,
            replies: &["subscribed", "job_status"],
        },
    ),
    (
        "sender/progress_update.json",
        Expect::Published {
            seq: 1,
            delivered: 1,
        },
    ),
    (
        "sender/stage_complete.json",
        Expect::Published {
            seq: 2,
            delivered: 1,
        },
    ),
    // Resuming after seq 1: the reply, then seq 2 replayed.
    (
        "messages/subscribe_resume.json",
        Expect::Route {
            status: 200,
            replies: &["subscribed", "stage_complete"],
        },
    ),
    ("sender/sqs_batch.json", Expect::Batch { delivered: 2 }),
    (
        "sender/notification.json",
        Expect::Delivered {
            message_type: "notification",
            delivered: 1,
        },
    ),
    (
        "sender/alert.json",
        Expect::Delivered {
            message_type: "alert",
            delivered: 1,
        },
    ),
    (
        "sender/project_progress.json",
        Expect::Delivered {
            message_type: "project_progress",
            delivered: 1,
        },
    ),
    (
        "messages/request_status.json",
        Expect::Route {
            status: 200,
            replies: &["job_status"],
        },
    ),
    // The caller is a subscriber: it hears the broadcast, then its own status reply.
    (
        "messages/cancel_job.json",
        Expect::Route {
            status: 200,
            replies: &["job_cancelled", "job_status"],
        },
    ),
    (
        "sender/is_cancelled.json",
        Expect::Answered {
            outcome: "cancellation",
            field: "cancelled",
            value: "true",
        },
    ),
    (
        "sender/get_job.json",
        Expect::Answered {
            outcome: "job",
            field: "status",
            value: r#""cancelled""#,
        },
    ),
    (
        "sender/job_complete.json",
        Expect::Published {
            seq: 1,
            delivered: 0,
        },
    ),
    (
        "sender/job_failed.json",
        Expect::Published {
            seq: 1,
            delivered: 0,
        },
    ),
    (
        "sender/job_cancelled.json",
        Expect::Published {
            seq: 1,
            delivered: 0,
        },
    ),
    (
        "messages/unsubscribe.json",
        Expect::Route {
            status: 200,
            replies: &["unsubscribed"],
        },
    ),
    (
        "disconnect.json",
        Expect::Route {
            status: 200,
            replies: &[],
        },
    ),
];

#[tokio::test]
async fn every_event_file_replays_through_its_handler() {
    let covered: BTreeSet<String> = SCENARIO.iter().map(|(file, _)| file.to_string()).collect();
    assert_eq!(
        all_event_files(),
        covered,
        "every file in events/ needs an expectation here"
    );

    // The events carry an authorizer principal, as API Gateway sends them: production settings.
    let service = Jobcast::new(MemoryStore::new(), Settings::default());
    let gateway = RecordingGateway::default();
    for (file, expect) in SCENARIO {
        let json = read_json(&events_dir().join(file));
        match expect {
            Expect::Route { status, replies } => {
                let request: ApiGatewayWebsocketProxyRequest =
                    serde_json::from_value(json).unwrap_or_else(|err| panic!("{file}: {err}"));
                let response = match request.request_context.route_key.as_deref() {
                    Some("$connect") => service.handle_connect(&request).await,
                    Some("$disconnect") => service.handle_disconnect(&request).await,
                    _ => service.handle_message(&gateway, &request).await,
                };
                assert_eq!(response.status_code, *status, "{file}");
                assert_eq!(gateway.take_types(), *replies, "{file}");
            }
            Expect::Published { seq, delivered } => {
                let outcome = service
                    .handle_send(&gateway, json)
                    .await
                    .unwrap_or_else(|err| panic!("{file}: {err}"));
                match outcome {
                    SendOutcome::Published {
                        seq: got, delivery, ..
                    } => {
                        assert_eq!(got, *seq, "{file}");
                        assert_eq!(delivery.delivered, *delivered, "{file}");
                    }
                    other => panic!("{file}: {other:?}"),
                }
                assert_eq!(gateway.take().len() as u64, *delivered, "{file}");
            }
            Expect::Registered => {
                let outcome = service
                    .handle_send(&gateway, json)
                    .await
                    .unwrap_or_else(|err| panic!("{file}: {err}"));
                assert!(
                    matches!(outcome, SendOutcome::Registered { created: true, .. }),
                    "{file}: {outcome:?}"
                );
            }
            Expect::Delivered {
                message_type,
                delivered,
            } => {
                let outcome = service
                    .handle_send(&gateway, json)
                    .await
                    .unwrap_or_else(|err| panic!("{file}: {err}"));
                match outcome {
                    SendOutcome::Delivered {
                        message_type: got,
                        delivery,
                        ..
                    } => {
                        assert_eq!(got, *message_type, "{file}");
                        assert_eq!(delivery.delivered, *delivered, "{file}");
                    }
                    other => panic!("{file}: {other:?}"),
                }
                assert_eq!(gateway.take_types(), vec![*message_type], "{file}");
            }
            Expect::Answered {
                outcome,
                field,
                value,
            } => {
                let answer = service
                    .handle_send(&gateway, json)
                    .await
                    .unwrap_or_else(|err| panic!("{file}: {err}"));
                let answer = serde_json::to_value(answer).unwrap();
                assert_eq!(answer["outcome"], *outcome, "{file}: {answer}");
                let value: serde_json::Value = serde_json::from_str(value).unwrap();
                assert_eq!(answer[field], value, "{file}: {answer}");
                assert!(gateway.take().is_empty(), "{file}: a query posts nothing");
            }
            Expect::Authorized { user_id } => {
                let settings = Settings::from_lookup(|name| match name {
                    "JWT_HS256_SECRET" => Some(EXAMPLE_SECRET.to_owned()),
                    "JWT_ISSUER" => Some("https://id.example.com/".to_owned()),
                    "JWT_AUDIENCE" => Some("jobcast".to_owned()),
                    _ => None,
                })
                .unwrap()
                .jwt;
                let authorizer = jobcast::auth::Authorizer::new(
                    jobcast::auth::TokenVerifier::new(&settings).await.unwrap(),
                    Default::default(),
                );
                let request =
                    serde_json::from_value(json).unwrap_or_else(|err| panic!("{file}: {err}"));
                let policy = authorizer
                    .authorize(&request)
                    .await
                    .unwrap_or_else(|err| panic!("{file}: {err:?}"));
                assert!(jobcast::auth::allows(&policy), "{file}");
                assert_eq!(policy.context["userId"], *user_id, "{file}");
            }
            Expect::Batch { delivered } => {
                let answer = service
                    .handle_sender_invocation(&gateway, json)
                    .await
                    .unwrap_or_else(|err| panic!("{file}: {err}"));
                assert_eq!(answer["batchItemFailures"], serde_json::json!([]), "{file}");
                assert_eq!(gateway.take().len() as u64, *delivered, "{file}");
            }
        }
    }
    assert_eq!(
        service.store().connection_count(),
        0,
        "disconnect cleaned up"
    );
    assert_eq!(service.store().subscription_count(), 0);
}

#[test]
fn event_files_carry_the_fields_api_gateway_always_sends() {
    for file in all_event_files()
        .iter()
        .filter(|f| !f.starts_with("sender/"))
    {
        let json: Value = read_json(&events_dir().join(file));
        let context = &json["requestContext"];
        for key in [
            "routeKey",
            "eventType",
            "connectionId",
            "connectedAt",
            "requestTimeEpoch",
            "domainName",
            "stage",
            "apiId",
            "requestId",
        ] {
            assert!(
                !context[key].is_null(),
                "{file}: requestContext.{key} is missing"
            );
        }
    }
}
