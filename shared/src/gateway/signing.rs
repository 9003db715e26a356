//! SigV4 for the Management API, with AWS's own signer (`aws-sigv4`) and credentials cached.
//!
//! Why not the SDK's client: its request pipeline (a config bag, type-erased interceptors,
//! runtime components merged per request) cost two to three times what the post itself costs
//! the sender's CPU (bench/RESULTS.md). A post is one signed POST, so jobcast signs it here and
//! sends it on a plain HTTP client. The signature is the SDK's own, byte for byte: the same
//! signer with the same settings, as a test against the SDK shows (tests/management_api.rs).

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::error::display::DisplayErrorContext;

/// The name API Gateway's `@connections` endpoints are signed for.
const SIGNING_NAME: &str = "execute-api";

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Credentials that came with less than [`REFRESH_BEFORE_EXPIRY`] to live are still used for
/// this long (while they last), so that a provider handing out short-lived credentials is not
/// asked again at every post.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The configuration names no region (`AWS_REGION`).
    #[error("no AWS region is configured")]
    NoRegion,
    /// The configuration has no credentials provider.
    #[error("no AWS credentials provider is configured")]
    NoCredentialsProvider,
    /// The credentials provider failed (it may succeed later).
    #[error("AWS credentials: {0}")]
    Credentials(String),
    /// The signer refused the request.
    #[error("signing: {0}")]
    Sign(String),
}

/// A header the signature adds: its name and value (the token's marked sensitive, so it is
/// never logged).
pub type SignedHeader = (&'static str, http::HeaderValue);

/// The longest a credentials provider is waited for.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Signs `@connections` requests with the configuration's region and credentials.
#[derive(Debug)]
pub struct Signer {
    region: Option<String>,
    provider: Option<SharedCredentialsProvider>,
    /// The credentials last fetched, and when; each post reads them here, not from the provider.
    identity: RwLock<Option<(Identity, SystemTime)>>,
    /// Held while fetching, so a burst of posts fetches once; it keeps the last failure and
    /// when, so that posts after a failure get it back rather than ask the provider again.
    fetching: tokio::sync::Mutex<Option<(String, SystemTime)>>,
}

impl Signer {
    /// A signer with `sdk`'s region and credentials provider.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            region: sdk.region().map(|region| region.as_ref().to_owned()),
            provider: sdk.credentials_provider(),
            identity: RwLock::default(),
            fetching: tokio::sync::Mutex::default(),
        }
    }

    /// The headers that sign a request (`X-Amz-Date`, `Authorization` and, with temporary
    /// credentials, `X-Amz-Security-Token`), at `time`. `headers` are the request's own headers
    /// that are signed with it; the signer adds `Host` from `url`.
    pub async fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<SignedHeader>, SigningError> {
        let region = self.region.as_deref().ok_or(SigningError::NoRegion)?;
        let identity = self.identity(time).await?;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SIGNING_NAME)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| SigningError::Sign(err.to_string()))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|err| SigningError::Sign(err.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|err| SigningError::Sign(err.to_string()))?
            .into_parts();
        let (signed, _query) = instructions.into_parts();
        signed
            .into_iter()
            .map(|header| {
                let mut value = http::HeaderValue::from_str(header.value())
                    .map_err(|err| SigningError::Sign(err.to_string()))?;
                value.set_sensitive(header.sensitive());
                Ok((header.name(), value))
            })
            .collect()
    }

    /// The cached credentials while they have more than [`REFRESH_BEFORE_EXPIRY`] to live,
    /// else fresh ones from the provider; if it fails, the cached ones while they last.
    async fn identity(&self, now: SystemTime) -> Result<Identity, SigningError> {
        if let Some(identity) = self.cached(now, fresh) {
            return Ok(identity);
        }
        let mut last_failure = self.fetching.lock().await;
        // Another post may have fetched them while this one waited.
        if let Some(identity) = self.cached(now, fresh) {
            return Ok(identity);
        }
        if let Some((reason, failed_at)) = last_failure.as_ref()
            && now >= *failed_at
            && now < *failed_at + REFETCH_AT_MOST_EVERY
        {
            return Err(SigningError::Credentials(reason.clone()));
        }
        let provider = self
            .provider
            .as_ref()
            .ok_or(SigningError::NoCredentialsProvider)?;
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, provider.provide_credentials()).await;
        let failure = match fetched {
            Ok(Ok(credentials)) => {
                let identity = Identity::from(credentials);
                self.keep(identity.clone(), now);
                *last_failure = None;
                return Ok(identity);
            }
            Ok(Err(err)) => DisplayErrorContext(err).to_string(),
            Err(_) => format!("no answer in {FETCH_TIMEOUT:?}"),
        };
        *last_failure = Some((failure.clone(), now));
        let failure = SigningError::Credentials(failure);
        // The cached credentials while they last, kept as if fetched now: the provider is
        // asked again in REFETCH_AT_MOST_EVERY, not by every post meanwhile.
        let identity = self.cached(now, unexpired).ok_or(failure)?;
        self.keep(identity.clone(), now);
        Ok(identity)
    }

    fn keep(&self, identity: Identity, fetched_at: SystemTime) {
        *self.identity.write().unwrap_or_else(|e| e.into_inner()) = Some((identity, fetched_at));
    }

    /// The cached credentials, if `usable` says so at `now`.
    fn cached(&self, now: SystemTime, usable: Usable) -> Option<Identity> {
        let cached = self.identity.read().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|(identity, fetched_at)| usable(identity, *fetched_at, now))
            .map(|(identity, _)| identity.clone())
    }
}

/// Whether cached credentials, fetched at the second argument, are to be used at the third.
type Usable = fn(&Identity, SystemTime, SystemTime) -> bool;

/// Whether `identity`, fetched at `fetched_at`, is still to be used at `now`: while it outlives
/// `now` by more than [`REFRESH_BEFORE_EXPIRY`] (credentials that never expire, such as the
/// environment's, always do), or for [`REFETCH_AT_MOST_EVERY`] after its fetch while it lasts.
fn fresh(identity: &Identity, fetched_at: SystemTime, now: SystemTime) -> bool {
    identity.expiration().is_none_or(|expiry| {
        expiry > now + REFRESH_BEFORE_EXPIRY
            || (expiry > now && now < fetched_at + REFETCH_AT_MOST_EVERY)
    })
}

/// Whether `identity` has not expired at `now`.
fn unexpired(identity: &Identity, _fetched_at: SystemTime, now: SystemTime) -> bool {
    identity.expiration().is_none_or(|expiry| expiry > now)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::future;

    use super::*;

    /// Counts its calls; its credentials expire at `expiry`. Every call fails while `failing`
    /// is set.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        expiry: Option<SystemTime>,
        failing: Arc<AtomicBool>,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return future::ProvideCredentials::ready(Err(
                    CredentialsError::provider_timed_out(Duration::from_secs(1)),
                ));
            }
            future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                Some("token".into()),
                self.expiry,
                "counting",
            )))
        }
    }

    fn signer(expiry: Option<SystemTime>, region: Option<&str>) -> (Signer, Arc<AtomicUsize>) {
        let (signer, calls, _) = failing_signer(expiry, region);
        (signer, calls)
    }

    fn failing_signer(
        expiry: Option<SystemTime>,
        region: Option<&str>,
    ) -> (Signer, Arc<AtomicUsize>, Arc<AtomicBool>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let provider = SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            expiry,
            failing: failing.clone(),
        });
        let mut sdk = SdkConfig::builder().credentials_provider(provider);
        if let Some(region) = region {
            sdk = sdk.region(aws_config::Region::new(region.to_owned()));
        }
        (Signer::new(&sdk.build()), calls, failing)
    }

    async fn sign_at(signer: &Signer, time: SystemTime) -> Result<Vec<SignedHeader>, SigningError> {
        signer
            .sign(
                "POST",
                "https://example.com/prod/@connections/abc",
                &[],
                b"{}",
                time,
            )
            .await
    }

    /// Signs three times at a time `now`, then once at `now + later` seconds, with credentials
    /// that expire `lifetime` seconds after `now`: the provider's calls after the three, and
    /// after the fourth.
    async fn calls_when(lifetime: Option<u64>, later: u64) -> (usize, usize) {
        let now = SystemTime::now();
        let expiry = lifetime.map(|seconds| now + Duration::from_secs(seconds));
        let (signer, calls) = signer(expiry, Some("eu-west-1"));
        for _ in 0..3 {
            sign_at(&signer, now).await.unwrap();
        }
        let first = calls.load(Ordering::SeqCst);
        sign_at(&signer, now + Duration::from_secs(later))
            .await
            .unwrap();
        (first, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn credentials_are_fetched_again_only_when_due() {
        // An hour to live: fetched once, and again within five minutes of their expiry.
        assert_eq!(calls_when(Some(3600), 3000).await, (1, 1));
        assert_eq!(calls_when(Some(3600), 3400).await, (1, 2));
        // A minute to live: not fetched at every post, but again 10 s on.
        assert_eq!(calls_when(Some(60), 5).await, (1, 1));
        assert_eq!(calls_when(Some(60), 11).await, (1, 2));
        // Never expiring (the environment's): fetched once.
        assert_eq!(calls_when(None, 86_400).await, (1, 1));
    }

    #[tokio::test]
    async fn a_session_token_is_signed_and_never_logged() {
        let (signer, _) = signer(None, Some("eu-west-1"));
        let headers = sign_at(&signer, SystemTime::now()).await.unwrap();
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| *name == wanted)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("no {wanted}"))
        };
        assert!(header("x-amz-security-token").is_sensitive());
        let authorization = header("authorization");
        let authorization = authorization.to_str().unwrap();
        assert!(
            authorization.contains("/eu-west-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("x-amz-security-token"),
            "{authorization}"
        );
    }

    #[tokio::test]
    async fn a_provider_that_never_answered_is_asked_at_most_every_ten_seconds() {
        let (signer, calls, failing) = failing_signer(None, Some("eu-west-1"));
        failing.store(true, Ordering::SeqCst);
        let now = SystemTime::now();
        for later in [0, 1, 5] {
            let err = sign_at(&signer, now + Duration::from_secs(later))
                .await
                .unwrap_err();
            assert!(matches!(err, SigningError::Credentials(_)), "{err:?}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        failing.store(false, Ordering::SeqCst);
        sign_at(&signer, now + Duration::from_secs(11))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failing_provider_leaves_the_cached_credentials_in_use_while_they_last() {
        let now = SystemTime::now();
        let expiry = now + Duration::from_secs(3600);
        let (signer, calls, failing) = failing_signer(Some(expiry), Some("eu-west-1"));
        sign_at(&signer, now).await.unwrap();
        failing.store(true, Ordering::SeqCst);
        // Due for a refresh; the provider fails; the cached credentials still sign.
        sign_at(&signer, expiry - Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The failing provider is not asked again by every post.
        sign_at(&signer, expiry - Duration::from_secs(55))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Once they have expired, nothing is signed.
        let err = sign_at(&signer, expiry + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, SigningError::Credentials(_)), "{err:?}");
    }

    #[tokio::test]
    async fn without_a_region_nothing_is_signed() {
        let (signer, calls) = signer(None, None);
        let err = sign_at(&signer, SystemTime::now()).await.unwrap_err();
        assert!(matches!(err, SigningError::NoRegion), "{err:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
