//! jobcast's core: the message protocol, the ports (store, gateway), their adapters, and the
//! handlers that the Lambda functions and jobcast-local both run.
//!
//! # Layout
//!
//! Dependencies run one way, from the top of this list down; nothing below imports anything
//! above it.
//!
//! - `startup` (feature `lambda`): the one start-up path every Lambda `main` calls.
//! - [`handlers`]: the service ([`handlers::Jobcast`]) and its entry points (`$connect`,
//!   `$disconnect`, every client frame, every sender request), one file per client action and
//!   per sender request, over the pieces they share (recording an event, access, replies).
//! - `publish` (feature `publish`): the pipeline's side, a client of the sender.
//! - `sdk` (feature `sdk`, which `dynamodb`, `lambda` and `publish` turn on): the AWS SDK's
//!   configuration, one TLS stack for every client.
//! - [`settings`]: everything read from the environment, read once; [`telemetry`] sets up
//!   logging from it.
//! - [`delivery`]: fan-out of one payload to an audience, with bounded, adaptive concurrency and
//!   retry; [`cache`]: a warm sender's subscriber lists; [`metrics`]: CloudWatch EMF lines.
//! - Ports and their adapters: [`store`] (connections, subscriptions, jobs and their event log;
//!   in memory or on DynamoDB) and [`gateway`] (posting to a connection; API Gateway's
//!   Management API). [`auth`]: the tokens a client presents and the `$connect` authorizer.
//! - [`cost`]: what each operation may cost the store (held by a test on the wire) and a
//!   month's bill at list prices; it depends only on the store's limits and the sender's
//!   page size.
//! - [`protocol`], at the bottom: every wire type, parsed and validated before any handler
//!   sees it; [`schemas`] writes them out as JSON Schema.
//!
//! # Features
//!
//! None is on by default: the protocol, the handlers, delivery, auth and the in-memory store
//! build without the AWS SDKs, the largest part of a cold build (jobcast-local's demo needs none
//! of them). Items behind a feature are named here without links, so these docs build under
//! any set of features.
//!
//! - `dynamodb`: the DynamoDB store (`store::DynamoStore`).
//! - `lambda`: what the functions run: `dynamodb`, the Management API gateway and `startup`.
//! - `publish`: `publish`, the pipelines' client of the sender.
//! - `sdk`: `sdk` alone; each of the three above turns it on.

#![warn(missing_docs)]

pub mod auth;
pub mod cache;
pub mod cost;
pub mod delivery;
pub mod gateway;
pub mod handlers;
pub mod metrics;
pub mod protocol;
#[cfg(feature = "publish")]
pub mod publish;
pub mod schemas;
#[cfg(feature = "sdk")]
pub mod sdk;
pub mod settings;
#[cfg(feature = "lambda")]
pub mod startup;
pub mod store;
pub mod telemetry;
