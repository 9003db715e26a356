//! The items jobcast keeps in DynamoDB and their conversions to the port's types: connection
//! and subscription items in the connections table, the job's head item and its logged events
//! in the jobs table, and the opaque page tokens of paginated lookups.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::errors::corrupt;
use crate::protocol::{
    ConnectionId, CorrelationId, EventId, JobEvent, JobId, JobState, Percent, StageName, UserId,
};
use crate::store::{Connection, JobRecord, PageToken, StoreError, StoredEvent, Subscription};

pub(super) const CONNECTION_SORT_KEY: &str = "connection";
pub(super) const SUBSCRIPTION_PREFIX: &str = "job#";
pub(super) const HEAD_SEQ: &str = "0";
/// The head attribute holding replay claims.
pub(super) const REPLAYING: &str = "replaying";
/// The head attribute naming recent subscribers (`{connection_id} {until_ms} {live_after}`).
pub(super) const RECENT: &str = "recent";
/// The head attribute naming replays released lately (`{connection_id} {until_ms} {through}`):
/// what an append read just after its commit needs to leave a connection to its replay.
pub(super) const RELEASED: &str = "released";

/// The head attribute naming recent-subscriber entries whose subscription was removed
/// (`{connection_id} {until_ms} {live_after}`, as in `recent`): a claim's release that would
/// name one after its removal (the subscription went while its replay ran) names it no more.
pub(super) const REVOKED: &str = "revoked";

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
    /// Until when (Unix ms) the job's head names this subscription among its recent ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) recent_until: Option<i64>,
}

impl SubscriptionItem {
    /// The item of a subscription made under `claim`, marked with the recent-subscriber entry
    /// the claim's release names (and an unsubscribe takes back): both sides build it here, so
    /// they agree to the byte.
    pub(super) fn claimed(
        subscription: &crate::store::Subscription,
        claim: &crate::store::ReplayClaim,
    ) -> Self {
        let mut item = Self::from(subscription);
        item.recent_until = Some(claim.recent_until().timestamp_millis());
        item
    }

    /// The entry naming this subscription on its job's head, if it was named there.
    pub(super) fn recent_entry(&self) -> Option<String> {
        self.recent_until
            .map(|until| format!("{} {until} {}", self.connection_id, self.live_after))
    }
}

/// The job's item at seq 0: its snapshot, the counter that hands out seqs, and the
/// subscription version. A subscribe before the job's first event leaves a head with only
/// the version (and an expiry), which reads as "no job yet".
#[derive(Clone, Deserialize)]
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
    #[serde(default)]
    pub(super) subscribers_version: u64,
    pub(super) owner: Option<String>,
    /// Replay claims (a string set of `ReplayClaim::encode`).
    #[serde(default)]
    pub(super) replaying: Vec<String>,
    /// Recent subscribers (a string set of `{connection_id} {until_ms} {live_after}`).
    #[serde(default)]
    pub(super) recent: Vec<String>,
    /// Replays released lately (a string set of `{connection_id} {until_ms} {through}`).
    #[serde(default)]
    pub(super) released: Vec<String>,
}

impl JobHeadItem {
    /// The connections whose replay delivers event `seq`: those whose claim still holds, and
    /// those whose replay was released lately after posting `seq` (read after the append's
    /// commit, the head may no longer show their claim).
    pub(super) fn replaying_for(&self, seq: u64) -> Vec<ConnectionId> {
        let mut ids: Vec<ConnectionId> = marked(&self.replaying)
            .map(|(connection_id, _)| connection_id)
            .collect();
        ids.extend(
            marked(&self.released)
                .filter(|(_, through)| through.is_some_and(|through| through >= seq))
                .map(|(connection_id, _)| connection_id),
        );
        ids
    }

    /// The recent subscribers whose window still holds and who were live before `seq` (one
    /// that subscribed after it had the event from its replay).
    pub(super) fn recent_for(&self, seq: u64) -> Vec<ConnectionId> {
        marked(&self.recent)
            .filter(|(_, live_after)| live_after.is_none_or(|live_after| live_after < seq))
            .map(|(connection_id, _)| connection_id)
            .collect()
    }
}

/// How long a released replay stays named on its job's head: well past the moment between an
/// append's commit and its read of the head.
pub(super) const RELEASED_WINDOW_MS: i64 = 10_000;

/// Until when an entry `{connection_id} {until_ms}[ {seq}]` holds, if it parses.
pub(super) fn entry_until(value: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(value.split(' ').nth(1)?.parse().ok()?)
}

/// The entries `{connection_id} {until_ms}[ {seq}]` whose time has not passed, with their seq.
/// The connections whose claim among `entries` (`{connection_id} {until_ms}`) still holds.
pub(super) fn live_claimants(entries: &[String]) -> impl Iterator<Item = ConnectionId> + '_ {
    marked(entries).map(|(connection_id, _)| connection_id)
}

fn marked(entries: &[String]) -> impl Iterator<Item = (ConnectionId, Option<u64>)> + '_ {
    let now = Utc::now();
    entries.iter().filter_map(move |value| {
        let mut parts = value.split(' ');
        let connection_id = ConnectionId::parse(parts.next()?).ok()?;
        let until = DateTime::from_timestamp_millis(parts.next()?.parse().ok()?)?;
        let seq = parts.next().and_then(|seq| seq.parse().ok());
        (until > now).then_some((connection_id, seq))
    })
}

#[derive(Serialize, Deserialize)]
pub(super) struct EventIdItem {
    pub(super) job_id: String,
    pub(super) seq: u64,
    /// The seq the event took.
    pub(super) event_seq: u64,
    pub(super) expires_at: i64,
    /// Who the event's fan-out left unreached, once recorded: empty for nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) owed: Option<Vec<String>>,
}

/// The partition key of an event id's item.
pub(super) fn event_id_key(job_id: &JobId, event_id: &EventId) -> String {
    format!("{job_id}#{event_id}")
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
            replaying: live_claimants(&item.replaying).collect(),
        })
    }
}

impl From<&Connection> for ConnectionItem {
    fn from(connection: &Connection) -> Self {
        Self {
            connection_id: connection.connection_id.to_string(),
            sk: CONNECTION_SORT_KEY.to_owned(),
            user_id: connection.user_id.to_string(),
            connected_at: connection.connected_at.timestamp_millis(),
            expires_at: epoch_seconds(connection.expires_at),
        }
    }
}

impl TryFrom<ConnectionItem> for Connection {
    type Error = StoreError;
    fn try_from(item: ConnectionItem) -> Result<Self, StoreError> {
        Ok(Connection {
            connection_id: ConnectionId::parse(item.connection_id)
                .map_err(|e| corrupt("connection_id", e))?,
            user_id: UserId::parse(item.user_id).map_err(|e| corrupt("user_id", e))?,
            connected_at: from_millis(item.connected_at),
            expires_at: from_seconds(item.expires_at),
        })
    }
}

impl From<&Subscription> for SubscriptionItem {
    fn from(subscription: &Subscription) -> Self {
        Self {
            connection_id: subscription.connection_id.to_string(),
            sk: format!("{SUBSCRIPTION_PREFIX}{}", subscription.job_id),
            job_id: subscription.job_id.to_string(),
            subscriber: subscription.user_id.to_string(),
            expires_at: epoch_seconds(subscription.expires_at),
            live_after: subscription.live_after,
            recent_until: None,
        }
    }
}

impl EventItem {
    /// `event` as logged, to expire at `expires_at`.
    pub(super) fn new(event: &StoredEvent, expires_at: DateTime<Utc>) -> Self {
        Self {
            job_id: event.job_id.to_string(),
            seq: event.seq,
            // Serializing a job event cannot fail: every map key is a string.
            event: serde_json::to_string(&event.event).expect("job events serialize"),
            correlation_id: event.correlation_id.as_ref().map(ToString::to_string),
            recorded_at: event.recorded_at.timestamp_millis(),
            expires_at: epoch_seconds(expires_at),
        }
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

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;

    fn at_millis(millis: i64) -> DateTime<Utc> {
        from_millis(millis)
    }

    #[test]
    fn a_head_read_after_an_append_names_who_the_sender_must_leave_alone() {
        let later = (Utc::now() + Duration::seconds(5)).timestamp_millis();
        let earlier = (Utc::now() - Duration::seconds(5)).timestamp_millis();
        let head: JobHeadItem = serde_dynamo::from_item(Item::from([
            ("job_id".to_owned(), s("j")),
            ("expires_at".to_owned(), n(1_764_086_400)),
            (
                RELEASED.to_owned(),
                AttributeValue::Ss(vec![
                    format!("through-7 {later} 7"),
                    format!("through-6 {later} 6"),
                    format!("lapsed {earlier} 9"),
                ]),
            ),
            (
                RECENT.to_owned(),
                AttributeValue::Ss(vec![
                    format!("before {later} 6"),
                    format!("after {later} 7"),
                    format!("unknown {later}"),
                    format!("gone {earlier} 1"),
                ]),
            ),
        ]))
        .unwrap();
        let ids = |ids: Vec<ConnectionId>| -> Vec<String> {
            let mut ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
            ids.sort();
            ids
        };
        // Event 7: a replay released through 7 posted it; one released through 6 did not.
        assert_eq!(ids(head.replaying_for(7)), ["through-7"]);
        // A recent subscriber live after 7 had event 7 from its replay.
        assert_eq!(ids(head.recent_for(7)), ["before", "unknown"]);
    }

    #[test]
    fn a_connection_round_trips_through_its_item() {
        let connection = Connection {
            connection_id: ConnectionId::parse("K2tFbYxRoAMCJ0g=").unwrap(),
            user_id: UserId::parse("ana").unwrap(),
            connected_at: at_millis(1_764_000_000_123),
            expires_at: from_seconds(1_764_003_600),
        };
        let item = ConnectionItem::from(&connection);
        assert_eq!(item.sk, CONNECTION_SORT_KEY);
        // Through DynamoDB's own attribute values, as the adapter stores it.
        let stored: Item = serde_dynamo::to_item(&item).unwrap();
        assert_eq!(
            stored["expires_at"],
            n(1_764_003_600),
            "TTL wants epoch seconds"
        );
        let back: ConnectionItem = serde_dynamo::from_item(stored).unwrap();
        assert_eq!(Connection::try_from(back).unwrap(), connection);
    }

    #[test]
    fn a_subscription_item_keeps_its_subscriber_out_of_the_user_index() {
        let subscription = Subscription {
            connection_id: ConnectionId::parse("c1").unwrap(),
            job_id: JobId::parse("crawl-42").unwrap(),
            user_id: UserId::parse("ana").unwrap(),
            expires_at: from_seconds(1_764_003_600),
            live_after: 7,
        };
        let stored: Item = serde_dynamo::to_item(SubscriptionItem::from(&subscription)).unwrap();
        assert_eq!(stored["sk"], s("job#crawl-42"));
        assert_eq!(stored["subscriber"], s("ana"));
        assert!(
            !stored.contains_key("user_id"),
            "a subscription must not appear in by_user"
        );
        assert_eq!(stored["live_after"], n(7));
    }

    #[test]
    fn an_event_round_trips_through_its_item() {
        let event = StoredEvent {
            job_id: JobId::parse("crawl-42").unwrap(),
            seq: 3,
            event: serde_json::from_value(json!({
                "type": "progress_update", "stage": "fetch", "progress": 42.5, "message": "page 3"
            }))
            .unwrap(),
            correlation_id: Some(CorrelationId::parse("r-1").unwrap()),
            recorded_at: at_millis(1_764_000_000_456),
        };
        let expires = event.recorded_at + Duration::days(1);
        let stored: Item = serde_dynamo::to_item(EventItem::new(&event, expires)).unwrap();
        let back: EventItem = serde_dynamo::from_item(stored).unwrap();
        assert_eq!(back.expires_at, expires.timestamp());
        assert_eq!(StoredEvent::try_from(back).unwrap(), event);
    }

    #[test]
    fn a_head_item_becomes_the_jobs_snapshot_and_a_corrupt_one_is_refused() {
        let head = |state: &str, progress: f64| -> JobHeadItem {
            serde_dynamo::from_item(Item::from([
                ("job_id".to_owned(), s("crawl-42")),
                ("seq".to_owned(), n(0)),
                ("state".to_owned(), s(state)),
                ("stage".to_owned(), s("fetch")),
                ("progress".to_owned(), n(progress)),
                ("last_seq".to_owned(), n(9)),
                ("updated_at".to_owned(), n(1_764_000_000_789_i64)),
                ("expires_at".to_owned(), n(1_764_086_400)),
                ("owner".to_owned(), s("ana")),
                (
                    "replaying".to_owned(),
                    AttributeValue::Ss(vec![
                        format!(
                            "c-live {}",
                            (Utc::now() + Duration::minutes(1)).timestamp_millis()
                        ),
                        format!(
                            "c-lapsed {}",
                            (Utc::now() - Duration::minutes(1)).timestamp_millis()
                        ),
                    ]),
                ),
            ]))
            .unwrap()
        };
        let item = head("running", 50.0);
        assert_eq!(
            item.replaying_for(10),
            [ConnectionId::parse("c-live").unwrap()],
            "lapsed claims hold no one off"
        );
        let job = JobRecord::try_from(item).unwrap();
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.last_seq, 9);
        assert_eq!(job.progress.map(Percent::value), Some(50.0));
        assert_eq!(job.owner.map(|owner| owner.to_string()), Some("ana".into()));
        assert_eq!(job.updated_at, at_millis(1_764_000_000_789));

        for (state, progress) in [("teleported", 50.0), ("running", 140.0)] {
            let err = JobRecord::try_from(head(state, progress)).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        }
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let key = Item::from([
            ("connection_id".to_owned(), s("c1")),
            ("job_id".to_owned(), s("crawl-42")),
        ]);
        assert_eq!(decode_token(&encode_token(&key).unwrap()).unwrap(), key);
        let numeric = Item::from([("seq".to_owned(), n(3))]);
        assert!(
            encode_token(&numeric).is_err(),
            "only string keys are expected"
        );
        assert!(decode_token(&PageToken("{not json".into())).is_err());
    }
}
