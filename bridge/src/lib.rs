//! The Redis bridge: what a per-user notification hub's publishers put on Redis reaches
//! jobcast unchanged. Backend services `PUBLISH` JSON to `user_noti:{user_id}`; the bridge
//! `PSUBSCRIBE`s the pattern, turns each message into the sender request that already exists
//! (`{channel, message}`), and forwards it to the sender: jobcast-local, the sender function,
//! or the stack's FIFO queue.
//!
//! Pub/Sub keeps nothing: what is published while no bridge listens (a restart, Redis away)
//! is lost, as it was for the hub. A Redis Stream read with a consumer group (`XREADGROUP`,
//! `XACK` only once the sender has taken the message) survives both.
//!
//! # Layout
//!
//! - [`Bridge`] (`bridge.rs`) runs one source into one destination until shut down;
//! - the sources: Pub/Sub (`pubsub.rs`) and Streams (`stream.rs`), each reconnecting with
//!   backoff;
//! - `pause.rs`: backoff and the stop signal, under every task;
//! - `lanes.rs`: bounded, ordered forwarding — one lane per user keeps each user's messages
//!   in order, a bounded number of lanes bounds what is in flight;
//! - [`message`]: a Redis message parsed into a sender request, or refused;
//! - [`destination`]: where requests go;
//! - [`status`]: health and Prometheus metrics, served by [`http`].

#![warn(missing_docs)]

mod bridge;
pub mod destination;
pub mod http;
mod lanes;
pub mod message;
mod pause;
mod pubsub;
pub mod status;
mod stream;

pub use bridge::{Bridge, BridgeConfig, Source};
pub use destination::{Accepted, Destination, DestinationError};
pub use status::Status;
