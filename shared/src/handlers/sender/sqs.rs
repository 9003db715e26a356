//! The sender's SQS ingress: a batch of send requests, answered with the records SQS should
//! deliver again (`batchItemFailures`, with `ReportBatchItemFailures` on the event source).

use std::collections::HashSet;
use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use tracing::Instrument;

use super::serve::serve;
use crate::gateway::ConnectionGateway;
use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{EventId, FrameError, MessageId, SendOutcome, SenderRequest};
use crate::store::Store;

/// What became of a batch's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Published, delivered or registered.
    pub published: usize,
    /// Refused for good (the job had finished, or belongs to another user) or ignored (a user
    /// message of an unknown type); logged, not retried.
    pub rejected: usize,
    /// Unreadable or invalid; logged, not retried: a poison message must not loop.
    pub malformed: usize,
    /// Handed back to SQS to try again: transient failures, the records queued behind them in
    /// the same message group, and those left untried at the deadline.
    pub retried: usize,
    /// Of `retried`, the records not even started because the invocation's deadline was near.
    pub untried: usize,
}

/// Why one record is handed back to SQS, or not.
enum RecordResult {
    /// Served.
    Published,
    /// Refused for good.
    Rejected,
    /// Unreadable or invalid.
    Malformed,
    /// To be delivered again by SQS.
    Retry,
}

impl<S: Store> Jobcast<S> {
    /// Publishes each record of an SQS batch in order, with no deadline; see
    /// [`Jobcast::handle_sqs_until`].
    pub async fn handle_sqs<G: ConnectionGateway>(
        &self,
        gateway: &G,
        event: SqsEvent,
    ) -> (SqsBatchResponse, BatchSummary) {
        self.handle_sqs_until(gateway, event, None).await
    }

    /// Publishes each record of an SQS batch in order. A record that failed for a reason that
    /// may pass is reported for redelivery, and so is every later record of its message group
    /// (its job, on a standard queue), which keeps a FIFO group's order. Once `deadline` is
    /// nearer than the sender's reserve (`SQS_DEADLINE_RESERVE_MS`), no further record is
    /// started: the rest are handed back whole rather than cut off by the Lambda timeout,
    /// which would make SQS deliver the whole batch again.
    pub async fn handle_sqs_until<G: ConnectionGateway>(
        &self,
        gateway: &G,
        event: SqsEvent,
        deadline: Option<Instant>,
    ) -> (SqsBatchResponse, BatchSummary) {
        let mut response = SqsBatchResponse::default();
        let mut summary = BatchSummary::default();
        let mut held_groups: HashSet<String> = HashSet::new();
        let reserve = self.settings().sqs_deadline_reserve;
        for message in event.records {
            let Some(message_id) = message.message_id.clone() else {
                tracing::error!("SQS record without a messageId; it cannot be reported, skipped");
                summary.malformed += 1;
                continue;
            };
            let span = tracing::info_span!("sqs_record", message_id = %message_id);
            let out_of_time = deadline.is_some_and(|deadline| Instant::now() + reserve >= deadline);
            let result = if out_of_time {
                tracing::warn!(parent: &span, "too near the deadline; handed back untried");
                summary.untried += 1;
                RecordResult::Retry
            } else {
                self.handle_record(gateway, &message, &message_id, &mut held_groups)
                    .instrument(span)
                    .await
            };
            match result {
                RecordResult::Published => summary.published += 1,
                RecordResult::Rejected => summary.rejected += 1,
                RecordResult::Malformed => summary.malformed += 1,
                RecordResult::Retry => {
                    summary.retried += 1;
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message_id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        tracing::info!(?summary, "SQS batch handled");
        (response, summary)
    }

    /// Serves one record, unless an earlier record of its group is being handed back.
    async fn handle_record<G: ConnectionGateway>(
        &self,
        gateway: &G,
        message: &SqsMessage,
        message_id: &str,
        held_groups: &mut HashSet<String>,
    ) -> RecordResult {
        let request = match parse_record(message, message_id) {
            Ok(request) => request,
            Err(err) => {
                tracing::error!(error = %err, "malformed SQS record dropped (not retried)");
                return RecordResult::Malformed;
            }
        };
        if let SenderRequest::Query(..) | SenderRequest::Presence(_) = request {
            tracing::error!(
                "a job query came through SQS, where nobody hears the answer; invoke the sender directly (dropped, not retried)"
            );
            return RecordResult::Malformed;
        }
        let group = message
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_else(|| request.order_group());
        if held_groups.contains(&group) {
            tracing::info!(group, "held back behind an earlier failure of its group");
            return RecordResult::Retry;
        }
        let result = match serve(self, gateway, request).await {
            Ok(
                SendOutcome::Published { delivery, .. } | SendOutcome::Delivered { delivery, .. },
            ) if delivery.failed_transient > 0 || delivery.incomplete => {
                // Recorded (or a user message), but some connections could not be reached yet.
                // A job event's retry is recognised by its event id, takes no new seq, and fans
                // out again.
                tracing::warn!(
                    failed_transient = delivery.failed_transient,
                    incomplete = delivery.incomplete,
                    "some connections were not reached; SQS will redeliver"
                );
                RecordResult::Retry
            }
            Ok(
                SendOutcome::Published { .. }
                | SendOutcome::Delivered { .. }
                | SendOutcome::Registered { .. }
                | SendOutcome::ConnectionServed { .. },
            ) => RecordResult::Published,
            Ok(
                SendOutcome::Ignored { .. }
                | SendOutcome::Job { .. }
                | SendOutcome::Cancellation { .. }
                | SendOutcome::Presence { .. }
                | SendOutcome::ConnectionGone { .. }
                | SendOutcome::NotFound { .. },
            ) => RecordResult::Rejected,
            Ok(SendOutcome::Rejected { .. }) => RecordResult::Rejected,
            Err(err) if err.is_poison() => {
                tracing::error!(error = %err, "SQS record refused (not retried)");
                RecordResult::Malformed
            }
            Err(err) => {
                tracing::warn!(error = %err, error_type = err.error_type(), "send failed; SQS will redeliver");
                RecordResult::Retry
            }
        };
        if matches!(result, RecordResult::Retry) {
            held_groups.insert(group);
        }
        result
    }
}

/// The send request in a record's body; its event id defaults to the SQS message id, which
/// stays the same across redeliveries.
fn parse_record(message: &SqsMessage, message_id: &str) -> Result<SenderRequest, SendError> {
    let body = message.body.as_deref().unwrap_or_default();
    let value: Value = serde_json::from_str(body).map_err(|err| FrameError::InvalidField {
        field: "body".into(),
        reason: format!("is not JSON: {err}"),
    })?;
    let mut request = SenderRequest::from_value(value)?;
    match &mut request {
        SenderRequest::Job(job) if job.event_id.is_none() => {
            job.event_id = EventId::parse(message_id).ok();
        }
        SenderRequest::User(user) if user.message_id.is_none() => {
            user.message_id = MessageId::parse(message_id).ok();
        }
        _ => {}
    }
    Ok(request)
}

/// Whether an invocation is an SQS batch.
pub(super) fn is_sqs_event(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}
