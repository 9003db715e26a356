//! The job store on DynamoDB: each job is one partition of the jobs table, its head item
//! (seq 0: snapshot, seq counter, subscription version, replay claims) and its logged events
//! (seq 1, 2, …).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::DynamoStore;
use super::errors::{corrupt, store_error};
use super::items::{
    EventItem, HEAD_SEQ, Item, JobHeadItem, RECENT, RELEASED, RELEASED_WINDOW_MS, REPLAYING,
    REVOKED, SubscriptionItem, entry_until, epoch_seconds, live_claimants, n, now_seconds,
    number_of, s,
};
use super::schema::{EXPIRES_AT, JOB_ID, SEQ};
use crate::protocol::{EventId, JobId, JobState, Seq};
use crate::store::{
    AppendOutcome, JobRecord, JobStore, LogPage, MAX_RECENT_SUBSCRIBERS, NewEvent, NewJob, Owed,
    RegisterOutcome, ReplayClaim, ReplayEnd, ReplayStart, StoreError, StoredEvent, Subscription,
};

/// Lapsed entries on a job's head (claims, recent subscribers, released markers) before a
/// release spends a write on tidying them. A subscribe leaves at most two (its released
/// marker, its recent entry), so on a busy job one subscribe in eight, at most, pays a seventh
/// request.
const TIDY_AT_LAPSED: usize = 16;

/// What raising a job's subscription version does to its recent subscribers.
pub(super) enum Recent {
    /// Nothing.
    Keep,
    /// Names a new subscription (an entry `{connection_id} {until_ms}`).
    Add(String),
    /// Forgets one (the entry it was named by).
    Remove(String),
}

impl DynamoStore {
    /// An UpdateItem on the job's head item (its snapshot, seq counter and claims).
    pub(super) fn update_job_head(&self, job_id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(job_id))
            .key(SEQ, AttributeValue::N(HEAD_SEQ.into()))
    }

    /// Tells senders that the job's subscribers changed (their cached lists are stale). The
    /// head is created if the job has not started, expiring with the subscription.
    pub(super) async fn raise_subscribers_version(
        &self,
        job_id: &JobId,
        expires_at: DateTime<Utc>,
        recent: Recent,
    ) -> Result<(), StoreError> {
        let raise = |recent: &Recent| {
            let update = self
                .update_job_head(job_id.as_str())
                .expression_attribute_names("#version", "subscribers_version")
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":expires", n(epoch_seconds(expires_at)));
            let keep = "ADD #version :one SET #expires = if_not_exists(#expires, :expires)";
            match recent {
                // Named on the head while the index may not show it yet, unless the head
                // already names as many as it may.
                Recent::Add(entry) => update
                    .update_expression(
                        "ADD #version :one, #recent :entry SET #expires = if_not_exists(#expires, :expires)",
                    )
                    .condition_expression("attribute_not_exists(#recent) OR size(#recent) < :cap")
                    .expression_attribute_names("#recent", RECENT)
                    .expression_attribute_values(":entry", AttributeValue::Ss(vec![entry.clone()]))
                    .expression_attribute_values(":cap", n(MAX_RECENT_SUBSCRIBERS)),
                // Revoked too: a release still to come for it (its replay runs) must not name
                // it again.
                Recent::Remove(entry) => update
                    .update_expression(
                        "ADD #version :one, #revoked :entry SET #expires = if_not_exists(#expires, :expires) DELETE #recent :entry",
                    )
                    .expression_attribute_names("#recent", RECENT)
                    .expression_attribute_names("#revoked", REVOKED)
                    .expression_attribute_values(":entry", AttributeValue::Ss(vec![entry.clone()])),
                Recent::Keep => update.update_expression(keep),
            }
            .send()
        };
        match raise(&recent).await {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(recent, Recent::Add(_))
                    && err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                tracing::debug!(%job_id, "the head names as many recent subscribers as it may");
                raise(&Recent::Keep)
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error("UpdateItem", e))
            }
            Err(err) => Err(store_error("UpdateItem", err)),
        }
    }

    /// The jobs table's item at (`partition`, `seq`), read consistently, if there is one.
    pub(super) async fn get_jobs_item(
        &self,
        partition: &str,
        seq: AttributeValue,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(partition))
            .key(SEQ, seq)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e))?;
        Ok(output.item)
    }

    /// The job's head item, read consistently, if there is one.
    pub(super) async fn read_head(
        &self,
        job_id: &JobId,
    ) -> Result<Option<JobHeadItem>, StoreError> {
        self.get_jobs_item(job_id.as_str(), AttributeValue::N(HEAD_SEQ.into()))
            .await?
            .map(|item| serde_dynamo::from_item(item).map_err(|e| corrupt("job", e)))
            .transpose()
    }
}

impl JobStore for DynamoStore {
    async fn get_job(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        match self.read_head(job_id).await? {
            Some(head) if head.expires_at > now_seconds() && head.state.is_some() => {
                head.try_into().map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn register_job(&self, job: NewJob) -> Result<RegisterOutcome, StoreError> {
        let mut sets = vec![
            "#state = :pending",
            "#updated = :updated",
            "#expires = :expires",
            "#cancel = :false",
            "#last_seq = if_not_exists(#last_seq, :zero)",
        ];
        // What an expired job of the same id left behind; its seq keeps counting.
        let mut removes = vec!["#stage", "#progress", "#message"];
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
        self.record_event(new).await
    }

    async fn note_delivery(
        &self,
        job_id: &JobId,
        event_id: &EventId,
        owed: &Owed,
    ) -> Result<(), StoreError> {
        self.record_owed(job_id, event_id, owed).await
    }

    async fn events_after(
        &self,
        job_id: &JobId,
        LogPage { after, limit }: LogPage,
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

    async fn start_replay(&self, claim: &ReplayClaim) -> Result<ReplayStart, StoreError> {
        let job_id = &claim.job_id;
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
        // The last seq as of the claim, read in the same atomic write; so are the claims made
        // before it, among them any other of this connection's.
        let head = output.attributes();
        let mine = claim.encode();
        let concurrent = head
            .and_then(|head| head.get(REPLAYING))
            .and_then(|claims| claims.as_ss().ok())
            .is_some_and(|claims| {
                let others: Vec<String> = claims.iter().filter(|c| **c != mine).cloned().collect();
                live_claimants(&others).any(|id| id == claim.connection_id)
            });
        Ok(ReplayStart {
            live_after: head
                .and_then(|head| number_of(head, "last_seq"))
                .and_then(|seq| Seq::try_from(seq).ok())
                .unwrap_or(0),
            concurrent,
        })
    }

    async fn abandon_replay(
        &self,
        claim: &ReplayClaim,
        kept: Option<&Subscription>,
    ) -> Result<(), StoreError> {
        let mut release = self.update_job_head(claim.job_id.as_str());
        release = match kept {
            Some(_) => release
                .update_expression("DELETE #replaying :claim ADD #version :one")
                .expression_attribute_names("#version", "subscribers_version")
                .expression_attribute_values(":one", n(1)),
            None => release.update_expression("DELETE #replaying :claim"),
        };
        release
            .condition_expression("attribute_exists(#job)")
            .expression_attribute_names("#replaying", REPLAYING)
            .expression_attribute_names("#job", JOB_ID)
            .expression_attribute_values(":claim", AttributeValue::Ss(vec![claim.encode()]))
            .send()
            .await
            .map(|_| ())
            .or_else(|err| match err.as_service_error() {
                // No head: nothing to release.
                Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                _ => Err(store_error("UpdateItem", err)),
            })
    }

    async fn finish_replay(
        &self,
        claim: &ReplayClaim,
        through: Seq,
        joined: Option<&Subscription>,
    ) -> Result<ReplayEnd, StoreError> {
        // Named for a few seconds as released through `through`: an append that committed
        // before this but reads the head after it leaves the connection to this replay.
        let marker = format!(
            "{} {} {through}",
            claim.connection_id,
            Utc::now().timestamp_millis() + RELEASED_WINDOW_MS
        );
        // The subscription the claim was made for is announced in the same write: the version
        // senders cache by, and its entry among the recent subscribers (unless the head names
        // as many as it may, which only the write's condition can tell).
        let mut entry = joined
            .and_then(|subscription| SubscriptionItem::claimed(subscription, claim).recent_entry());
        let head = loop {
            let mut release = self
                .update_job_head(claim.job_id.as_str())
                .expression_attribute_names("#replaying", REPLAYING)
                .expression_attribute_names("#released", RELEASED)
                .expression_attribute_names("#last_seq", "last_seq")
                .expression_attribute_values(":claim", AttributeValue::Ss(vec![claim.encode()]))
                .expression_attribute_values(":marker", AttributeValue::Ss(vec![marker.clone()]))
                .expression_attribute_values(":through", n(through))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let mut add = vec!["#released :marker"];
            let mut condition = "#last_seq = :through".to_owned();
            if joined.is_some() {
                add.push("#version :one");
                release = release
                    .expression_attribute_names("#version", "subscribers_version")
                    .expression_attribute_values(":one", n(1));
            }
            if let Some(entry) = &entry {
                add.push("#recent :entry");
                condition.push_str(
                    " AND (attribute_not_exists(#recent) OR size(#recent) < :cap) AND NOT contains(#revoked, :revoked)",
                );
                release = release
                    .expression_attribute_names("#recent", RECENT)
                    .expression_attribute_names("#revoked", REVOKED)
                    .expression_attribute_values(":entry", AttributeValue::Ss(vec![entry.clone()]))
                    .expression_attribute_values(":revoked", s(entry))
                    .expression_attribute_values(":cap", n(MAX_RECENT_SUBSCRIBERS));
            }
            let released = release
                .update_expression(format!("DELETE #replaying :claim ADD {}", add.join(", ")))
                .condition_expression(condition)
                .send()
                .await;
            match released {
                Ok(output) => break output.attributes.unwrap_or_default(),
                Err(err) => {
                    use aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException;
                    let Some(ConditionalCheckFailedException(failed)) = err.as_service_error()
                    else {
                        return Err(store_error("UpdateItem", err));
                    };
                    let last_seq = failed
                        .item()
                        .and_then(|old| number_of(old, "last_seq"))
                        .and_then(|seq| Seq::try_from(seq).ok())
                        .unwrap_or(0);
                    if last_seq != through || entry.is_none() {
                        return Ok(ReplayEnd::Behind { last_seq });
                    }
                    // The seq held: the subscription was removed while its replay ran (its entry
                    // is revoked), or the head names as many recent subscribers as it may.
                    // Either way the release goes ahead without naming it.
                    tracing::debug!(job_id = %claim.job_id, "released without naming the subscriber among the recent ones");
                    entry = None;
                }
            }
        };
        // Claims whose handler died before releasing them, subscribers no longer recent and
        // replays released a while ago: tidy them away, best effort, once there are enough of
        // them to be worth a write (readers skip lapsed entries; the tidy only keeps the head
        // small, so most subscribes do without it).
        let now = Utc::now();
        let lapsed = |attribute: &str| -> Vec<String> {
            head.get(attribute)
                .and_then(|value| value.as_ss().ok())
                .into_iter()
                .flatten()
                .filter(|value| entry_until(value).is_none_or(|until| until <= now))
                .cloned()
                .collect()
        };
        let mut tidy = self.update_job_head(claim.job_id.as_str());
        let mut deletes = Vec::new();
        let mut count = 0;
        for (attribute, name, value) in [
            (REPLAYING, "#replaying", ":lapsed_claims"),
            (RECENT, "#recent", ":lapsed_recent"),
            (RELEASED, "#released", ":lapsed_released"),
            (REVOKED, "#revoked", ":lapsed_revoked"),
        ] {
            let entries = lapsed(attribute);
            count += entries.len();
            if !entries.is_empty() {
                deletes.push(format!("{name} {value}"));
                tidy = tidy
                    .expression_attribute_names(name, attribute)
                    .expression_attribute_values(value, AttributeValue::Ss(entries));
            }
        }
        if count >= TIDY_AT_LAPSED
            && let Err(err) = tidy
                .update_expression(format!("DELETE {}", deletes.join(", ")))
                .send()
                .await
        {
            tracing::debug!(job_id = %claim.job_id, error = ?err, "could not tidy lapsed entries");
        }
        Ok(ReplayEnd::Live)
    }
}
