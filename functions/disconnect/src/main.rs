//! `$disconnect`: removes the connection and its subscriptions.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::startup::disconnect().await
}
