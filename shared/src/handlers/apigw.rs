//! Reading API Gateway's WebSocket events: which connection, which user the authorizer
//! vouched for, and the proxy answer API Gateway expects back.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

use crate::auth::USER_ID_CONTEXT_KEY;
use crate::protocol::{ConnectionId, UserId};

/// The connection a WebSocket event came from.
pub(super) fn connection_of(request: &ApiGatewayWebsocketProxyRequest) -> Option<ConnectionId> {
    let id = request.request_context.connection_id.as_deref()?;
    ConnectionId::parse(id).ok()
}

/// The user an upstream REQUEST authorizer vouched for, if one ran.
pub(super) fn authorized_user(request: &ApiGatewayWebsocketProxyRequest) -> Option<UserId> {
    let fields = &request.request_context.authorizer.fields;
    [USER_ID_CONTEXT_KEY, "principalId"]
        .iter()
        .filter_map(|key| fields.get(*key)?.as_str())
        .find_map(|id| UserId::parse(id).ok())
}

/// A proxy answer with a text body (API Gateway logs it; a client hears only what is posted).
pub(super) fn response(status: u16, body: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = Some(Body::Text(body.to_owned()));
    response
}
