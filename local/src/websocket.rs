//! The WebSocket side: upgrade (`$connect`), frames (routes), close (`$disconnect`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use http::StatusCode;
use jobcast::protocol::{ClientMessage, ConnectionId};
use jobcast::store::Store;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use crate::events::{self, ConnectionInfo};
use crate::registry::{LiveConnection, OUTBOUND_FRAMES, Outbound, ServerClose};
use crate::{App, demo};

/// Per-socket read and write buffer.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// `GET /{stage}`: the same as `/` at this server's stage (`--stage`); any other path is 404.
pub(crate) async fn websocket_at_stage<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(stage): Path<String>,
    peer: ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if stage != app.config.stage {
        return StatusCode::NOT_FOUND.into_response();
    }
    websocket_or_page(State(app), peer, request).await
}

/// `GET /`: a WebSocket upgrade becomes a connection; a plain request gets the page.
pub(crate) async fn websocket_or_page<S: Store>(
    State(app): State<Arc<App<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let is_upgrade = parts
        .headers
        .get(http::header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !is_upgrade {
        return demo::page().into_response();
    }
    let mut upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };

    let info = ConnectionInfo {
        connection_id: events::new_connection_id(),
        connected_at: Utc::now(),
        source_ip: peer.ip().to_string(),
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        domain_name: parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
            .to_owned(),
        stage: app.config.stage.clone(),
        api_id: app.config.api_id.clone(),
        authorizer: Default::default(),
    };
    let connection_id = match ConnectionId::parse(info.connection_id.clone()) {
        Ok(id) => id,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };

    let mut info = info;
    if let Some(authorizer) = &app.config.authorizer {
        match authorize(authorizer, &info, &parts).await {
            Ok(context) => info.authorizer = context,
            Err(refusal) => return refusal,
        }
    }

    let event = events::connect(&info, &parts.headers, parts.uri.query());
    let connected = app.service.handle_connect_with_follow_up(&event).await;
    let (answer, subscribe) = (connected.response, connected.subscribe);
    let status = u16::try_from(answer.status_code).unwrap_or(500);
    if !(200..300).contains(&status) {
        tracing::info!(connection_id = %connection_id, status, "$connect refused the connection");
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match answer.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => text,
            _ => status.canonical_reason().unwrap_or("refused").to_owned(),
        };
        return (status, body).into_response();
    }

    // API Gateway answers the upgrade with the subprotocol `$connect` chose.
    if let Some(protocol) = answer
        .headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
    {
        upgrade = upgrade.protocols([protocol.to_owned()]);
    }

    // Registered before the 101 goes out, so a post racing the upgrade waits in the queue
    // instead of finding the connection gone.
    let (outbound_tx, outbound_rx) = mpsc::channel(OUTBOUND_FRAMES);
    let (close_tx, close_rx) = oneshot::channel();
    let live = Arc::new(LiveConnection::new(
        outbound_tx,
        close_tx,
        info.connected_at,
        info.source_ip.clone(),
        info.user_agent.clone(),
    ));
    app.registry.insert(connection_id.clone(), live.clone());

    let limit = app.config.limits.max_message_bytes;
    let failed_app = app.clone();
    let failed_info = info.clone();
    upgrade
        // tungstenite's default 128 KiB read buffer per socket would dominate the emulator's
        // memory at thousands of connections; frames larger than the buffer still arrive
        // whole, read in several chunks.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        // Read oversize frames whole so they can be refused with 1009, as API Gateway does.
        .max_message_size(limit.saturating_mul(4).max(1 << 20))
        .max_frame_size(limit.saturating_mul(4).max(1 << 20))
        .on_failed_upgrade(move |err| {
            tracing::warn!(error = %err, "upgrade failed after $connect");
            tokio::spawn(
                async move { finish(&failed_app, &failed_info, 1006, "Upgrade failed").await },
            );
        })
        .on_upgrade(move |socket| {
            app.registry.counters().connections.inc();
            // A one-job socket's subscribe, as the sender runs it in AWS, now that the
            // connection is open.
            if let Some(subscribe) = subscribe {
                let app = app.clone();
                tokio::spawn(async move {
                    let request = jobcast::protocol::SenderRequest::subscribe_connection(subscribe);
                    if let Err(err) = app.service.handle_send(&app.registry, request).await {
                        tracing::warn!(error = %err, "could not subscribe a one-job socket");
                    }
                });
            }
            serve_connection(app, info, live, socket, outbound_rx, close_rx)
        })
}

/// Plays API Gateway's part around the REQUEST authorizer: 401 when it fails with
/// "Unauthorized", 403 on a Deny policy, else the context for the connection's events.
async fn authorize(
    authorizer: &jobcast::auth::Authorizer,
    info: &ConnectionInfo,
    parts: &http::request::Parts,
) -> Result<HashMap<String, serde_json::Value>, Response> {
    let event = events::authorizer_request(info, &parts.headers, parts.uri.query());
    let request = serde_json::from_value(event).map_err(|err| {
        tracing::error!(error = %err, "could not build the authorizer request");
        (StatusCode::INTERNAL_SERVER_ERROR, "authorizer request").into_response()
    })?;
    let refuse = |status: StatusCode, message: &str| {
        (
            status,
            axum::Json(serde_json::json!({ "message": message })),
        )
            .into_response()
    };
    let policy = match authorizer.authorize(&request).await {
        Ok(policy) => policy,
        Err(_) => return Err(refuse(StatusCode::UNAUTHORIZED, "Unauthorized")),
    };
    if !jobcast::auth::allows(&policy) {
        return Err(refuse(StatusCode::FORBIDDEN, "Forbidden"));
    }
    let mut context: HashMap<String, serde_json::Value> = match policy.context {
        serde_json::Value::Object(fields) => fields.into_iter().collect(),
        _ => HashMap::new(),
    };
    if let Some(principal) = policy.principal_id {
        context.insert("principalId".to_owned(), principal.into());
    }
    Ok(context)
}

/// How a connection ended, as `$disconnect` reports it.
struct Ending {
    code: u16,
    reason: String,
    /// A close frame the server still owes the client.
    send_close: bool,
}

impl Ending {
    fn server(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
            send_close: true,
        }
    }
}

async fn serve_connection<S: Store>(
    app: Arc<App<S>>,
    info: ConnectionInfo,
    live: Arc<LiveConnection>,
    socket: WebSocket,
    mut outbound: mpsc::Receiver<Outbound>,
    mut close_requested: oneshot::Receiver<ServerClose>,
) {
    let connection_id = info.connection_id.clone();
    tracing::info!(%connection_id, source_ip = %info.source_ip, "connected");
    let (mut sink, mut stream) = socket.split();
    let limits = app.config.limits.clone();
    let routes: Vec<&str> = ClientMessage::ACTIONS.to_vec();

    // The writer owns the sink; posts and replies reach it through the queue, so a handler
    // that replies to its own connection never waits on itself.
    let (final_close_tx, final_close_rx) = oneshot::channel::<Option<CloseFrame>>();
    let written = live.clone();
    let writer = tokio::spawn(async move {
        let mut final_close_rx = final_close_rx;
        loop {
            tokio::select! {
                message = outbound.recv() => {
                    let Some(message) = message else { break };
                    let size = message.len();
                    let frame = match message {
                        Outbound::Text(text) => Message::Text(text.into()),
                        Outbound::Binary(bytes) => Message::Binary(bytes),
                    };
                    let sent = sink.send(frame).await;
                    written.queued_bytes.fetch_sub(size, std::sync::atomic::Ordering::Relaxed);
                    written.written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if sent.is_err() {
                        break;
                    }
                }
                close = &mut final_close_rx => {
                    if let Ok(Some(frame)) = close {
                        let _ = sink.send(Message::Close(Some(frame))).await;
                    }
                    let _ = sink.close().await;
                    break;
                }
            }
        }
    });

    let lifetime_ends = Instant::now() + limits.max_connection_duration;
    let mut shutdown = app.shutdown.subscribe();
    // Each frame is handled on its own task, as API Gateway runs each as its own invocation:
    // a long replay never holds up the idle timer, a `DELETE`, shutdown, or the next frame.
    // At most so many at once: past them the socket is not read until one ends, so a flood
    // waits in the client's own buffers while the timers and a close still work.
    let in_flight = Arc::new(Semaphore::new(limits.max_frames_in_flight.max(1)));
    let mut permit = None;
    let mut idle_ends = Instant::now() + limits.idle_timeout;
    let ending = loop {
        let frame = tokio::select! {
            taken = in_flight.clone().acquire_owned(), if permit.is_none() => {
                permit = taken.ok();
                continue;
            }
            frame = stream.next(), if permit.is_some() => match frame {
                Some(Ok(Message::Text(text))) => {
                    live.touch();
                    idle_ends = Instant::now() + limits.idle_timeout;
                    if text.len() > limits.max_message_bytes {
                        tracing::info!(%connection_id, size = text.len(), "frame over the message limit");
                        break Ending::server(1009, "Message too big");
                    }
                    let route = events::select_route(&text, &routes);
                    (route, text.to_string(), false)
                }
                Some(Ok(Message::Binary(bytes))) => {
                    live.touch();
                    idle_ends = Instant::now() + limits.idle_timeout;
                    if bytes.len() > limits.max_message_bytes {
                        break Ending::server(1009, "Message too big");
                    }
                    let body = base64::engine::general_purpose::STANDARD.encode(&bytes);
                    ("$default".to_owned(), body, true)
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    live.touch();
                    idle_ends = Instant::now() + limits.idle_timeout;
                    continue;
                }
                Some(Ok(Message::Close(frame))) => break match frame {
                    Some(frame) => Ending { code: frame.code, reason: frame.reason.to_string(), send_close: false },
                    None => Ending { code: 1005, reason: "Client-side close frame status not set".into(), send_close: false },
                },
                Some(Err(err)) => {
                    let too_big = err.to_string().to_ascii_lowercase().contains("too long")
                        || err.to_string().to_ascii_lowercase().contains("capacity");
                    break if too_big {
                        Ending::server(1009, "Message too big")
                    } else {
                        Ending { code: 1006, reason: "Connection closed abnormally".into(), send_close: false }
                    };
                }
                None => break Ending { code: 1006, reason: "Connection closed abnormally".into(), send_close: false },
            },
            _ = sleep_until(idle_ends) => break Ending::server(1001, "Going away"),
            _ = sleep_until(lifetime_ends) => break Ending::server(1001, "Going away"),
            close = &mut close_requested => {
                let close = close.unwrap_or(ServerClose { code: 1001, reason: "Going away" });
                break Ending::server(close.code, close.reason);
            }
            _ = shutdown.changed() => break Ending::server(1001, "Going away"),
        };
        let permit = permit.take();
        let (app, info) = (app.clone(), info.clone());
        tokio::spawn(async move {
            // The server's share too, taken here rather than before the read: an idle
            // connection must not hold one. A frame waiting for it holds its connection's.
            let everyone = app.frames_in_flight.clone().acquire_owned().await;
            let (route, body, is_base64) = frame;
            route_frame(&app, &info, &route, body, is_base64).await;
            drop((permit, everyone));
        });
    };

    // Gone from the registry first: from here on posts get 410, as they do in AWS.
    app.registry
        .remove(&ConnectionId::parse(connection_id.clone()).expect("ids we made are valid"));
    let frame = ending.send_close.then(|| CloseFrame {
        code: ending.code,
        reason: ending.reason.clone().into(),
    });
    let _ = final_close_tx.send(frame);
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        // A client that does not read keeps the writer stuck on a full socket: let it go.
        abort.abort();
        tracing::debug!(%connection_id, "writer did not finish in time");
    }
    finish(&app, &info, ending.code, &ending.reason).await;
}

/// Runs `$disconnect` for a connection that has ended.
async fn finish<S: Store>(app: &App<S>, info: &ConnectionInfo, code: u16, reason: &str) {
    if let Ok(id) = ConnectionId::parse(info.connection_id.clone()) {
        app.registry.remove(&id);
    }
    let event = events::disconnect(info, code, reason);
    let answer = app.service.handle_disconnect(&event).await;
    tracing::info!(connection_id = %info.connection_id, code, reason, status = answer.status_code, "$disconnect");
}

async fn route_frame<S: Store>(
    app: &App<S>,
    info: &ConnectionInfo,
    route: &str,
    body: String,
    is_base64: bool,
) {
    let event = events::message(info, route, body, is_base64);
    let answer = app.service.handle_message(&app.registry, &event).await;
    tracing::info!(connection_id = %info.connection_id, route, status = answer.status_code, "route");
}
