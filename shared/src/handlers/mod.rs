//! The handlers every deployment runs: the Lambda functions in AWS and jobcast-local alike.
//! Generic over the ports, they never know which store or gateway is behind them.
//!
//! Dependencies run one way, from the entry points down:
//!
//! - entry points: [`Jobcast::handle_connect`] (`connect.rs`), [`Jobcast::handle_disconnect`]
//!   (`disconnect.rs`), [`Jobcast::handle_message`] (`message.rs`, every client frame) and
//!   [`Jobcast::handle_sender_invocation`] (`sender/`, every pipeline request);
//! - one file per client action (`actions/`) and per sender request (`sender/`), each taking
//!   its parsed request to its effect;
//! - the pieces they share: recording and fanning out an event (`record.rs`), who may see
//!   which job (`access.rs`), posting a reply (`reply.rs`), the frame limit and keep-alive
//!   (`admission.rs`, with its in-process fallback `fallback_frames.rs`), reading API
//!   Gateway's events (`apigw.rs`);
//! - at the bottom, the service itself (`service.rs`) and the error vocabulary (`errors.rs`).

mod access;
mod actions;
mod admission;
mod apigw;
mod connect;
mod disconnect;
mod errors;
mod fallback_frames;
mod message;
mod record;
mod reply;
mod sender;
mod service;

pub use connect::Connected;
pub use errors::{ActionError, SendError, error_reply};
pub use sender::sqs::BatchSummary;
pub use service::Jobcast;
