//! The `$connect` REQUEST authorizer: verifies the client's JWT and answers an IAM policy with
//! the user id in its context. Failing with "Unauthorized" makes API Gateway answer 401.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::startup::authorizer().await
}
