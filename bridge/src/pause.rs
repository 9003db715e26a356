//! Waiting: the pauses between reconnections, and the bridge's stop signal. The bottom of the
//! crate's tasks, used by each of them.

use std::time::Duration;

use tokio::sync::watch;

/// Pauses between reconnections: 100 ms doubling to 5 s, with jitter, reset on success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// Sleeps the next pause.
    pub(crate) async fn pause(&mut self) {
        tokio::time::sleep(self.step()).await;
    }

    /// Sleeps the next pause; true when the bridge shut down meanwhile.
    pub(crate) async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let pause = self.step();
        let stopped = tokio::select! {
            _ = tokio::time::sleep(pause) => false,
            _ = stopping(shutdown) => true,
        };
        stopped || *shutdown.borrow()
    }

    fn step(&mut self) -> Duration {
        let pause = self.next.mul_f64(rand::random_range(0.8..1.2));
        self.next = (self.next * 2).min(Duration::from_secs(5));
        pause
    }
}

/// Resolves once the bridge is told to stop (at once if it already was).
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // Holds no borrow of the flag past its own return.
    let _ = shutdown.wait_for(|stopped| *stopped).await.map(|_| ());
}
