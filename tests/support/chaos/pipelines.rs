//! The chaos check's pipelines: one that invokes the sender, one through a simulated SQS queue.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use jobcast::protocol::{JobId, SendOutcome};
use jobcast::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::gateway::ChaosGateway;
use super::{ChaosService, Schedule};
use crate::{sqs_batch, sqs_record};

/// Sends until the sender answers (the store may fail): the request's outcome.
pub(super) async fn retry_send<S: Store>(
    service: &ChaosService<S>,
    gateway: &ChaosGateway,
    request: Value,
) -> SendOutcome {
    loop {
        match service.handle_send(gateway, request.clone()).await {
            Ok(outcome) => return outcome,
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// The request for event `i` of `job`: progress, and a final `job_complete` last.
fn event_request(job: &JobId, i: usize, last: usize) -> Value {
    let event = if i == last {
        json!({"type": "job_complete", "results": {"n": i}})
    } else {
        json!({"type": "progress_update", "stage": "crawl", "progress": (i * 100 / last) as f64, "message": format!("step {i}")})
    };
    json!({"job_id": job.as_str(), "event": event})
}

/// A pipeline that invokes the sender, and sends an event again (same id) while its report
/// says someone was not reached, as the protocol asks.
pub(super) async fn direct_pipeline<S: Store>(
    service: &ChaosService<S>,
    gateway: &ChaosGateway,
    job: &JobId,
    schedule: &Schedule,
) -> Result<(), String> {
    let last = schedule.events_per_job;
    for i in 1..=last {
        let mut request = event_request(job, i, last);
        request["event_id"] = json!(format!("{job}-e{i}"));
        for attempt in 0.. {
            if attempt == 50 {
                return Err(format!("{job}: event {i} never reached everyone"));
            }
            match retry_send(service, gateway, request.clone()).await {
                SendOutcome::Published { delivery, .. }
                    if schedule.resend
                        && (delivery.failed_transient > 0 || delivery.incomplete) =>
                {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                SendOutcome::Rejected { .. } => return Ok(()), // cancelled by a client
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(i as u64 % 3)).await;
    }
    Ok(())
}

/// A pipeline that queues its events on a FIFO queue (one message group: the job), drained by
/// a simulated SQS: batches of up to 10; what the sender hands back, and now and then a whole
/// batch (a timeout), is delivered again.
pub(super) async fn sqs_pipeline<S: Store>(
    service: &ChaosService<S>,
    gateway: &ChaosGateway,
    job: &JobId,
    schedule: &Schedule,
) -> Result<(), String> {
    let last = schedule.events_per_job;
    let mut rng = StdRng::seed_from_u64(
        schedule
            .seed
            .wrapping_mul(31)
            .wrapping_add(job.as_str().bytes().map(u64::from).sum::<u64>()),
    );
    let mut queue: VecDeque<(String, String)> = (1..=last)
        .map(|i| {
            let body = event_request(job, i, last).to_string();
            (format!("{job}-m{i}"), body)
        })
        .collect();
    let mut invocations = 0;
    while !queue.is_empty() {
        invocations += 1;
        if invocations > 40 * last {
            return Err(format!("{job}: the queue never drained"));
        }
        let take = queue.len().min(rng.random_range(1..=10));
        let records = queue
            .iter()
            .take(take)
            .map(|(id, body)| sqs_record(id, Some(job.as_str()), body))
            .collect();
        let answer = match service
            .handle_sender_invocation(gateway, sqs_batch(records))
            .await
        {
            Ok(answer) => answer,
            Err(_) => continue, // the whole batch comes back
        };
        if rng.random_bool(schedule.sqs_timeout_rate) {
            continue; // timed out after doing its work: the whole batch comes back
        }
        let failed: HashSet<String> = answer["batchItemFailures"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|failure| failure["itemIdentifier"].as_str().map(str::to_owned))
            .collect();
        let batch: Vec<(String, String)> = queue.drain(..take).collect();
        // What was handed back goes back to the front, in order.
        for record in batch.into_iter().rev() {
            if failed.contains(&record.0) {
                queue.push_front(record);
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}
