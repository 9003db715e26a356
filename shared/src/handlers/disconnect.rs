//! `$disconnect`: removes the connection and its subscriptions.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};

use super::apigw::{connection_of, response};
use super::service::Jobcast;
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
            Ok(subscriptions) => {
                tracing::info!(
                    %connection_id,
                    subscriptions,
                    status_code = context.disconnect_status_code,
                    reason = context.disconnect_reason.as_deref().unwrap_or(""),
                    "disconnected"
                );
                response(200, "disconnected")
            }
            Err(err) => {
                tracing::error!(%connection_id, error = %err, "could not remove the connection");
                response(500, "could not remove the connection")
            }
        }
    }
}
