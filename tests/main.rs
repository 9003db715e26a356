//! Every end-to-end test in one binary: real WebSocket clients and real AWS SDK clients
//! against jobcast-local (and DynamoDB Local, redis-server), one module per subject. Run one
//! subject as the test command builds it (dependencies optimised, in the `tests` profile) with
//! `cargo nextest run --cargo-profile tests -p jobcast-tests -E 'test(/^replay::/)'`.

mod auth;
mod bad_input;
mod bridge;
mod broken_lookup;
mod chaos;
mod costs;
mod demo;
mod drop_in;
mod fan_out;
mod faults;
mod fuzz;
mod halted_subscribe;
mod hostile;
mod jobs;
mod management_api;
mod ownership;
mod redelivery;
mod replay;
mod routes;
mod sqs;
mod store_contract;
mod subscriber_cache;
mod template;
mod template_tables;
mod user_messages;
