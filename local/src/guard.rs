//! What a web page must not be able to do to jobcast-local with `--auth jwt`. Its HTTP side
//! doors (the connection listing, `@connections`, the Invoke path, demo jobs) check no
//! signature, as jobcast-local stands in for AWS's IAM; so they must at least be out of reach of
//! the pages the developer's browser visits:
//!
//! - **DNS rebinding**: a page on `evil.example` whose name is made to resolve to 127.0.0.1
//!   talks to the emulator as its own origin. Every request must name a host this server
//!   answers to (`Host`): `localhost`, an IP address, or one listed with `--allowed-host`.
//! - **Cross-site requests**: a browser sends a simple `POST` (form or `text/plain` body)
//!   anywhere without asking first, and always says which page sent it (`Origin`). A side door
//!   refuses a request whose `Origin` is neither listed (`ALLOWED_ORIGINS`) nor its own, and a
//!   body a form could send.
//!
//! The SDKs, the CLI and curl send no `Origin`, so they are unaffected.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use jobcast::auth::AllowedOrigins;

/// Who may reach the server, and from which pages.
#[derive(Debug, Clone, Default)]
pub struct HttpGuard {
    /// Host names besides `localhost` and IP addresses (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// Pages that may use the side doors besides the server's own (`ALLOWED_ORIGINS`).
    pub allowed_origins: AllowedOrigins,
}

impl HttpGuard {
    /// Whether `host` (a `Host` header: a name or address, maybe with a port) is one this
    /// server answers to.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host.as_str(), |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    host.as_str()
                }
            }),
        };
        name == "localhost"
            || name.ends_with(".localhost")
            || name.parse::<IpAddr>().is_ok()
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    /// Why a request to a side door is refused, if it is.
    fn side_door_refusal(&self, request: &Request) -> Option<(StatusCode, &'static str)> {
        let headers = request.headers();
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(origin) = text(header::ORIGIN)
            && !self.allowed_origins.allows(origin, text(header::HOST))
        {
            return Some((
                StatusCode::FORBIDDEN,
                "requests from other web pages are refused",
            ));
        }
        // What an HTML form (or a no-cors fetch) can send without the browser asking first.
        let simple = text(header::CONTENT_TYPE).is_some_and(|content_type| {
            let essence = content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            matches!(
                essence.as_str(),
                "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
            )
        });
        (simple && request.method() != http::Method::GET).then_some((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json (or no Content-Type): form and text bodies are refused",
        ))
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

/// Every request: the `Host` must be one this server answers to.
pub(crate) async fn check_host(
    State(guard): State<Arc<HttpGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !guard.allows_host(host) {
        tracing::warn!(host, path = %request.uri().path(), "refused: a Host this server does not answer to (DNS rebinding?)");
        return refuse(StatusCode::FORBIDDEN, "unknown Host; see --allowed-host");
    }
    next.run(request).await
}

/// The side doors: no request a web page could send behind the developer's back.
pub(crate) async fn check_side_door(
    State(guard): State<Arc<HttpGuard>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some((status, message)) = guard.side_door_refusal(&request) {
        tracing::warn!(path = %request.uri().path(), %status, "refused a side-door request a web page could send");
        return refuse(status, message);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_loopback_names_addresses_or_listed() {
        let guard = HttpGuard {
            allowed_hosts: vec!["jobcast.lan".into()],
            ..HttpGuard::default()
        };
        for host in [
            "127.0.0.1:3001",
            "localhost:3001",
            "LOCALHOST",
            "[::1]:3001",
            "app.localhost",
            "10.0.0.5",
            "jobcast.lan:3001",
        ] {
            assert!(guard.allows_host(host), "{host}");
        }
        for host in [
            "evil.example:3001",
            "127.0.0.1.evil.example",
            "",
            "localhost.evil.example",
        ] {
            assert!(!guard.allows_host(host), "{host}");
        }
    }
}
