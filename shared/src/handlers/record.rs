//! Recording a job event and fanning it out: what the sender does for a pipeline's event and
//! what `cancel_job` does for a client. The store gives the event its seq; the warm cache
//! names the subscribers when it still can, the store otherwise.

use bytes::Bytes;
use chrono::Utc;

use super::access::remove_other_subscribers;
use super::errors::SendError;
use super::service::Jobcast;
use crate::cache::MAX_CACHED_SUBSCRIBERS;
use crate::delivery::{Delivery, FanOut, Recipients, deliver};
use crate::gateway::ConnectionGateway;
use crate::metrics::report_fan_out;
use crate::protocol::{
    ConnectionId, CorrelationId, DeliveryReport, EventId, JobEvent, JobId, JobState,
    MAX_FRAME_BYTES, Seq, ServerFrame, ServerMessage, UserId,
};
use crate::store::{
    AppendOutcome, Appended, Audience, MAX_OWED, NewEvent, Owed, Store, StoreError,
};

/// A job event on its way to the store.
pub(super) struct NewJobEvent {
    /// The pipeline's id for the event, which makes a retry recognisable.
    pub event_id: Option<EventId>,
    /// The event.
    pub event: JobEvent,
    /// Echoed on the frame subscribers receive.
    pub correlation_id: Option<CorrelationId>,
    /// The job's owner, when the event names one.
    pub owner: Option<UserId>,
}

/// What recording a job event came to.
pub(super) enum Recorded {
    /// Recorded with `seq` (or recognised as a retry of it) and fanned out.
    Published {
        /// The event's seq.
        seq: Seq,
        /// A retry of an event already recorded.
        duplicate: bool,
        /// What the fan-out reached.
        delivery: DeliveryReport,
    },
    /// The job had finished in this state; nothing was recorded.
    Finished(JobState),
    /// The event named another owner than the job's; nothing was recorded.
    OwnedByAnother,
}

/// Records a job event (the store assigns its seq) and fans it out to the job's subscribers.
pub(super) async fn record_and_deliver<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    job_id: &JobId,
    new: NewJobEvent,
) -> Result<Recorded, SendError> {
    let NewJobEvent {
        event_id,
        event,
        correlation_id,
        owner,
    } = new;
    // Refuse an event too large to deliver before it takes a seq.
    let probe = ServerFrame::new(
        ServerMessage::job_event(job_id.clone(), Seq::MAX, event.clone()),
        correlation_id.clone(),
    );
    let size = probe.to_json().len();
    if size > MAX_FRAME_BYTES {
        tracing::warn!(size, "event refused: too large to deliver");
        return Err(SendError::PayloadTooLarge {
            size,
            limit: MAX_FRAME_BYTES,
        });
    }
    let now = Utc::now();
    let settings = service.settings();
    let outcome = service
        .store()
        .append_event(NewEvent {
            job_id: job_id.clone(),
            event_id: event_id.clone(),
            event,
            correlation_id,
            recorded_at: now,
            job_expires_at: service.expiry(now, settings.job_ttl),
            event_expires_at: service.expiry(now, settings.event_ttl),
            owner,
        })
        .await?;
    let Appended {
        event: stored,
        duplicate,
        owed,
        subscribers_version,
        replaying,
        recent,
        owner,
        owner_named,
    } = match outcome {
        AppendOutcome::Appended(appended) => appended,
        AppendOutcome::JobFinished(job) => return Ok(Recorded::Finished(job.state)),
        AppendOutcome::OwnedByAnother(_) => return Ok(Recorded::OwnedByAnother),
    };
    let seq = stored.seq;
    let mut recent = recent;
    if owner_named && let Some(owner) = &owner {
        // Named among the recent subscribers too: they must not be posted to either.
        let removed = remove_other_subscribers(service, job_id, owner).await;
        recent.retain(|id| !removed.contains(id));
    }
    if duplicate {
        tracing::info!(seq, owed = ?owed, "a retry of an event already recorded");
    }
    let frame = ServerFrame::new(
        ServerMessage::job_event(job_id.clone(), seq, stored.event),
        stored.correlation_id,
    );
    let event_type = frame.message.type_name();
    let audience = JobAudience {
        job_id,
        seq,
        owner,
        version: subscribers_version,
        replaying: &replaying,
        // A retry goes to those the lookup finds, filtered by their `live_after`; a recent
        // subscriber may have subscribed after this event, and had it from its replay.
        recent: if duplicate { Vec::new() } else { recent },
        // A retry whose first fan-out recorded who it missed goes to them alone.
        owed: if duplicate { owed.clone() } else { None },
        retry: duplicate,
    };
    // What the record says must change once those it named are reached.
    let owed_some = duplicate && matches!(owed, Some(Owed::Only(_)));
    let FanOut {
        report: delivery,
        missed,
        ..
    } = fan_out(service, gateway, audience, Bytes::from(frame.to_json())).await?;
    if let Some(event_id) = &event_id
        && let Some(owed) = owed_after(&delivery, missed, owed_some)
        && let Err(err) = service.store().note_delivery(job_id, event_id, &owed).await
    {
        // A retry then posts to every subscriber, as it would without the record.
        tracing::warn!(error = %err, "could not record who the fan-out missed");
    }
    report_fan_out(service.metrics().as_ref(), event_type, &delivery);
    tracing::info!(seq, duplicate, "event published");
    Ok(Recorded::Published {
        seq,
        duplicate,
        delivery,
    })
}

/// A fan-out that posted to at least this many connections records who it missed (nobody, most
/// often) even when it missed nobody: a retry of it is then cheap.
const RECORD_AFTER_POSTS: u64 = 100;

/// What to record of a fan-out for a retry of its event, if anything: who it missed, when it
/// missed someone (SQS hands such a record back, so the retry is certain), was large, or
/// reached some of those a record named (`owed_some`); nothing when the lookup broke off (who
/// it did not reach is not known) or it missed too many.
fn owed_after(report: &DeliveryReport, missed: Vec<ConnectionId>, owed_some: bool) -> Option<Owed> {
    let posts = report.delivered + report.gone + report.failed;
    if report.incomplete || missed.len() > MAX_OWED {
        None
    } else if !missed.is_empty() {
        Some(Owed::Only(missed))
    } else if posts >= RECORD_AFTER_POSTS || owed_some {
        Some(Owed::Nobody)
    } else {
        None
    }
}

/// Who should hear a job's event from its sender.
struct JobAudience<'a> {
    job_id: &'a JobId,
    seq: Seq,
    /// The job's owner: nobody else's subscription is served.
    owner: Option<UserId>,
    /// The job's subscription version at the append.
    version: u64,
    /// Connections whose replay delivers this event instead.
    replaying: &'a [ConnectionId],
    /// Connections that subscribed so recently that the lookup may not find them yet.
    recent: Vec<ConnectionId>,
    /// For a retry: who its first fan-out recorded as missed (nobody, or a few).
    owed: Option<Owed>,
    /// A retry of an event recorded before.
    retry: bool,
}

/// Fans event `seq` out to a job's subscribers but those replaying it, from the warm cache
/// when it still holds them at `version`, else from the store (remembering them). A
/// subscription made after an append raises the version, so a list cached for an earlier seq
/// never lacks one that a later seq should reach.
async fn fan_out<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    audience: JobAudience<'_>,
    payload: Bytes,
) -> Result<FanOut, StoreError> {
    let JobAudience {
        job_id,
        seq,
        owner,
        version,
        replaying,
        recent,
        owed,
        retry,
    } = audience;
    match owed {
        Some(Owed::Nobody) => {
            tracing::info!(seq, "every subscriber was reached before; nothing to post");
            return Ok(FanOut::default());
        }
        Some(Owed::Only(missed)) => {
            let delivery =
                Delivery::new(Recipients::Listed(missed.into()), payload).skipping(replaying);
            return deliver(
                service.store(),
                gateway,
                &service.settings().delivery,
                delivery,
            )
            .await;
        }
        None => {}
    }
    let cache = service.subscribers();
    // A retry of an earlier event neither reads nor fills the cache: its lookup leaves out the
    // subscribers live after its seq, who need the later events, and a list cached for a later
    // seq names some who had this event from their replay.
    let cached = if retry {
        None
    } else {
        cache.get(job_id, version)
    };
    let from_cache = cached.is_some();
    let recipients = match cached {
        Some(list) => Recipients::Listed(list),
        None => Recipients::Lookup(Audience::Job(job_id.clone(), seq, owner)),
    };
    let remember = if cache.is_enabled() && !from_cache && !retry {
        MAX_CACHED_SUBSCRIBERS
    } else {
        0
    };
    let recent = cache.without_gone(recent);
    let delivery = Delivery::new(recipients, payload)
        .also(recent.clone())
        .skipping(replaying)
        .remembering(remember);
    let FanOut {
        report,
        recipients,
        gone,
        missed,
    } = deliver(
        service.store(),
        gateway,
        &service.settings().delivery,
        delivery,
    )
    .await?;
    cache.note_gone(&gone);
    if report.gone > 0 {
        cache.invalidate(job_id);
    } else if let Some(mut list) = recipients {
        // The lookup may not show the recent subscribers yet: the list remembered for this
        // version names them too, so it never outlives their naming on the head.
        if !recent.is_empty() {
            let known: std::collections::HashSet<&ConnectionId> = list.iter().collect();
            let missing: Vec<ConnectionId> = recent
                .into_iter()
                .filter(|id| !known.contains(id))
                .collect();
            list.extend(missing);
        }
        cache.put(job_id.clone(), version, list);
    }
    tracing::debug!(from_cache, "subscribers resolved");
    Ok(FanOut {
        report,
        recipients: None,
        gone,
        missed,
    })
}
