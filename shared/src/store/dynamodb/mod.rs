//! The store adapter for AWS: DynamoDB. See [`schema`] for the table design.
//!
//! The adapter is in rooms: the items and their conversions (`items.rs`), how DynamoDB's
//! failures map to the port's errors (`errors.rs`), table-level requests they share
//! (`table.rs`), the connection store (`connections.rs`) with its frame bucket
//! (`frame_bucket.rs`), the job store (`jobs.rs`), the transaction that records an event (`append.rs`)
//! with its head update (`head_update.rs`), and what Queries have read (`reads.rs`).

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;

use crate::store::StoreError;

mod append;
mod connections;
mod errors;
mod frame_bucket;
mod head_update;
mod items;
mod jobs;
mod reads;
pub mod schema;
mod table;

pub use reads::{ReadCounters, ReadStats};
use schema::{TableNames, connections_table, ensure_table, jobs_table};

/// The store on DynamoDB: a connections table and a jobs table (see [`schema`]).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    reads: Arc<ReadCounters>,
    /// Appends to one job from this process take turns (see `append.rs`).
    appending: Arc<append::AppendTurns>,
}

impl DynamoStore {
    /// A store on `tables`. The endpoint comes from the SDK configuration
    /// (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local).
    ///
    /// Retries: the SDK's standard mode, 3 attempts, exponential backoff with jitter. It retries
    /// throttling and transient 5xx errors; adaptive mode's client-side rate limiter would only
    /// help a long-lived client hammering one table, and a Lambda invocation is short.
    pub fn new(sdk: &SdkConfig, tables: TableNames) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .build();
        Self {
            client: Client::from_conf(config),
            tables,
            reads: Arc::default(),
            appending: Arc::default(),
        }
    }

    /// The DynamoDB client, for tests and tools that look at the tables directly.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The tables this store uses.
    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// What this store's Queries have read so far.
    pub fn read_stats(&self) -> ReadStats {
        self.reads.snapshot()
    }

    /// Creates both tables unless they exist (jobcast-local and tests; AWS uses template.yaml).
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        ensure_table(&self.client, &self.tables.connections, &connections_table()).await?;
        ensure_table(&self.client, &self.tables.jobs, &jobs_table()).await
    }
}
