//! The embedded store forgets what has expired, as DynamoDB's TTL does, so a long-running
//! jobcast-local does not grow without bound. Reads already skip expired items; this only frees
//! them, on a write now and then.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::State;
use crate::protocol::{ConnectionId, JobId};

/// Expired items are removed on a write at most this often, as DynamoDB's TTL removes them
/// (later, there); reads ignore them meanwhile.
const PRUNE_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
/// An expired job's snapshot is kept this much longer, so an id used again soon after goes on
/// counting seqs rather than start over.
const JOB_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

impl State {
    /// Removes what has expired, if it has not been done lately.
    pub(super) fn prune_now_and_then(&mut self, now: DateTime<Utc>) {
        if self.pruned_at.is_none_or(|at| now - at >= PRUNE_INTERVAL) {
            self.prune(now);
        }
    }

    /// Removes every expired item; returns how many went.
    pub(super) fn prune(&mut self, now: DateTime<Utc>) -> usize {
        self.pruned_at = Some(now);
        let before = self.item_count();
        let gone: Vec<ConnectionId> = self
            .connections
            .values()
            .filter(|connection| connection.expires_at <= now)
            .map(|connection| connection.connection_id.clone())
            .collect();
        for connection_id in &gone {
            if let Some(connection) = self.connections.remove(connection_id)
                && let Some(ids) = self.connections_of_user.get_mut(&connection.user_id)
            {
                ids.remove(connection_id);
                if ids.is_empty() {
                    self.connections_of_user.remove(&connection.user_id);
                }
            }
        }
        self.subscriptions.retain(|_, subscribers| {
            subscribers.retain(|connection_id, subscription| {
                subscription.expires_at > now && !gone.contains(connection_id)
            });
            !subscribers.is_empty()
        });
        let subscriptions = &self.subscriptions;
        self.jobs_of_connection.retain(|connection_id, jobs| {
            jobs.retain(|job_id| {
                subscriptions
                    .get(job_id)
                    .is_some_and(|subscribers| subscribers.contains_key(connection_id))
            });
            !jobs.is_empty()
        });
        let connections = &self.connections;
        self.frame_buckets
            .retain(|connection_id, _| connections.contains_key(connection_id));
        // A job's log goes whole, once its last event has expired: the log is indexed by seq
        // (event n at n - 1), so it never loses a prefix; reads skip expired events meanwhile.
        self.events
            .retain(|_, log| log.last().is_some_and(|(_, expires_at)| *expires_at > now));
        // A job goes after its log, so its seqs never start over while events of it are kept.
        let events = &self.events;
        let retired: Vec<JobId> = self
            .jobs
            .values()
            .filter(|job| job.expires_at + JOB_GRACE <= now && !events.contains_key(&job.job_id))
            .map(|job| job.job_id.clone())
            .collect();
        for job_id in &retired {
            self.jobs.remove(job_id);
            self.subscribers_versions.remove(job_id);
        }
        self.event_ids.retain(|_, record| record.expires_at > now);
        self.recent.retain(|_, recent| {
            recent.retain(|(_, until)| *until > now);
            !recent.is_empty()
        });
        self.replay_claims.retain(|_, claims| {
            claims.retain(|claim| claim.holds_at(now));
            !claims.is_empty()
        });
        // A bucket whose time has passed is full again: forgetting it changes nothing.
        let now_ms = now.timestamp_millis();
        self.user_buckets.retain(|_, tat| *tat > now_ms);
        before - self.item_count()
    }

    /// Items held, expired or not: connections, subscriptions, jobs, logged events, event ids.
    pub(super) fn item_count(&self) -> usize {
        self.connections.len()
            + self
                .subscriptions
                .values()
                .map(BTreeMap::len)
                .sum::<usize>()
            + self.jobs.len()
            + self.events.values().map(Vec::len).sum::<usize>()
            + self.event_ids.len()
    }
}
