//! The job store on DynamoDB: each job is one partition of the jobs table, its head item
//! (seq 0: snapshot, seq counter, subscription version, replay claims) and its logged events
//! (seq 1, 2, …).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::DynamoStore;
use super::errors::{corrupt, store_error};
use super::items::{
    EventItem, HEAD_SEQ, JobHeadItem, RECENT, REPLAYING, epoch_seconds, n, now_seconds, number_of,
    s,
};
use super::schema::{EXPIRES_AT, JOB_ID, SEQ};
use crate::protocol::{EventId, JobId, JobState, Seq};
use crate::store::{
    AppendOutcome, Appended, JobRecord, JobStore, LogPage, MAX_RECENT_SUBSCRIBERS, NewEvent,
    NewJob, RegisterOutcome, ReplayClaim, ReplayEnd, StoreError, StoredEvent,
};

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
                Recent::Remove(entry) => update
                    .update_expression(format!("{keep} DELETE #recent :entry"))
                    .expression_attribute_names("#recent", RECENT)
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

    /// The logged event at `seq`, if it is there.
    pub(super) async fn get_event(
        &self,
        job_id: &JobId,
        seq: Seq,
    ) -> Result<Option<StoredEvent>, StoreError> {
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
}

impl DynamoStore {
    /// A retry of the job's latest event: the event from the log, written now if the first
    /// try took its seq but failed to log it.
    pub(super) async fn answer_retry(
        &self,
        new: NewEvent,
        head: JobHeadItem,
    ) -> Result<AppendOutcome, StoreError> {
        let seq = head.last_seq;
        let event = match self.get_event(&new.job_id, seq).await? {
            Some(event) => event,
            None => {
                let event = new.recorded_as(seq);
                self.put_event(&event, new.event_expires_at).await?;
                event
            }
        };
        Ok(AppendOutcome::Appended(Appended {
            event,
            duplicate: true,
            subscribers_version: head.subscribers_version,
            replaying: head.replaying_connections(),
            recent: head.recent_connections(),
        }))
    }

    /// Logs an event, to expire at `expires_at`.
    pub(super) async fn put_event(
        &self,
        event: &StoredEvent,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = EventItem::new(event, expires_at);
        self.put(&self.tables.jobs, item, "event").await
    }
}

impl JobStore for DynamoStore {
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
        let (seq, subscribers_version, replaying, recent) = loop {
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
                    let (replaying, recent) =
                        (head.replaying_connections(), head.recent_connections());
                    break (head.last_seq, head.subscribers_version, replaying, recent);
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
        let stored = new.recorded_as(seq);
        self.put_event(&stored, new.event_expires_at).await?;
        let appended = Appended::new(stored, subscribers_version, replaying, recent);
        Ok(AppendOutcome::Appended(appended))
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

    async fn start_replay(&self, claim: &ReplayClaim) -> Result<Seq, StoreError> {
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
        // The last seq as of the claim, read in the same atomic write.
        Ok(output
            .attributes()
            .and_then(|head| number_of(head, "last_seq"))
            .and_then(|seq| Seq::try_from(seq).ok())
            .unwrap_or(0))
    }

    async fn abandon_replay(&self, claim: &ReplayClaim) -> Result<(), StoreError> {
        self.update_job_head(claim.job_id.as_str())
            .update_expression("DELETE #replaying :claim")
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
    ) -> Result<ReplayEnd, StoreError> {
        let released = self
            .update_job_head(claim.job_id.as_str())
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
        // Claims whose handler died before releasing them, and subscribers no longer recent:
        // tidy them away, best effort.
        let now = Utc::now();
        let lapsed = |attribute: &str| -> Vec<String> {
            head.get(attribute)
                .and_then(|value| value.as_ss().ok())
                .into_iter()
                .flatten()
                .filter(|value| ReplayClaim::decode(value).is_none_or(|(_, until)| until <= now))
                .cloned()
                .collect()
        };
        let mut tidy = self.update_job_head(claim.job_id.as_str());
        let mut deletes = Vec::new();
        for (attribute, name, value) in [
            (REPLAYING, "#replaying", ":lapsed_claims"),
            (RECENT, "#recent", ":lapsed_recent"),
        ] {
            let entries = lapsed(attribute);
            if !entries.is_empty() {
                deletes.push(format!("{name} {value}"));
                tidy = tidy
                    .expression_attribute_names(name, attribute)
                    .expression_attribute_values(value, AttributeValue::Ss(entries));
            }
        }
        if !deletes.is_empty()
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
