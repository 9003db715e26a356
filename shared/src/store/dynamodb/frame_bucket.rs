//! The frame bucket on the connection item: GCRA (a token bucket kept as one timestamp, the
//! theoretical arrival time) with conditional writes and no read.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::DynamoStore;
use super::errors::{corrupt, store_error};
use super::items::{CONNECTION_SORT_KEY, n, now_seconds, number_of, s};
use super::schema::{CONNECTION_ID, EXPIRES_AT, SORT_KEY, USER_ID};
use crate::protocol::{ConnectionId, UserId};

/// The sort key of a user's replay bucket item.
const USER_BUCKET_SORT_KEY: &str = "replay";
/// A user's replay bucket lapses this long after its last charge.
const USER_BUCKET_TTL_SECONDS: i64 = 3600;
use crate::store::{FrameCharge, FrameTake, FrameVerdict, StoreError};

impl DynamoStore {
    /// Takes a token; see [`crate::store::ConnectionStore::take_frame_token`].
    pub(super) async fn take_token(
        &self,
        connection_id: &ConnectionId,
        FrameTake { bucket, now_ms }: FrameTake,
    ) -> Result<Option<FrameVerdict>, StoreError> {
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
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            let old = match idle {
                Ok(output) => return Ok(Some(admitted(output.attributes()))),
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
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match busy {
                Ok(output) => return Ok(Some(admitted(output.attributes()))),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(store_error("UpdateItem", err)),
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
    /// Charges tokens; see [`crate::store::ConnectionStore::charge_frame_tokens`]. From now if
    /// the bucket is full (its time has passed), else from its time.
    pub(super) async fn charge_tokens(
        &self,
        connection_id: &ConnectionId,
        charge: FrameCharge,
    ) -> Result<Option<i64>, StoreError> {
        // Only a recorded connection has a bucket to charge.
        let update = |set: &str, condition: &str| {
            self.client
                .update_item()
                .table_name(&self.tables.connections)
                .key(CONNECTION_ID, s(connection_id.as_str()))
                .key(SORT_KEY, s(CONNECTION_SORT_KEY))
                .update_expression(set)
                .condition_expression(format!("attribute_exists(#id) AND ({condition})"))
                .expression_attribute_names("#id", CONNECTION_ID)
                .expression_attribute_names("#tat", "frame_tat")
        };
        charge_bucket(update, charge, "").await
    }

    /// Charges a user's replay bucket; see
    /// [`crate::store::ConnectionStore::charge_user_tokens`]. The bucket is an item of its own
    /// in the connections table (`user#{user_id}`, sort key `replay`), outside both indexes,
    /// made by its first charge and lapsing an hour after its last.
    pub(super) async fn charge_user(
        &self,
        user_id: &UserId,
        charge: FrameCharge,
    ) -> Result<i64, StoreError> {
        let key = format!("user#{user_id}");
        let expires = n(now_seconds() + USER_BUCKET_TTL_SECONDS);
        let update = |set: &str, condition: &str| {
            self.client
                .update_item()
                .table_name(&self.tables.connections)
                .key(CONNECTION_ID, s(&key))
                .key(SORT_KEY, s(USER_BUCKET_SORT_KEY))
                .update_expression(set)
                .condition_expression(condition)
                .expression_attribute_names("#tat", "frame_tat")
                .expression_attribute_names("#expires", EXPIRES_AT)
                .expression_attribute_values(":expires", expires.clone())
        };
        charge_bucket(update, charge, ", #expires = :expires")
            .await?
            .ok_or_else(|| {
                StoreError::Unavailable(format!("user {user_id}: its replay bucket kept changing"))
            })
    }

    /// An UpdateItem on a connection item's frame bucket (the partition key is left to the
    /// caller; the names every bucket expression uses are set).
    pub(super) fn bucket_update(&self, expression: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.connections)
            .key(SORT_KEY, s(CONNECTION_SORT_KEY))
            .update_expression(expression)
            .expression_attribute_names("#id", CONNECTION_ID)
            .expression_attribute_names("#tat", "frame_tat")
            .expression_attribute_names("#refused", "frames_refused")
    }
}

/// Charges a bucket kept as its theoretical arrival time (`frame_tat`), in the item that
/// `update(set, condition)` names: from now if the bucket is full (its time has passed), else
/// from its time, each under its own condition; `also` is appended to both SET clauses. The
/// bucket's time after the charge, or `None` if neither condition held three times over.
async fn charge_bucket(
    update: impl Fn(&str, &str) -> UpdateItemFluentBuilder,
    charge: FrameCharge,
    also: &str,
) -> Result<Option<i64>, StoreError> {
    let cost = charge
        .bucket
        .interval_ms
        .saturating_mul(i64::from(charge.tokens));
    let steps = [
        (
            format!("SET #tat = :next{also}"),
            "attribute_not_exists(#tat) OR #tat < :now",
            charge.now_ms.saturating_add(cost),
        ),
        (
            format!("SET #tat = #tat + :next{also}"),
            "#tat >= :now",
            cost,
        ),
    ];
    for _ in 0..3 {
        for (set, condition, next) in &steps {
            let sent = update(set, condition)
                .expression_attribute_values(":now", n(charge.now_ms))
                .expression_attribute_values(":next", n(*next))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match sent {
                Ok(output) => {
                    return output
                        .attributes()
                        .and_then(|item| number_of(item, "frame_tat"))
                        .map(Some)
                        .ok_or_else(|| corrupt("frame bucket", "no frame time"));
                }
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(store_error("UpdateItem", err)),
            }
        }
    }
    // Neither: the connection is gone, or the bucket kept crossing now.
    Ok(None)
}

/// An admitted frame, with the connection's expiry and user as the write that took its token
/// left them (the item comes back whole with the write, at no extra cost).
fn admitted(
    item: Option<&std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) -> FrameVerdict {
    let expires_at = item
        .and_then(|item| number_of(item, EXPIRES_AT))
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0));
    let user_id = item
        .and_then(|item| item.get(USER_ID))
        .and_then(|value| value.as_s().ok())
        .and_then(|user| UserId::parse(user.as_str()).ok());
    FrameVerdict::Admitted {
        expires_at,
        user_id,
    }
}
