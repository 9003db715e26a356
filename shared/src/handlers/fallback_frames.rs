//! The frame limit when the store cannot keep it: each process keeps its own buckets, so a
//! throttled or unreachable table never turns the limit off. In Lambda every warm instance of
//! `default` counts on its own, which is looser than the shared bucket but never unlimited.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::protocol::ConnectionId;
use crate::store::{FrameCharge, FrameTake, FrameVerdict};

/// Buckets kept at most; past it the idle ones go, and if none is idle, all of them.
const MAX_BUCKETS: usize = 10_000;

/// Per-connection frame buckets held in this process.
#[derive(Debug, Default)]
pub(crate) struct FallbackFrames {
    buckets: Mutex<HashMap<ConnectionId, (i64, u64)>>,
}

impl FallbackFrames {
    /// Takes a token for `connection_id`, as the store would.
    pub(crate) fn take(&self, connection_id: &ConnectionId, take: FrameTake) -> FrameVerdict {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(connection_id) {
            // A bucket whose time has passed is full again: forgetting it changes nothing.
            buckets.retain(|_, (tat, _)| *tat > take.now_ms);
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let (tat, refused) = buckets
            .entry(connection_id.clone())
            .or_insert((i64::MIN, 0));
        match take.take(*tat) {
            Some(next) => {
                *tat = next;
                *refused = 0;
                FrameVerdict::Admitted {
                    expires_at: None,
                    user_id: None,
                }
            }
            None => {
                *refused += 1;
                FrameVerdict::Refused { in_a_row: *refused }
            }
        }
    }
}

impl FallbackFrames {
    /// Charges `connection_id`'s bucket, as the store would.
    pub(crate) fn charge(&self, connection_id: &ConnectionId, charge: FrameCharge) -> i64 {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (tat, _) = buckets
            .entry(connection_id.clone())
            .or_insert((i64::MIN, 0));
        *tat = charge.charged(*tat);
        *tat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FrameBucket;

    #[test]
    fn a_burst_then_the_rate() {
        let frames = FallbackFrames::default();
        let id = ConnectionId::parse("conn-A=").unwrap();
        let bucket = FrameBucket {
            interval_ms: 100,
            burst: 3,
        };
        let verdicts: Vec<FrameVerdict> =
            (0..5).map(|_| frames.take(&id, bucket.at(1_000))).collect();
        assert_eq!(
            verdicts,
            [
                FrameVerdict::Admitted {
                    expires_at: None,
                    user_id: None,
                },
                FrameVerdict::Admitted {
                    expires_at: None,
                    user_id: None,
                },
                FrameVerdict::Admitted {
                    expires_at: None,
                    user_id: None,
                },
                FrameVerdict::Refused { in_a_row: 1 },
                FrameVerdict::Refused { in_a_row: 2 },
            ]
        );
        assert_eq!(
            frames.take(&id, bucket.at(1_100)),
            FrameVerdict::Admitted {
                expires_at: None,
                user_id: None,
            }
        );
    }
}
