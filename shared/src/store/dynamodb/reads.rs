//! What the store's Queries have read: the counters behind benchmarks and read metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::types::ConsumedCapacity;

/// What the store's Queries have read since it was built: for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct ReadCounters {
    queries: AtomicU64,
    items_scanned: AtomicU64,
    /// Consumed read capacity, in thousandths of a unit.
    read_capacity_milli: AtomicU64,
}

/// A snapshot of [`ReadCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReadStats {
    /// Queries made.
    pub queries: u64,
    /// Items the Queries scanned.
    pub items_scanned: u64,
    /// Read capacity the Queries consumed, in units.
    pub read_capacity_units: f64,
}

impl ReadCounters {
    pub(super) fn record(&self, scanned: i32, capacity: Option<&ConsumedCapacity>) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.items_scanned
            .fetch_add(u64::try_from(scanned).unwrap_or(0), Ordering::Relaxed);
        let units = capacity.and_then(|c| c.capacity_units()).unwrap_or(0.0);
        self.read_capacity_milli
            .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> ReadStats {
        ReadStats {
            queries: self.queries.load(Ordering::Relaxed),
            items_scanned: self.items_scanned.load(Ordering::Relaxed),
            read_capacity_units: self.read_capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}
