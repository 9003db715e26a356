//! jobcast's core: the message protocol, the ports (store, gateway), their adapters, and the
//! handlers that the Lambda functions and jobcast-local both run.

pub mod auth;
pub mod cache;
pub mod delivery;
pub mod gateway;
pub mod handlers;
pub mod metrics;
pub mod protocol;
#[cfg(feature = "publish")]
pub mod publish;
pub mod schemas;
pub mod settings;
pub mod startup;
pub mod store;
pub mod telemetry;
