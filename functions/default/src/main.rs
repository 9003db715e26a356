//! `$default` and the action routes: serves client actions and replies on the caller's
//! connection through the Management API.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::startup::default().await
}
