//! What every client frame costs its connection before any action runs: a token from the
//! connection's frame bucket, and afterwards the extension of its expiry; and what a replay
//! costs it after, in tokens, for the posts it made.

use chrono::{DateTime, Utc};

use super::errors::{ActionError, error_reply};
use super::reply::reply;
use super::service::Jobcast;
use crate::gateway::ConnectionGateway;
use crate::protocol::{ConnectionId, ServerMessage, UserId};
use crate::store::{FrameBucket, FrameVerdict, Store};

/// Whether a frame may be served.
pub(super) enum Admission {
    /// Served; the connection's expiry and user, when the store said them.
    Admitted(Option<DateTime<Utc>>, Option<UserId>),
    /// Refused with `rate_limited`.
    Limited,
    /// Refused, and the connection closed for sustained abuse.
    Closed,
    /// Refused, and the connection closed: the store does not know it.
    Unknown,
}

/// Takes a token from the connection's frame bucket (`FRAME_RATE_PER_SECOND`, burst
/// `FRAME_BURST`). Without one the client is told `rate_limited`; after more than a burst's
/// worth of refusals in a row (sustained abuse) the connection is closed. The limit fails
/// closed: when the store cannot answer, this process's own buckets decide; a connection the
/// store does not know (never recorded, or expired) is told so and closed, so its client
/// reconnects and is recorded anew.
pub(super) async fn admit_frame<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    connection_id: &ConnectionId,
) -> Admission {
    let settings = service.settings();
    let bucket = settings.frame_bucket();
    let now_ms = Utc::now().timestamp_millis();
    let verdict = match service
        .store()
        .take_frame_token(connection_id, bucket.at(now_ms))
        .await
    {
        Ok(Some(verdict)) => verdict,
        Ok(None) => {
            tracing::warn!(%connection_id, "frame from a connection the store does not know; closing it");
            let message = ServerMessage::Error(error_reply(&ActionError::UnknownConnection, None));
            reply(service, gateway, connection_id, message, None).await;
            if let Err(err) = gateway.delete_connection(connection_id).await {
                tracing::warn!(%connection_id, error = %err, "could not close an unknown connection");
            }
            return Admission::Unknown;
        }
        Err(err) => {
            tracing::warn!(%connection_id, error = %err, "the store could not take a frame token; this process's bucket decides");
            service
                .fallback_frames()
                .take(connection_id, bucket.at(now_ms))
        }
    };
    match verdict {
        FrameVerdict::Admitted {
            expires_at,
            user_id,
        } => Admission::Admitted(expires_at, user_id),
        FrameVerdict::Refused { in_a_row } if in_a_row <= u64::from(bucket.burst) => {
            tracing::info!(%connection_id, in_a_row, "frame over the rate limit");
            let err = ActionError::RateLimited {
                rate: settings.frame_rate,
                burst: bucket.burst,
            };
            let message = ServerMessage::Error(error_reply(&err, None));
            reply(service, gateway, connection_id, message, None).await;
            Admission::Limited
        }
        FrameVerdict::Refused { in_a_row } => {
            tracing::warn!(%connection_id, in_a_row, "sustained frame abuse; closing the connection");
            if let Err(err) = gateway.delete_connection(connection_id).await {
                tracing::warn!(%connection_id, error = %err, "could not close an abusive connection");
            }
            Admission::Closed
        }
    }
}

/// Replayed events that cost the connection one frame token: a replay of a full page (500)
/// spends a burst's worth (`FRAME_BURST`, 20), so one frame cannot buy 500 posts again and
/// again. A resume of a few events is free.
pub(super) const REPLAYED_EVENTS_PER_TOKEN: u64 = 25;

/// A user's replay allowance, shared by all of the user's connections (a token per
/// [`REPLAYED_EVENTS_PER_TOKEN`] events): 500 events a second, 2,000 at once. Without it a
/// client could close its connection after each replay and start the next one on a fresh
/// connection's allowance.
const USER_REPLAY_BUCKET: FrameBucket = FrameBucket {
    interval_ms: 50,
    burst: 80,
};

/// What a replay about to post `planned` events may post: as many as the user's replay
/// allowance covers, and if none, how long until some are. The planned events are charged to
/// the user up front, in one atomic write, so replays starting at once on many of the user's
/// connections share one allowance rather than each finding it whole.
pub(super) async fn replay_budget<S: Store>(
    service: &Jobcast<S>,
    user_id: &UserId,
    planned: u64,
) -> (u64, u64) {
    let now_ms = Utc::now().timestamp_millis();
    let tokens = planned.div_ceil(REPLAYED_EVENTS_PER_TOKEN);
    let charge = USER_REPLAY_BUCKET.charge(now_ms, u32::try_from(tokens).unwrap_or(u32::MAX));
    let tat = match service.store().charge_user_tokens(user_id, charge).await {
        Ok(tat) => tat,
        Err(err) => {
            // Fail closed, but not shut: a page of 100 events until the store answers again.
            tracing::warn!(%user_id, error = %err, "could not charge the user's replay allowance");
            return (planned.min(100), 0);
        }
    };
    // The bucket as this charge found it: how many tokens it had room for.
    let before = tat - USER_REPLAY_BUCKET.interval_ms * i64::try_from(tokens).unwrap_or(i64::MAX);
    let ahead = before.max(now_ms) - now_ms;
    let room = USER_REPLAY_BUCKET.tolerance_ms() + USER_REPLAY_BUCKET.interval_ms - ahead;
    let covered = u64::try_from(room / USER_REPLAY_BUCKET.interval_ms).unwrap_or(0);
    let events = (covered * REPLAYED_EVENTS_PER_TOKEN).min(planned);
    let wait = if events == 0 {
        u64::try_from(charge.wait_ms(before.max(now_ms))).unwrap_or(0)
    } else {
        0
    };
    (events, wait)
}

/// Charges the connection's frame bucket for the events a replay is about to post, beyond
/// the frame that asked for them, up front (a replay cut short is charged all the same); the
/// connection's next frames wait until the debt is paid. The store's bucket if it answers,
/// this process's otherwise. Returns how long until the connection's next frame is admitted,
/// in milliseconds.
pub(super) async fn charge_replay<S: Store>(
    service: &Jobcast<S>,
    connection_id: &ConnectionId,
    events: u64,
) -> u64 {
    let tokens = u32::try_from(events / REPLAYED_EVENTS_PER_TOKEN).unwrap_or(u32::MAX);
    if tokens == 0 {
        return 0;
    }
    let charge = service
        .settings()
        .frame_bucket()
        .charge(Utc::now().timestamp_millis(), tokens);
    let tat = match service
        .store()
        .charge_frame_tokens(connection_id, charge)
        .await
    {
        Ok(tat) => tat,
        Err(err) => {
            tracing::warn!(%connection_id, error = %err, "could not charge a replay to the store's bucket; charged to this process's");
            Some(service.fallback_frames().charge(connection_id, charge))
        }
    };
    u64::try_from(tat.map_or(0, |tat| charge.wait_ms(tat))).unwrap_or(0)
}

/// Any frame shows the connection is alive: extend its and its subscriptions' expiry, so a
/// connection kept open past CONNECTION_TTL_SECONDS (API Gateway allows 2 h) keeps hearing
/// its jobs — once less than half of it is left (`expires_at`, read with the frame's token).
/// So a connection is kept at least half the TTL after its last frame (30 min by default);
/// API Gateway closes connections idle for 10 minutes, so a live one always sends frames.
pub(super) async fn keep_alive<S: Store>(
    service: &Jobcast<S>,
    connection_id: &ConnectionId,
    expires_at: Option<DateTime<Utc>>,
) {
    let now = Utc::now();
    let ttl = service.settings().connection_ttl;
    // More than half its time left: nothing to write. A connection that sends a frame every
    // few minutes (the clients' keep-alive) then rewrites its subscriptions once per half TTL,
    // not on every frame.
    let half = chrono::Duration::from_std(ttl / 2).unwrap_or(chrono::Duration::MAX);
    if expires_at.is_some_and(|expires_at| expires_at - now > half) {
        return;
    }
    let expires_at = service.expiry(now, ttl);
    match service
        .store()
        .touch_connection(connection_id, expires_at)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(%connection_id, "frame from a connection the store no longer has")
        }
        Err(err) => {
            tracing::warn!(%connection_id, error = %err, "could not extend the connection's expiry")
        }
    }
}
