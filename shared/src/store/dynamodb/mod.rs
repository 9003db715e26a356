//! The store adapter for AWS: DynamoDB. See [`schema`] for the table design.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::*;
use crate::protocol::{JobEvent, JobState, Percent, StageName};

pub mod schema;
use schema::*;

const CONNECTION_SORT_KEY: &str = "connection";
const SUBSCRIPTION_PREFIX: &str = "job#";
const HEAD_SEQ: &str = "0";
/// The head attribute holding replay claims.
const REPLAYING: &str = "replaying";
/// BatchWriteItem takes at most 25 requests.
const BATCH_LIMIT: usize = 25;
const BATCH_ATTEMPTS: u32 = 6;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    reads: Arc<ReadCounters>,
}

/// What the store's Queries have read since it was built: for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct ReadCounters {
    queries: AtomicU64,
    items_scanned: AtomicU64,
    /// Consumed read capacity, in thousandths of a unit.
    read_capacity_milli: AtomicU64,
}

/// A snapshot of [`ReadCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReadStats {
    pub queries: u64,
    pub items_scanned: u64,
    pub read_capacity_units: f64,
}

impl ReadCounters {
    fn record(&self, scanned: i32, capacity: Option<&aws_sdk_dynamodb::types::ConsumedCapacity>) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.items_scanned
            .fetch_add(u64::try_from(scanned).unwrap_or(0), Ordering::Relaxed);
        let units = capacity.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        self.read_capacity_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ReadStats {
        ReadStats {
            queries: self.queries.load(Ordering::Relaxed),
            items_scanned: self.items_scanned.load(Ordering::Relaxed),
            read_capacity_units: self.read_capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
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
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

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

fn store_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    operation: &str,
    err: SdkError<E, R>,
) -> StoreError {
    match err.code() {
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => StoreError::Throttled(format!(
            "{operation}: {}",
            err.message().unwrap_or("throttled")
        )),
        Some("ResourceNotFoundException") => {
            StoreError::NotFound(format!("{operation}: {}", describe(&err)))
        }
        Some("ConditionalCheckFailedException" | "TransactionConflictException") => {
            StoreError::ConditionFailed(format!("{operation}: {}", describe(&err)))
        }
        _ => StoreError::Unavailable(format!("{operation}: {}", describe(&err))),
    }
}

fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{err:?}"),
    }
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}

fn epoch_seconds(time: DateTime<Utc>) -> i64 {
    time.timestamp()
}

fn from_seconds(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn from_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// DynamoDB deletes expired items up to ~48 h late: every read checks the expiry itself.
/// A number attribute of an item, if it has one.
fn number_of(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Whether a conditional write happened (`false`: its condition did not hold).
fn conditional<O, R: std::fmt::Debug>(
    result: Result<
        O,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            R,
        >,
    >,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(err) => Err(store_error("UpdateItem", err)),
    }
}

fn now_seconds() -> i64 {
    Utc::now().timestamp()
}

#[derive(Serialize, Deserialize)]
struct ConnectionItem {
    connection_id: String,
    sk: String,
    user_id: String,
    connected_at: i64,
    expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct SubscriptionItem {
    connection_id: String,
    sk: String,
    job_id: String,
    /// Not `user_id`: that name would put subscriptions into the by_user index.
    subscriber: String,
    expires_at: i64,
    #[serde(default)]
    live_after: u64,
}

/// The job's item at seq 0: its snapshot, the counter that hands out seqs, and the
/// subscription version. A subscribe before the job's first event leaves a head with only
/// the version (and an expiry), which reads as "no job yet".
#[derive(Deserialize)]
struct JobHeadItem {
    job_id: String,
    state: Option<String>,
    stage: Option<String>,
    progress: Option<f64>,
    message: Option<String>,
    #[serde(default)]
    last_seq: u64,
    #[serde(default)]
    cancel_requested: bool,
    #[serde(default)]
    updated_at: i64,
    expires_at: i64,
    latest_event_id: Option<String>,
    #[serde(default)]
    subscribers_version: u64,
    owner: Option<String>,
    /// Replay claims (a string set of `ReplayClaim::encode`).
    #[serde(default)]
    replaying: Vec<String>,
}

impl JobHeadItem {
    /// The connections whose replay claim still holds.
    fn replaying_connections(&self) -> Vec<ConnectionId> {
        let now = Utc::now();
        self.replaying
            .iter()
            .filter_map(|value| ReplayClaim::decode(value))
            .filter(|claim| claim.holds_at(now))
            .map(|claim| claim.connection_id)
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
struct EventItem {
    job_id: String,
    seq: u64,
    /// The event as JSON: exact to round-trip, and opaque to DynamoDB, which never queries it.
    event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    recorded_at: i64,
    expires_at: i64,
}

impl TryFrom<JobHeadItem> for JobRecord {
    type Error = StoreError;
    fn try_from(item: JobHeadItem) -> Result<Self, StoreError> {
        Ok(JobRecord {
            job_id: JobId::parse(item.job_id).map_err(|e| corrupt("job_id", e))?,
            state: item
                .state
                .as_deref()
                .and_then(JobState::parse)
                .ok_or_else(|| corrupt("state", format!("{:?}", item.state)))?,
            stage: item
                .stage
                .map(StageName::parse)
                .transpose()
                .map_err(|e| corrupt("stage", e))?,
            progress: item
                .progress
                .map(Percent::new)
                .transpose()
                .map_err(|e| corrupt("progress", e))?,
            message: item.message,
            last_seq: item.last_seq,
            cancel_requested: item.cancel_requested,
            updated_at: from_millis(item.updated_at),
            expires_at: from_seconds(item.expires_at),
            owner: item
                .owner
                .map(UserId::parse)
                .transpose()
                .map_err(|e| corrupt("owner", e))?,
        })
    }
}

impl TryFrom<EventItem> for StoredEvent {
    type Error = StoreError;
    fn try_from(item: EventItem) -> Result<Self, StoreError> {
        Ok(StoredEvent {
            job_id: JobId::parse(item.job_id).map_err(|e| corrupt("job_id", e))?,
            seq: item.seq,
            event: serde_json::from_str::<JobEvent>(&item.event)
                .map_err(|e| corrupt("event", e))?,
            correlation_id: item
                .correlation_id
                .map(CorrelationId::parse)
                .transpose()
                .map_err(|e| corrupt("correlation_id", e))?,
            recorded_at: from_millis(item.recorded_at),
        })
    }
}

fn encode_token(key: &Item) -> Result<PageToken, StoreError> {
    let mut plain = serde_json::Map::new();
    for (name, value) in key {
        let text = value.as_s().map_err(|_| corrupt("page key", name))?;
        plain.insert(name.clone(), serde_json::Value::String(text.clone()));
    }
    Ok(PageToken(serde_json::Value::Object(plain).to_string()))
}

fn decode_token(token: &PageToken) -> Result<Item, StoreError> {
    let plain: HashMap<String, String> =
        serde_json::from_str(&token.0).map_err(|e| corrupt("page token", e))?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

impl DynamoStore {
    /// One page of an index keyed by `key_name = key_value`, skipping expired items and, given
    /// an event's seq, subscriptions made after it (`live_after >= seq`).
    async fn query_index(
        &self,
        index: &str,
        key_name: &str,
        key_value: &str,
        event_seq: Option<Seq>,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        let start = page.after.as_ref().map(decode_token).transpose()?;
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.connections)
            .index_name(index)
            .key_condition_expression("#key = :key")
            .expression_attribute_names("#key", key_name)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":key", s(key_value))
            .expression_attribute_values(":now", n(now_seconds()));
        query = match event_seq {
            Some(seq) => query
                .filter_expression(
                    "#expires > :now AND (attribute_not_exists(#live) OR #live < :seq)",
                )
                .expression_attribute_names("#live", LIVE_AFTER)
                .expression_attribute_values(":seq", n(seq)),
            None => query.filter_expression("#expires > :now"),
        };
        let output = query
            .limit(i32::try_from(page.limit.clamp(1, 10_000)).unwrap_or(1000))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query", e))?;
        self.reads
            .record(output.scanned_count(), output.consumed_capacity());
        let items = output
            .items()
            .iter()
            .map(|item| {
                let id = item
                    .get(CONNECTION_ID)
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| corrupt("index item", "no connection_id"))?;
                ConnectionId::parse(id.clone()).map_err(|e| corrupt("connection_id", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = output.last_evaluated_key().map(encode_token).transpose()?;
        Ok(Page { items, next })
    }

    /// The keys of a connection's item and of all its subscriptions: one partition.
    async fn keys_of_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Vec<Item>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.connections)
                .key_condition_expression("#id = :id")
                .expression_attribute_names("#id", CONNECTION_ID)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":id", s(connection_id.as_str()))
                .projection_expression("#id, #sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            keys.extend(output.items().iter().cloned());
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Writes one item, as `what` for error messages.
    async fn put<T: Serialize>(&self, table: &str, item: T, what: &str) -> Result<(), StoreError> {
        let item: Item = serde_dynamo::to_item(item).map_err(|e| corrupt(what, e))?;
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    /// Deletes `keys` in batches of 25, retrying what DynamoDB leaves unprocessed.
    async fn delete_all(&self, table: &str, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(BATCH_LIMIT) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|key| {
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key.clone()))
                                .build()
                                .expect("key is set"),
                        )
                        .build()
                })
                .collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                if attempt > BATCH_ATTEMPTS {
                    return Err(StoreError::Throttled(format!(
                        "{} deletes still unprocessed",
                        pending.len()
                    )));
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| store_error("BatchWriteItem", e))?;
                pending = output
                    .unprocessed_items()
                    .and_then(|items| items.get(table))
                    .cloned()
                    .unwrap_or_default();
                if !pending.is_empty() {
                    // Exponential backoff, full jitter: 0–50 ms, 0–100 ms, …
                    let ceiling = 50u64 << attempt.min(6);
                    tokio::time::sleep(Duration::from_millis(rand::random_range(0..=ceiling)))
                        .await;
                }
            }
        }
        Ok(())
    }
}

impl ConnectionStore for DynamoStore {
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let item = ConnectionItem {
            connection_id: connection.connection_id.to_string(),
            sk: CONNECTION_SORT_KEY.to_owned(),
            user_id: connection.user_id.to_string(),
            connected_at: connection.connected_at.timestamp_millis(),
            expires_at: epoch_seconds(connection.expires_at),
        };
        self.put(&self.tables.connections, item, "connection")
            .await?;
        Ok(())
    }

    async fn get_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Option<Connection>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id.as_str()))
            .key(SORT_KEY, s(CONNECTION_SORT_KEY))
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let item: ConnectionItem =
            serde_dynamo::from_item(item).map_err(|e| corrupt("connection", e))?;
        if item.expires_at <= now_seconds() {
            return Ok(None);
        }
        Ok(Some(Connection {
            connection_id: connection_id.clone(),
            user_id: UserId::parse(item.user_id).map_err(|e| corrupt("user_id", e))?,
            connected_at: from_millis(item.connected_at),
            expires_at: from_seconds(item.expires_at),
        }))
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<usize, StoreError> {
        let keys = self.keys_of_connection(connection_id).await?;
        let subscriptions = keys
            .iter()
            .filter(|key| {
                key.get(SORT_KEY)
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|sk| sk.starts_with(SUBSCRIPTION_PREFIX))
            })
            .count();
        self.delete_all(&self.tables.connections, keys).await?;
        Ok(subscriptions)
    }

    async fn touch_connection(
        &self,
        connection_id: &ConnectionId,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if self.get_connection(connection_id).await?.is_none() {
            return Ok(false);
        }
        let keys = self.keys_of_connection(connection_id).await?;
        for key in keys {
            // attribute_exists: never resurrect an item that $disconnect deleted meanwhile.
            let result = self
                .client
                .update_item()
                .table_name(&self.tables.connections)
                .set_key(Some(key))
                .update_expression("SET #expires = :expires")
                .condition_expression("attribute_exists(#id)")
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_names("#id", CONNECTION_ID)
                .expression_attribute_values(":expires", n(epoch_seconds(expires_at)))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(store_error("UpdateItem", err)),
            }
        }
        Ok(true)
    }

    async fn take_frame_token(
        &self,
        connection_id: &ConnectionId,
        now_ms: i64,
        bucket: FrameBucket,
    ) -> Result<Option<FrameVerdict>, StoreError> {
        // GCRA on the connection item, with conditional writes and no read: the first frame
        // after a pause costs one write, a frame in a busy stretch two, a refusal three. Which
        // applies depends on the stored time, so each is tried under its own condition; a
        // race with another frame of the same connection just moves on to the next.
        let limit = now_ms + bucket.tolerance_ms();
        for _ in 0..3 {
            // Idle (the bucket is full): start counting from now.
            let idle = self
                .bucket_update("SET #tat = :next, #refused = :zero")
                .key(CONNECTION_ID, s(connection_id.as_str()))
                .condition_expression(
                    "attribute_exists(#id) AND #expires > :now_s AND (attribute_not_exists(#tat) OR #tat < :now)",
                )
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":now_s", n(now_seconds()))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":next", n(now_ms + bucket.interval_ms))
                .expression_attribute_values(":zero", n(0))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old = match idle {
                Ok(_) => return Ok(Some(FrameVerdict::Admitted)),
                Err(err) => match err.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
                    _ => return Err(store_error("UpdateItem", err)),
                },
            };
            let live = old.as_ref().is_some_and(|item| {
                number_of(item, EXPIRES_AT).is_some_and(|expires| expires > now_seconds())
            });
            if !live {
                return Ok(None);
            }
            // Busy, with a token left: take it.
            let busy = self
                .bucket_update("SET #tat = #tat + :interval, #refused = :zero")
                .key(CONNECTION_ID, s(connection_id.as_str()))
                .condition_expression("attribute_exists(#id) AND #tat >= :now AND #tat <= :limit")
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":limit", n(limit))
                .expression_attribute_values(":interval", n(bucket.interval_ms))
                .expression_attribute_values(":zero", n(0))
                .send()
                .await;
            if conditional(busy)? {
                return Ok(Some(FrameVerdict::Admitted));
            }
            // Empty: refuse, and count the refusals in a row.
            let refused = self
                .bucket_update("ADD #refused :one")
                .key(CONNECTION_ID, s(connection_id.as_str()))
                .condition_expression("attribute_exists(#id) AND #tat > :limit")
                .expression_attribute_values(":limit", n(limit))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match refused {
                Ok(output) => {
                    let in_a_row = output
                        .attributes()
                        .and_then(|item| number_of(item, "frames_refused"))
                        .ok_or_else(|| corrupt("connection", "no refusal count"))?;
                    return Ok(Some(FrameVerdict::Refused {
                        in_a_row: in_a_row.max(0) as u64,
                    }));
                }
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(store_error("UpdateItem", err)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "connection {connection_id}: its frame bucket kept changing"
        )))
    }

    async fn subscribed_jobs(
        &self,
        connection_id: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        // One partition: the connection's own items, never the table.
        let mut jobs = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.connections)
                .key_condition_expression("#id = :id AND begins_with(#sk, :prefix)")
                .filter_expression("#expires > :now")
                .expression_attribute_names("#id", CONNECTION_ID)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_names("#job", JOB_ID)
                .expression_attribute_values(":id", s(connection_id.as_str()))
                .expression_attribute_values(":prefix", s(SUBSCRIPTION_PREFIX))
                .expression_attribute_values(":now", n(now_seconds()))
                .projection_expression("#job")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in output.items() {
                let job = item
                    .get(JOB_ID)
                    .and_then(|value| value.as_s().ok())
                    .ok_or_else(|| corrupt("subscription", "no job_id"))?;
                jobs.push(JobId::parse(job.as_str()).map_err(|e| corrupt("job_id", e))?);
                if jobs.len() >= limit {
                    return Ok(jobs);
                }
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(jobs);
            }
        }
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let item = SubscriptionItem {
            connection_id: subscription.connection_id.to_string(),
            sk: format!("{SUBSCRIPTION_PREFIX}{}", subscription.job_id),
            job_id: subscription.job_id.to_string(),
            subscriber: subscription.user_id.to_string(),
            expires_at: epoch_seconds(subscription.expires_at),
            live_after: subscription.live_after,
        };
        self.put(&self.tables.connections, item, "subscription")
            .await?;
        self.raise_subscribers_version(&subscription.job_id, subscription.expires_at)
            .await
    }

    async fn delete_subscription(
        &self,
        connection_id: &ConnectionId,
        job_id: &JobId,
    ) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.tables.connections)
            .key(CONNECTION_ID, s(connection_id.as_str()))
            .key(SORT_KEY, s(format!("{SUBSCRIPTION_PREFIX}{job_id}")))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e))?;
        let existed = output.attributes().is_some_and(|old| !old.is_empty());
        if existed {
            self.raise_subscribers_version(job_id, Utc::now()).await?;
        }
        Ok(existed)
    }

    async fn job_subscribers(
        &self,
        job_id: &JobId,
        event_seq: Seq,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        self.query_index(BY_JOB_INDEX, JOB_ID, job_id.as_str(), Some(event_seq), page)
            .await
    }

    async fn user_connections(
        &self,
        user_id: &UserId,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        self.query_index(BY_USER_INDEX, USER_ID, user_id.as_str(), None, page)
            .await
    }
}

impl DynamoStore {
    /// An UpdateItem on the job's head item (its snapshot, seq counter and claims).
    fn update_job_head(
        &self,
        job_id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(job_id))
            .key(SEQ, AttributeValue::N(HEAD_SEQ.into()))
    }

    /// Tells senders that the job's subscribers changed (their cached lists are stale). The
    /// head is created if the job has not started, expiring with the subscription.
    async fn raise_subscribers_version(
        &self,
        job_id: &JobId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.update_job_head(job_id.as_str())
            .update_expression("ADD #version :one SET #expires = if_not_exists(#expires, :expires)")
            .expression_attribute_names("#version", "subscribers_version")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(epoch_seconds(expires_at)))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }

    /// The logged event at `seq`, if it is there.
    async fn get_event(&self, job_id: &JobId, seq: Seq) -> Result<Option<StoredEvent>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(job_id.as_str()))
            .key(SEQ, n(seq))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        output
            .item
            .map(|item| {
                serde_dynamo::from_item::<_, EventItem>(item)
                    .map_err(|e| corrupt("event", e))?
                    .try_into()
            })
            .transpose()
    }

    /// The UpdateItem that takes the next seq (ADD, never read-modify-write) and moves the
    /// job's snapshot. `fresh` resets an expired snapshot; otherwise the job must be live and
    /// running (or new).
    fn update_head(
        &self,
        new: &NewEvent,
        fresh: bool,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        // Every attribute goes by a placeholder name: `state` and others are reserved words.
        let sets = [
            "#state = :state",
            "#updated = :updated",
            "#expires = :expires",
        ];
        let mut update = self
            .update_job_head(new.job_id.as_str())
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#cancel", "cancel_requested")
            .expression_attribute_names("#last_seq", "last_seq")
            .expression_attribute_values(":state", s(new.event.resulting_state().as_str()))
            .expression_attribute_values(":updated", n(new.recorded_at.timestamp_millis()))
            .expression_attribute_values(":expires", n(epoch_seconds(new.job_expires_at)))
            .expression_attribute_values(":now", n(now_seconds()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = if fresh {
            update.condition_expression("#expires <= :now")
        } else {
            let live = "(attribute_not_exists(#state) OR (#state IN (:running, :pending) AND #expires > :now))";
            // A retry of the latest event fails the condition, and is answered from the log.
            let mut condition = if new.event_id.is_some() {
                format!("{live} AND (attribute_not_exists(#latest) OR #latest <> :event_id)")
            } else {
                live.to_owned()
            };
            if new.owner.is_some() {
                condition.push_str(" AND (attribute_not_exists(#owner) OR #owner = :owner)");
            }
            update
                .condition_expression(condition)
                .expression_attribute_values(":running", s(JobState::Running.as_str()))
                .expression_attribute_values(":pending", s(JobState::Pending.as_str()))
        };
        // Named only when used: DynamoDB refuses unused names.
        if new.owner.is_some() || fresh {
            update = update.expression_attribute_names("#owner", "owner");
        }
        if let Some(owner) = &new.owner {
            update = update.expression_attribute_values(":owner", s(owner.as_str()));
        }
        update = update.expression_attribute_names("#latest", "latest_event_id");
        if let Some(event_id) = &new.event_id {
            update = update.expression_attribute_values(":event_id", s(event_id.as_str()));
        }
        // The snapshot fields this event sets, and their values.
        let fields: Vec<(&str, AttributeValue)> = match &new.event {
            JobEvent::ProgressUpdate(progress) => vec![
                ("stage", s(progress.stage.as_str())),
                ("progress", n(progress.progress.value())),
                ("message", s(progress.message.clone())),
            ],
            JobEvent::StageComplete(done) => vec![("stage", s(done.stage.as_str()))],
            JobEvent::JobComplete(_) => vec![("progress", n(Percent::COMPLETE.value()))],
            JobEvent::JobFailed(failed) => {
                let mut fields = vec![("message", s(failed.error.message.clone()))];
                if let Some(stage) = &failed.stage {
                    fields.push(("stage", s(stage.as_str())));
                }
                fields
            }
            JobEvent::JobCancelled(cancelled) => cancelled
                .reason
                .iter()
                .map(|reason| ("message", s(reason.clone())))
                .collect(),
        };
        let mut set_clauses: Vec<String> = sets.iter().map(|clause| clause.to_string()).collect();
        for (field, value) in &fields {
            set_clauses.push(format!("#{field} = :{field}"));
            update = update
                .expression_attribute_names(format!("#{field}"), *field)
                .expression_attribute_values(format!(":{field}"), value.clone());
        }
        let set_fields: Vec<&str> = fields.iter().map(|(field, _)| *field).collect();
        if new.event_id.is_some() {
            set_clauses.push("#latest = :event_id".to_owned());
        }
        match (&new.owner, fresh) {
            (Some(_), false) => set_clauses.push("#owner = if_not_exists(#owner, :owner)".into()),
            (Some(_), true) => set_clauses.push("#owner = :owner".into()),
            (None, _) => {}
        }
        let cancelled = matches!(new.event, JobEvent::JobCancelled(_));
        update = update.expression_attribute_values(":cancelled", AttributeValue::Bool(cancelled));
        set_clauses.push(
            if cancelled || fresh {
                "#cancel = :cancelled"
            } else {
                "#cancel = if_not_exists(#cancel, :cancelled)"
            }
            .to_owned(),
        );
        let mut removes: Vec<String> = if fresh {
            let stale: Vec<&str> = ["stage", "progress", "message"]
                .into_iter()
                .filter(|f| !set_fields.contains(f))
                .collect();
            for field in &stale {
                update = update.expression_attribute_names(format!("#{field}"), *field);
            }
            stale.iter().map(|field| format!("#{field}")).collect()
        } else {
            Vec::new()
        };
        if new.event_id.is_none() {
            // Otherwise a late retry of an earlier event would pass for a retry of this one.
            removes.push("#latest".to_owned());
        }
        if fresh && new.owner.is_none() {
            // A job that starts afresh does not inherit the expired one's owner.
            removes.push("#owner".to_owned());
        }
        let mut expression = format!("SET {} ADD #last_seq :one", set_clauses.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        update.update_expression(expression)
    }
}

impl DynamoStore {
    /// An UpdateItem on a connection item's frame bucket (the partition key is left to the
    /// caller; the names every bucket expression uses are set).
    fn bucket_update(
        &self,
        expression: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.connections)
            .key(SORT_KEY, s(CONNECTION_SORT_KEY))
            .update_expression(expression)
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_names("#tat", "frame_tat")
            .expression_attribute_names("#refused", "frames_refused")
    }

    /// A retry of the job's latest event: the event from the log, written now if the first
    /// try took its seq but failed to log it.
    async fn answer_retry(
        &self,
        new: NewEvent,
        head: JobHeadItem,
    ) -> Result<AppendOutcome, StoreError> {
        let seq = head.last_seq;
        let event = match self.get_event(&new.job_id, seq).await? {
            Some(event) => event,
            None => {
                let event = StoredEvent {
                    job_id: new.job_id.clone(),
                    seq,
                    event: new.event,
                    correlation_id: new.correlation_id,
                    recorded_at: new.recorded_at,
                };
                self.put_event(&event, new.event_expires_at).await?;
                event
            }
        };
        Ok(AppendOutcome::Appended(Appended {
            event,
            duplicate: true,
            subscribers_version: head.subscribers_version,
            replaying: head.replaying_connections(),
        }))
    }

    async fn put_event(
        &self,
        event: &StoredEvent,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = EventItem {
            job_id: event.job_id.to_string(),
            seq: event.seq,
            event: serde_json::to_string(&event.event).map_err(|e| corrupt("event", e))?,
            correlation_id: event.correlation_id.as_ref().map(ToString::to_string),
            recorded_at: event.recorded_at.timestamp_millis(),
            expires_at: epoch_seconds(expires_at),
        };
        self.put(&self.tables.jobs, item, "event").await
    }
}

impl JobStore for DynamoStore {
    async fn register_job(&self, job: NewJob) -> Result<RegisterOutcome, StoreError> {
        let mut sets = vec![
            "#state = :pending",
            "#updated = :updated",
            "#expires = :expires",
            "#cancel = :false",
            "#last_seq = if_not_exists(#last_seq, :zero)",
        ];
        // What an expired job of the same id left behind; its seq keeps counting.
        let mut removes = vec!["#stage", "#progress", "#message", "#latest"];
        if job.owner.is_some() {
            sets.push("#owner = :owner");
        } else {
            removes.push("#owner");
        }
        let mut update = self
            .update_job_head(job.job_id.as_str())
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression("attribute_not_exists(#state) OR #expires <= :now")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#cancel", "cancel_requested")
            .expression_attribute_names("#last_seq", "last_seq")
            .expression_attribute_names("#stage", "stage")
            .expression_attribute_names("#progress", "progress")
            .expression_attribute_names("#message", "message")
            .expression_attribute_names("#latest", "latest_event_id")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":pending", s(JobState::Pending.as_str()))
            .expression_attribute_values(":updated", n(job.registered_at.timestamp_millis()))
            .expression_attribute_values(":expires", n(epoch_seconds(job.expires_at)))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now_seconds()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(owner) = &job.owner {
            update = update.expression_attribute_values(":owner", s(owner.as_str()));
        }
        match update.send().await {
            Ok(output) => {
                let head: JobHeadItem =
                    serde_dynamo::from_item(output.attributes.unwrap_or_default())
                        .map_err(|e| corrupt("job", e))?;
                Ok(RegisterOutcome::Registered(head.try_into()?))
            }
            Err(err) => {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException;
                match err.as_service_error() {
                    Some(ConditionalCheckFailedException(failed)) => {
                        let old = failed.item().cloned().ok_or_else(|| {
                            StoreError::ConditionFailed(format!("registering job {}", job.job_id))
                        })?;
                        let head: JobHeadItem =
                            serde_dynamo::from_item(old).map_err(|e| corrupt("job", e))?;
                        Ok(RegisterOutcome::Exists(head.try_into()?))
                    }
                    _ => Err(store_error("UpdateItem", err)),
                }
            }
        }
    }

    async fn append_event(&self, new: NewEvent) -> Result<AppendOutcome, StoreError> {
        // Normally one UpdateItem does it. A head that expired (but TTL has not deleted yet)
        // is reset instead; if two writers race to reset it, the loser takes the normal path.
        let mut fresh = false;
        let mut attempts = 0;
        let (seq, subscribers_version, replaying) = loop {
            attempts += 1;
            if attempts > 4 {
                return Err(StoreError::Unavailable(format!(
                    "job {}: the snapshot kept changing",
                    new.job_id
                )));
            }
            match self.update_head(&new, fresh).send().await {
                Ok(output) => {
                    let head: JobHeadItem =
                        serde_dynamo::from_item(output.attributes.unwrap_or_default())
                            .map_err(|e| corrupt("job", e))?;
                    let replaying = head.replaying_connections();
                    break (head.last_seq, head.subscribers_version, replaying);
                }
                Err(err) => {
                    use aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException;
                    let Some(ConditionalCheckFailedException(failed)) = err.as_service_error()
                    else {
                        return Err(store_error("UpdateItem", err));
                    };
                    let Some(old) = failed.item() else {
                        // The reset lost a race (or the item vanished): go the normal way.
                        fresh = !fresh;
                        continue;
                    };
                    let head: JobHeadItem =
                        serde_dynamo::from_item(old.clone()).map_err(|e| corrupt("job", e))?;
                    if !fresh
                        && head.expires_at > now_seconds()
                        && new.event_id.is_some()
                        && head.latest_event_id.as_deref()
                            == new.event_id.as_ref().map(EventId::as_str)
                    {
                        return self.answer_retry(new, head).await;
                    }
                    if head.expires_at <= now_seconds() && !fresh {
                        fresh = true;
                        continue;
                    }
                    if fresh {
                        fresh = false;
                        continue;
                    }
                    if new.owner.is_some()
                        && head.owner.is_some()
                        && head.owner != new.owner.as_ref().map(|o| o.to_string())
                    {
                        return Ok(AppendOutcome::OwnedByAnother(head.try_into()?));
                    }
                    return Ok(AppendOutcome::JobFinished(head.try_into()?));
                }
            }
        };
        let stored = StoredEvent {
            job_id: new.job_id.clone(),
            seq,
            event: new.event,
            correlation_id: new.correlation_id,
            recorded_at: new.recorded_at,
        };
        self.put_event(&stored, new.event_expires_at).await?;
        Ok(AppendOutcome::Appended(Appended {
            event: stored,
            duplicate: false,
            subscribers_version,
            replaying,
        }))
    }

    async fn get_job(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(job_id.as_str()))
            .key(SEQ, AttributeValue::N(HEAD_SEQ.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let head: JobHeadItem = serde_dynamo::from_item(item).map_err(|e| corrupt("job", e))?;
        if head.expires_at <= now_seconds() || head.state.is_none() {
            return Ok(None);
        }
        head.try_into().map(Some)
    }

    async fn events_after(
        &self,
        job_id: &JobId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        while events.len() < limit {
            let output = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .key_condition_expression("#job = :job AND #seq > :after")
                .filter_expression("#expires > :now")
                .expression_attribute_names("#job", JOB_ID)
                .expression_attribute_names("#seq", SEQ)
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":job", s(job_id.as_str()))
                .expression_attribute_values(":after", n(after))
                .expression_attribute_values(":now", n(now_seconds()))
                .limit(i32::try_from((limit - events.len()).clamp(1, 1000)).unwrap_or(1000))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in output.items() {
                let item: EventItem =
                    serde_dynamo::from_item(item.clone()).map_err(|e| corrupt("event", e))?;
                events.push(item.try_into()?);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        events.truncate(limit);
        Ok(events)
    }

    async fn start_replay(&self, job_id: &JobId, claim: &ReplayClaim) -> Result<Seq, StoreError> {
        // On the head, beside the seq counter: an append either precedes this (and the replay
        // reads its event) or follows it (and sees the claim).
        let output = self
            .update_job_head(job_id.as_str())
            .update_expression("ADD #replaying :claim")
            .condition_expression("attribute_exists(#job)")
            .expression_attribute_names("#replaying", REPLAYING)
            .expression_attribute_names("#job", JOB_ID)
            .expression_attribute_values(":claim", AttributeValue::Ss(vec![claim.encode()]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        // The last seq as of the claim, read in the same atomic write.
        Ok(output
            .attributes()
            .and_then(|head| number_of(head, "last_seq"))
            .and_then(|seq| Seq::try_from(seq).ok())
            .unwrap_or(0))
    }

    async fn finish_replay(
        &self,
        job_id: &JobId,
        claim: &ReplayClaim,
        through: Seq,
    ) -> Result<ReplayEnd, StoreError> {
        let released = self
            .update_job_head(job_id.as_str())
            .update_expression("DELETE #replaying :claim")
            .condition_expression("#last_seq = :through")
            .expression_attribute_names("#replaying", REPLAYING)
            .expression_attribute_names("#last_seq", "last_seq")
            .expression_attribute_values(":claim", AttributeValue::Ss(vec![claim.encode()]))
            .expression_attribute_values(":through", n(through))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let head = match released {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(err) => {
                use aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException;
                let Some(ConditionalCheckFailedException(failed)) = err.as_service_error() else {
                    return Err(store_error("UpdateItem", err));
                };
                let last_seq = failed
                    .item()
                    .and_then(|old| number_of(old, "last_seq"))
                    .and_then(|seq| Seq::try_from(seq).ok())
                    .unwrap_or(0);
                return Ok(ReplayEnd::Behind { last_seq });
            }
        };
        // Claims whose handler died before releasing them: tidy them away, best effort.
        let now = Utc::now();
        let lapsed: Vec<String> = head
            .get(REPLAYING)
            .and_then(|value| value.as_ss().ok())
            .into_iter()
            .flatten()
            .filter(|value| ReplayClaim::decode(value).is_none_or(|held| !held.holds_at(now)))
            .cloned()
            .collect();
        if !lapsed.is_empty()
            && let Err(err) = self
                .update_job_head(job_id.as_str())
                .update_expression("DELETE #replaying :lapsed")
                .expression_attribute_names("#replaying", REPLAYING)
                .expression_attribute_values(":lapsed", AttributeValue::Ss(lapsed))
                .send()
                .await
        {
            tracing::debug!(%job_id, error = ?err, "could not tidy lapsed replay claims");
        }
        Ok(ReplayEnd::Live)
    }
}
