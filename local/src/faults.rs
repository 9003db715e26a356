//! Fault injection on posts to connections (off by default): failures, latency and an account
//! quota, so the delivery engine's retry and back-off can be exercised without AWS.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jobcast::gateway::PostError;
use rand::Rng;

/// Which faults to inject.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The share of posts (0.0–1.0) that fail with one of `fail_statuses`.
    pub fail_rate: f64,
    /// The statuses injected failures answer with (429 or 5xx), chosen at random.
    pub fail_statuses: Vec<u16>,
    /// Added to every post before it is handled.
    pub post_latency: Duration,
    /// Posts per second allowed (a token bucket with a burst of one second's worth); more get
    /// 429, as API Gateway's account quota does. `--throttle-rps 10000` emulates the default.
    pub throttle_rps: Option<NonZeroU32>,
    /// The share of delivered posts (0.0–1.0) answered with a 500 all the same: the frame
    /// reached the socket, the poster heard a failure (in AWS: a 5xx or a timeout after
    /// delivery), and a retry delivers it again.
    pub fail_after_delivery_rate: f64,
}

impl Faults {
    /// Whether any fault is injected.
    pub fn is_active(&self) -> bool {
        self.fail_rate > 0.0
            || !self.post_latency.is_zero()
            || self.throttle_rps.is_some()
            || self.fail_after_delivery_rate > 0.0
    }
}

/// A token bucket of `rps` with a burst of half that, the ratio of AWS's account quota
/// (10,000 requests/s, 5,000 burst).
fn limiter(rps: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
    let burst = NonZeroU32::new(rps.get() / 2).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(
        Quota::per_second(rps).allow_burst(burst),
    ))
}

pub(crate) struct FaultInjector {
    faults: Faults,
    quota: std::sync::RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
}

impl FaultInjector {
    pub fn new(faults: Faults) -> Self {
        let quota = std::sync::RwLock::new(faults.throttle_rps.map(limiter));
        Self { faults, quota }
    }

    /// Changes the quota while running (None lifts it).
    pub fn set_throttle_rps(&self, rps: Option<NonZeroU32>) {
        *self.quota.write().unwrap_or_else(|e| e.into_inner()) = rps.map(limiter);
    }

    /// Runs before a post is handled: waits, then maybe refuses it as AWS would.
    pub async fn before_post(&self) -> Result<(), PostError> {
        if !self.faults.post_latency.is_zero() {
            tokio::time::sleep(self.faults.post_latency).await;
        }
        let quota = self.quota.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(quota) = quota
            && quota.check().is_err()
        {
            return Err(PostError::Throttled);
        }
        if self.faults.fail_rate > 0.0 && !self.faults.fail_statuses.is_empty() {
            let mut rng = rand::rng();
            if rng.random_bool(self.faults.fail_rate.clamp(0.0, 1.0)) {
                let status =
                    self.faults.fail_statuses[rng.random_range(0..self.faults.fail_statuses.len())];
                return Err(match status {
                    429 => PostError::Throttled,
                    status => PostError::ServerError { status },
                });
            }
        }
        Ok(())
    }

    /// Runs after a post was delivered: maybe answers it with a 500 all the same.
    pub fn after_delivery(&self) -> Result<(), PostError> {
        let rate = self.faults.fail_after_delivery_rate;
        if rate > 0.0 && rand::rng().random_bool(rate.clamp(0.0, 1.0)) {
            return Err(PostError::ServerError { status: 500 });
        }
        Ok(())
    }
}
