//! The gateway adapter for AWS: API Gateway's Management API (`@connections`).
//!
//! Each call is one SigV4-signed HTTP request ([`signing`](super::signing)) on a pooled HTTP
//! client; a refusal is classified by its error type, as the SDK does, else by its status, as
//! the Management API documents it (410 gone, 413 too large, 429 throttled, 403 forbidden).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use aws_smithy_types::error::display::DisplayErrorContext;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};

use super::signing::{Signer, SigningError};
use super::{ConnectionGateway, PostError};
use crate::protocol::ConnectionId;

/// What a connection id keeps unescaped in a path: RFC 3986's unreserved characters, as the
/// SDK escapes labels. (`+`, `/` and `=` of an id are escaped.)
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A post's body type, as the SDK sends it (and signs it).
const OCTET_STREAM: &str = "application/octet-stream";

/// The longest a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one request may take, from sending to its whole answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What every endpoint's gateway shares: one connection pool, one credentials cache.
#[derive(Debug)]
struct Shared {
    /// Built at the first request, not at a cold start's init.
    http: OnceLock<reqwest::Client>,
    signer: Signer,
}

impl Shared {
    fn new(sdk: &SdkConfig) -> Arc<Self> {
        Arc::new(Self {
            http: OnceLock::new(),
            signer: Signer::new(sdk),
        })
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            // No retries here: the delivery engine retries with jitter and knows that a 410 is
            // final; two layers of retry would multiply attempts under throttling. Like the
            // SDK's client: no redirects (a signed request is for one URL), no proxy from the
            // environment.
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .expect("an HTTP client with rustls and the platform's resolver")
        })
    }
}

/// Posts through one API stage's `@connections` endpoint.
#[derive(Clone, Debug)]
pub struct ManagementApiGateway {
    /// The endpoint, without a trailing `/`.
    endpoint: Arc<str>,
    shared: Arc<Shared>,
}

impl ManagementApiGateway {
    /// A client for `endpoint` (e.g. `https://abc123.execute-api.eu-west-1.amazonaws.com/prod`),
    /// signing with `sdk`'s region and credentials.
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        Self::sharing(Shared::new(sdk), endpoint)
    }

    fn sharing(shared: Arc<Shared>, endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').into(),
            shared,
        }
    }

    /// `@connections/{id}` on this endpoint, parsed once: the URL that is signed is the URL
    /// that is sent.
    fn url(&self, connection_id: &ConnectionId) -> Result<reqwest::Url, PostError> {
        let url = format!(
            "{}/@connections/{}",
            self.endpoint,
            utf8_percent_encode(connection_id.as_str(), PATH_SEGMENT)
        );
        reqwest::Url::parse(&url)
            .map_err(|err| PostError::Misconfigured(format!("endpoint {url}: {err}")))
    }

    /// Sends one signed request; a 2xx is `Ok`, anything else its [`PostError`].
    async fn call(
        &self,
        method: Method,
        connection_id: &ConnectionId,
        body: Bytes,
    ) -> Result<(), PostError> {
        let url = self.url(connection_id)?;
        let size = body.len();
        let method_is_post = method == Method::POST;
        let headers: &[(&str, &str)] = if method_is_post {
            &[("content-type", OCTET_STREAM)]
        } else {
            &[]
        };
        let signed = self
            .shared
            .signer
            .sign(
                method.as_str(),
                url.as_str(),
                headers,
                &body,
                SystemTime::now(),
            )
            .await
            .map_err(signing_failure)?;
        let mut request = self.shared.http().request(method, url);
        for (name, value) in headers.iter().copied() {
            request = request.header(name, value);
        }
        for (name, value) in signed {
            request = request.header(name, value);
        }
        if method_is_post {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            // Drained so the connection goes back to the pool; the post has arrived, so a
            // broken answer body is no reason to post again.
            while let Ok(Some(_)) = response.chunk().await {}
            return Ok(());
        }
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // Past ANSWER_LIMIT the rest is dropped with the connection.
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            let room = ANSWER_LIMIT - answer.len();
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() >= room {
                break;
            }
        }
        Err(classify(status, error_type.as_deref(), &answer, size))
    }
}

fn signing_failure(err: SigningError) -> PostError {
    match err {
        // The provider may answer next time (an instance metadata timeout, say).
        SigningError::Credentials(_) => PostError::Transport(err.to_string()),
        SigningError::NoRegion | SigningError::NoCredentialsProvider | SigningError::Sign(_) => {
            PostError::Misconfigured(err.to_string())
        }
    }
}

fn transport(err: reqwest::Error) -> PostError {
    if err.is_timeout() {
        PostError::Timeout
    } else {
        // With its sources: why (refused, reset, TLS), where the top error only names the URL.
        PostError::Transport(DisplayErrorContext(&err).to_string())
    }
}

/// The Management API's error body: `{"message": "..."}`, in some answers with its type.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(alias = "Message")]
    message: Option<String>,
    #[serde(rename = "__type")]
    error_type: Option<String>,
}

/// Classifies a refusal by its error type (the `X-Amzn-ErrorType` header, else the body's
/// `__type`), as the SDK does, and else by its status.
fn classify(status: StatusCode, error_type: Option<&str>, body: &[u8], size: usize) -> PostError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let message = || {
        parsed
            .as_ref()
            .and_then(|body| body.message.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
    };
    // "GoneException:http://internal.amazon.com/coral/...", "com.amazon#GoneException".
    let code = error_type
        .or_else(|| parsed.as_ref().and_then(|body| body.error_type.as_deref()))
        .map(|code| code.split(':').next().unwrap_or(code))
        .map(|code| code.rsplit('#').next().unwrap_or(code));
    match code {
        Some("GoneException") => return PostError::Gone,
        Some("PayloadTooLargeException") => return PostError::PayloadTooLarge { size },
        Some("LimitExceededException" | "ThrottlingException" | "TooManyRequestsException") => {
            return PostError::Throttled;
        }
        Some("ForbiddenException" | "AccessDeniedException") => {
            return PostError::Forbidden(message());
        }
        _ => {}
    }
    match status.as_u16() {
        410 => PostError::Gone,
        413 => PostError::PayloadTooLarge { size },
        429 => PostError::Throttled,
        403 => PostError::Forbidden(message()),
        408 => PostError::Timeout,
        status @ 500.. => PostError::ServerError { status },
        status => PostError::Rejected {
            status,
            message: message(),
        },
    }
}

/// The most of an answer that is read: the Management API's answers are a few hundred bytes.
const ANSWER_LIMIT: usize = 16 * 1024;

impl ConnectionGateway for ManagementApiGateway {
    async fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> Result<(), PostError> {
        self.call(Method::POST, connection_id, payload).await
    }

    async fn delete_connection(&self, connection_id: &ConnectionId) -> Result<(), PostError> {
        self.call(Method::DELETE, connection_id, Bytes::new()).await
    }

    /// `GET @connections/{id}`: 410 until API Gateway opens the connection, and after it
    /// closes.
    async fn connection_open(&self, connection_id: &ConnectionId) -> Result<bool, PostError> {
        match self.call(Method::GET, connection_id, Bytes::new()).await {
            Ok(()) => Ok(true),
            Err(PostError::Gone) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// The `@connections` endpoint of the API stage a request came through.
pub fn endpoint_for_request(context: &ApiGatewayWebsocketProxyRequestContext) -> Option<String> {
    let domain = context.domain_name.as_deref().filter(|d| !d.is_empty())?;
    let stage = context.stage.as_deref().filter(|s| !s.is_empty())?;
    Some(format!("https://{domain}/{stage}"))
}

/// Management API gateways, one per endpoint, built once and reused across invocations; they
/// share one connection pool and one credentials cache.
#[derive(Clone)]
pub struct ManagementApi {
    shared: Arc<Shared>,
    configured: Option<ManagementApiGateway>,
    by_endpoint: Arc<Mutex<HashMap<String, ManagementApiGateway>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no @connections endpoint: set WEBSOCKET_ENDPOINT, or invoke through API Gateway")]
pub struct NoEndpoint;

impl ManagementApi {
    /// With `configured_endpoint` (WEBSOCKET_ENDPOINT) every post goes there; without it the
    /// endpoint comes from each request's domain name and stage.
    pub fn new(sdk: SdkConfig, configured_endpoint: Option<&str>) -> Self {
        let shared = Shared::new(&sdk);
        let configured = configured_endpoint
            .map(|endpoint| ManagementApiGateway::sharing(shared.clone(), endpoint));
        Self {
            shared,
            configured,
            by_endpoint: Arc::default(),
        }
    }

    /// The gateway for posts that answer `request`.
    pub fn for_request(
        &self,
        context: &ApiGatewayWebsocketProxyRequestContext,
    ) -> Result<ManagementApiGateway, NoEndpoint> {
        if let Some(gateway) = &self.configured {
            return Ok(gateway.clone());
        }
        let endpoint = endpoint_for_request(context).ok_or(NoEndpoint)?;
        let mut cache = self.by_endpoint.lock().unwrap_or_else(|e| e.into_inner());
        Ok(cache
            .entry(endpoint)
            .or_insert_with_key(|endpoint| {
                ManagementApiGateway::sharing(self.shared.clone(), endpoint)
            })
            .clone())
    }

    /// The gateway for posts that answer no request (the sender): the configured endpoint.
    pub fn configured(&self) -> Result<ManagementApiGateway, NoEndpoint> {
        self.configured.clone().ok_or(NoEndpoint)
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::provider::SharedCredentialsProvider;

    use super::*;

    fn classified(status: u16, body: &str) -> PostError {
        classify(
            StatusCode::from_u16(status).unwrap(),
            None,
            body.as_bytes(),
            42,
        )
    }

    #[test]
    fn refusals_are_classified_by_their_error_type_first() {
        let typed = |status: u16, error_type: &str| {
            classify(
                StatusCode::from_u16(status).unwrap(),
                Some(error_type),
                b"{}",
                42,
            )
        };
        assert_eq!(
            typed(
                400,
                "LimitExceededException:http://internal.amazon.com/coral/x/"
            ),
            PostError::Throttled
        );
        assert_eq!(typed(400, "GoneException"), PostError::Gone);
        assert_eq!(
            typed(400, "PayloadTooLargeException"),
            PostError::PayloadTooLarge { size: 42 }
        );
        // Or the body's `__type`.
        assert_eq!(
            classified(400, r#"{"__type":"com.amazonaws#ThrottlingException"}"#),
            PostError::Throttled
        );
        assert_eq!(classified(408, ""), PostError::Timeout);
    }

    #[test]
    fn refusals_are_classified_by_their_status() {
        assert_eq!(classified(410, r#"{"message":null}"#), PostError::Gone);
        assert_eq!(classified(413, ""), PostError::PayloadTooLarge { size: 42 });
        assert_eq!(classified(429, "{}"), PostError::Throttled);
        assert_eq!(
            classified(403, r#"{"message":"Forbidden"}"#),
            PostError::Forbidden("Forbidden".into())
        );
        assert_eq!(
            classified(503, "<html>"),
            PostError::ServerError { status: 503 }
        );
        let rejected = classified(400, r#"{"Message":"Invalid connectionId"}"#);
        assert_eq!(
            rejected,
            PostError::Rejected {
                status: 400,
                message: "Invalid connectionId".into()
            }
        );
        assert!(!rejected.is_retryable());
        // A body that is not the documented JSON lends its first characters.
        assert_eq!(
            classified(403, &"x".repeat(500)),
            PostError::Forbidden("x".repeat(200))
        );
    }

    #[test]
    fn connection_ids_are_escaped_in_the_path() {
        let gateway = ManagementApiGateway::new(
            &SdkConfig::builder().build(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
        );
        let id = ConnectionId::parse("L0SM9c+/=_-").unwrap();
        assert_eq!(
            gateway.url(&id).unwrap().as_str(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/@connections/L0SM9c%2B%2F%3D_-"
        );
        // What is signed is what is sent: the host as the URL parser writes it, no default port.
        let shouting = ManagementApiGateway::new(
            &SdkConfig::builder().build(),
            "https://ABC.Execute-Api.eu-west-1.amazonaws.com:443/prod",
        );
        assert_eq!(
            shouting.url(&id).unwrap().as_str(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/@connections/L0SM9c%2B%2F%3D_-"
        );
        let nonsense = ManagementApiGateway::new(&SdkConfig::builder().build(), "not a url");
        assert!(matches!(
            nonsense.url(&id),
            Err(PostError::Misconfigured(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_transport_error_worth_retrying() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("a", "b", None, None, "test"),
            ))
            .build();
        let gateway = ManagementApiGateway::new(&sdk, &format!("http://127.0.0.1:{port}"));
        let err = gateway
            .post_to_connection(&ConnectionId::parse("abc").unwrap(), Bytes::from("{}"))
            .await
            .unwrap_err();
        assert!(matches!(err, PostError::Transport(_)), "{err:?}");
        assert!(err.is_retryable());
    }
}
