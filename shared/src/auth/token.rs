//! Where a client's token travels on the WebSocket upgrade, and which subprotocol the
//! server answers with.

use aws_lambda_events::query_map::QueryMap;
use http::HeaderMap;

/// The subprotocol a browser client offers beside its token; `$connect` echoes it, as API
/// Gateway requires whenever the client offered any.
pub const SUBPROTOCOL: &str = "jobcast";
/// A `Sec-WebSocket-Protocol` entry carrying a token: `bearer.<jwt>`.
pub const BEARER_PREFIX: &str = "bearer.";
/// The query parameter that may carry a token.
pub const TOKEN_QUERY_PARAMETER: &str = "token";
/// The cookie that may carry a token.
pub const TOKEN_COOKIE: &str = "access_token";

/// How a token reached the server, in the order they are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Sec-WebSocket-Protocol: jobcast, bearer.<jwt>`: the only header a browser can set
    /// on a WebSocket, and not written to access logs.
    Subprotocol,
    /// `?token=`: works everywhere, but URLs end up in logs.
    Query,
    /// `Cookie: access_token=`: for pages served from the API's own domain.
    Cookie,
}

impl TokenSource {
    /// The source's name, as logged and as the authorizer context's `tokenSource`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subprotocol => "subprotocol",
            Self::Query => "query",
            Self::Cookie => "cookie",
        }
    }
}

/// A token as the client presented it: not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken {
    /// The token, as presented (never empty).
    pub token: String,
    /// Where it was found.
    pub source: TokenSource,
}

/// Finds the client's token: subprotocol first, then the query string, then the cookie.
pub fn presented_token(headers: &HeaderMap, query: &QueryMap) -> Option<PresentedToken> {
    let from_subprotocol = offered_subprotocols(headers)
        .find_map(|protocol| protocol.strip_prefix(BEARER_PREFIX).map(str::to_owned))
        .map(|token| (token, TokenSource::Subprotocol));
    let from_query = || {
        query
            .first(TOKEN_QUERY_PARAMETER)
            .map(|token| (token.to_owned(), TokenSource::Query))
    };
    let from_cookie = || {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == TOKEN_COOKIE)
            .map(|cookie| (cookie.value().to_owned(), TokenSource::Cookie))
    };
    from_subprotocol
        .or_else(from_query)
        .or_else(from_cookie)
        .filter(|(token, _)| !token.is_empty())
        .map(|(token, source)| PresentedToken { token, source })
}

/// The subprotocol to answer the upgrade with: [`SUBPROTOCOL`] when the client offered it.
pub fn chosen_subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    offered_subprotocols(headers)
        .any(|protocol| protocol == SUBPROTOCOL)
        .then_some(SUBPROTOCOL)
}

fn offered_subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn query(pairs: &[(&str, &str)]) -> QueryMap {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        QueryMap::from(map)
    }

    #[test]
    fn the_subprotocol_wins_over_the_query_and_the_cookie() {
        let found = presented_token(
            &headers(&[
                ("Sec-WebSocket-Protocol", "jobcast, bearer.from-protocol"),
                ("Cookie", "access_token=from-cookie"),
            ]),
            &query(&[("token", "from-query")]),
        )
        .unwrap();
        assert_eq!(found.token, "from-protocol");
        assert_eq!(found.source, TokenSource::Subprotocol);
    }

    #[test]
    fn the_query_wins_over_the_cookie() {
        let found = presented_token(
            &headers(&[("Cookie", "theme=dark; access_token=from-cookie")]),
            &query(&[("token", "from-query")]),
        )
        .unwrap();
        assert_eq!(found.source, TokenSource::Query);
        assert_eq!(found.token, "from-query");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let found = presented_token(
            &headers(&[("Cookie", "theme=dark; access_token=from-cookie; lang=en")]),
            &query(&[]),
        )
        .unwrap();
        assert_eq!(found.source, TokenSource::Cookie);
        assert_eq!(found.token, "from-cookie");
    }

    #[test]
    fn no_token_and_empty_tokens_are_none() {
        assert_eq!(presented_token(&headers(&[]), &query(&[])), None);
        assert_eq!(
            presented_token(
                &headers(&[("Sec-WebSocket-Protocol", "jobcast, bearer.")]),
                &query(&[("token", "")])
            ),
            None
        );
    }

    #[test]
    fn the_jobcast_subprotocol_is_echoed_only_when_offered() {
        let offered = headers(&[("Sec-WebSocket-Protocol", "bearer.x, jobcast")]);
        assert_eq!(chosen_subprotocol(&offered), Some("jobcast"));
        let other = headers(&[("Sec-WebSocket-Protocol", "graphql-ws")]);
        assert_eq!(chosen_subprotocol(&other), None);
    }
}
