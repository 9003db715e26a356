//! Table-level requests the adapter's rooms share: one page of an index, every key of a
//! connection's partition, one put, and batched deletes with retry.

use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{DeleteRequest, ReturnConsumedCapacity, WriteRequest};
use serde::Serialize;

use super::DynamoStore;
use super::errors::{corrupt, store_error};
use super::items::{Item, decode_token, encode_token, n, now_seconds, s};
use super::schema::{CONNECTION_ID, EXPIRES_AT, LIVE_AFTER, SORT_KEY, SUBSCRIBER};
use crate::protocol::{ConnectionId, Seq, UserId};
use crate::store::{Page, PageRequest, StoreError};

pub(super) const BATCH_LIMIT: usize = 25;
pub(super) const BATCH_ATTEMPTS: u32 = 6;

/// What a page of an index leaves out, besides expired items.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IndexFilter<'a> {
    /// Given an event's seq: subscriptions made after it (`live_after >= seq`).
    pub event_seq: Option<Seq>,
    /// Given a user: subscriptions of anyone else.
    pub subscriber: Option<&'a UserId>,
}

impl DynamoStore {
    /// One page of an index keyed by `key_name = key_value`, skipping expired items and what
    /// `filter` leaves out.
    pub(super) async fn query_index(
        &self,
        index: &str,
        key_name: &str,
        key_value: &str,
        filter: IndexFilter<'_>,
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
        let mut expression = String::from("#expires > :now");
        if let Some(seq) = filter.event_seq {
            expression.push_str(" AND (attribute_not_exists(#live) OR #live < :seq)");
            query = query
                .expression_attribute_names("#live", LIVE_AFTER)
                .expression_attribute_values(":seq", n(seq));
        }
        if let Some(user_id) = filter.subscriber {
            expression.push_str(" AND #subscriber = :subscriber");
            query = query
                .expression_attribute_names("#subscriber", SUBSCRIBER)
                .expression_attribute_values(":subscriber", s(user_id.as_str()));
        }
        query = query.filter_expression(expression);
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

    /// The items of one connection's partition that `query` selects (never the table), page
    /// by page, each handed to `take` until it answers false.
    pub(super) async fn partition_items(
        &self,
        connection_id: &ConnectionId,
        query: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        mut take: impl FnMut(&Item) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let request = self
                .client
                .query()
                .table_name(&self.tables.connections)
                .expression_attribute_names("#id", CONNECTION_ID)
                .expression_attribute_values(":id", s(connection_id.as_str()));
            let output = query(request)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e))?;
            for item in output.items() {
                if !take(item)? {
                    return Ok(());
                }
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(());
            }
        }
    }

    /// The keys of a connection's item and of all its subscriptions.
    pub(super) async fn keys_of_connection(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<Vec<Item>, StoreError> {
        let mut keys = Vec::new();
        let select = |query: QueryFluentBuilder| {
            query
                .key_condition_expression("#id = :id")
                .expression_attribute_names("#sk", SORT_KEY)
                .projection_expression("#id, #sk")
        };
        self.partition_items(connection_id, select, |key| {
            keys.push(key.clone());
            Ok(true)
        })
        .await?;
        Ok(keys)
    }

    /// Writes one item, as `what` for error messages.
    pub(super) async fn put<T: Serialize>(
        &self,
        table: &str,
        item: T,
        what: &str,
    ) -> Result<(), StoreError> {
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
    pub(super) async fn delete_all(&self, table: &str, keys: Vec<Item>) -> Result<(), StoreError> {
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
