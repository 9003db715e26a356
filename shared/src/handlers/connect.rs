//! `$connect`: records the connection with its user and expiry, after the REQUEST authorizer
//! (or, without authentication, `?user_id=`) has said who the user is.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;

use super::apigw::{authorized_user, connection_of, response};
use super::service::Jobcast;
use crate::auth::chosen_subprotocol;
use crate::protocol::UserId;
use crate::settings::AuthMode;
use crate::store::{Connection, Store};

impl<S: Store> Jobcast<S> {
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
