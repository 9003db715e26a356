//! A connection's allowance of client frames, kept as GCRA (a token bucket held as one
//! timestamp, its theoretical arrival time): the arithmetic both stores and the in-process
//! fallback share, so they cannot drift apart. The stores keep the timestamps.

/// A connection's allowance of client frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBucket {
    /// Milliseconds per token (1000 / rate).
    pub interval_ms: i64,
    /// Tokens that may be saved up.
    pub burst: u32,
}

impl FrameBucket {
    /// How far ahead of now the theoretical arrival time may run: `burst - 1` intervals.
    pub fn tolerance_ms(self) -> i64 {
        self.interval_ms * i64::from(self.burst.saturating_sub(1))
    }
}

impl FrameBucket {
    /// A take from this bucket at `now_ms`.
    pub fn at(self, now_ms: i64) -> FrameTake {
        FrameTake {
            bucket: self,
            now_ms,
        }
    }

    /// A charge of `tokens` to this bucket at `now_ms`.
    pub fn charge(self, now_ms: i64, tokens: u32) -> FrameCharge {
        FrameCharge {
            bucket: self,
            now_ms,
            tokens,
        }
    }
}

/// One frame's take from its connection's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTake {
    /// The connection's allowance.
    pub bucket: FrameBucket,
    /// When the frame arrived, in Unix milliseconds.
    pub now_ms: i64,
}

impl FrameTake {
    /// GCRA on a bucket kept as its theoretical arrival time `tat` (`i64::MIN` for a new one):
    /// the new time if a token is there to take, `None` if not.
    pub fn take(self, tat: i64) -> Option<i64> {
        let start = tat.max(self.now_ms);
        (start - self.now_ms <= self.bucket.tolerance_ms())
            .then(|| start.saturating_add(self.bucket.interval_ms))
    }
}

/// Tokens charged to a connection's bucket after the fact
/// ([`ConnectionStore::charge_frame_tokens`](super::ConnectionStore::charge_frame_tokens)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCharge {
    /// The connection's allowance.
    pub bucket: FrameBucket,
    /// When the charge is made, in Unix milliseconds.
    pub now_ms: i64,
    /// How many tokens.
    pub tokens: u32,
}

impl FrameCharge {
    /// How long after this charge the next frame is admitted, given the bucket's time after it.
    pub fn wait_ms(self, tat: i64) -> i64 {
        (tat - self.now_ms - self.bucket.tolerance_ms()).max(0)
    }

    /// The bucket's theoretical arrival time after the charge, from `tat` (`i64::MIN` for a new
    /// one): as many intervals later as tokens, counted from now if the bucket was full.
    pub fn charged(self, tat: i64) -> i64 {
        tat.max(self.now_ms).saturating_add(
            self.bucket
                .interval_ms
                .saturating_mul(i64::from(self.tokens)),
        )
    }
}

/// What the bucket said to one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameVerdict {
    /// A token was taken: serve the frame.
    Admitted {
        /// The connection's expiry, read by the same write (none where the store was not
        /// asked): the frame extends it only when less than half its time is left.
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// The connection's user, read by the same write (none where the store was not
        /// asked): a frame needs no other read to know who sent it.
        user_id: Option<crate::protocol::UserId>,
    },
    /// Refused; `in_a_row` counts the refusals since the last admitted frame.
    Refused {
        /// Refusals since the last admitted frame, this one included.
        in_a_row: u64,
    },
}
