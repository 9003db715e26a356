//! The AWS SDK's configuration, the same in every binary: one HTTP client on one TLS stack.
//!
//! The SDK crates' default features would bring two TLS stacks into every bootstrap (rustls
//! 0.21 on ring for their legacy client, rustls 0.23 on aws-lc, a C library built with cmake).
//! The workspace turns those defaults off, and every SDK client gets its connections from here:
//! rustls 0.23 on ring, the stack reqwest (the JWKS fetch, the Management API's signed posts)
//! and tokio-tungstenite use too. A
//! smaller bootstrap pages in faster at a cold start, and a build compiles no C.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// A loader of the default configuration chain (region, credentials, endpoints from the
/// environment and profiles) whose clients connect over rustls on ring.
pub fn loader() -> ConfigLoader {
    let https = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn clients_get_an_http_client() {
        // Without one (the SDK's default client is compiled out) every call would fail with
        // "no HTTP client".
        let config = super::loader()
            .region(aws_config::Region::new("eu-west-1"))
            .load()
            .await;
        assert!(config.http_client().is_some());
    }
}
