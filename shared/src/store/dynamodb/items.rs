//! The items jobcast keeps in DynamoDB and their conversions to the port's types: connection
//! and subscription items in the connections table, the job's head item and its logged events
//! in the jobs table, and the opaque page tokens of paginated lookups.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::errors::corrupt;
use crate::protocol::{
    ConnectionId, CorrelationId, JobEvent, JobId, JobState, Percent, StageName, UserId,
};
use crate::store::{JobRecord, PageToken, ReplayClaim, StoreError, StoredEvent};

pub(super) const CONNECTION_SORT_KEY: &str = "connection";
pub(super) const SUBSCRIPTION_PREFIX: &str = "job#";
pub(super) const HEAD_SEQ: &str = "0";
/// The head attribute holding replay claims.
pub(super) const REPLAYING: &str = "replaying";

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn epoch_seconds(time: DateTime<Utc>) -> i64 {
    time.timestamp()
}

pub(super) fn from_seconds(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(super) fn from_millis(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A number attribute of an item, if it has one.
pub(super) fn number_of(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Now, in Unix seconds. DynamoDB deletes expired items up to ~48 h late: every read checks
/// the expiry itself against this.
pub(super) fn now_seconds() -> i64 {
    Utc::now().timestamp()
}

#[derive(Serialize, Deserialize)]
pub(super) struct ConnectionItem {
    pub(super) connection_id: String,
    pub(super) sk: String,
    pub(super) user_id: String,
    pub(super) connected_at: i64,
    pub(super) expires_at: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SubscriptionItem {
    pub(super) connection_id: String,
    pub(super) sk: String,
    pub(super) job_id: String,
    /// Not `user_id`: that name would put subscriptions into the by_user index.
    pub(super) subscriber: String,
    pub(super) expires_at: i64,
    #[serde(default)]
    pub(super) live_after: u64,
}

/// The job's item at seq 0: its snapshot, the counter that hands out seqs, and the
/// subscription version. A subscribe before the job's first event leaves a head with only
/// the version (and an expiry), which reads as "no job yet".
#[derive(Deserialize)]
pub(super) struct JobHeadItem {
    pub(super) job_id: String,
    pub(super) state: Option<String>,
    pub(super) stage: Option<String>,
    pub(super) progress: Option<f64>,
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) last_seq: u64,
    #[serde(default)]
    pub(super) cancel_requested: bool,
    #[serde(default)]
    pub(super) updated_at: i64,
    pub(super) expires_at: i64,
    pub(super) latest_event_id: Option<String>,
    #[serde(default)]
    pub(super) subscribers_version: u64,
    pub(super) owner: Option<String>,
    /// Replay claims (a string set of `ReplayClaim::encode`).
    #[serde(default)]
    pub(super) replaying: Vec<String>,
}

impl JobHeadItem {
    /// The connections whose replay claim still holds.
    pub(super) fn replaying_connections(&self) -> Vec<ConnectionId> {
        let now = Utc::now();
        self.replaying
            .iter()
            .filter_map(|value| ReplayClaim::decode(value))
            .filter(|(_, until)| *until > now)
            .map(|(connection_id, _)| connection_id)
            .collect()
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct EventItem {
    pub(super) job_id: String,
    pub(super) seq: u64,
    /// The event as JSON: exact to round-trip, and opaque to DynamoDB, which never queries it.
    pub(super) event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) correlation_id: Option<String>,
    pub(super) recorded_at: i64,
    pub(super) expires_at: i64,
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

pub(super) fn encode_token(key: &Item) -> Result<PageToken, StoreError> {
    let mut plain = serde_json::Map::new();
    for (name, value) in key {
        let text = value.as_s().map_err(|_| corrupt("page key", name))?;
        plain.insert(name.clone(), serde_json::Value::String(text.clone()));
    }
    Ok(PageToken(serde_json::Value::Object(plain).to_string()))
}

pub(super) fn decode_token(token: &PageToken) -> Result<Item, StoreError> {
    let plain: HashMap<String, String> =
        serde_json::from_str(&token.0).map_err(|e| corrupt("page token", e))?;
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}
