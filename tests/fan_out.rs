//! Fan-out at real round trips: the posts in flight grow past their starting point while
//! throughput grows with them (a post that takes 20 ms caps 64 in flight at 3,200 posts a
//! second, a third of the account's quota), and the next page of subscribers is read while the
//! posts of the page before it go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use jobcast::delivery::{Delivery, DeliverySettings, Recipients, deliver};
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::protocol::{ConnectionId, JobId, UserId};
use jobcast::store::{Audience, MemoryStore};
use jobcast_tests::*;

/// Each post takes `round_trip`; the posts begun are counted in the observations, and the
/// most under way at once here.
struct RoundTrips {
    round_trip: Duration,
    seen: Arc<Observations>,
    in_flight: AtomicU64,
    peak: AtomicU64,
    delivered: AtomicU64,
}

impl ConnectionGateway for RoundTrips {
    async fn post_to_connection(&self, _: &ConnectionId, _: Bytes) -> Result<(), PostError> {
        self.seen.posts_started.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.round_trip).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.delivered.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn delete_connection(&self, _: &ConnectionId) -> Result<(), PostError> {
        Ok(())
    }
}

/// `subscribers` connections following `job`, in an observed store.
async fn followed(job: &str, subscribers: usize) -> ObservedStore<MemoryStore> {
    let store = ObservedStore::new(MemoryStore::new());
    for n in 0..subscribers {
        listening(&store, &format!("c-{n:05}"), job).await;
    }
    store
}

async fn fan_out(
    store: &ObservedStore<MemoryStore>,
    job: &str,
    settings: &DeliverySettings,
) -> (jobcast::delivery::FanOut, RoundTrips) {
    let gateway = RoundTrips {
        round_trip: Duration::from_millis(20),
        seen: store.observations(),
        in_flight: AtomicU64::new(0),
        peak: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    };
    let audience = Audience::Job(
        JobId::parse(job).unwrap(),
        1,
        Some(UserId::parse("u").unwrap()),
    );
    let delivery = Delivery::new(
        Recipients::Lookup(audience),
        Bytes::from_static(br#"{"type":"progress"}"#),
    );
    let fan_out = deliver(store, &gateway, settings, delivery).await.unwrap();
    (fan_out, gateway)
}

#[tokio::test]
async fn posts_in_flight_grow_past_the_start_while_throughput_grows() {
    let store = followed("big-job", 3_000).await;
    let settings = DeliverySettings::default();
    assert_eq!(settings.initial_concurrency, 64);
    let (fan_out, gateway) = fan_out(&store, "big-job", &settings).await;
    assert_eq!(fan_out.report.delivered, 3_000, "{:?}", fan_out.report);
    assert_eq!(gateway.delivered.load(Ordering::SeqCst), 3_000);
    let peak = gateway.peak.load(Ordering::SeqCst);
    assert!(
        peak >= 256,
        "at 20 ms a post, the limit should have doubled at least twice: peak {peak}"
    );
    assert!(peak <= settings.concurrency as u64, "peak {peak}");
}

#[tokio::test]
async fn the_ceiling_holds() {
    let store = followed("capped-job", 1_000).await;
    let settings = DeliverySettings {
        concurrency: 100,
        ..DeliverySettings::default()
    };
    let (fan_out, gateway) = fan_out(&store, "capped-job", &settings).await;
    assert_eq!(fan_out.report.delivered, 1_000);
    assert!(gateway.peak.load(Ordering::SeqCst) <= 100);
}

#[tokio::test]
async fn the_next_page_is_read_while_posts_are_under_way() {
    let store = followed("paged-job", 1_000).await;
    let seen = store.observations();
    // A lookup slower than a post: posts finish, and others begin, while it is under way.
    *seen.lookup_delay.lock().unwrap() = Duration::from_millis(30);
    let settings = DeliverySettings {
        page_size: 100,
        ..DeliverySettings::default()
    };
    let (fan_out, _) = fan_out(&store, "paged-job", &settings).await;
    assert_eq!(fan_out.report.delivered, 1_000);
    let during = seen.posts_during_lookups.lock().unwrap().clone();
    assert_eq!(during.len(), 10, "ten pages of a hundred: {during:?}");
    assert_eq!(during[0], 0, "nothing is posted before the first page");
    assert!(
        during[1..].iter().all(|&posts| posts > 0),
        "posting goes on while every later page is read: {during:?}"
    );
}
