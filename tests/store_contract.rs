//! One contract, two adapters: the in-memory store and the DynamoDB store (on DynamoDB Local)
//! must behave the same, so neither can drift.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use futures::StreamExt;
use jobcast::protocol::{ConnectionId, EventId, JobEvent, JobId, JobState, UserId};
use jobcast::store::{
    AppendOutcome, Appended, Audience, Connection, LogPage, NewEvent, Owed, PageRequest, Removed,
    ReplayClaim, ReplayEnd, ReplayStart, Store, Subscription,
};
use serde_json::json;

fn connection_id(n: usize) -> ConnectionId {
    ConnectionId::parse(format!("conn{n:06}=")).unwrap()
}

fn job(name: &str) -> JobId {
    JobId::parse(name).unwrap()
}

fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

fn connection(n: usize, user_id: &str, ttl: Duration) -> Connection {
    Connection {
        connection_id: connection_id(n),
        user_id: user(user_id),
        connected_at: Utc::now(),
        expires_at: Utc::now() + ttl,
    }
}

fn subscription(n: usize, job_id: &str, ttl: Duration) -> Subscription {
    Subscription {
        connection_id: connection_id(n),
        job_id: job(job_id),
        user_id: user("u"),
        expires_at: Utc::now() + ttl,
        live_after: 0,
    }
}

fn event(value: serde_json::Value) -> JobEvent {
    JobEvent::from_value(value).unwrap()
}

fn progress(percent: f64) -> JobEvent {
    event(
        json!({"type": "progress_update", "stage": "crawl", "progress": percent, "message": format!("{percent}%")}),
    )
}

fn new_event(job_id: &str, event: JobEvent) -> NewEvent {
    NewEvent {
        job_id: job(job_id),
        event_id: None,
        event,
        correlation_id: None,
        recorded_at: Utc::now(),
        job_expires_at: Utc::now() + Duration::hours(1),
        event_expires_at: Utc::now() + Duration::hours(1),
        owner: None,
    }
}

async fn append<S: Store>(store: &S, new: NewEvent) -> u64 {
    appended(store, new).await.event.seq
}

async fn appended<S: Store>(store: &S, new: NewEvent) -> Appended {
    match store.append_event(new).await.unwrap() {
        AppendOutcome::Appended(appended) => appended,
        other => panic!("expected the event to be appended: {other:?}"),
    }
}

fn with_id(mut new: NewEvent, id: &str) -> NewEvent {
    new.event_id = Some(EventId::parse(id).unwrap());
    new
}

/// Every subscriber of a job, reading all pages of `page_size`.
async fn all_subscribers<S: Store>(
    store: &S,
    job_id: &str,
    page_size: usize,
) -> (Vec<ConnectionId>, usize) {
    let mut found = Vec::new();
    let mut pages = 0;
    let mut request = PageRequest::first(page_size);
    loop {
        let page = store
            .connections_of(&Audience::Job(job(job_id), u64::MAX, None), request)
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= page_size);
        found.extend(page.items);
        match page.next {
            Some(after) => {
                request = PageRequest {
                    after: Some(after),
                    limit: page_size,
                }
            }
            None => return (found, pages),
        }
    }
}

const HOUR: Duration = Duration::hours(1);

async fn connections_round_trip<S: Store>(store: S) {
    let alice = connection(1, "alice", HOUR);
    store.put_connection(&alice).await.unwrap();
    let got = store
        .get_connection(&alice.connection_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.user_id, alice.user_id);
    assert_eq!(got.expires_at.timestamp(), alice.expires_at.timestamp());
    assert_eq!(
        got.connected_at.timestamp_millis(),
        alice.connected_at.timestamp_millis()
    );
    assert_eq!(
        store.delete_connection(&alice.connection_id).await.unwrap(),
        Removed {
            user_id: Some(alice.user_id.clone()),
            subscriptions: 0
        },
        "the removal says whose connection it was"
    );
    assert!(
        store
            .get_connection(&alice.connection_id)
            .await
            .unwrap()
            .is_none()
    );
    // Deleting what is not there is not an error.
    assert_eq!(
        store.delete_connection(&alice.connection_id).await.unwrap(),
        Removed::default()
    );
}

async fn expired_items_are_invisible<S: Store>(store: S) {
    let stale = connection(1, "alice", Duration::seconds(-5));
    let fresh = connection(2, "alice", HOUR);
    store.put_connection(&stale).await.unwrap();
    store.put_connection(&fresh).await.unwrap();
    assert!(
        store
            .get_connection(&stale.connection_id)
            .await
            .unwrap()
            .is_none()
    );
    let page = store
        .connections_of(&Audience::User(user("alice")), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items, vec![fresh.connection_id.clone()]);

    store
        .put_subscription(&subscription(1, "job-x", Duration::seconds(-5)))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(2, "job-x", HOUR))
        .await
        .unwrap();
    let (subscribers, _) = all_subscribers(&store, "job-x", 10).await;
    assert_eq!(subscribers, vec![connection_id(2)]);
}

async fn subscriptions_follow_their_connection<S: Store>(store: S) {
    for n in 1..=3 {
        store
            .put_connection(&connection(n, "u", HOUR))
            .await
            .unwrap();
    }
    store
        .put_subscription(&subscription(1, "job-a", HOUR))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(2, "job-a", HOUR))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(1, "job-b", HOUR))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(3, "job-b", HOUR))
        .await
        .unwrap();
    // Subscribing twice is one subscription.
    store
        .put_subscription(&subscription(3, "job-b", HOUR))
        .await
        .unwrap();

    let (a, _) = all_subscribers(&store, "job-a", 10).await;
    assert_eq!(a, vec![connection_id(1), connection_id(2)]);
    let (b, _) = all_subscribers(&store, "job-b", 10).await;
    assert_eq!(b, vec![connection_id(1), connection_id(3)]);

    assert!(
        store
            .delete_subscription(&connection_id(3), &job("job-b"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_subscription(&connection_id(3), &job("job-b"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .delete_connection(&connection_id(1))
            .await
            .unwrap()
            .subscriptions,
        2
    );
    let (a, _) = all_subscribers(&store, "job-a", 10).await;
    assert_eq!(a, vec![connection_id(2)]);
    let (b, _) = all_subscribers(&store, "job-b", 10).await;
    assert!(b.is_empty());
    let users = store
        .connections_of(&Audience::User(user("u")), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(users.items, vec![connection_id(2), connection_id(3)]);
}

async fn fan_out_lookups_paginate_over_5000_subscribers<S: Store>(store: S) {
    futures::stream::iter(0..5000)
        .map(|n| {
            let store = store.clone();
            async move {
                store
                    .put_subscription(&subscription(n, "big-job", HOUR))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let (found, pages) = all_subscribers(&store, "big-job", 1000).await;
    assert_eq!(found.len(), 5000);
    assert_eq!(
        found.iter().collect::<BTreeSet<_>>().len(),
        5000,
        "no duplicates across pages"
    );
    assert!(pages >= 5, "read in pages of at most 1000 ({pages} pages)");
}

async fn user_connections_paginate<S: Store>(store: S) {
    for n in 0..7 {
        store
            .put_connection(&connection(n, "many-tabs", HOUR))
            .await
            .unwrap();
    }
    store
        .put_connection(&connection(99, "someone-else", HOUR))
        .await
        .unwrap();
    let mut found = Vec::new();
    let mut request = PageRequest::first(3);
    loop {
        let page = store
            .connections_of(&Audience::User(user("many-tabs")), request)
            .await
            .unwrap();
        found.extend(page.items);
        match page.next {
            Some(after) => {
                request = PageRequest {
                    after: Some(after),
                    limit: 3,
                }
            }
            None => break,
        }
    }
    assert_eq!(found, (0..7).map(connection_id).collect::<Vec<_>>());
}

/// The seqs `writers` took, appending `each` events to `job_id` at once, sorted.
async fn appended_at_once<S: Store>(writers: Vec<S>, job_id: &'static str, each: u32) -> Vec<u64> {
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(writer, store)| {
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..each {
                    let new = new_event(job_id, progress(f64::from(i) / 2.0));
                    let new = with_id(new, &format!("w{writer}-{i}"));
                    seqs.push(append(&store, new).await);
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    all
}

async fn seq_is_gapless_and_unique_under_concurrent_appends<S: Store>(store: S) {
    let writers = vec![store.clone(); 8];
    let all = appended_at_once(writers, "busy-job", 100).await;
    assert_eq!(all, (1..=800).collect::<Vec<u64>>());
    let job = store.get_job(&job("busy-job")).await.unwrap().unwrap();
    assert_eq!(job.last_seq, 800);
}

async fn events_read_back_in_order<S: Store>(store: S) {
    for i in 1..=10 {
        append(&store, new_event("log-job", progress(f64::from(i)))).await;
    }
    let events = store
        .events_after(&job("log-job"), LogPage::after(3, 4))
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    assert_eq!(events[0].event, progress(4.0));
    assert_eq!(
        store
            .events_after(&job("log-job"), LogPage::after(0, 100))
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(
        store
            .events_after(&job("log-job"), LogPage::after(10, 100))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .events_after(&job("no-such-job"), LogPage::after(0, 100))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn expired_events_are_not_read_back<S: Store>(store: S) {
    append(&store, new_event("ttl-job", progress(1.0))).await;
    let mut stale = new_event("ttl-job", progress(2.0));
    stale.event_expires_at = Utc::now() - Duration::seconds(5);
    append(&store, stale).await;
    append(&store, new_event("ttl-job", progress(3.0))).await;
    let seqs: Vec<u64> = store
        .events_after(&job("ttl-job"), LogPage::after(0, 10))
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 3]);
}

async fn the_snapshot_follows_the_events<S: Store>(store: S) {
    assert!(store.get_job(&job("snap")).await.unwrap().is_none());
    append(&store, new_event("snap", progress(40.0))).await;
    let stage_done = event(json!({"type": "stage_complete", "stage": "parse", "results": {}}));
    append(&store, new_event("snap", stage_done)).await;
    let snapshot = store.get_job(&job("snap")).await.unwrap().unwrap();
    assert_eq!(snapshot.state, JobState::Running);
    assert_eq!(snapshot.stage.unwrap().as_str(), "parse");
    assert_eq!(snapshot.progress.unwrap().value(), 40.0);
    assert_eq!(snapshot.message.as_deref(), Some("40%"));
    assert_eq!(snapshot.last_seq, 2);
    assert!(!snapshot.cancel_requested);

    append(
        &store,
        new_event(
            "snap",
            event(json!({"type": "job_cancelled", "reason": "enough"})),
        ),
    )
    .await;
    let snapshot = store.get_job(&job("snap")).await.unwrap().unwrap();
    assert_eq!(snapshot.state, JobState::Cancelled);
    assert!(snapshot.cancel_requested);
    assert_eq!(snapshot.message.as_deref(), Some("enough"));
}

async fn finished_jobs_take_no_more_events<S: Store>(store: S) {
    append(&store, new_event("done-job", progress(90.0))).await;
    append(
        &store,
        new_event(
            "done-job",
            event(json!({"type": "job_complete", "results": {"ok": true}})),
        ),
    )
    .await;
    match store
        .append_event(new_event("done-job", progress(95.0)))
        .await
        .unwrap()
    {
        AppendOutcome::JobFinished(job) => {
            assert_eq!(job.state, JobState::Completed);
            assert_eq!(job.last_seq, 2);
        }
        other => panic!("expected the job to be finished: {other:?}"),
    }
    assert_eq!(
        store
            .events_after(&job("done-job"), LogPage::after(0, 10))
            .await
            .unwrap()
            .len(),
        2,
        "nothing recorded"
    );
}

async fn an_expired_job_starts_afresh_but_keeps_counting<S: Store>(store: S) {
    let mut first = new_event(
        "reused-id",
        event(
            json!({"type": "job_failed", "stage": "fetch", "error": {"code": "E", "message": "boom"}}),
        ),
    );
    first.job_expires_at = Utc::now() - Duration::seconds(5);
    append(&store, first).await;
    assert!(
        store.get_job(&job("reused-id")).await.unwrap().is_none(),
        "expired"
    );
    let stage_done =
        event(json!({"type": "stage_complete", "stage": "fetch-again", "results": {}}));
    assert_eq!(
        append(&store, new_event("reused-id", stage_done)).await,
        2,
        "seq is never reused"
    );
    let snapshot = store.get_job(&job("reused-id")).await.unwrap().unwrap();
    assert_eq!(snapshot.state, JobState::Running);
    assert_eq!(snapshot.stage.unwrap().as_str(), "fetch-again");
    assert!(
        snapshot.message.is_none(),
        "nothing of the old run remains: {:?}",
        snapshot.message
    );
    assert!(snapshot.progress.is_none());
}

async fn touching_a_connection_extends_it_and_its_subscriptions<S: Store>(store: S) {
    store
        .put_connection(&connection(1, "u", HOUR))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(1, "job-t", HOUR))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(1, "job-u", HOUR))
        .await
        .unwrap();
    let later = Utc::now() + Duration::hours(2);
    assert!(
        store
            .touch_connection(&connection_id(1), later)
            .await
            .unwrap()
    );
    let got = store
        .get_connection(&connection_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expires_at.timestamp(), later.timestamp());
    // The subscriptions moved with it: an expiry in the past now hides both.
    assert!(
        store
            .touch_connection(&connection_id(1), Utc::now() - Duration::seconds(5))
            .await
            .unwrap()
    );
    assert!(all_subscribers(&store, "job-t", 10).await.0.is_empty());
    assert!(all_subscribers(&store, "job-u", 10).await.0.is_empty());
    assert!(
        store
            .get_connection(&connection_id(1))
            .await
            .unwrap()
            .is_none()
    );
    // A gone or expired connection is not brought back.
    assert!(
        !store
            .touch_connection(&connection_id(1), later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .touch_connection(&connection_id(2), later)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_connection(&connection_id(2))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_retry_of_any_event_is_recorded_once<S: Store>(store: S) {
    let first = appended(&store, with_id(new_event("idem", progress(10.0)), "m-1")).await;
    assert_eq!((first.event.seq, first.duplicate), (1, false));
    let retry = appended(&store, with_id(new_event("idem", progress(10.0)), "m-1")).await;
    assert_eq!((retry.event.seq, retry.duplicate), (1, true), "no new seq");
    assert_eq!(retry.event.event, progress(10.0));
    let next = appended(&store, with_id(new_event("idem", progress(20.0)), "m-2")).await;
    assert_eq!((next.event.seq, next.duplicate), (2, false));
    let plain = appended(&store, new_event("idem", progress(30.0))).await;
    assert_eq!((plain.event.seq, plain.duplicate), (3, false));
    // A late retry of an earlier event (a redelivered batch) is recognised too, and the
    // snapshot does not go back to it.
    let late = appended(&store, with_id(new_event("idem", progress(20.0)), "m-2")).await;
    assert_eq!(
        (late.event.seq, late.duplicate),
        (2, true),
        "every event id is remembered"
    );
    let earliest = appended(&store, with_id(new_event("idem", progress(10.0)), "m-1")).await;
    assert_eq!((earliest.event.seq, earliest.duplicate), (1, true));
    let snapshot = store.get_job(&job("idem")).await.unwrap().unwrap();
    assert_eq!(
        (snapshot.last_seq, snapshot.progress.map(|p| p.value())),
        (3, Some(30.0))
    );
    // Who a fan-out missed is recorded on the event's id, for its retry.
    let owed = Owed::Only(vec![connection_id(7)]);
    store
        .note_delivery(&job("idem"), &EventId::parse("m-2").unwrap(), &owed)
        .await
        .unwrap();
    let again = appended(&store, with_id(new_event("idem", progress(20.0)), "m-2")).await;
    assert_eq!((again.event.seq, again.owed), (2, Some(owed)));
    let first_again = appended(&store, with_id(new_event("idem", progress(10.0)), "m-1")).await;
    assert_eq!(first_again.owed, None, "nothing recorded for m-1");
    // The same id on another job is another event.
    let other = appended(&store, with_id(new_event("idem-2", progress(10.0)), "m-1")).await;
    assert_eq!((other.event.seq, other.duplicate), (1, false));
    // A retry of a finishing event is answered as a retry, not refused as "finished".
    let done = event(json!({"type": "job_complete", "results": {}}));
    let finish = appended(&store, with_id(new_event("idem", done.clone()), "m-9")).await;
    let again = appended(&store, with_id(new_event("idem", done), "m-9")).await;
    assert_eq!((again.event.seq, again.duplicate), (finish.event.seq, true));
    assert_eq!(
        store
            .events_after(&job("idem"), LogPage::after(0, 100))
            .await
            .unwrap()
            .len(),
        4,
        "the log holds each event once"
    );
}

async fn a_log_write_that_fails_takes_no_seq<S: Store>(store: S) {
    append(&store, new_event("holes", progress(1.0))).await;
    // An event whose log entry DynamoDB cannot write (an item is at most 400 KB; the sender
    // refuses such an event earlier, this goes to the store directly).
    // Only the log entry carries the results: the head takes the stage alone.
    let huge = event(json!({
        "type": "stage_complete", "stage": "crawl", "results": {"blob": "x".repeat(420_000)}
    }));
    let failed = store
        .append_event(with_id(new_event("holes", huge), "huge"))
        .await
        .is_err();
    append(&store, new_event("holes", progress(60.0))).await;
    let job = store.get_job(&job("holes")).await.unwrap().unwrap();
    let seqs: Vec<u64> = store
        .events_after(&job.job_id, LogPage::after(0, 100))
        .await
        .unwrap()
        .iter()
        .map(|event| event.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=job.last_seq).collect::<Vec<_>>(),
        "every seq taken is in the log"
    );
    assert_eq!(job.last_seq, if failed { 2 } else { 3 });
}

async fn subscribing_raises_the_jobs_subscription_version<S: Store>(store: S) {
    // A subscription before the job's first event must not make the job exist.
    store
        .put_subscription(&subscription(1, "versioned", HOUR))
        .await
        .unwrap();
    assert!(store.get_job(&job("versioned")).await.unwrap().is_none());
    let v1 = appended(&store, new_event("versioned", progress(1.0))).await;
    assert_eq!(v1.event.seq, 1);
    let same = appended(&store, new_event("versioned", progress(2.0))).await;
    assert_eq!(same.subscribers_version, v1.subscribers_version);
    store
        .put_subscription(&subscription(2, "versioned", HOUR))
        .await
        .unwrap();
    let v2 = appended(&store, new_event("versioned", progress(3.0))).await;
    assert!(v2.subscribers_version > v1.subscribers_version);
    assert!(
        store
            .delete_subscription(&connection_id(2), &job("versioned"))
            .await
            .unwrap()
    );
    let v3 = appended(&store, new_event("versioned", progress(4.0))).await;
    assert!(v3.subscribers_version > v2.subscribers_version);
    assert_eq!(v3.event.seq, 4);
    let snapshot = store.get_job(&job("versioned")).await.unwrap().unwrap();
    assert_eq!(snapshot.last_seq, 4);
}

/// A new subscription is named on its job's head, so the next append hands it to the sender
/// whatever the (eventually consistent) index shows; the head names a bounded number.
async fn a_new_subscriber_is_named_by_the_next_append<S: Store>(store: S) {
    append(&store, new_event("fresh", progress(1.0))).await;
    assert!(
        appended(&store, new_event("fresh", progress(2.0)))
            .await
            .recent
            .is_empty()
    );
    store
        .put_subscription(&subscription(7, "fresh", HOUR))
        .await
        .unwrap();
    let next = appended(&store, new_event("fresh", progress(3.0))).await;
    assert_eq!(next.recent, [connection_id(7)]);
    // No more than MAX_RECENT_SUBSCRIBERS at once.
    let max = jobcast::store::MAX_RECENT_SUBSCRIBERS;
    for n in 100..100 + max + 20 {
        store
            .put_subscription(&subscription(n, "fresh", HOUR))
            .await
            .unwrap();
    }
    let crowded = appended(&store, new_event("fresh", progress(4.0))).await;
    assert_eq!(crowded.recent.len(), max);
}

/// A subscription made under a replay claim is named to senders by the claim's release, not
/// before; and one removed while its replay ran is not named by the release that follows.
async fn a_claimed_subscription_is_named_by_its_release_unless_it_went<S: Store>(store: S) {
    append(&store, new_event("claimed-sub", progress(1.0))).await;
    let claim = |n: usize| ReplayClaim {
        job_id: job("claimed-sub"),
        connection_id: connection_id(n),
        until: Utc::now() + Duration::minutes(1),
    };
    let (kept, removed) = (claim(1), claim(2));
    for (n, claim) in [(1, &kept), (2, &removed)] {
        store.start_replay(claim).await.unwrap();
        store
            .put_claimed_subscription(&subscription(n, "claimed-sub", HOUR), claim)
            .await
            .unwrap();
    }
    let before = appended(&store, new_event("claimed-sub", progress(2.0))).await;
    assert!(before.recent.is_empty(), "named before the release");
    let version = before.subscribers_version;
    // The second subscription goes while its replay runs (an unsubscribe, a new owner).
    assert!(
        store
            .delete_subscription(&connection_id(2), &job("claimed-sub"))
            .await
            .unwrap()
    );
    for (n, claim) in [(1, &kept), (2, &removed)] {
        let joined = subscription(n, "claimed-sub", HOUR);
        assert_eq!(
            store.finish_replay(claim, 2, Some(&joined)).await.unwrap(),
            ReplayEnd::Live
        );
    }
    let after = appended(&store, new_event("claimed-sub", progress(3.0))).await;
    assert_eq!(after.recent, [connection_id(1)], "only the one still there");
    assert!(after.subscribers_version > version);
}

async fn a_connections_live_subscriptions_are_listed<S: Store>(store: S) {
    store
        .put_connection(&connection(1, "u", HOUR))
        .await
        .unwrap();
    store
        .put_connection(&connection(2, "u", HOUR))
        .await
        .unwrap();
    for job_id in ["list-a", "list-b", "list-c"] {
        store
            .put_subscription(&subscription(1, job_id, HOUR))
            .await
            .unwrap();
    }
    store
        .put_subscription(&subscription(1, "list-expired", -HOUR))
        .await
        .unwrap();
    store
        .put_subscription(&subscription(2, "list-other", HOUR))
        .await
        .unwrap();
    let mut jobs = store.subscribed_jobs(&connection_id(1), 10).await.unwrap();
    jobs.sort();
    assert_eq!(jobs, vec![job("list-a"), job("list-b"), job("list-c")]);
    assert_eq!(
        store
            .subscribed_jobs(&connection_id(1), 2)
            .await
            .unwrap()
            .len(),
        2,
        "no more than asked"
    );
    store
        .delete_subscription(&connection_id(1), &job("list-b"))
        .await
        .unwrap();
    assert_eq!(
        store
            .subscribed_jobs(&connection_id(1), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .subscribed_jobs(&connection_id(9), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_frame_bucket_admits_its_burst_once_under_concurrent_writers<S: Store>(store: S) {
    use jobcast::store::{FrameBucket, FrameVerdict};
    store
        .put_connection(&connection(1, "u", HOUR))
        .await
        .unwrap();
    // Five tokens at one instant, taken by 40 writers at once (one Lambda each, in AWS): the
    // conditional writes let exactly five through, whatever the interleaving.
    let bucket = FrameBucket {
        interval_ms: 1000,
        burst: 5,
    };
    let at = 1_800_000_000_000;
    let verdicts: Vec<_> = futures::stream::iter(0..40)
        .map(|_| {
            let store = store.clone();
            async move {
                // A lost race is retried by the store or reported; count only verdicts.
                store
                    .take_frame_token(&connection_id(1), bucket.at(at))
                    .await
            }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    let admitted = verdicts
        .iter()
        .filter(|verdict| matches!(verdict, Ok(Some(FrameVerdict::Admitted { .. }))))
        .count();
    assert_eq!(admitted, 5, "{verdicts:?}");
}

async fn the_frame_bucket_refills_at_its_rate_and_holds_its_burst<S: Store>(store: S) {
    use jobcast::store::{FrameBucket, FrameVerdict};
    let (first, second) = (connection(1, "u", HOUR), connection(2, "u", HOUR));
    store.put_connection(&first).await.unwrap();
    store.put_connection(&second).await.unwrap();
    store
        .put_connection(&connection(3, "u", -HOUR))
        .await
        .unwrap();
    // One token a second, three at once; time is given, so the test does not race the clock.
    let bucket = FrameBucket {
        interval_ms: 1000,
        burst: 3,
    };
    let t0 = 1_800_000_000_000;
    // What a frame hears, with the connection's expiry (in seconds: what both stores keep)
    // when it is admitted: the frame's keep-alive needs no read of its own.
    #[derive(Debug, PartialEq)]
    enum Heard {
        Admitted(i64),
        Refused { in_a_row: u64 },
    }
    use Heard::*;
    let take = |n: usize, at: i64| {
        let store = store.clone();
        async move {
            let verdict = store
                .take_frame_token(&connection_id(n), bucket.at(at))
                .await
                .unwrap()?;
            Some(match verdict {
                FrameVerdict::Admitted {
                    expires_at,
                    user_id,
                } => {
                    assert_eq!(
                        user_id.expect("the user comes with the token").as_str(),
                        "u",
                        "the connection's user"
                    );
                    Admitted(
                        expires_at
                            .expect("the expiry comes with the token")
                            .timestamp(),
                    )
                }
                FrameVerdict::Refused { in_a_row } => Refused { in_a_row },
            })
        }
    };
    let (first, second) = (first.expires_at.timestamp(), second.expires_at.timestamp());
    for _ in 0..3 {
        assert_eq!(take(1, t0).await, Some(Admitted(first)), "a full bucket");
    }
    assert_eq!(take(1, t0).await, Some(Refused { in_a_row: 1 }));
    assert_eq!(take(1, t0 + 10).await, Some(Refused { in_a_row: 2 }));
    assert_eq!(take(2, t0).await, Some(Admitted(second)), "per connection");
    // A second later, one token is back, and the refusals start over.
    assert_eq!(take(1, t0 + 1000).await, Some(Admitted(first)));
    assert_eq!(take(1, t0 + 1000).await, Some(Refused { in_a_row: 1 }));
    // Idle long enough, the bucket is full again, but never fuller than its burst.
    for _ in 0..3 {
        assert_eq!(take(1, t0 + 60_000).await, Some(Admitted(first)));
    }
    assert_eq!(take(1, t0 + 60_000).await, Some(Refused { in_a_row: 1 }));
    assert_eq!(take(3, t0).await, None, "expired");
    assert_eq!(take(9, t0).await, None, "unknown");
    // The bucket rides on the connection item: it still reads back whole.
    assert!(
        store
            .get_connection(&connection_id(1))
            .await
            .unwrap()
            .is_some()
    );
    store.delete_connection(&connection_id(1)).await.unwrap();
    assert_eq!(take(1, t0 + 120_000).await, None, "deleted");
}

async fn a_charge_puts_the_bucket_in_debt_and_the_users_bucket_is_shared<S: Store>(store: S) {
    use jobcast::store::{FrameBucket, FrameVerdict::*};
    store
        .put_connection(&connection(1, "u", HOUR))
        .await
        .unwrap();
    let bucket = FrameBucket {
        interval_ms: 100,
        burst: 20,
    };
    let t0 = 1_800_000_000_000;
    // A full bucket charged 30 tokens owes 10 beyond its burst: frames wait 1.1 s.
    let tat = store
        .charge_frame_tokens(&connection_id(1), bucket.charge(t0, 30))
        .await
        .unwrap()
        .expect("a known connection");
    assert_eq!(tat, t0 + 3_000);
    assert_eq!(bucket.charge(t0, 30).wait_ms(tat), 1_100);
    let first = connection_id(1);
    let take = |at: i64| store.take_frame_token(&first, bucket.at(at));
    assert_eq!(
        take(t0 + 1_000).await.unwrap(),
        Some(Refused { in_a_row: 1 })
    );
    assert!(matches!(
        take(t0 + 1_100).await.unwrap(),
        Some(Admitted { .. })
    ));
    // Charged again while in debt: from its time, not from now.
    let again = store
        .charge_frame_tokens(&connection_id(1), bucket.charge(t0 + 1_100, 5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, t0 + 3_100 + 500);
    assert_eq!(
        store
            .charge_frame_tokens(&connection_id(9), bucket.charge(t0, 1))
            .await
            .unwrap(),
        None,
        "an unknown connection has no bucket"
    );
    // A user's bucket: made by its first charge, read with a charge of nothing, shared.
    let user_bucket = FrameBucket {
        interval_ms: 50,
        burst: 80,
    };
    let first = store
        .charge_user_tokens(&user("replayer"), user_bucket.charge(t0, 40))
        .await
        .unwrap();
    assert_eq!(first, t0 + 2_000);
    let read = store
        .charge_user_tokens(&user("replayer"), user_bucket.charge(t0 + 500, 0))
        .await
        .unwrap();
    assert_eq!(read, first, "a charge of nothing only reads");
    let other = store
        .charge_user_tokens(&user("someone-else"), user_bucket.charge(t0, 0))
        .await
        .unwrap();
    assert_eq!(other, t0, "another user's bucket is full");
}

fn registration(job_id: &str, owner: Option<&str>) -> jobcast::store::NewJob {
    jobcast::store::NewJob {
        job_id: job(job_id),
        owner: owner.map(user),
        registered_at: Utc::now(),
        expires_at: Utc::now() + Duration::hours(1),
    }
}

async fn a_registered_job_is_pending_with_its_owner<S: Store>(store: S) {
    use jobcast::store::RegisterOutcome;
    let registered = match store
        .register_job(registration("reg-1", Some("ana")))
        .await
        .unwrap()
    {
        RegisterOutcome::Registered(job) => job,
        other => panic!("{other:?}"),
    };
    assert_eq!(registered.state, JobState::Pending);
    assert_eq!(registered.owner, Some(user("ana")));
    assert_eq!(registered.last_seq, 0);
    let read = store
        .get_job(&job("reg-1"))
        .await
        .unwrap()
        .expect("a pending job reads back");
    assert_eq!(read.state, JobState::Pending);
    assert_eq!(read.owner, Some(user("ana")));

    // Registering again, by anyone, changes nothing and shows the job as it is.
    match store
        .register_job(registration("reg-1", Some("bo")))
        .await
        .unwrap()
    {
        RegisterOutcome::Exists(job) => assert_eq!(job.owner, Some(user("ana"))),
        other => panic!("{other:?}"),
    }
    // The first event runs it; the owner stays, and the seq starts at 1.
    let seq = append(&store, new_event("reg-1", progress(5.0))).await;
    assert_eq!(seq, 1);
    let running = store.get_job(&job("reg-1")).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.owner, Some(user("ana")));
    // A job may be registered without an owner.
    match store
        .register_job(registration("reg-2", None))
        .await
        .unwrap()
    {
        RegisterOutcome::Registered(job) => assert_eq!(job.owner, None),
        other => panic!("{other:?}"),
    }
}

async fn the_first_event_naming_a_user_makes_it_the_owner<S: Store>(store: S) {
    let mut first = new_event("own-1", progress(1.0));
    first.owner = Some(user("ana"));
    append(&store, first).await;
    assert_eq!(
        store.get_job(&job("own-1")).await.unwrap().unwrap().owner,
        Some(user("ana"))
    );
    // Later events may leave the owner out, or name the same one.
    append(&store, new_event("own-1", progress(2.0))).await;
    let mut same = new_event("own-1", progress(3.0));
    same.owner = Some(user("ana"));
    assert_eq!(append(&store, same).await, 3);
    // Another owner is refused and nothing is recorded.
    let mut other = new_event("own-1", progress(4.0));
    other.owner = Some(user("bo"));
    match store.append_event(other).await.unwrap() {
        AppendOutcome::OwnedByAnother(job) => assert_eq!(job.owner, Some(user("ana"))),
        unexpected => panic!("{unexpected:?}"),
    }
    let job_now = store.get_job(&job("own-1")).await.unwrap().unwrap();
    assert_eq!(job_now.last_seq, 3);
    assert_eq!(job_now.owner, Some(user("ana")));
    // A job without an owner takes the first one named.
    append(&store, new_event("own-2", progress(1.0))).await;
    let mut claim = new_event("own-2", progress(2.0));
    claim.owner = Some(user("bo"));
    append(&store, claim).await;
    assert_eq!(
        store.get_job(&job("own-2")).await.unwrap().unwrap().owner,
        Some(user("bo"))
    );
}

/// A replay claim lists its connection on every append until it is released at the job's
/// last seq, or lapses; a release behind the job says how far the job has gone.
async fn a_replay_claim_holds_senders_off_until_released_at_the_last_seq<S: Store>(store: S) {
    append(&store, new_event("claimed", progress(1.0))).await;
    let claim = ReplayClaim {
        job_id: job("claimed"),
        connection_id: connection_id(1),
        until: Utc::now() + Duration::minutes(1),
    };
    let lapsed = ReplayClaim {
        job_id: job("claimed"),
        connection_id: connection_id(2),
        until: Utc::now() - Duration::seconds(1),
    };
    let started = store.start_replay(&claim).await.unwrap();
    assert_eq!(
        started,
        ReplayStart {
            live_after: 1,
            concurrent: false
        }
    );
    store.start_replay(&lapsed).await.unwrap();
    // The same connection claiming again while its first claim holds: a replay under way.
    let again = ReplayClaim {
        until: claim.until + Duration::seconds(1),
        ..claim.clone()
    };
    assert!(store.start_replay(&again).await.unwrap().concurrent);
    store.abandon_replay(&again, None).await.unwrap();
    // Another connection's claim, or one that lapsed, is no replay of this one's.
    let other = ReplayClaim {
        connection_id: connection_id(3),
        ..claim.clone()
    };
    assert!(!store.start_replay(&other).await.unwrap().concurrent);
    store.abandon_replay(&other, None).await.unwrap();
    let after_lapse = ReplayClaim {
        until: Utc::now() + Duration::minutes(1),
        ..lapsed.clone()
    };
    assert!(!store.start_replay(&after_lapse).await.unwrap().concurrent);
    store.abandon_replay(&after_lapse, None).await.unwrap();
    let during = appended(&store, new_event("claimed", progress(2.0))).await;
    assert_eq!(during.event.seq, 2);
    assert_eq!(
        during.replaying,
        vec![connection_id(1)],
        "a lapsed claim holds nobody off"
    );
    assert_eq!(
        store.finish_replay(&claim, 1, None).await.unwrap(),
        ReplayEnd::Behind { last_seq: 2 },
        "seq 2 came after the replay read the log"
    );
    let still = appended(&store, new_event("claimed", progress(3.0))).await;
    assert_eq!(still.replaying, vec![connection_id(1)]);
    assert_eq!(
        store.finish_replay(&claim, 3, None).await.unwrap(),
        ReplayEnd::Live
    );
    let after = appended(&store, new_event("claimed", progress(4.0))).await;
    assert!(after.replaying.is_empty(), "{:?}", after.replaying);
}

/// A subscription made when the job stood at seq 5 hears the sender's events from seq 6 on;
/// earlier ones reach it through its replay.
async fn a_subscription_hears_only_events_after_its_live_after<S: Store>(store: S) {
    store
        .put_subscription(&subscription(1, "late", Duration::hours(1)))
        .await
        .unwrap();
    let mut late = subscription(2, "late", Duration::hours(1));
    late.live_after = 5;
    store.put_subscription(&late).await.unwrap();
    let listed = |seq| {
        let store = store.clone();
        async move {
            store
                .connections_of(
                    &Audience::Job(job("late"), seq, None),
                    PageRequest::first(10),
                )
                .await
                .unwrap()
                .items
        }
    };
    assert_eq!(listed(5).await, vec![connection_id(1)]);
    assert_eq!(listed(6).await, vec![connection_id(1), connection_id(2)]);
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(jobcast::store::MemoryStore::new()).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(jobcast_tests::dynamo_store().await).await;
                }
            )*
        }
    };
}

contract!(
    connections_round_trip,
    expired_items_are_invisible,
    subscriptions_follow_their_connection,
    fan_out_lookups_paginate_over_5000_subscribers,
    user_connections_paginate,
    seq_is_gapless_and_unique_under_concurrent_appends,
    events_read_back_in_order,
    expired_events_are_not_read_back,
    the_snapshot_follows_the_events,
    finished_jobs_take_no_more_events,
    an_expired_job_starts_afresh_but_keeps_counting,
    touching_a_connection_extends_it_and_its_subscriptions,
    a_retry_of_any_event_is_recorded_once,
    a_log_write_that_fails_takes_no_seq,
    subscribing_raises_the_jobs_subscription_version,
    a_new_subscriber_is_named_by_the_next_append,
    a_claimed_subscription_is_named_by_its_release_unless_it_went,
    a_registered_job_is_pending_with_its_owner,
    the_first_event_naming_a_user_makes_it_the_owner,
    a_connections_live_subscriptions_are_listed,
    the_frame_bucket_refills_at_its_rate_and_holds_its_burst,
    the_frame_bucket_admits_its_burst_once_under_concurrent_writers,
    a_charge_puts_the_bucket_in_debt_and_the_users_bucket_is_shared,
    a_replay_claim_holds_senders_off_until_released_at_the_last_seq,
    a_subscription_hears_only_events_after_its_live_after,
);

/// A missing table is a configuration error, typed as such.
#[tokio::test]
async fn a_missing_table_is_not_found() {
    use jobcast::store::{
        ConnectionStore, DynamoStore, JobStore, StoreError, dynamodb::schema::TableNames,
    };
    let endpoint = std::env::var("JOBCAST_DYNAMODB_ENDPOINT")
        .expect("JOBCAST_DYNAMODB_ENDPOINT (scripts/test.sh sets it)");
    let store = DynamoStore::new(
        &jobcast_tests::sdk_config(&endpoint).await,
        TableNames {
            connections: "no-such-connections".into(),
            jobs: "no-such-jobs".into(),
        },
    );
    let err = store.get_connection(&connection_id(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store
        .append_event(new_event("j", progress(1.0)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// Senders in several processes (Lambda instances) appending to one job at once: their
/// transactions race, and every seq is still taken once, with its log entry.
#[tokio::test]
async fn writers_in_several_processes_take_every_seq_once_on_dynamodb() {
    use jobcast::store::{DynamoStore, JobStore};
    let first = jobcast_tests::dynamo_store().await;
    let endpoint = std::env::var("JOBCAST_DYNAMODB_ENDPOINT").unwrap();
    let sdk = jobcast_tests::sdk_config(&endpoint).await;
    // A store of its own for each, as another process would have: no shared turns.
    let writers = (0..4)
        .map(|_| DynamoStore::new(&sdk, first.tables().clone()))
        .collect();
    let all = appended_at_once(writers, "raced", 25).await;
    assert_eq!(all, (1..=100).collect::<Vec<u64>>());
    let logged: Vec<u64> = first
        .events_after(&job("raced"), LogPage::after(0, 200))
        .await
        .unwrap()
        .iter()
        .map(|event| event.seq)
        .collect();
    assert_eq!(logged, (1..=100).collect::<Vec<u64>>());
}
