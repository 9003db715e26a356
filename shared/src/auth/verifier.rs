//! JWT verification: HS256 with a shared secret, RS256 and ES256 with keys from a JWKS
//! document (a file, or a URL fetched at start and again when a token names an unknown key).

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::protocol::UserId;

/// An HS256 secret shorter than the hash is guessable; RFC 7518 §3.2 asks for at least 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;
/// A JWKS URL is fetched again for an unknown `kid` at most this often, so forged tokens
/// cannot make every connect fetch it.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the JWKS document lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk, read once at start.
    File(PathBuf),
    /// A JWKS document at an `https://` URL (plain `http://` only on loopback, for tests),
    /// fetched at start and again (at most every five minutes) when a token names a key not
    /// in it. Redirects are not followed.
    Url(String),
}

impl JwksSource {
    /// Checks a JWKS URL: `https://`, or `http://` to a loopback host. Signing keys fetched
    /// over plain HTTP could be swapped by anyone on the path.
    pub fn url(url: &str) -> Result<(), &'static str> {
        if url.starts_with("https://") {
            return Ok(());
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err("expected an https:// URL or a file path");
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
            None => authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host),
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback && !authority.contains('@') {
            Ok(())
        } else {
            Err("plain http:// is allowed only for a loopback host; use https://")
        }
    }
}

/// Token validation settings, read from the environment (`JWT_*`) by [`crate::settings`].
#[derive(Clone, Default)]
pub struct JwtSettings {
    /// `JWT_HS256_SECRET`: enables HS256.
    pub hs256_secret: Option<String>,
    /// `JWT_JWKS`: a path or an `https://` URL; enables RS256 and ES256.
    pub jwks: Option<JwksSource>,
    /// `JWT_ISSUER`: when set, `iss` must equal it (required with a JWKS).
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: when set, `aud` must contain it (required with a JWKS).
    pub audience: Option<String>,
    /// `JWT_LEEWAY_SECONDS`: clock skew allowed on `exp` and `nbf` (default 30).
    pub leeway: Duration,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtSettings {
    /// Whether any key is configured (a secret or a JWKS).
    pub fn is_configured(&self) -> bool {
        self.hs256_secret.is_some() || self.jwks.is_some()
    }
}

/// Why a verifier could not be built: configuration, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum VerifierConfigError {
    /// Neither an HS256 secret nor a JWKS is configured.
    #[error("no key configured: set JWT_HS256_SECRET and/or JWT_JWKS")]
    NoKeys,
    /// A JWKS is configured without `JWT_ISSUER` and `JWT_AUDIENCE`: an identity provider's
    /// keys also sign tokens it issues for other applications.
    #[error("JWT_ISSUER and JWT_AUDIENCE are required with JWT_JWKS")]
    UnboundJwks,
    /// The JWKS document could not be read, fetched or parsed.
    #[error("reading the JWKS document {source_name}: {reason}")]
    Jwks {
        /// The file's path or the URL.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
}

/// Why a token was refused. Each says what was wrong with the token, never with the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token on the upgrade request.
    #[error(
        "no token: send one as the subprotocol `bearer.<token>`, ?token= or the access_token cookie"
    )]
    Missing,
    /// Not a well-formed JWT: not three base64url parts, or a header or claims that do not read.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// An algorithm not accepted, or not configured (`alg: none` among them).
    #[error("the token's algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    /// No configured key matches the token's `kid` (or, without a `kid`, no single key of its
    /// algorithm).
    #[error("the token is signed with a key this server does not know")]
    UnknownKey,
    /// The signature does not verify with the key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim (`exp`, `sub`) is absent.
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    /// `iss` is not the configured issuer.
    #[error("the token was issued by someone else")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// `sub` is not a valid user id.
    #[error("the token's subject is not a valid user id")]
    InvalidSubject,
}

impl TokenError {
    /// 401 for a token that is absent or unverifiable (get a new one); 403 for a genuine
    /// token that is not for this API.
    pub fn status(&self) -> u16 {
        match self {
            Self::WrongIssuer | Self::WrongAudience | Self::InvalidSubject => 403,
            _ => 401,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::InvalidSubject => "invalid_subject",
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user: the token's `sub`.
    pub user_id: UserId,
}

#[derive(Deserialize)]
struct Claims {
    /// Optional here so that its absence is reported as such, not as a malformed token.
    sub: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

struct PublicKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens; built once per process (the JWKS is fetched here), shared by every request.
pub struct TokenVerifier {
    hmac: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    /// The claim checks for each accepted algorithm, built once.
    validations: [(Algorithm, Validation); 3],
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("hs256", &self.hmac.is_some())
            .field("jwks", &self.jwks.as_ref().map(|jwks| &jwks.source))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

struct Jwks {
    source: JwksSource,
    keys: RwLock<Vec<PublicKey>>,
    last_fetch: RwLock<Instant>,
    http: reqwest::Client,
}

impl TokenVerifier {
    /// Builds the verifier from `settings`, loading the JWKS (fetching it, for a URL) if one is
    /// configured. Fails when no key is configured or the JWKS cannot be loaded.
    pub async fn new(settings: &JwtSettings) -> Result<Self, VerifierConfigError> {
        if !settings.is_configured() {
            return Err(VerifierConfigError::NoKeys);
        }
        if settings.jwks.is_some() && (settings.issuer.is_none() || settings.audience.is_none()) {
            return Err(VerifierConfigError::UnboundJwks);
        }
        let jwks = match &settings.jwks {
            None => None,
            Some(source) => {
                if let JwksSource::Url(url) = source {
                    JwksSource::url(url).map_err(|reason| jwks_error(source, reason.into()))?;
                }
                let http = reqwest::Client::builder()
                    .timeout(JWKS_FETCH_TIMEOUT)
                    // A redirect could lead the fetch to keys the attacker controls.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|err| jwks_error(source, err.to_string()))?;
                let keys = load_jwks(source, &http).await?;
                tracing::info!(keys = keys.len(), source = ?source, "JWKS loaded");
                Some(Jwks {
                    source: source.clone(),
                    keys: RwLock::new(keys),
                    last_fetch: RwLock::new(Instant::now()),
                    http,
                })
            }
        };
        Ok(Self {
            hmac: settings
                .hs256_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway,
            validations: [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256]
                .map(|algorithm| (algorithm, validation(settings, algorithm))),
        })
    }

    /// Checks the signature first, then `exp`, `nbf`, `iss`, `aud`; `sub` is the user.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let header = raw_header(token)?;
        let algorithm = match header.alg.as_str() {
            "HS256" if self.hmac.is_some() => Algorithm::HS256,
            "RS256" if self.jwks.is_some() => Algorithm::RS256,
            "ES256" if self.jwks.is_some() => Algorithm::ES256,
            other => return Err(TokenError::AlgorithmNotAllowed(other.to_owned())),
        };
        let validation = self
            .validations
            .iter()
            .find_map(|(of, validation)| (*of == algorithm).then_some(validation))
            .expect("a validation for every accepted algorithm");
        let claims = match (algorithm, &self.hmac, &self.jwks) {
            (Algorithm::HS256, Some(key), _) => decode(token, key, validation)?,
            (_, _, Some(jwks)) => {
                let kid = header.kid.as_deref();
                match jwks.decode(token, kid, algorithm, validation) {
                    Err(TokenError::UnknownKey) if jwks.claim_refresh() => {
                        jwks.refresh().await;
                        jwks.decode(token, kid, algorithm, validation)?
                    }
                    other => other?,
                }
            }
            _ => return Err(TokenError::AlgorithmNotAllowed(header.alg)),
        };
        let sub = claims
            .sub
            .ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
        let user_id = UserId::parse(sub).map_err(|_| TokenError::InvalidSubject)?;
        Ok(VerifiedToken { user_id })
    }
}

/// The claim checks for tokens of `algorithm`.
fn validation(settings: &JwtSettings, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = settings.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    match &settings.issuer {
        Some(issuer) => validation.set_issuer(&[issuer]),
        None => validation.iss = None,
    }
    match &settings.audience {
        Some(audience) => validation.set_audience(&[audience]),
        // Without a configured audience any `aud` is accepted.
        None => validation.validate_aud = false,
    }
    validation
}

impl Jwks {
    fn decode(
        &self,
        token: &str,
        kid: Option<&str>,
        algorithm: Algorithm,
        validation: &Validation,
    ) -> Result<Claims, TokenError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let mut candidates = keys.iter().filter(|key| key.algorithm == algorithm);
        let key = match kid {
            Some(kid) => candidates.find(|key| key.kid.as_deref() == Some(kid)),
            // No `kid`: only unambiguous with exactly one key of the algorithm.
            None => match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        }
        .ok_or(TokenError::UnknownKey)?;
        decode(token, &key.key, validation)
    }

    /// Whether this caller may fetch the document again now; claiming it under the lock
    /// means a burst of tokens with unknown keys fetches once, not once each.
    fn claim_refresh(&self) -> bool {
        if !matches!(self.source, JwksSource::Url(_)) {
            return false;
        }
        let mut last_fetch = self.last_fetch.write().unwrap_or_else(|e| e.into_inner());
        if last_fetch.elapsed() < JWKS_REFRESH_INTERVAL {
            return false;
        }
        *last_fetch = Instant::now();
        true
    }

    /// Fetches the document again (keys rotate); on failure the old keys stay.
    async fn refresh(&self) {
        match load_jwks(&self.source, &self.http).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(err) => tracing::warn!(error = %err, "JWKS refresh failed; keeping the old keys"),
        }
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, TokenError> {
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|err| match err.into_kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::InvalidSubject => TokenError::InvalidSubject,
            ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim),
            ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed("mismatch".into()),
            _ => TokenError::Malformed,
        })
}

/// The header, read before any key is chosen: `alg: none` and friends are refused by name.
fn raw_header(token: &str) -> Result<RawHeader, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

async fn load_jwks(
    source: &JwksSource,
    http: &reqwest::Client,
) -> Result<Vec<PublicKey>, VerifierConfigError> {
    let document = match source {
        JwksSource::File(path) => {
            std::fs::read(path).map_err(|err| jwks_error(source, err.to_string()))?
        }
        JwksSource::Url(url) => {
            let response = http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|err| jwks_error(source, err.to_string()))?;
            if response.status().is_redirection() {
                return Err(jwks_error(
                    source,
                    format!("answered {}: redirects are not followed", response.status()),
                ));
            }
            response
                .bytes()
                .await
                .map_err(|err| jwks_error(source, err.to_string()))?
                .to_vec()
        }
    };
    let set: JwkSet =
        serde_json::from_slice(&document).map_err(|err| jwks_error(source, err.to_string()))?;
    let keys: Vec<PublicKey> = set
        .keys
        .iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter_map(|jwk| {
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_))
                | (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(ec))
                | (None, AlgorithmParameters::EllipticCurve(ec))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => {
                    tracing::info!(kid = ?jwk.common.key_id, "JWKS key skipped: neither RS256 nor ES256");
                    return None;
                }
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => Some(PublicKey {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                }),
                Err(err) => {
                    tracing::warn!(kid = ?jwk.common.key_id, error = %err, "JWKS key unusable");
                    None
                }
            }
        })
        .collect();
    if keys.is_empty() {
        return Err(jwks_error(
            source,
            "holds no RS256 or ES256 signing key".into(),
        ));
    }
    Ok(keys)
}

fn jwks_error(source: &JwksSource, reason: String) -> VerifierConfigError {
    let source_name = match source {
        JwksSource::File(path) => path.display().to_string(),
        JwksSource::Url(url) => url.clone(),
    };
    VerifierConfigError::Jwks {
        source_name,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_never_reaches_debug_output() {
        let settings = JwtSettings {
            hs256_secret: Some("s3cret-s3cret-s3cret-s3cret-s3cret".into()),
            ..JwtSettings::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn headers_are_read_before_keys_are_chosen() {
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        assert_eq!(raw_header(none).unwrap().alg, "none");
        assert_eq!(raw_header("a.b").err(), Some(TokenError::Malformed));
        assert_eq!(raw_header("!!.b.c").err(), Some(TokenError::Malformed));
    }
}
