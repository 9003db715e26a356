//! Who is connecting: the token on the upgrade request, its verification, and the Lambda
//! REQUEST authorizer that turns it into an IAM policy and a user id for `$connect`.

mod origin;
mod token;
mod verifier;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::json;

pub use origin::{AllowedOrigins, OriginError};
pub use token::{
    BEARER_PREFIX, PresentedToken, SUBPROTOCOL, TOKEN_COOKIE, TOKEN_QUERY_PARAMETER, TokenSource,
    chosen_subprotocol, presented_token,
};
pub use verifier::{
    JwksSource, JwtSettings, MIN_SECRET_BYTES, TokenError, TokenVerifier, VerifiedToken,
    VerifierConfigError,
};

/// The key of the user id in the authorizer context, which API Gateway hands to `$connect`
/// and to every later route of the connection.
pub const USER_ID_CONTEXT_KEY: &str = "userId";

/// The error API Gateway turns into a 401: an authorizer that fails with exactly this message.
#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized(pub TokenError);

/// The `$connect` REQUEST authorizer: the same code in the `authorizer` Lambda and in
/// jobcast-local's `--auth jwt`.
#[derive(Debug)]
pub struct Authorizer {
    verifier: TokenVerifier,
    origins: AllowedOrigins,
}

impl Authorizer {
    /// An authorizer that checks tokens with `verifier`, and lets a token carried in a
    /// cookie connect only from `origins` or the API's own origin (see [`AllowedOrigins`]).
    pub fn new(verifier: TokenVerifier, origins: AllowedOrigins) -> Self {
        Self { verifier, origins }
    }

    /// The origins a cookie may connect from, besides the API's own.
    pub fn allowed_origins(&self) -> &AllowedOrigins {
        &self.origins
    }

    /// Allow (with the user in the context) for a valid token; `Err(Unauthorized)` (401) for
    /// a missing or unverifiable one; a Deny policy (403) for a genuine token not meant for
    /// this API, and for a cookie sent from a page whose origin is not allowed.
    pub async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, Unauthorized> {
        let method_arn = request.method_arn.clone().unwrap_or_default();
        // The typed event drops `connectionId`; API Gateway's request id ties the logs together.
        let request_id = request.request_context.request_id.as_deref();
        let Some(presented) = presented_token(&request.headers, &request.query_string_parameters)
        else {
            tracing::info!(request_id, reason = "missing", "connect refused: no token");
            return Err(Unauthorized(TokenError::Missing));
        };
        if presented.source == TokenSource::Cookie
            && let Some(origin) = header(request, http::header::ORIGIN)
            && !self
                .origins
                .allows(origin, header(request, http::header::HOST))
        {
            tracing::warn!(
                request_id,
                origin,
                reason = "origin_not_allowed",
                "connect denied: a cookie sent from a page not allowed"
            );
            return Ok(policy(
                "denied",
                IamPolicyEffect::Deny,
                &method_arn,
                json!({}),
            ));
        }
        match self.verifier.verify(&presented.token).await {
            Ok(VerifiedToken { user_id }) => {
                tracing::info!(request_id, %user_id, source = presented.source.as_str(), "connect allowed");
                Ok(policy(
                    user_id.as_str(),
                    IamPolicyEffect::Allow,
                    &method_arn,
                    json!({
                        USER_ID_CONTEXT_KEY: user_id.as_str(),
                        "tokenSource": presented.source.as_str(),
                    }),
                ))
            }
            Err(err) if err.status() == 403 => {
                tracing::warn!(request_id, reason = err.reason(), error = %err, "connect denied");
                Ok(policy(
                    "denied",
                    IamPolicyEffect::Deny,
                    &method_arn,
                    json!({}),
                ))
            }
            Err(err) => {
                tracing::info!(request_id, reason = err.reason(), error = %err, "connect refused");
                Err(Unauthorized(err))
            }
        }
    }
}

/// A header of the upgrade request, when it is readable text.
fn header(
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    name: http::header::HeaderName,
) -> Option<&str> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

fn policy(
    principal: &str,
    effect: IamPolicyEffect,
    method_arn: &str,
    context: serde_json::Value,
) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_owned()];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".to_owned());
    document.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal.to_owned());
    response.policy_document = document;
    response.context = context;
    response
}

/// Whether a policy allows the call (for jobcast-local, which plays API Gateway's part).
pub fn allows(response: &ApiGatewayCustomAuthorizerResponse) -> bool {
    let statements = &response.policy_document.statement;
    !statements.is_empty()
        && statements
            .iter()
            .all(|statement| statement.effect == IamPolicyEffect::Allow)
}
