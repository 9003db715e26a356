//! The service every handler runs on: the store, the settings read at start, the metrics
//! sink and the warm sender's subscriber cache, shared by all invocations of a process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::fallback_frames::FallbackFrames;
use crate::cache::SubscriberCache;
use crate::metrics::{NoMetrics, SharedSink};
use crate::protocol::JobId;
use crate::settings::Settings;
use crate::store::{Store, StoreError};

/// The jobcast service: a store, the settings, and every handler.
#[derive(Clone)]
pub struct Jobcast<S> {
    store: S,
    settings: Arc<Settings>,
    metrics: SharedSink,
    /// Who listens to which job, kept between invocations of a warm sender.
    subscribers: Arc<SubscriberCache>,
    /// The frame limit's buckets for when the store cannot answer.
    fallback_frames: Arc<FallbackFrames>,
}

impl<S: Store> Jobcast<S> {
    /// A service that emits no metric lines; see [`Jobcast::with_metrics`].
    pub fn new(store: S, settings: Settings) -> Self {
        Self {
            store,
            subscribers: Arc::new(SubscriberCache::new(settings.delivery.subscriber_cache_ttl)),
            settings: Arc::new(settings),
            metrics: Arc::new(NoMetrics),
            fallback_frames: Arc::default(),
        }
    }

    /// Sends one Embedded Metric Format line per fan-out to `sink` (stdout in Lambda).
    pub fn with_metrics(mut self, sink: SharedSink) -> Self {
        self.metrics = sink;
        self
    }

    /// The store the handlers read and write.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings the service was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// One cheap read (a job that does not exist): whether the store answers, and how fast.
    pub async fn check_store(&self) -> Result<Duration, StoreError> {
        let probe = JobId::parse("health-check").expect("a valid job id");
        let started = Instant::now();
        self.store.get_job(&probe).await?;
        Ok(started.elapsed())
    }

    /// Where metric lines go.
    pub(crate) fn metrics(&self) -> &SharedSink {
        &self.metrics
    }

    /// The warm sender's subscriber lists.
    pub(crate) fn subscribers(&self) -> &SubscriberCache {
        &self.subscribers
    }

    /// The frame buckets this process keeps for when the store cannot answer.
    pub(crate) fn fallback_frames(&self) -> &FallbackFrames {
        &self.fallback_frames
    }

    /// `from` plus `ttl`, saturating.
    pub(crate) fn expiry(&self, from: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
        from + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
    }
}
