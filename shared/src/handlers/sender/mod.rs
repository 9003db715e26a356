//! The sender: every request a pipeline makes, by direct invocation (`invocation.rs`) or
//! through SQS (`sqs.rs`), parsed into a [`crate::protocol::SenderRequest`] and served by
//! its own file: a job event (`publish.rs`), a user message (`user_message.rs`), a
//! registration (`register_job.rs`), a question about a job (`query.rs`) or about a user
//! (`presence.rs`), or the `subscribe` of a connection opened with `?job_id=`
//! (`subscribe_connection.rs`).

mod invocation;
mod presence;
mod publish;
mod query;
mod register_job;
mod serve;
pub(super) mod sqs;
mod subscribe_connection;
mod user_message;
