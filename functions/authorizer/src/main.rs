//! The `$connect` REQUEST authorizer: verifies the client's JWT and answers an IAM policy with
//! the user id in its context. Failing with "Unauthorized" makes API Gateway answer 401.

use anyhow::Context;
use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use jobcast::auth::{Authorizer, JwtSettings, TokenVerifier};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::telemetry::init();
    let settings = JwtSettings::from_env().context("reading JWT settings")?;
    // A JWKS URL is fetched here, once per cold start.
    let verifier = TokenVerifier::new(&settings)
        .await
        .context("building the token verifier")?;
    let authorizer = Authorizer::new(verifier);

    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            authorizer
                .authorize(&event.payload)
                .await
                .map_err(|unauthorized| Diagnostic {
                    error_type: "Unauthorized".to_owned(),
                    error_message: unauthorized.to_string(),
                })
        },
    ))
    .await
}
