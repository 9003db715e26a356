//! A warm sender's memory of who listens to which job, so a burst of progress events for one
//! job reads its subscribers once instead of once per event.
//!
//! An entry is reused only while the job's subscription version (returned by every append)
//! is the one it was taken at: a new subscriber raises the version, so it can never be
//! missed. The TTL bounds the other staleness (subscriptions that expired without an
//! unsubscribe), and a gone connection drops the entry at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::{ConnectionId, JobId};

/// Jobs remembered at most; beyond that the oldest entry makes room.
const MAX_JOBS: usize = 1_024;
/// Subscribers per job remembered at most; a bigger audience is always looked up.
pub const MAX_CACHED_SUBSCRIBERS: usize = 20_000;
/// Connection ids remembered at most, over every job (a few MB): a sender with 512 MB must not
/// spend it on a cache of 1,024 jobs × 20,000 subscribers. Beyond it, expired entries go, then
/// the oldest.
pub const MAX_CACHED_IDS: usize = 100_000;

/// A warm sender's subscriber lists, one per job, each good for the subscription version it was
/// taken at and for at most a TTL.
#[derive(Debug)]
pub struct SubscriberCache {
    ttl: Duration,
    entries: Mutex<HashMap<JobId, Entry>>,
    /// Connections this sender found closed, and when: a job's head may still name them as
    /// recent subscribers for a few seconds, and posting to them again would only answer 410.
    gone: Mutex<HashMap<ConnectionId, Instant>>,
}

/// Connections remembered as closed at most; beyond that the list starts afresh.
const MAX_GONE: usize = 10_000;
/// How long a closed connection is remembered: longer than a head names a recent subscriber.
const GONE_MEMORY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    version: u64,
    taken_at: Instant,
    connections: Arc<[ConnectionId]>,
}

impl SubscriberCache {
    /// A cache whose entries live `ttl` (zero turns it off).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            gone: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers connections found closed.
    pub fn note_gone(&self, connections: &[ConnectionId]) {
        if connections.is_empty() {
            return;
        }
        let mut gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        if gone.len() + connections.len() > MAX_GONE {
            gone.retain(|_, at| at.elapsed() < GONE_MEMORY);
            if gone.len() + connections.len() > MAX_GONE {
                gone.clear();
            }
        }
        let now = Instant::now();
        gone.extend(connections.iter().map(|id| (id.clone(), now)));
    }

    /// `connections` without those this sender found closed lately.
    pub fn without_gone(&self, mut connections: Vec<ConnectionId>) -> Vec<ConnectionId> {
        let gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        if !gone.is_empty() {
            connections.retain(|id| gone.get(id).is_none_or(|at| at.elapsed() >= GONE_MEMORY));
        }
        connections
    }

    /// Whether the cache is on (its TTL is not zero).
    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Entry>> {
        // A poisoned map of plain values is still a usable cache.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job's subscribers if they were remembered at `version` less than a TTL ago.
    pub fn get(&self, job_id: &JobId, version: u64) -> Option<Arc<[ConnectionId]>> {
        if !self.is_enabled() {
            return None;
        }
        let mut entries = self.entries();
        match entries.get(job_id) {
            Some(entry) if entry.version == version && entry.taken_at.elapsed() < self.ttl => {
                Some(entry.connections.clone())
            }
            Some(_) => {
                entries.remove(job_id);
                None
            }
            None => None,
        }
    }

    /// Remembers a job's subscribers as of `version`; does nothing when the cache is off or the
    /// list is longer than `MAX_CACHED_SUBSCRIBERS`. A full cache drops expired entries, then the
    /// oldest.
    pub fn put(&self, job_id: JobId, version: u64, connections: Vec<ConnectionId>) {
        if !self.is_enabled() || connections.len() > MAX_CACHED_SUBSCRIBERS {
            return;
        }
        let mut entries = self.entries();
        entries.remove(&job_id);
        let held = |entries: &HashMap<JobId, Entry>| -> usize {
            entries.values().map(|entry| entry.connections.len()).sum()
        };
        let full = |entries: &HashMap<JobId, Entry>| {
            entries.len() >= MAX_JOBS || held(entries) + connections.len() > MAX_CACHED_IDS
        };
        if full(&entries) {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.taken_at.elapsed() < ttl);
        }
        while full(&entries) {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, entry)| entry.taken_at)
                .map(|(job_id, _)| job_id.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(
            job_id,
            Entry {
                version,
                taken_at: Instant::now(),
                connections: connections.into(),
            },
        );
    }

    /// Forgets a job's subscribers (one of them was gone).
    pub fn invalidate(&self, job_id: &JobId) {
        self.entries().remove(job_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<ConnectionId> {
        (0..n)
            .map(|i| ConnectionId::parse(format!("c{i}")).unwrap())
            .collect()
    }

    fn job(name: &str) -> JobId {
        JobId::parse(name).unwrap()
    }

    #[test]
    fn an_entry_serves_only_its_own_version() {
        let cache = SubscriberCache::new(Duration::from_secs(60));
        cache.put(job("a"), 3, ids(2));
        assert_eq!(cache.get(&job("a"), 3).unwrap().len(), 2);
        assert!(cache.get(&job("a"), 4).is_none(), "a subscriber was added");
        assert!(
            cache.get(&job("a"), 3).is_none(),
            "the stale entry was dropped"
        );
    }

    #[test]
    fn entries_expire_and_can_be_invalidated() {
        let cache = SubscriberCache::new(Duration::from_millis(30));
        cache.put(job("a"), 1, ids(1));
        cache.put(job("b"), 1, ids(1));
        cache.invalidate(&job("b"));
        assert!(cache.get(&job("b"), 1).is_none());
        assert!(cache.get(&job("a"), 1).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get(&job("a"), 1).is_none());
    }

    #[test]
    fn a_zero_ttl_turns_it_off_and_huge_audiences_are_not_kept() {
        let off = SubscriberCache::new(Duration::ZERO);
        off.put(job("a"), 1, ids(1));
        assert!(off.get(&job("a"), 1).is_none());
        let cache = SubscriberCache::new(Duration::from_secs(60));
        cache.put(job("big"), 1, ids(MAX_CACHED_SUBSCRIBERS + 1));
        assert!(cache.get(&job("big"), 1).is_none());
    }

    #[test]
    fn a_full_cache_makes_room_by_dropping_the_oldest() {
        let cache = SubscriberCache::new(Duration::from_secs(60));
        for i in 0..MAX_JOBS {
            cache.put(job(&format!("j{i}")), 1, ids(1));
        }
        cache.put(job("newest"), 1, ids(1));
        assert!(cache.get(&job("newest"), 1).is_some());
        assert!(cache.get(&job("j0"), 1).is_none(), "the oldest made room");
        assert!(cache.get(&job("j1"), 1).is_some());
    }

    #[test]
    fn the_whole_cache_holds_a_bounded_number_of_ids() {
        let cache = SubscriberCache::new(Duration::from_secs(60));
        for job in 0..40 {
            let job_id = JobId::parse(format!("big-{job}")).unwrap();
            cache.put(job_id, 1, ids(MAX_CACHED_SUBSCRIBERS));
        }
        let entries = cache.entries();
        let held: usize = entries.values().map(|entry| entry.connections.len()).sum();
        assert!(held <= MAX_CACHED_IDS, "{held}");
        assert!(
            entries.contains_key(&JobId::parse("big-39").unwrap()),
            "the newest stays"
        );
    }
}
