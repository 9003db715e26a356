//! Which web pages may act with the user's cookie. A browser attaches the `access_token`
//! cookie to a WebSocket upgrade whatever page opens it (WebSockets are not covered by CORS),
//! so without this check any site the user visits could connect as the user: cross-site
//! WebSocket hijacking. A browser always names the page in `Origin`, and a page cannot change
//! it, so an upgrade whose token came from a cookie is allowed only from a listed origin, or
//! from the API's own origin (`Origin` naming the `Host` it was sent to). Tokens in the
//! subprotocol or the query string are not sent by the browser on its own: a page must hold
//! the token to send them, so they are not checked.

use std::fmt;

/// The origins allowed to connect with a cookie (`ALLOWED_ORIGINS`, comma-separated
/// `scheme://host[:port]`), besides the API's own.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl fmt::Debug for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// Why an `ALLOWED_ORIGINS` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an origin (scheme://host[:port], no path, no wildcard)")]
pub struct OriginError {
    /// The refused entry.
    pub entry: String,
}

impl AllowedOrigins {
    /// Parses a comma-separated list. Each entry is an origin exactly as browsers send it:
    /// `http` or `https`, a host, an optional port, no path and no `*`.
    pub fn parse(list: &str) -> Result<Self, OriginError> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let refuse = || OriginError {
                entry: entry.to_owned(),
            };
            let normalized = normalize(entry).ok_or_else(refuse)?;
            origins.push(normalized);
        }
        Ok(Self(origins))
    }

    /// The listed origins, normalized.
    pub fn listed(&self) -> &[String] {
        &self.0
    }

    /// Whether a request from `origin`, sent to `host` (its `Host` header), may go on: the
    /// origin is listed, or it is the API's own.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let Some(origin) = normalize(origin.trim()) else {
            // `null` (a sandboxed frame, a file) and anything unreadable.
            return false;
        };
        if self.0.contains(&origin) {
            return true;
        }
        let authority = origin
            .split_once("://")
            .map_or("", |(_, authority)| authority);
        host.map(|host| strip_default_port(&host.trim().to_ascii_lowercase()).to_owned())
            .is_some_and(|host| !host.is_empty() && host == authority)
    }
}

/// `scheme://host[:port]`, lowercased, the default port dropped; `None` for anything else.
fn normalize(origin: &str) -> Option<String> {
    let lower = origin.to_ascii_lowercase();
    let (scheme, authority) = lower.split_once("://")?;
    if !matches!(scheme, "http" | "https")
        || authority.is_empty()
        || authority
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '*' | '@' | ' ' | ','))
        || authority.chars().any(char::is_control)
    {
        return None;
    }
    let authority = match (scheme, authority.rsplit_once(':')) {
        ("http", Some((host, "80"))) | ("https", Some((host, "443"))) => host,
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

/// A `Host` header without the port its scheme implies (browsers leave those out of
/// `Origin`; some clients put them in `Host`).
fn strip_default_port(host: &str) -> &str {
    host.strip_suffix(":443")
        .or_else(|| host.strip_suffix(":80"))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_and_own_origins_are_allowed_and_nothing_else() {
        let allowed =
            AllowedOrigins::parse("https://app.example.com, http://localhost:5173").unwrap();
        assert!(allowed.allows("https://app.example.com", None));
        assert!(allowed.allows("HTTPS://App.Example.com:443", None));
        assert!(allowed.allows("http://localhost:5173", Some("api.example.com")));
        assert!(!allowed.allows("https://evil.example", Some("api.example.com")));
        assert!(!allowed.allows("https://app.example.com.evil.example", None));
        assert!(!allowed.allows("null", Some("api.example.com")));
        // The API's own origin: the page was served by the API itself.
        assert!(allowed.allows("https://api.example.com", Some("api.example.com")));
        assert!(allowed.allows("http://127.0.0.1:3001", Some("127.0.0.1:3001")));
        assert!(!allowed.allows("http://127.0.0.1:3002", Some("127.0.0.1:3001")));
        assert!(!AllowedOrigins::default().allows("https://app.example.com", None));
    }

    #[test]
    fn entries_that_are_not_origins_are_refused() {
        for bad in [
            "*",
            "https://*.example.com",
            "app.example.com",
            "https://a.com/path",
            "ftp://a.com",
        ] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(AllowedOrigins::parse(" , ").unwrap().listed().len(), 0);
    }
}
