//! API Gateway's Management API, `@connections`, with AWS's wire shapes, so the official SDKs
//! work against it with only an endpoint override. Requests are not signature-checked.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use http::{HeaderValue, StatusCode, header};
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::protocol::ConnectionId;
use jobcast::store::Store;
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::registry::{LiveConnection, ServerClose};

/// An error as AWS's restJson1 services send it: the type in `x-amzn-ErrorType`, a message in
/// the body.
pub(crate) fn aws_error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-ErrorType", HeaderValue::from_static(error_type)),
            (
                header::CONTENT_TYPE.as_str(),
                HeaderValue::from_static("application/json"),
            ),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone(connection_id: &str) -> Response {
    tracing::debug!(connection_id, "@connections: gone");
    aws_error(
        StatusCode::GONE,
        "GoneException",
        &format!("connection {connection_id} is gone"),
    )
}

/// `@connections/{connection_id}`, with or without a stage before it.
#[derive(Deserialize)]
pub(crate) struct ConnectionPath {
    connection_id: String,
}

/// The path's connection id; an id we could never have issued is simply gone.
fn connection_id(raw: &str) -> Option<ConnectionId> {
    ConnectionId::parse(raw).ok()
}

impl ConnectionPath {
    /// The open connection the path names, if it is open.
    fn live<S: Store>(&self, app: &App<S>) -> Option<Arc<LiveConnection>> {
        connection_id(&self.connection_id).and_then(|id| app.registry.get(&id))
    }
}

/// `POST @connections/{id}`: the body, as is, becomes one frame.
pub(crate) async fn post<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(ConnectionPath {
        connection_id: raw_id,
    }): Path<ConnectionPath>,
    body: Body,
) -> Response {
    let limit = app.config.limits.max_message_bytes;
    let Ok(payload) = to_bytes(body, limit).await else {
        tracing::info!(connection_id = %raw_id, limit, "@connections post over the message limit");
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("payload exceeds the {limit} byte message limit"),
        );
    };
    let Some(id) = connection_id(&raw_id) else {
        return gone(&raw_id);
    };
    let size = payload.len();
    match app.registry.post_to_connection(&id, payload).await {
        Ok(()) => {
            tracing::info!(connection_id = %id, size, "@connections post");
            StatusCode::OK.into_response()
        }
        Err(PostError::Gone) => gone(&raw_id),
        Err(PostError::PayloadTooLarge { size }) => aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("payload of {size} bytes exceeds the {limit} byte message limit"),
        ),
        Err(PostError::Throttled) => aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "Rate exceeded",
        ),
        Err(PostError::ServerError { status }) => aws_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "InternalServerErrorException",
            "injected failure",
        ),
        Err(err) => aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
            &err.to_string(),
        ),
    }
}

/// `GET @connections/{id}`: when it connected, when it was last active, who it is.
pub(crate) async fn get<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(path): Path<ConnectionPath>,
) -> Response {
    let Some(live) = path.live(&app) else {
        return gone(&path.connection_id);
    };
    let mut identity = json!({ "sourceIp": live.source_ip });
    if let Some(agent) = &live.user_agent {
        identity["userAgent"] = json!(agent);
    }
    let body = json!({
        "connectedAt": live.connected_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "lastActiveAt": live.last_active_at().to_rfc3339_opts(SecondsFormat::Millis, true),
        "identity": identity,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `DELETE @connections/{id}`: closes the socket; `$disconnect` follows.
pub(crate) async fn delete<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(path): Path<ConnectionPath>,
) -> Response {
    let close = |live: Arc<LiveConnection>| {
        tracing::info!(connection_id = %path.connection_id, "@connections delete");
        live.request_close(ServerClose {
            code: 1000,
            reason: "Connection deleted",
        });
        StatusCode::NO_CONTENT.into_response()
    };
    path.live(&app)
        .map_or_else(|| gone(&path.connection_id), close)
}
