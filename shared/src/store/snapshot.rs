//! How each event changes a job's snapshot, said once. The in-memory store applies it to a
//! [`JobRecord`]; DynamoDB's head update turns the same change into its SET clauses, so the
//! two stores cannot drift apart.

use super::{JobRecord, NewEvent};
use crate::protocol::{JobEvent, JobState, Percent, Seq, StageName};

/// The longest message a snapshot keeps, in bytes: an event may carry up to 128 KB, but a
/// `job_status` must fit in one frame beside its other fields, and the job's DynamoDB item
/// beside its claims. Longer messages are cut at a character boundary and end with `…`; the
/// event itself keeps its whole message.
pub const MAX_SNAPSHOT_MESSAGE_BYTES: usize = 4096;

/// `message`, cut to [`MAX_SNAPSHOT_MESSAGE_BYTES`].
fn capped(message: &str) -> String {
    if message.len() <= MAX_SNAPSHOT_MESSAGE_BYTES {
        return message.to_owned();
    }
    let ellipsis = '…';
    let mut end = MAX_SNAPSHOT_MESSAGE_BYTES - ellipsis.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &message[..end])
}

/// What one event sets on its job's snapshot. Fields left `None` keep their value; the state
/// is always set.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotChange {
    /// The state the job is in after the event.
    pub state: JobState,
    /// The stage the job is at, when the event names one.
    pub stage: Option<StageName>,
    /// The job's progress, when the event says it.
    pub progress: Option<Percent>,
    /// The message shown with the snapshot, when the event carries one.
    pub message: Option<String>,
    /// True when the event cancels the job.
    pub cancels: bool,
}

impl SnapshotChange {
    /// The change `event` makes.
    pub fn of(event: &JobEvent) -> Self {
        let mut change = Self {
            state: event.resulting_state(),
            stage: None,
            progress: None,
            message: None,
            cancels: false,
        };
        match event {
            JobEvent::ProgressUpdate(update) => {
                change.stage = Some(update.stage.clone());
                change.progress = Some(update.progress);
                change.message = Some(capped(&update.message));
            }
            JobEvent::StageComplete(done) => change.stage = Some(done.stage.clone()),
            JobEvent::JobComplete(_) => change.progress = Some(Percent::COMPLETE),
            JobEvent::JobFailed(failed) => {
                change.stage = failed.stage.clone();
                change.message = Some(capped(&failed.error.message));
            }
            JobEvent::JobCancelled(cancelled) => {
                change.cancels = true;
                change.message = cancelled.reason.as_deref().map(capped);
            }
        }
        change
    }

    /// Applies the change to `record`.
    pub fn apply(self, record: &mut JobRecord) {
        record.state = self.state;
        if let Some(stage) = self.stage {
            record.stage = Some(stage);
        }
        if let Some(progress) = self.progress {
            record.progress = Some(progress);
        }
        if let Some(message) = self.message {
            record.message = Some(message);
        }
        record.cancel_requested |= self.cancels;
    }
}

impl JobRecord {
    /// The snapshot after `event`, starting from `previous` (None for a new job).
    pub fn after_event(previous: Option<&JobRecord>, new: &NewEvent, seq: Seq) -> JobRecord {
        let mut record = previous.cloned().unwrap_or_else(|| JobRecord {
            job_id: new.job_id.clone(),
            state: JobState::Running,
            stage: None,
            progress: None,
            message: None,
            last_seq: 0,
            cancel_requested: false,
            updated_at: new.recorded_at,
            expires_at: new.job_expires_at,
            owner: None,
            replaying: Vec::new(),
        });
        if record.owner.is_none() {
            record.owner = new.owner.clone();
        }
        record.last_seq = seq;
        record.updated_at = new.recorded_at;
        record.expires_at = new.job_expires_at;
        SnapshotChange::of(&new.event).apply(&mut record);
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FailureDetail, JobCancelled, JobComplete, JobFailed, ProgressUpdate};

    fn progress(stage: &str, percent: f64, message: &str) -> JobEvent {
        JobEvent::ProgressUpdate(ProgressUpdate {
            stage: StageName::parse(stage).unwrap(),
            progress: Percent::new(percent).unwrap(),
            message: message.into(),
            estimated_seconds_remaining: None,
        })
    }

    #[test]
    fn a_progress_update_sets_stage_progress_and_message() {
        let change = SnapshotChange::of(&progress("crawl", 40.0, "page 4"));
        assert_eq!(change.state, JobState::Running);
        assert_eq!(change.stage.unwrap().as_str(), "crawl");
        assert_eq!(change.progress.unwrap().value(), 40.0);
        assert_eq!(change.message.as_deref(), Some("page 4"));
        assert!(!change.cancels);
    }

    #[test]
    fn a_failure_without_a_stage_keeps_the_stage_it_had() {
        let failed = JobEvent::JobFailed(JobFailed {
            error: FailureDetail {
                code: "E".into(),
                message: "boom".into(),
                suggested_action: None,
            },
            stage: None,
        });
        let change = SnapshotChange::of(&failed);
        assert_eq!(change.state, JobState::Failed);
        assert_eq!(change.stage, None);
        assert_eq!(change.message.as_deref(), Some("boom"));
    }

    #[test]
    fn complete_and_cancel_set_what_they_say() {
        let done = SnapshotChange::of(&JobEvent::JobComplete(JobComplete {
            results: serde_json::Value::Null,
        }));
        assert_eq!(done.progress, Some(Percent::COMPLETE));
        assert_eq!(done.state, JobState::Completed);
        let cancel = SnapshotChange::of(&JobEvent::JobCancelled(JobCancelled { reason: None }));
        assert!(cancel.cancels);
        assert_eq!(
            cancel.message, None,
            "a cancel without a reason keeps the message"
        );
    }

    #[test]
    fn a_long_message_is_cut_to_fit_a_status_frame() {
        let long = "é".repeat(70_000);
        let change = SnapshotChange::of(&progress("crawl", 10.0, &long));
        let kept = change.message.unwrap();
        assert!(kept.len() <= MAX_SNAPSHOT_MESSAGE_BYTES, "{}", kept.len());
        assert!(kept.ends_with('…'));
        assert!(long.starts_with(kept.trim_end_matches('…')));
        let short = SnapshotChange::of(&progress("crawl", 10.0, "page 4"));
        assert_eq!(short.message.as_deref(), Some("page 4"));
    }
}
