//! `$connect`: records the connection with its user and expiry, after the REQUEST authorizer
//! (or, without authentication, `?user_id=`) has said who the user is — unless the user
//! already holds `MAX_CONNECTIONS_PER_USER` connections. Two connects racing at the limit may
//! both pass: the limit bounds a user's connections to about itself, not to the exact number.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;

use super::apigw::{authorized_user, connection_of, response};
use super::service::Jobcast;
use crate::auth::chosen_subprotocol;
use crate::protocol::UserId;
use crate::settings::AuthMode;
use crate::store::{Audience, Connection, PageRequest, Store, StoreError};

/// The body of a `$connect` refused for the connection limit (API Gateway answers the
/// upgrade with the status; a client that reads the body finds the code).
const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

impl<S: Store> Jobcast<S> {
    /// How many live connections `user_id` holds, counted up to the limit. Without
    /// authentication users name themselves, so a per-user limit would limit nobody: 0.
    async fn connections_held(&self, user_id: &UserId) -> Result<usize, StoreError> {
        let limit = self.settings().max_connections_per_user;
        if self.settings().auth_mode != AuthMode::Authorizer {
            return Ok(0);
        }
        let audience = Audience::User(user_id.clone());
        let mut request = PageRequest::first(limit + 1);
        let mut held = 0;
        loop {
            let page = self
                .store()
                .connections_of(&audience, request.clone())
                .await?;
            held += page.items.len();
            match page.next {
                Some(next) if held < limit => request.after = Some(next),
                _ => return Ok(held),
            }
        }
    }

    /// `$connect`: records the connection with its user and expiry. A non-2xx answer makes
    /// API Gateway refuse the WebSocket upgrade with that status.
    pub async fn handle_connect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(connection_id) = connection_of(request) else {
            tracing::warn!("$connect without a valid connection id");
            return response(400, "missing connection id");
        };
        let user_id = match self.settings().auth_mode {
            AuthMode::Authorizer => match authorized_user(request) {
                Some(user_id) => user_id,
                None => {
                    tracing::warn!(%connection_id, "$connect without an authorizer principal");
                    return response(401, "unauthorized");
                }
            },
            AuthMode::None => match request.query_string_parameters.first("user_id") {
                None => UserId::anonymous(),
                Some(raw) => match UserId::parse(raw) {
                    Ok(user_id) => user_id,
                    Err(err) => return response(400, &err.to_string()),
                },
            },
        };
        match self.connections_held(&user_id).await {
            Ok(held) if held >= self.settings().max_connections_per_user => {
                tracing::warn!(%connection_id, %user_id, held, "$connect refused: too many connections");
                return response(429, TOO_MANY_CONNECTIONS);
            }
            Ok(_) => {}
            Err(err) => {
                // Fail closed: a store that cannot count cannot record the connection either.
                tracing::error!(%connection_id, error = %err, "could not count the user's connections");
                return response(503, "could not check the connection limit");
            }
        }
        let now = Utc::now();
        let connection = Connection {
            connection_id: connection_id.clone(),
            user_id: user_id.clone(),
            connected_at: now,
            expires_at: self.expiry(now, self.settings().connection_ttl),
        };
        match self.store().put_connection(&connection).await {
            Ok(()) => {
                tracing::info!(%connection_id, %user_id, "connected");
                let mut answer = response(200, "connected");
                // A client that offered subprotocols fails the handshake unless one is echoed.
                if let Some(protocol) = chosen_subprotocol(&request.headers) {
                    answer.headers.insert(
                        http::header::SEC_WEBSOCKET_PROTOCOL,
                        http::HeaderValue::from_static(protocol),
                    );
                }
                answer
            }
            Err(err) => {
                tracing::error!(%connection_id, error = %err, "could not record the connection");
                response(500, "could not record the connection")
            }
        }
    }
}
