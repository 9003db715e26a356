//! `$disconnect`: removes the connection and its subscriptions, and says so when a user's last
//! connection closes (what a notification hub calls going offline).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use super::apigw::{connection_of, response};
use super::service::Jobcast;
use crate::protocol::UserId;
use crate::store::Store;

impl<S: Store> Jobcast<S> {
    /// `$disconnect`: removes the connection and its subscriptions. API Gateway calls it on a
    /// best-effort basis, so the sender also removes connections it finds gone.
    pub async fn handle_disconnect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(connection_id) = connection_of(request) else {
            return response(400, "missing connection id");
        };
        let context = &request.request_context;
        match self.store().delete_connection(&connection_id).await {
            Ok(removed) => {
                tracing::info!(
                    %connection_id,
                    user_id = removed.user_id.as_ref().map(UserId::as_str),
                    subscriptions = removed.subscriptions,
                    status_code = context.disconnect_status_code,
                    reason = context.disconnect_reason.as_deref().unwrap_or(""),
                    "disconnected"
                );
                if let Some(user_id) = removed.user_id {
                    self.log_if_offline(&user_id).await;
                }
                response(200, "disconnected")
            }
            Err(err) => {
                tracing::error!(%connection_id, error = %err, "could not remove the connection");
                response(500, "could not remove the connection")
            }
        }
    }

    /// One line, `presence = "offline"`, when the user holds no connection any more. Two
    /// tabs closing at once may both log it; a failed count logs nothing.
    async fn log_if_offline(&self, user_id: &UserId) {
        match self.count_connections(user_id, 1).await {
            Ok(0) => {
                tracing::info!(%user_id, presence = "offline", "the user's last connection closed");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(%user_id, error = %err, "could not count the user's connections")
            }
        }
    }
}
