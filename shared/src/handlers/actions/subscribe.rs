//! `subscribe`, with replay: a client that resumes from `last_seq` hears every event after it
//! exactly once and in order, even while the pipeline keeps sending.
//!
//! The handler claims the connection on the job (a replay claim, stored beside the job's seq
//! counter) before it subscribes, so any sender that appends from then on leaves that
//! connection to the replay. The replay (`replay.rs`) posts the logged events after
//! `last_seq`, then releases the claim only if the job's last seq is still the last one it
//! posted; if the job moved on, it posts the rest first and tries again. Every event is
//! therefore delivered by the replay (it was appended before the release) or by its sender
//! (after), never both and never out of order.
//!
//! The work one frame buys is bounded: one replay at a time per connection and job (a second
//! `subscribe` while one runs hears `replay_in_progress`), and at most
//! [`REPLAY_EVENTS_PER_FRAME`](crate::protocol::REPLAY_EVENTS_PER_FRAME) events per replay;
//! past that the replay pauses (`replay_paused`) and the client subscribes again for more.

use chrono::Utc;

use super::replay::{Halt, Replay, first_page};
use crate::gateway::ConnectionGateway;
use crate::handlers::access::{Caller, accessible_job};
use crate::handlers::admission::{REPLAYED_EVENTS_PER_TOKEN, charge_replay, replay_budget};
use crate::handlers::errors::ActionError;
use crate::handlers::service::Jobcast;
use crate::protocol::{REPLAY_EVENTS_PER_FRAME, Seq, ServerMessage, Subscribe, Subscribed};
use crate::store::{JobRecord, REPLAY_CLAIM_TTL, ReplayClaim, Store, Subscription};

/// Subscribes the caller and replays what it missed. Posts its own replies, in order:
/// `subscribed`, then `job_status` (no `last_seq`, or the log no longer has the events), then
/// the replayed events; answers no further reply.
pub(in crate::handlers) async fn run<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    caller: &Caller,
    Subscribe { job_id, last_seq }: Subscribe,
) -> Result<Vec<ServerMessage>, ActionError> {
    let store = service.store();
    let (user_id, job) = accessible_job(service, caller, &job_id).await?;
    if let Some(last_seq) = last_seq
        && last_seq > job.last_seq
    {
        return Err(ActionError::SeqAhead {
            job_id,
            last_seq,
            job_last_seq: job.last_seq,
        });
    }
    // Subscribing again to a job already followed is fine at the limit.
    let limit = service.settings().max_subscriptions_per_connection;
    let held = store.subscribed_jobs(&caller.connection_id, limit).await?;
    if held.len() >= limit && !held.contains(&job_id) {
        return Err(ActionError::TooManySubscriptions { limit });
    }

    // One replay at a time per connection and job, refused before this subscribe makes a claim
    // of its own: a claim listed even for a moment makes senders leave the connection to a
    // replay, and a refused subscribe would deliver nothing.
    if job.replaying.contains(&caller.connection_id) {
        tracing::info!("refused: a replay to this connection is under way");
        return Err(ActionError::ReplayInProgress(job_id));
    }
    let now = Utc::now();
    // A claim is stored as its connection and its expiry in milliseconds: jitter over ten
    // seconds keeps two subscribes of one connection in the same millisecond from making the
    // same claim (whose first release would end the other's).
    let jitter = chrono::Duration::milliseconds(rand::random_range(0..10_000));
    let claim = ReplayClaim {
        job_id: job_id.clone(),
        connection_id: caller.connection_id.clone(),
        until: service.expiry(now, REPLAY_CLAIM_TTL) + jitter,
    };
    // A resume of a few events is free; a longer replay is paid for up front, from the user's
    // allowance and the connection's frames, and posts no more than they cover.
    let budget = match last_seq {
        Some(last_seq) if job.last_seq - last_seq >= REPLAYED_EVENTS_PER_TOKEN => {
            let planned = (job.last_seq - last_seq).min(REPLAY_EVENTS_PER_FRAME);
            let (covered, user_wait) = replay_budget(service, &user_id, planned).await;
            let frames_wait = charge_replay(service, &caller.connection_id, covered).await;
            // Covered in full, the replay may also catch up with what the pipeline sends
            // meanwhile, up to a page; covered in part, it stops where the allowance does.
            let most = if covered == planned {
                REPLAY_EVENTS_PER_FRAME
            } else {
                covered
            };
            (most, user_wait.max(frames_wait))
        }
        _ => (REPLAY_EVENTS_PER_FRAME, 0),
    };
    let replay = Replay {
        service,
        gateway,
        caller,
        job_id: &job_id,
        claim: &claim,
        already_subscribed: held.contains(&job_id),
        budget,
    };
    // The claim first. An event appended after it lists the claim, so its sender skips this
    // connection; one appended before it has a seq of at most `live_after`, which its sender
    // skips too should it find the subscription. The replay covers both.
    let live_after = match store.start_replay(&claim).await {
        Ok(started) => {
            if started.concurrent {
                // Two subscribes passed the check above at once. Both replays run, each under
                // its own claim: the client sees some events twice, and drops them by seq.
                tracing::info!("two replays to this connection raced; both run");
            }
            started.live_after
        }
        // An unavailable store may have recorded the claim all the same.
        Err(err) => return replay.undo(Halt::Untold(err), None).await,
    };
    let subscription = Subscription {
        connection_id: caller.connection_id.clone(),
        job_id: job_id.clone(),
        user_id: user_id.clone(),
        expires_at: service.expiry(now, service.settings().connection_ttl),
        live_after,
    };
    match subscribe_under_claim(&replay, &subscription, job, last_seq).await {
        Ok(()) => Ok(Vec::new()),
        // Never a half-done subscribe: no claim left holding senders off, no subscription the
        // client does not know of, and a client that may think it is live is made to
        // reconnect and resume.
        Err(halt) => replay.undo(halt, Some(&subscription)).await,
    }
}

/// Everything a subscribe does while it holds its claim: the subscription, the answers, the
/// replay. Stops at the first thing that fails, saying whether the client heard anything.
async fn subscribe_under_claim<S: Store, G: ConnectionGateway>(
    replay: &Replay<'_, S, G>,
    subscription: &Subscription,
    job: JobRecord,
    last_seq: Option<Seq>,
) -> Result<(), Halt> {
    let store = replay.service.store();
    // Senders hear of it when the claim is released (in the same write), not before: until
    // then the claim keeps them off this connection.
    store
        .put_claimed_subscription(subscription, replay.claim)
        .await
        .map_err(Halt::Untold)?;
    let (after_seq, recovered, first_page) = match last_seq {
        None => (job.last_seq, true, Vec::new()),
        Some(last_seq) => first_page(replay.service, &job, last_seq)
            .await
            .map_err(Halt::Untold)?,
    };
    let subscribed = ServerMessage::Subscribed(Subscribed {
        job_id: subscription.job_id.clone(),
        after_seq,
        recovered,
    });
    replay.answer(subscribed).await?;
    if !recovered || last_seq.is_none() {
        // The snapshot read before subscribing, whose last seq is `after_seq`: anything newer
        // is still to come, as events.
        replay.answer(ServerMessage::JobStatus(job.into())).await?;
    }
    replay.run(after_seq, first_page, subscription).await
}
