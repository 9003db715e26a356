//! CloudWatch Embedded Metric Format: one JSON line per fan-out, which CloudWatch Logs turns
//! into metrics (counts by message type, fan-out latency) without any API call.

use std::io::Write;
use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use crate::protocol::DeliveryReport;

/// The CloudWatch namespace of jobcast's metrics.
pub const NAMESPACE: &str = "jobcast";

/// Where metric lines go.
pub trait MetricsSink: Send + Sync {
    /// Writes one metric line.
    fn emit(&self, line: &str);
}

/// Writes each line to stdout, where Lambda's log capture hands it to CloudWatch.
pub struct StdoutSink;

impl MetricsSink for StdoutSink {
    fn emit(&self, line: &str) {
        let mut stdout = std::io::stdout().lock();
        // A lost metric line must never fail a delivery.
        let _ = writeln!(stdout, "{line}");
    }
}

/// Drops every line (jobcast-local, tests that do not look).
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn emit(&self, _line: &str) {}
}

/// A sink shared by every handler of a process.
pub type SharedSink = Arc<dyn MetricsSink>;

/// The EMF line for one fan-out of a `message_type` frame (`progress_update`, …).
pub fn fan_out_line(message_type: &str, report: &DeliveryReport) -> String {
    json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                // By message type, and over all of them (what the stack's alarm watches).
                "Dimensions": [["MessageType"], []],
                "Metrics": [
                    {"Name": "Delivered", "Unit": "Count"},
                    {"Name": "Gone", "Unit": "Count"},
                    {"Name": "Failed", "Unit": "Count"},
                    // Of Failed, those a retry of the event may reach (SQS hands them back).
                    {"Name": "FailedTransient", "Unit": "Count"},
                    // 1 when the lookup broke off: some subscribers were not tried.
                    {"Name": "Incomplete", "Unit": "Count"},
                    {"Name": "Retried", "Unit": "Count"},
                    {"Name": "FanOutLatency", "Unit": "Milliseconds"},
                ],
            }],
        },
        "MessageType": message_type,
        "Delivered": report.delivered,
        "Gone": report.gone,
        "Failed": report.failed,
        "FailedTransient": report.failed_transient,
        "Incomplete": u64::from(report.incomplete),
        "Retried": report.retried,
        "FanOutLatency": report.duration_ms,
    })
    .to_string()
}

/// Reports a finished fan-out of a `message_type` frame: its EMF line to `sink`, and a log
/// line with the same counts (in the span of whatever was fanned out).
pub fn report_fan_out(sink: &dyn MetricsSink, message_type: &str, report: &DeliveryReport) {
    sink.emit(&fan_out_line(message_type, report));
    tracing::info!(
        message_type,
        delivered = report.delivered,
        gone = report.gone,
        failed = report.failed,
        failed_transient = report.failed_transient,
        retried = report.retried,
        duration_ms = report.duration_ms,
        incomplete = report.incomplete,
        "fanned out"
    );
}

/// One line per user message of a type this server does not know (skipped, not forwarded).
pub fn unknown_message_line(message_type: &str) -> String {
    json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [{"Name": "UnknownMessageType", "Unit": "Count"}],
            }],
        },
        // A property, not a dimension: anyone can invent types, dimensions cost money.
        "MessageType": message_type,
        "UnknownMessageType": 1,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_valid_emf_with_every_declared_metric_present() {
        let report = DeliveryReport {
            delivered: 7,
            gone: 1,
            failed: 2,
            failed_transient: 1,
            retried: 3,
            duration_ms: 41,
            incomplete: false,
        };
        let line: serde_json::Value =
            serde_json::from_str(&fan_out_line("job_complete", &report)).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert!(line["_aws"]["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        // Every dimension and every declared metric must be a top-level member, or CloudWatch
        // rejects the line.
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(line[dimension.as_str().unwrap()].is_string());
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(line[metric["Name"].as_str().unwrap()].is_u64(), "{metric}");
        }
        assert_eq!(line["MessageType"], "job_complete");
        assert_eq!(line["Delivered"], 7);
        assert_eq!(line["FanOutLatency"], 41);
    }
}
