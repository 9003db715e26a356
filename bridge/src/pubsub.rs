//! The Pub/Sub source: `PSUBSCRIBE pattern`, every message into its user's lane. Redis going
//! away ends the subscription; the bridge says so and subscribes again with backoff. What is
//! published meanwhile is lost: Pub/Sub keeps nothing for a subscriber that is not there.

use std::time::Duration;

use futures::StreamExt;
use redis::Msg;
use tokio::sync::watch;

use crate::lanes::Lanes;
use crate::message;
use crate::status::Status;

/// How often a quiet subscription pings Redis, to notice a connection that died silently.
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long a ping may take before the connection counts as lost.
const PING_WITHIN: Duration = Duration::from_secs(5);

/// Reads `pattern` until shut down, reconnecting whenever Redis goes away.
pub(crate) async fn read(
    client: &redis::Client,
    pattern: &str,
    lanes: &Lanes,
    status: &Status,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = crate::pause::Backoff::default();
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.psubscribe(pattern).await {
                Ok(()) => {
                    status.set_connected(true);
                    backoff.reset();
                    tracing::info!(pattern, "subscribed to Redis");
                    let stopped = listen(pubsub, lanes, status, &mut shutdown).await;
                    status.set_connected(false);
                    if stopped {
                        return;
                    }
                    status.reconnecting();
                    tracing::warn!(
                        pattern,
                        "lost Redis: what is published until the bridge is back is lost (Pub/Sub keeps nothing); reconnecting"
                    );
                }
                Err(err) => tracing::warn!(pattern, error = %err, "could not subscribe to Redis"),
            },
            Err(err) => tracing::warn!(error = %err, "could not connect to Redis"),
        }
        if backoff.wait(&mut shutdown).await {
            return;
        }
    }
}

/// Forwards messages until the subscription ends (false) or the bridge shuts down (true).
async fn listen(
    pubsub: redis::aio::PubSub,
    lanes: &Lanes,
    status: &Status,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            _ = crate::pause::stopping(shutdown) => return true,
            message = messages.next() => match message {
                Some(message) => forward(&message, lanes, status).await,
                None => return false,
            },
            _ = ping.tick() => {
                let answer = tokio::time::timeout(PING_WITHIN, sink.ping::<String>()).await;
                if !matches!(answer, Ok(Ok(_))) {
                    tracing::warn!("Redis did not answer a ping");
                    return false;
                }
            }
        }
    }
}

async fn forward(message: &Msg, lanes: &Lanes, status: &Status) {
    status.received();
    let channel = message.get_channel_name();
    let parsed = message
        .get_payload::<String>()
        .map_err(|_| message::Rejection::Malformed("the payload is not UTF-8 text".into()))
        .and_then(|payload| message::from_channel(channel, &payload));
    match parsed {
        Ok(forward) => lanes.send(forward).await,
        Err(rejection) => {
            status.rejected(rejection.kind());
            tracing::warn!(channel, reason = %rejection, "message not forwarded");
        }
    }
}
