//! Each fan-out leaves one Embedded Metric Format line with its counts.

mod common;

use std::sync::{Arc, Mutex};

use common::RecordingGateway;
use jobcast::handlers::Jobcast;
use jobcast::metrics::MetricsSink;
use jobcast::settings::Settings;
use jobcast::store::MemoryStore;
use serde_json::{Value, json};

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl MetricsSink for Lines {
    fn emit(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

#[tokio::test]
async fn a_send_emits_one_metric_line_with_its_counts() {
    let lines = Arc::new(Lines::default());
    let service = Jobcast::new(MemoryStore::new(), Settings::default()).with_metrics(lines.clone());
    let gateway = RecordingGateway::default();
    let event = json!({"job_id": "m-1", "event": {"type": "stage_complete", "stage": "crawl"}});
    service.handle_send(&gateway, event).await.unwrap();
    let lines = lines.0.lock().unwrap();
    assert_eq!(lines.len(), 1);
    let line: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["MessageType"], "stage_complete");
    assert_eq!(line["Delivered"], 0);
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "jobcast");
}
