//! The sender: pipelines invoke it with `{job_id, event}` or send that through SQS; it records
//! the event and fans it out to every subscriber. Delivery failures are counted in the answer,
//! never raised; an SQS batch is answered with the records to redeliver.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::startup::sender().await
}
