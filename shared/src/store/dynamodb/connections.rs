//! The connection store on DynamoDB: one partition per connection (its item and its
//! subscriptions), found by job and by user through the `by_job` and `by_user` indexes.

use chrono::{DateTime, Utc};

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValue;

use super::DynamoStore;
use super::errors::{corrupt, store_error};
use super::items::{
    CONNECTION_SORT_KEY, ConnectionItem, SUBSCRIPTION_PREFIX, SubscriptionItem, epoch_seconds, n,
    now_seconds, s,
};
use super::jobs::Recent;
use super::schema::{
    BY_JOB_INDEX, BY_USER_INDEX, CONNECTION_ID, EXPIRES_AT, JOB_ID, SORT_KEY, USER_ID,
};
use super::table::IndexFilter;
use crate::protocol::{ConnectionId, JobId, UserId};
use crate::store::{
    Audience, Connection, ConnectionStore, FrameCharge, FrameTake, FrameVerdict, Page, PageRequest,
    RECENT_SUBSCRIBER_WINDOW, Removed, ReplayClaim, StoreError, Subscription,
};

impl ConnectionStore for DynamoStore {
    async fn connections_of(
        &self,
        audience: &Audience,
        page: PageRequest,
    ) -> Result<Page<ConnectionId>, StoreError> {
        match audience {
            Audience::Job(job_id, seq, owner) => {
                let filter = IndexFilter {
                    event_seq: Some(*seq),
                    subscriber: owner.as_ref(),
                };
                self.query_index(BY_JOB_INDEX, JOB_ID, job_id.as_str(), filter, page)
                    .await
            }
            Audience::User(user_id) => {
                let filter = IndexFilter::default();
                self.query_index(BY_USER_INDEX, USER_ID, user_id.as_str(), filter, page)
                    .await
            }
        }
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        let item = ConnectionItem::from(connection);
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
        item.try_into().map(Some)
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<Removed, StoreError> {
        let mut keys = Vec::new();
        let mut removed = Removed::default();
        // The user comes with the keys, from the connection item: presence needs no read of
        // its own.
        let select = |query: QueryFluentBuilder| {
            query
                .key_condition_expression("#id = :id")
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_names("#user", USER_ID)
                .projection_expression("#id, #sk, #user")
        };
        self.partition_items(connection_id, select, |item| {
            let sort_key = item.get(SORT_KEY).and_then(|v| v.as_s().ok());
            if sort_key.is_some_and(|sk| sk.starts_with(SUBSCRIPTION_PREFIX)) {
                removed.subscriptions += 1;
            }
            if sort_key.is_some_and(|sk| sk == CONNECTION_SORT_KEY) {
                removed.user_id = item
                    .get(USER_ID)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|raw| UserId::parse(raw.clone()).ok());
            }
            let mut key = item.clone();
            key.retain(|name, _| name == CONNECTION_ID || name == SORT_KEY);
            keys.push(key);
            Ok(true)
        })
        .await?;
        self.delete_all(&self.tables.connections, keys).await?;
        Ok(removed)
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

    async fn subscribed_jobs(
        &self,
        connection_id: &ConnectionId,
        limit: usize,
    ) -> Result<Vec<JobId>, StoreError> {
        let mut jobs = Vec::new();
        let select = |query: QueryFluentBuilder| {
            query
                .key_condition_expression("#id = :id AND begins_with(#sk, :prefix)")
                .filter_expression("#expires > :now")
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_names("#job", JOB_ID)
                .expression_attribute_values(":prefix", s(SUBSCRIPTION_PREFIX))
                .expression_attribute_values(":now", n(now_seconds()))
                .projection_expression("#job")
        };
        self.partition_items(connection_id, select, |item| {
            let job = item
                .get(JOB_ID)
                .and_then(|value| value.as_s().ok())
                .ok_or_else(|| corrupt("subscription", "no job_id"))?;
            jobs.push(JobId::parse(job.as_str()).map_err(|e| corrupt("job_id", e))?);
            Ok(jobs.len() < limit)
        })
        .await?;
        Ok(jobs)
    }

    async fn put_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let mut item = SubscriptionItem::from(subscription);
        let recent_until =
            Utc::now() + chrono::Duration::from_std(RECENT_SUBSCRIBER_WINDOW).unwrap_or_default();
        item.recent_until = Some(recent_until.timestamp_millis());
        let entry = item.recent_entry();
        self.put(&self.tables.connections, item, "subscription")
            .await?;
        let recent = entry.map_or(Recent::Keep, Recent::Add);
        self.raise_subscribers_version(&subscription.job_id, subscription.expires_at, recent)
            .await
    }

    async fn put_claimed_subscription(
        &self,
        subscription: &Subscription,
        claim: &ReplayClaim,
    ) -> Result<(), StoreError> {
        let item = SubscriptionItem::claimed(subscription, claim);
        self.put(&self.tables.connections, item, "subscription")
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
        let Some(old) = output.attributes().filter(|old| !old.is_empty()) else {
            return Ok(false);
        };
        // An unsubscribe is heard at once: no longer named among the job's recent subscribers.
        let old: SubscriptionItem =
            serde_dynamo::from_item(old.clone()).map_err(|e| corrupt("subscription", e))?;
        let recent = old.recent_entry().map_or(Recent::Keep, Recent::Remove);
        self.raise_subscribers_version(job_id, Utc::now(), recent)
            .await?;
        Ok(true)
    }

    async fn take_frame_token(
        &self,
        connection_id: &ConnectionId,
        take: FrameTake,
    ) -> Result<Option<FrameVerdict>, StoreError> {
        self.take_token(connection_id, take).await
    }

    async fn charge_user_tokens(
        &self,
        user_id: &UserId,
        charge: FrameCharge,
    ) -> Result<i64, StoreError> {
        self.charge_user(user_id, charge).await
    }

    async fn charge_frame_tokens(
        &self,
        connection_id: &ConnectionId,
        charge: FrameCharge,
    ) -> Result<Option<i64>, StoreError> {
        self.charge_tokens(connection_id, charge).await
    }
}
