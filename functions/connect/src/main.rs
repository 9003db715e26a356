//! `$connect`: records the connection (the REQUEST authorizer has already vouched for the user).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobcast::startup::connect().await
}
