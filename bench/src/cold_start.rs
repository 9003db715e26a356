//! Cold start: each function's release `bootstrap` (as cargo lambda builds it for SAM), started
//! as Lambda starts it, against a local stub of the Lambda Runtime API that serves one event.
//! Measures the time from process start to the first `next` call (init: settings, tracing, AWS
//! clients) and to the first answered invocation, beside a baseline `bootstrap` that does
//! nothing but `lambda_runtime::run` an echo. Prints a Markdown table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use jobcast::store::DynamoStore;
use jobcast::store::dynamodb::schema::TableNames;
use serde_json::Value;
use tokio::sync::Notify;

/// One function under test: its binary, the event it gets, and its environment.
struct Case {
    name: &'static str,
    event: &'static str,
    env: Vec<(&'static str, String)>,
}

#[derive(Default)]
struct Stub {
    event: Value,
    served: bool,
    next_at: Option<Instant>,
    answered_at: Option<Instant>,
    error: Option<String>,
}

type Shared = (Arc<Mutex<Stub>>, Arc<Notify>);

async fn next(State((stub, _)): State<Shared>) -> impl IntoResponse {
    let event = {
        let mut stub = stub.lock().unwrap();
        if stub.served {
            None
        } else {
            stub.served = true;
            stub.next_at = Some(Instant::now());
            Some(stub.event.clone())
        }
    };
    let Some(event) = event else {
        // One event per cold start: the runtime waits here until it is stopped.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let mut headers = HeaderMap::new();
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("bench-1"),
    );
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-west-1:123456789012:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static("Root=1-bench"),
    );
    (headers, event.to_string())
}

async fn answered(State((stub, done)): State<Shared>, body: String) -> StatusCode {
    let mut stub = stub.lock().unwrap();
    stub.answered_at = Some(Instant::now());
    // An API Gateway answer that says the handler failed is no answer: a cold start that ends
    // in a 5xx (or a refused event, a 4xx) did not do the work it is timed for.
    let status = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|answer| answer["statusCode"].as_u64());
    if status.is_some_and(|status| status >= 400) {
        stub.error = Some(format!("answered {body}"));
    }
    drop(stub);
    done.notify_one();
    StatusCode::ACCEPTED
}

async fn failed(State((stub, done)): State<Shared>, body: String) -> StatusCode {
    stub.lock().unwrap().error = Some(body);
    done.notify_one();
    StatusCode::ACCEPTED
}

/// Replies and replays of `default` post here, as to `@connections`.
async fn posted() -> StatusCode {
    StatusCode::OK
}

struct Measured {
    init: Duration,
    answered: Duration,
}

async fn cold_start(
    binary: &Path,
    case: &Case,
    stub_addr: SocketAddr,
    shared: &Shared,
) -> anyhow::Result<Measured> {
    let event: Value = match case.event {
        "" => serde_json::json!({"hello": "world"}),
        path => {
            serde_json::from_str(&std::fs::read_to_string(path).with_context(|| path.to_owned())?)?
        }
    };
    *shared.0.lock().unwrap() = Stub {
        event,
        ..Stub::default()
    };
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", stub_addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", case.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("RUST_LOG", "warn")
        .envs(case.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let waited = tokio::time::timeout(Duration::from_secs(20), shared.1.notified()).await;
    child.kill().await.ok();
    let stub = shared.0.lock().unwrap();
    if waited.is_err() {
        bail!("{}: no answer within 20 s", case.name);
    }
    if let Some(error) = &stub.error {
        bail!("{}: the invocation failed: {error}", case.name);
    }
    Ok(Measured {
        init: stub.next_at.context("no next call")? - started,
        answered: stub.answered_at.context("no answer")? - started,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut lambda_dir, mut dynamodb, mut runs) = (PathBuf::from("target/lambda"), None, 20usize);
    // The test command's small run has the functions' bootstraps, not the baseline's.
    let mut baseline = true;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lambda-dir" => lambda_dir = PathBuf::from(args.next().context("--lambda-dir DIR")?),
            "--dynamodb-endpoint" => {
                dynamodb = Some(args.next().context("--dynamodb-endpoint URL")?)
            }
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--no-baseline" => baseline = false,
            other => bail!("unknown argument {other}"),
        }
    }
    let dynamodb =
        dynamodb.context("--dynamodb-endpoint: the functions read and write DynamoDB Local")?;

    // The tables the functions use, on DynamoDB Local.
    let tables = TableNames {
        connections: "bench-cold-connections".into(),
        jobs: "bench-cold-jobs".into(),
    };
    let sdk = jobcast::sdk::loader()
        .endpoint_url(&dynamodb)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await;
    DynamoStore::new(&sdk, tables.clone())
        .ensure_tables()
        .await?;

    let shared: Shared = (
        Arc::new(Mutex::new(Stub::default())),
        Arc::new(Notify::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let stub_addr = listener.local_addr()?;
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(answered),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
        .route("/2018-06-01/runtime/init/error", post(failed))
        .route("/bench/@connections/{id}", post(posted))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store_env = || {
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.clone()),
            ("CONNECTIONS_TABLE_NAME", tables.connections.clone()),
            ("JOBS_TABLE_NAME", tables.jobs.clone()),
            ("WEBSOCKET_ENDPOINT", format!("http://{stub_addr}/bench")),
        ]
    };
    let cases = [
        Case {
            name: "lambda-hello",
            event: "",
            env: vec![],
        },
        Case {
            name: "authorizer",
            event: "events/authorizer.json",
            env: vec![
                (
                    "JWT_HS256_SECRET",
                    "jobcast-example-secret-for-event-replays-only".into(),
                ),
                ("JWT_ISSUER", "https://id.example.com/".into()),
                ("JWT_AUDIENCE", "jobcast".into()),
            ],
        },
        Case {
            name: "connect",
            event: "events/connect.json",
            env: store_env(),
        },
        Case {
            name: "default",
            event: "events/messages/ping.json",
            env: store_env(),
        },
        Case {
            name: "disconnect",
            event: "events/disconnect.json",
            env: store_env(),
        },
        Case {
            name: "sender",
            event: "events/sender/get_job.json",
            env: store_env(),
        },
    ];

    println!(
        "| bootstrap | size (stripped) | init: start → first `next` (median, p90) | start → first answer (median, p90) |"
    );
    println!("|---|---:|---:|---:|");
    for case in cases
        .iter()
        .filter(|case| baseline || case.name != "lambda-hello")
    {
        let binary = lambda_dir.join(case.name).join("bootstrap");
        let size = std::fs::metadata(&binary)
            .with_context(|| {
                format!(
                    "{} (build it with cargo lambda build --release)",
                    binary.display()
                )
            })?
            .len();
        // One unmeasured start warms the page cache, as a Lambda host's is for a hot image.
        cold_start(&binary, case, stub_addr, &shared).await?;
        let mut init = Vec::new();
        let mut answered = Vec::new();
        for _ in 0..runs {
            let measured = cold_start(&binary, case, stub_addr, &shared).await?;
            init.push(measured.init.as_secs_f64() * 1000.0);
            answered.push(measured.answered.as_secs_f64() * 1000.0);
        }
        let label = if case.name == "lambda-hello" {
            "baseline: `lambda_runtime` echo, no AWS clients".to_owned()
        } else {
            format!("`{}`", case.name)
        };
        println!(
            "| {label} | {:.1} MB | {:.1} ms, {:.1} ms | {:.1} ms, {:.1} ms |",
            size as f64 / 1_000_000.0,
            median(init.clone()),
            percentile(init, 0.9),
            median(answered.clone()),
            percentile(answered, 0.9),
        );
    }
    Ok(())
}
