//! What jobcast costs to run in AWS.
//!
//! Two halves. [`Operation::ceiling`] is the DynamoDB work each operation may do, in requests
//! and capacity units: `tests/costs.rs` counts every request on the wire between the store and
//! DynamoDB Local and fails when an operation goes over, and `bench/costs.sh` records the
//! measured numbers. [`bill`] turns those ceilings, with a traffic shape, into a monthly bill
//! at list prices ([`Prices`]), beside the same traffic served by the seed design (a Scan and
//! one post after another) and by a hosted service. `jobcast cost` prints it.

mod bill;

pub use bill::{Assumptions, Bill, Line, Prices, Traffic, bill, hosted_bill, seed_bill};

use std::fmt;

/// Subscribers read per page of a fan-out's lookup (the sender's default page size).
pub const PAGE_SIZE: usize = crate::delivery::PAGE_SIZE;

/// Something a client or a pipeline does that the store pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A client connects (`$connect`).
    Connect,
    /// A connection's first `subscribe` to a job, no replay.
    Subscribe,
    /// A `subscribe` with `last_seq` that replays this many events.
    SubscribeWithReplay {
        /// Events replayed.
        events: usize,
    },
    /// Any client frame (a keep-alive `ping`) on a connection following this many jobs.
    Frame {
        /// The connection's subscriptions.
        subscriptions: usize,
    },
    /// One event of a job to this many subscribers.
    Event {
        /// Subscribers of the job.
        subscribers: usize,
        /// Whether the sender already holds the job's subscriber list (a warm sender, a second
        /// event within `SUBSCRIBER_CACHE_TTL_MS`).
        warm: bool,
        /// Subscribers who joined in the last few seconds, named on the job's head (at most
        /// 200): they make the head, read twice and rewritten by every event, larger.
        recent: usize,
    },
    /// A client frame that finds less than half of `CONNECTION_TTL_SECONDS` left: it extends
    /// the connection and every subscription (about twice an hour per connection with the
    /// default hour).
    Extend {
        /// The connection's subscriptions.
        subscriptions: usize,
    },
    /// A client disconnects (`$disconnect`) with this many subscriptions.
    Disconnect {
        /// The connection's subscriptions.
        subscriptions: usize,
    },
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect => write!(f, "connect"),
            Self::Subscribe => write!(f, "first subscribe"),
            Self::SubscribeWithReplay { events } => write!(f, "subscribe, replaying {events}"),
            Self::Frame { subscriptions } => {
                write!(f, "a client frame (ping), {subscriptions} subscriptions")
            }
            Self::Event {
                subscribers,
                warm,
                recent,
            } => write!(
                f,
                "an event to {subscribers} subscriber{} ({} sender, {recent} just joined)",
                if *subscribers == 1 { "" } else { "s" },
                if *warm { "warm" } else { "cold" }
            ),
            Self::Extend { subscriptions } => write!(
                f,
                "a frame that extends the connection, {subscriptions} subscriptions"
            ),
            Self::Disconnect { subscriptions } => {
                write!(f, "disconnect, {subscriptions} subscriptions")
            }
        }
    }
}

/// DynamoDB work: requests and capacity units (on demand: request units).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreCost {
    /// Requests.
    pub calls: f64,
    /// Read units (4 KB strongly consistent, 8 KB eventually consistent each).
    pub read_units: f64,
    /// Write units (1 KB each; twice that in a transaction).
    pub write_units: f64,
}

impl StoreCost {
    const fn new(calls: f64, read_units: f64, write_units: f64) -> Self {
        Self {
            calls,
            read_units,
            write_units,
        }
    }

    /// `self` `times` times over.
    pub fn times(self, times: f64) -> Self {
        Self::new(
            self.calls * times,
            self.read_units * times,
            self.write_units * times,
        )
    }

    /// Whether `measured` stays within `self` on every count.
    pub fn holds(&self, measured: &StoreCost) -> bool {
        measured.calls <= self.calls
            && measured.read_units <= self.read_units + 1e-9
            && measured.write_units <= self.write_units + 1e-9
    }
}

impl Operation {
    /// The most DynamoDB work this operation does. Measured on the wire by `tests/costs.rs`
    /// (which fails past these) and recorded in `bench/RESULTS.md`. Write units count the
    /// indexes' writes too, as DynamoDB bills them: a connection or subscription item written
    /// or deleted is two (the table's and its index's).
    pub fn ceiling(&self) -> StoreCost {
        match *self {
            // The connection's item (and its by_user index entry).
            Self::Connect => StoreCost::new(1.0, 0.0, 2.0),
            // The frame's token (which reads the user back), the job, the connection's
            // subscriptions, the replay claim, the subscription, the claim's release (which
            // announces the subscription to senders). A busy job's head is tidied by at most one
            // subscribe in eight: a seventh request, not counted here.
            Self::Subscribe => StoreCost::new(6.0, 1.0, 5.0),
            Self::SubscribeWithReplay { events } => {
                // Besides the subscribe: the replay's charge (the user's allowance and the
                // connection's frames), and the log read a page of REPLAY_PAGE events at a time,
                // events of a few hundred bytes as pipelines send them (a page of larger events
                // reads more units than this).
                let pages = events.div_ceil(REPLAY_PAGE).max(1) as f64;
                StoreCost::new(8.0 + pages, 1.0 + 4.0 * pages, 7.0)
            }
            // One write: the frame's token, which reads the connection's expiry back.
            Self::Frame { .. } => StoreCost::new(1.0, 0.0, 1.0),
            Self::Extend { subscriptions } => {
                let items = (subscriptions + 1) as f64;
                // The token, the connection and its subscriptions read (a GetItem, a Query),
                // then each rewritten (with its index entry).
                StoreCost::new(
                    3.0 + items,
                    1.0 + (items * 200.0 / 4096.0).ceil() * 0.5,
                    1.0 + 2.0 * items,
                )
            }
            Self::Event {
                subscribers,
                warm,
                recent,
            } => {
                // The job's head read before the append and after it (consistent), the append
                // (one transaction of the head and the log entry), and unless warm the lookup:
                // full pages and a last one. The head is under 4 KB, plus about 35 bytes for
                // each recent subscriber it names (at most MAX_RECENT, some 7 KB).
                let pages = if warm {
                    0.0
                } else {
                    (subscribers / PAGE_SIZE + 1) as f64
                };
                let named = recent.min(MAX_RECENT) as f64;
                let head_kb = 1.0 + named * 35.0 / 1024.0;
                StoreCost::new(
                    3.0 + pages,
                    2.0 * (head_kb / 4.0).ceil() + LOOKUP_PAGE_READ_UNITS * pages,
                    2.0 * (head_kb.ceil() + 1.0),
                )
            }
            Self::Disconnect { subscriptions } => {
                let items = subscriptions + 1;
                // The connection's items found (one Query, and one more for the next page), then
                // deleted 25 to a batch, each with its index entry.
                StoreCost::new(
                    2.0 + items.div_ceil(25) as f64,
                    1.0 + (items as f64 * 200.0 / 4096.0).ceil() * 0.5,
                    2.0 * items as f64,
                )
            }
        }
    }
}

/// Recent subscribers a job's head names at most (`jobcast::store::MAX_RECENT_SUBSCRIBERS`).
const MAX_RECENT: usize = crate::store::MAX_RECENT_SUBSCRIBERS;

/// Events read per page of a replay.
const REPLAY_PAGE: usize = crate::store::REPLAY_PAGE;
/// Read units per lookup page of [`PAGE_SIZE`] subscribers (eventually consistent, on the
/// `by_job` index).
const LOOKUP_PAGE_READ_UNITS: f64 = 7.0;
