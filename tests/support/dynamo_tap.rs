//! A counting tap between a store and DynamoDB (Local): every request the AWS SDK makes passes
//! through it and is counted by operation, with the capacity DynamoDB says it consumed. This is
//! how the cost table counts: from the requests themselves, not from reading the code.
//!
//! The tap asks for `ReturnConsumedCapacity: TOTAL` on every request that takes it (DynamoDB
//! Local ignores the signature, which the rewrite breaks), and reads the units from the answer.
//! A refused conditional write is billed by DynamoDB as a write of the item, so the tap counts
//! one write unit for each; other refusals count nothing. `JOBCAST_TAP_LOG=1` prints each
//! request as it passes, to see which call is which.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// What one operation (`GetItem`, `Query`, …) cost.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Requests.
    pub calls: u64,
    /// Read capacity units DynamoDB reported (on demand: read request units).
    pub read_units: f64,
    /// Write capacity units DynamoDB reported (on demand: write request units).
    pub write_units: f64,
}

/// Usage by operation name.
#[derive(Debug, Default, Clone)]
pub struct Tally(pub BTreeMap<String, Usage>);

impl Tally {
    /// Every operation together.
    pub fn total(&self) -> Usage {
        self.0.values().fold(Usage::default(), |sum, usage| Usage {
            calls: sum.calls + usage.calls,
            read_units: sum.read_units + usage.read_units,
            write_units: sum.write_units + usage.write_units,
        })
    }

    /// Every operation together, as the ceilings of `jobcast::cost` count.
    pub fn store_cost(&self) -> jobcast::cost::StoreCost {
        let total = self.total();
        jobcast::cost::StoreCost {
            calls: total.calls as f64,
            read_units: total.read_units,
            write_units: total.write_units,
        }
    }

    /// The calls, as `2 GetItem, 1 UpdateItem`.
    pub fn calls_by_operation(&self) -> String {
        self.0
            .iter()
            .map(|(operation, usage)| format!("{} {operation}", usage.calls))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The tap: an HTTP endpoint that forwards to DynamoDB and counts.
pub struct DynamoTap {
    /// Where the store should send its requests.
    pub endpoint: String,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Tap {
    upstream: String,
    client: reqwest::Client,
    tally: Arc<Mutex<Tally>>,
}

const READS: [&str; 5] = [
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
];
const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

impl DynamoTap {
    /// A tap on a free port in front of `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let tap = Tap {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            tally: tally.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(tap);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the tap serves");
        });
        Self {
            endpoint,
            tally,
            task,
        }
    }

    /// What was counted since the last `take`, and a fresh count from here.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

impl Drop for DynamoTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(tap): State<Tap>, headers: HeaderMap, body: Bytes) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|target| target.to_str().ok())
        .and_then(|target| target.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned();
    if std::env::var_os("JOBCAST_TAP_LOG").is_some() {
        eprintln!(
            "TAP {operation} {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(400)
                .collect::<String>()
        );
    }
    let counts_capacity =
        READS.contains(&operation.as_str()) || WRITES.contains(&operation.as_str());
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut request)) if counts_capacity => {
            request
                .entry("ReturnConsumedCapacity")
                .or_insert_with(|| Value::from("TOTAL"));
            Bytes::from(serde_json::to_vec(&request).expect("JSON"))
        }
        _ => body,
    };
    let mut request = tap.client.post(&tap.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut usage = Usage {
        calls: 1,
        ..Usage::default()
    };
    let units = serde_json::from_slice::<Value>(&bytes)
        .map(|answer| capacity(&answer["ConsumedCapacity"]))
        .unwrap_or(0.0);
    let refused_write = !status.is_success()
        && WRITES.contains(&operation.as_str())
        && String::from_utf8_lossy(&bytes).contains("ConditionalCheckFailed");
    if READS.contains(&operation.as_str()) {
        usage.read_units = units;
    } else if refused_write {
        usage.write_units = 1.0;
    } else {
        usage.write_units = units;
    }
    {
        let mut tally = tap.tally.lock().unwrap();
        let entry = tally.0.entry(operation).or_default();
        entry.calls += usage.calls;
        entry.read_units += usage.read_units;
        entry.write_units += usage.write_units;
    }
    let mut response = (status, bytes).into_response();
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// The units in a `ConsumedCapacity` (one object, or a list for batches and transactions).
fn capacity(consumed: &Value) -> f64 {
    match consumed {
        Value::Array(items) => items.iter().map(capacity).sum(),
        Value::Object(item) => item
            .get("CapacityUnits")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        _ => 0.0,
    }
}
