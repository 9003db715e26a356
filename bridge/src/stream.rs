//! The Streams source: `XREADGROUP` with a consumer group. The group remembers what it has
//! handed out, and an entry stays pending until `XACK`, which comes only once the sender has
//! taken (or refused) it: a bridge restarted, or Redis restarted with its data, misses
//! nothing. A restarted bridge first reads its own pending entries again; one taken before
//! the crash but not yet acknowledged reaches the user twice, with the same `message_id`.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use tokio::sync::{mpsc, watch};

use crate::lanes::Lanes;
use crate::message;
use crate::pause::Backoff;
use crate::status::Status;

/// How long one `XREADGROUP` waits for new entries.
const BLOCK: Duration = Duration::from_secs(2);
/// Entries read at once.
const BATCH: usize = 100;

/// The stream, its group, and this bridge's name in the group.
#[derive(Debug, Clone)]
pub(crate) struct Group<'a> {
    pub key: &'a str,
    pub group: &'a str,
    pub consumer: &'a str,
}

/// Reads the stream until shut down, reconnecting whenever Redis goes away.
pub(crate) async fn read(
    client: &redis::Client,
    group: Group<'_>,
    lanes: &Lanes,
    status: &Status,
    acks: &mpsc::UnboundedSender<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        match session(
            client,
            &group,
            lanes,
            status,
            acks,
            &mut shutdown,
            &mut backoff,
        )
        .await
        {
            Ok(()) => {
                status.set_connected(false);
                return;
            }
            Err(err) => {
                if status.is_connected() {
                    status.reconnecting();
                    tracing::warn!(error = %err, stream = group.key, "lost Redis; the stream keeps what is added meanwhile; reconnecting");
                } else {
                    tracing::warn!(error = %err, stream = group.key, "could not read the stream");
                }
                status.set_connected(false);
            }
        }
        if backoff.wait(&mut shutdown).await {
            return;
        }
    }
}

/// One connection's reading: the group made sure of, this consumer's pending entries, then
/// new ones. Ends with `Ok` on shutdown, with the error when Redis fails.
async fn session(
    client: &redis::Client,
    group: &Group<'_>,
    lanes: &Lanes,
    status: &Status,
    acks: &mpsc::UnboundedSender<String>,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> redis::RedisResult<()> {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(BLOCK * 3));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let created: redis::RedisResult<()> = connection
        .xgroup_create_mkstream(group.key, group.group, "$")
        .await;
    match created {
        Ok(()) => tracing::info!(
            stream = group.key,
            group = group.group,
            "created the consumer group"
        ),
        Err(err) if err.code() == Some("BUSYGROUP") => {}
        Err(err) => return Err(err),
    }
    status.set_connected(true);
    backoff.reset();
    tracing::info!(
        stream = group.key,
        group = group.group,
        consumer = group.consumer,
        "reading the stream"
    );
    // "0" lists this consumer's pending entries from the start; ">" asks for new ones.
    let mut cursor = "0".to_owned();
    loop {
        let pending = cursor != ">";
        let mut options = StreamReadOptions::default()
            .group(group.group, group.consumer)
            .count(BATCH);
        if !pending {
            options = options.block(BLOCK.as_millis() as usize);
        }
        let reply: Option<StreamReadReply> = tokio::select! {
            _ = crate::pause::stopping(shutdown) => return Ok(()),
            reply = read_entries(&mut connection, group.key, &cursor, &options) => reply?,
        };
        let entries: Vec<StreamId> = reply
            .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
            .unwrap_or_default();
        if pending && entries.is_empty() {
            cursor = ">".to_owned();
            continue;
        }
        for entry in entries {
            if pending {
                cursor.clone_from(&entry.id);
            }
            forward(entry, lanes, status, acks).await;
        }
    }
}

async fn read_entries(
    connection: &mut MultiplexedConnection,
    key: &str,
    cursor: &str,
    options: &StreamReadOptions,
) -> redis::RedisResult<Option<StreamReadReply>> {
    connection.xread_options(&[key], &[cursor], options).await
}

async fn forward(
    entry: StreamId,
    lanes: &Lanes,
    status: &Status,
    acks: &mpsc::UnboundedSender<String>,
) {
    status.received();
    let parsed = message::from_entry(
        &entry.id,
        entry.get("channel"),
        entry.get("user_id"),
        entry.get("message"),
    );
    match parsed {
        Ok(forward) => lanes.send(forward).await,
        Err(rejection) => {
            status.rejected(rejection.kind());
            tracing::warn!(entry = entry.id, reason = %rejection, "entry not forwarded; acknowledged");
            let _ = acks.send(entry.id);
        }
    }
}

/// Acknowledges entries as the lanes finish them, in batches, reconnecting as needed. An
/// entry it cannot acknowledge stays pending and is forwarded again after a restart.
pub(crate) async fn acknowledge(
    client: redis::Client,
    key: String,
    group: String,
    mut finished: mpsc::UnboundedReceiver<String>,
) {
    let mut connection: Option<MultiplexedConnection> = None;
    while let Some(first) = finished.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match finished.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        let mut backoff = Backoff::default();
        for attempt in 1.. {
            if connection.is_none() {
                connection = client.get_multiplexed_async_connection().await.ok();
            }
            if let Some(open) = connection.as_mut() {
                match open.xack::<_, _, _, usize>(&key, &group, &batch).await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "could not acknowledge entries");
                        connection = None;
                    }
                }
            }
            if attempt >= 10 {
                tracing::error!(
                    entries = batch.len(),
                    "entries left unacknowledged: they will be forwarded again"
                );
                break;
            }
            backoff.pause().await;
        }
    }
}
