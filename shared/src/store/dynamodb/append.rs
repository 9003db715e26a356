//! Recording an event: one transaction writes the head (the next seq and the snapshot), the
//! log entry and, for an event with an id, the id's item — so the log never has a hole where a
//! seq was taken, and a retry of any event still in the log is recognised, not only of the
//! latest.
//!
//! The head is read first (for the seq to take; the transaction only commits if no other append
//! came between), and read again after the commit for the replay claims and recent subscribers
//! the sender needs. A claim made before the commit still holds then, or was released by a
//! replay that posted this event, which names itself on the head for a few seconds with the seq
//! it replayed through; a claim made after the commit reads this event from the log. A recent
//! subscriber is named with its `live_after`, so one that subscribed after the commit (and had
//! the event from its replay) is left out.
//! The subscription version is the one read before: a list of subscribers cached under it is
//! dropped by any subscription made since, which a later version would not do. Racing writers
//! retry (40 tries), then the store reports itself unavailable. Each transaction carries a
//! client request token, so the SDK's own retry of one that committed does not apply it twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use rand::Rng;

use super::DynamoStore;
use super::errors::{corrupt, store_error};
use super::items::{EventIdItem, EventItem, Item, JobHeadItem, event_id_key, n, now_seconds, s};
use super::schema::{EXPIRES_AT, JOB_ID, SEQ};
use crate::protocol::{ConnectionId, EventId, JobId, JobState, Seq, UserId};
use crate::store::{AppendOutcome, Appended, JobRecord, NewEvent, Owed, StoreError, StoredEvent};

/// Appends to one job from the same process take turns, so they never race each other's
/// transactions (jobcast-local, or a sender serving several of a job's events at once); only
/// writers in other processes do.
#[derive(Debug, Default)]
pub(super) struct AppendTurns {
    jobs: Mutex<HashMap<JobId, Arc<tokio::sync::Mutex<()>>>>,
}

impl AppendTurns {
    /// Waits for this process's turn to append to `job_id`.
    async fn take(&self, job_id: &JobId) -> Turn<'_> {
        let lock = {
            let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(jobs.entry(job_id.clone()).or_default())
        };
        let guard = Arc::clone(&lock).lock_owned().await;
        Turn {
            turns: self,
            job_id: job_id.clone(),
            lock,
            _guard: guard,
        }
    }
}

/// One append's turn; the job's entry goes when nobody else waits for it.
struct Turn<'a> {
    turns: &'a AppendTurns,
    job_id: JobId,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut jobs = self
            .turns
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Held by the map, this turn and its guard: nobody else wants the job.
        if Arc::strong_count(&self.lock) <= 3 {
            jobs.remove(&self.job_id);
        }
    }
}

/// Transactions tried before an append gives up. Appends to one job race only when several
/// writers send at once; each round one of them wins, and the others back off with jitter.
const ATTEMPTS: u32 = 40;

/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// How a transaction that did not commit ended.
enum Cancelled {
    /// The event id was already recorded: a retry.
    Retry,
    /// The head moved (another append, a reset, a registration) or another transaction held an
    /// item: try again from the head as the failed condition returned it, or as read anew.
    Moved(Option<Box<JobHeadItem>>),
}

/// Why a live job takes no more events.
enum Refusal {
    Finished,
    OwnedByAnother,
}

/// Whether the live job whose head this is refuses `new`.
fn refusal(head: &JobHeadItem, new: &NewEvent) -> Option<Refusal> {
    let state = head.state.as_deref().and_then(JobState::parse)?;
    if state.is_terminal() {
        Some(Refusal::Finished)
    } else if new.owner.is_some()
        && head.owner.is_some()
        && head.owner.as_deref() != new.owner.as_ref().map(|owner| owner.as_str())
    {
        Some(Refusal::OwnedByAnother)
    } else {
        None
    }
}

impl DynamoStore {
    /// [`crate::store::JobStore::append_event`] on DynamoDB.
    pub(super) async fn record_event(&self, new: NewEvent) -> Result<AppendOutcome, StoreError> {
        let _turn = self.appending.take(&new.job_id).await;
        let mut known: Option<JobHeadItem> = None;
        for attempt in 1..=ATTEMPTS {
            let head = match known.take() {
                Some(head) => Some(head),
                None => self.read_head(&new.job_id).await?,
            };
            let now = now_seconds();
            let live = head.as_ref().filter(|head| head.expires_at > now);
            if let Some(head) = live
                && let Some(refusal) = refusal(head, &new)
            {
                // A retry of the event that finished the job is still a retry.
                if let Some(event_id) = &new.event_id
                    && let Some(retry) = self.answer_retry(&new.job_id, event_id).await?
                {
                    return Ok(retry);
                }
                let record: JobRecord = head.clone().try_into()?;
                return Ok(match refusal {
                    Refusal::Finished => AppendOutcome::JobFinished(record),
                    Refusal::OwnedByAnother => AppendOutcome::OwnedByAnother(record),
                });
            }
            let fresh = head.is_some() && live.is_none();
            let owner_before = live.and_then(|head| head.owner.clone());
            let prev = head.as_ref().map_or(0, |head| head.last_seq);
            let version_before = head.as_ref().map_or(0, |head| head.subscribers_version);
            let seq = prev + 1;
            let stored = new.recorded_as(seq);
            match self.transact(&new, &stored, fresh, prev).await? {
                None => {
                    let head = self.read_head(&new.job_id).await?.ok_or_else(|| {
                        StoreError::Unavailable(format!("job {}: the head vanished", new.job_id))
                    })?;
                    let owner = match &owner_before {
                        Some(owner) => {
                            Some(UserId::parse(owner.clone()).map_err(|e| corrupt("owner", e))?)
                        }
                        None => new.owner.clone(),
                    };
                    return Ok(AppendOutcome::Appended(
                        Appended::new(
                            stored,
                            version_before,
                            head.replaying_for(seq),
                            head.recent_for(seq),
                        )
                        .owned_by(owner, owner_before.is_none()),
                    ));
                }
                Some(Cancelled::Retry) => {
                    let event_id = new.event_id.as_ref().ok_or_else(|| {
                        StoreError::Corrupt("a transaction without an event id failed on it".into())
                    })?;
                    if let Some(retry) = self.answer_retry(&new.job_id, event_id).await? {
                        return Ok(retry);
                    }
                    // The id's item vanished meanwhile (it expired): record anew.
                }
                Some(Cancelled::Moved(Some(head))) => {
                    // Another append won: try at once from the head it left, the freshest
                    // there is.
                    tracing::debug!(job_id = %new.job_id, attempt, "the head moved; trying again");
                    known = Some(*head);
                }
                Some(Cancelled::Moved(None)) => {
                    // Full jitter, from 4 ms doubling to the cap, then read the head again.
                    let ceiling = (2u64 << attempt.min(10)).min(MAX_BACKOFF.as_millis() as u64);
                    let pause = rand::rng().random_range(0..=ceiling);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "job {}: the head kept changing",
            new.job_id
        )))
    }

    /// The transaction: `None` when it committed.
    async fn transact(
        &self,
        new: &NewEvent,
        stored: &StoredEvent,
        fresh: bool,
        prev: Seq,
    ) -> Result<Option<Cancelled>, StoreError> {
        let event: Item = serde_dynamo::to_item(EventItem::new(stored, new.event_expires_at))
            .map_err(|e| corrupt("event", e))?;
        let mut items = vec![
            TransactWriteItem::builder()
                .update(self.update_head(new, fresh, prev)?)
                .build(),
            TransactWriteItem::builder()
                .put(self.put_item(event, None)?)
                .build(),
        ];
        if let Some(event_id) = &new.event_id {
            let id = EventIdItem {
                job_id: event_id_key(&new.job_id, event_id),
                seq: 0,
                event_seq: stored.seq,
                expires_at: new.event_expires_at.timestamp(),
                owed: None,
            };
            let id: Item = serde_dynamo::to_item(id).map_err(|e| corrupt("event id", e))?;
            // An id the log has forgotten (expired, TTL not yet run) may be used again.
            let unseen = "attribute_not_exists(#job) OR #expires <= :now";
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_item(id, Some(unseen))?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(format!("{:032x}", rand::random::<u128>()))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        else {
            return Err(store_error("TransactWriteItems", err));
        };
        let reasons = cancelled.cancellation_reasons();
        let codes: Vec<&str> = reasons
            .iter()
            .map(|reason| reason.code().unwrap_or("None"))
            .collect();
        match codes.as_slice() {
            [_, _, "ConditionalCheckFailed"] => Ok(Some(Cancelled::Retry)),
            ["ConditionalCheckFailed", ..] => {
                // The head as it is, when the failed condition returned it: no need to read it.
                let head = reasons[0]
                    .item()
                    .map(|item| serde_dynamo::from_item(item.clone()))
                    .transpose()
                    .map_err(|e| corrupt("job", e))?;
                Ok(Some(Cancelled::Moved(head.map(Box::new))))
            }
            codes
                if codes
                    .iter()
                    .all(|code| matches!(*code, "None" | "TransactionConflict")) =>
            {
                Ok(Some(Cancelled::Moved(None)))
            }
            codes
                if codes.iter().any(|code| {
                    matches!(*code, "ThrottlingError" | "ProvisionedThroughputExceeded")
                }) =>
            {
                Err(StoreError::Throttled(format!(
                    "TransactWriteItems: {codes:?}"
                )))
            }
            codes => Err(StoreError::Unavailable(format!(
                "TransactWriteItems cancelled: {codes:?}"
            ))),
        }
    }

    /// A Put of `item` in the jobs table, under `condition` (with `#job` and `#expires` named
    /// and `:now` given).
    fn put_item(&self, item: Item, condition: Option<&str>) -> Result<Put, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.tables.jobs)
            .set_item(Some(item));
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition)
                .expression_attribute_names("#job", JOB_ID)
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":now", n(now_seconds()));
        }
        put.build().map_err(|e| corrupt("put", e))
    }

    /// The event recorded under `event_id`, if the id is known and its event still logged, as a
    /// duplicate append with its delivery record and the head as it is now.
    async fn answer_retry(
        &self,
        job_id: &JobId,
        event_id: &EventId,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let Some(id) = self.read_event_id(job_id, event_id).await? else {
            return Ok(None);
        };
        let Some(event) = self.get_event(job_id, id.event_seq).await? else {
            return Ok(None);
        };
        let head: Option<JobHeadItem> = self.read_head(job_id).await?;
        let owed = id.owed.map(|owed| {
            if owed.is_empty() {
                Owed::Nobody
            } else {
                Owed::Only(
                    owed.into_iter()
                        .filter_map(|id| ConnectionId::parse(id).ok())
                        .collect(),
                )
            }
        });
        Ok(Some(AppendOutcome::Appended(Appended {
            event,
            duplicate: true,
            owed,
            subscribers_version: head.as_ref().map_or(0, |head| head.subscribers_version),
            replaying: head
                .as_ref()
                .map(|head| head.replaying_for(id.event_seq))
                .unwrap_or_default(),
            recent: head
                .as_ref()
                .map(|head| head.recent_for(id.event_seq))
                .unwrap_or_default(),
            owner: head
                .and_then(|head| head.owner)
                .and_then(|owner| UserId::parse(owner).ok()),
            owner_named: false,
        })))
    }

    /// The item of `event_id`, if it is there and has not expired.
    async fn read_event_id(
        &self,
        job_id: &JobId,
        event_id: &EventId,
    ) -> Result<Option<EventIdItem>, StoreError> {
        let key = event_id_key(job_id, event_id);
        let Some(item) = self.get_jobs_item(&key, n(0)).await? else {
            return Ok(None);
        };
        let id: EventIdItem = serde_dynamo::from_item(item).map_err(|e| corrupt("event id", e))?;
        Ok((id.expires_at > now_seconds()).then_some(id))
    }

    /// The logged event at `seq`, if it is there.
    async fn get_event(&self, job_id: &JobId, seq: Seq) -> Result<Option<StoredEvent>, StoreError> {
        self.get_jobs_item(job_id.as_str(), n(seq))
            .await?
            .map(|item| {
                serde_dynamo::from_item::<_, EventItem>(item)
                    .map_err(|e| corrupt("event", e))?
                    .try_into()
            })
            .transpose()
    }

    /// [`crate::store::JobStore::note_delivery`] on DynamoDB: sets the id item's `owed`, if the
    /// item is there.
    pub(super) async fn record_owed(
        &self,
        job_id: &JobId,
        event_id: &EventId,
        owed: &Owed,
    ) -> Result<(), StoreError> {
        let list = match owed {
            Owed::Nobody => Vec::new(),
            Owed::Only(ids) => ids.iter().map(|id| s(id.as_str())).collect(),
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(event_id_key(job_id, event_id)))
            .key(SEQ, n(0))
            .update_expression("SET #owed = :owed")
            .condition_expression("attribute_exists(#job)")
            .expression_attribute_names("#owed", "owed")
            .expression_attribute_names("#job", JOB_ID)
            .expression_attribute_values(":owed", AttributeValue::L(list))
            .send()
            .await;
        super::errors::conditional(result).map(|_| ())
    }
}
