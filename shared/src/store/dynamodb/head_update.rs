//! The head's part of the transaction that records an event: takes seq `prev + 1` (only if the
//! head's last seq is still `prev`) and moves the snapshot as [`SnapshotChange`] says, under
//! the conditions that keep a finished job finished and an owner the owner.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};

use super::DynamoStore;
use super::errors::corrupt;
use super::items::{HEAD_SEQ, epoch_seconds, n, now_seconds, s};
use super::schema::{EXPIRES_AT, JOB_ID, SEQ};
use crate::protocol::{JobState, Seq};
use crate::store::{NewEvent, SnapshotChange, StoreError};

impl DynamoStore {
    /// The head update that takes seq `prev + 1` and moves the job's snapshot. `fresh` resets
    /// an expired snapshot; otherwise the job must be live and running (or new). Either way the
    /// head's last seq must still be `prev`, as the caller read it.
    pub(super) fn update_head(
        &self,
        new: &NewEvent,
        fresh: bool,
        prev: Seq,
    ) -> Result<Update, StoreError> {
        let change = SnapshotChange::of(&new.event);
        // Every attribute goes by a placeholder name: `state` and others are reserved words.
        let mut set_clauses: Vec<String> = [
            "#state = :state",
            "#updated = :updated",
            "#expires = :expires",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut update = Update::builder()
            .table_name(&self.tables.jobs)
            .key(JOB_ID, s(new.job_id.as_str()))
            .key(SEQ, AttributeValue::N(HEAD_SEQ.into()))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#cancel", "cancel_requested")
            .expression_attribute_names("#last_seq", "last_seq")
            .expression_attribute_values(":state", s(change.state.as_str()))
            .expression_attribute_values(":updated", n(new.recorded_at.timestamp_millis()))
            .expression_attribute_values(":expires", n(epoch_seconds(new.job_expires_at)))
            .expression_attribute_values(":now", n(now_seconds()))
            .expression_attribute_values(":seq", n(prev + 1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // No other append came between the caller's read and this write.
        let unchanged = if prev == 0 {
            "attribute_not_exists(#last_seq) OR #last_seq = :prev"
        } else {
            "#last_seq = :prev"
        };
        update = update.expression_attribute_values(":prev", n(prev));
        update = if fresh {
            update.condition_expression(format!("#expires <= :now AND ({unchanged})"))
        } else {
            let live = "(attribute_not_exists(#state) OR (#state IN (:running, :pending) AND #expires > :now))";
            let mut condition = format!("{live} AND ({unchanged})");
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
        // The snapshot fields this event sets, as the one definition says, and their values.
        let fields = snapshot_fields(&change);
        for (field, value) in &fields {
            set_clauses.push(format!("#{field} = :{field}"));
            update = update
                .expression_attribute_names(format!("#{field}"), *field)
                .expression_attribute_values(format!(":{field}"), value.clone());
        }
        match (&new.owner, fresh) {
            (Some(_), false) => set_clauses.push("#owner = if_not_exists(#owner, :owner)".into()),
            (Some(_), true) => set_clauses.push("#owner = :owner".into()),
            (None, _) => {}
        }
        update =
            update.expression_attribute_values(":cancelled", AttributeValue::Bool(change.cancels));
        set_clauses.push(
            if change.cancels || fresh {
                "#cancel = :cancelled"
            } else {
                "#cancel = if_not_exists(#cancel, :cancelled)"
            }
            .to_owned(),
        );
        let mut removes: Vec<String> = Vec::new();
        if fresh {
            // A reset forgets what the expired snapshot said that this event does not.
            for field in SNAPSHOT_FIELDS.iter() {
                if !fields.iter().any(|(set, _)| set == field) {
                    update = update.expression_attribute_names(format!("#{field}"), *field);
                    removes.push(format!("#{field}"));
                }
            }
        }
        if fresh && new.owner.is_none() {
            // A job that starts afresh does not inherit the expired one's owner.
            removes.push("#owner".to_owned());
        }
        set_clauses.push("#last_seq = :seq".to_owned());
        let mut expression = format!("SET {}", set_clauses.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        update
            .update_expression(expression)
            .build()
            .map_err(|e| corrupt("head update", e))
    }
}

/// The head's optional snapshot attributes.
const SNAPSHOT_FIELDS: [&str; 3] = ["stage", "progress", "message"];

/// The attributes a change sets, with their values.
fn snapshot_fields(change: &SnapshotChange) -> Vec<(&'static str, AttributeValue)> {
    let mut fields = Vec::new();
    if let Some(stage) = &change.stage {
        fields.push(("stage", s(stage.as_str())));
    }
    if let Some(progress) = change.progress {
        fields.push(("progress", n(progress.value())));
    }
    if let Some(message) = &change.message {
        fields.push(("message", s(message.clone())));
    }
    fields
}
