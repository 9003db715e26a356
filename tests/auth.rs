//! Authentication on `$connect`: the token verifier's matrix, the REQUEST authorizer on an
//! event in AWS's shape, and jobcast-local's `--auth jwt` with real WebSocket clients on both
//! stores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use aws_lambda_events::iam::IamPolicyEffect;
use jobcast::auth::{
    AllowedOrigins, Authorizer, JwksSource, JwtSettings, TokenError, TokenVerifier,
};
use jobcast::handlers::Jobcast;
use jobcast::store::{ConnectionStore, MemoryStore, Store};
use jobcast_local::{Emulator, EmulatorConfig};
use jobcast_tests::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
const ISSUER: &str = "https://id.jobcast.test/";
const AUDIENCE: &str = "jobcast";

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/jwt")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims that pass every check; tests break one at a time.
fn good_claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 300, "nbf": now() - 10, "iss": ISSUER, "aud": AUDIENCE})
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn signed(algorithm: Algorithm, pem_file: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(keys_dir().join(pem_file)).unwrap();
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn rs256(claims: &Value) -> String {
    signed(Algorithm::RS256, "rs256-private.pem", Some("rsa-1"), claims)
}

fn es256(claims: &Value) -> String {
    signed(Algorithm::ES256, "es256-private.pem", Some("ec-1"), claims)
}

/// An unsigned token: `{"alg":"none"}`.
fn alg_none(claims: &Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

fn settings() -> JwtSettings {
    JwtSettings {
        hs256_secret: Some(SECRET.to_owned()),
        jwks: Some(JwksSource::File(keys_dir().join("jwks.json"))),
        issuer: Some(ISSUER.to_owned()),
        audience: Some(AUDIENCE.to_owned()),
        leeway: Duration::from_secs(5),
    }
}

async fn verifier() -> TokenVerifier {
    TokenVerifier::new(&settings()).await.unwrap()
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_name_their_user() {
    let verifier = verifier().await;
    for (name, token) in [
        ("HS256", hs256(&good_claims("ana"))),
        ("RS256", rs256(&good_claims("ana"))),
        ("ES256", es256(&good_claims("ana"))),
        // Without a kid, the one key of the algorithm is used.
        (
            "RS256 without kid",
            signed(
                Algorithm::RS256,
                "rs256-private.pem",
                None,
                &good_claims("ana"),
            ),
        ),
    ] {
        let verified = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(verified.user_id.as_str(), "ana", "{name}");
    }
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_reason() {
    let verifier = verifier().await;
    let mut expired = good_claims("ana");
    expired["exp"] = json!(now() - 60);
    let mut early = good_claims("ana");
    early["nbf"] = json!(now() + 60);
    let mut foreign_issuer = good_claims("ana");
    foreign_issuer["iss"] = json!("https://evil.test/");
    let mut foreign_audience = good_claims("ana");
    foreign_audience["aud"] = json!("another-api");
    let mut no_exp = good_claims("ana");
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_sub = good_claims("ana");
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut bad_sub = good_claims("ana");
    bad_sub["sub"] = json!("has spaces in it");
    let tampered = {
        let token = hs256(&good_claims("ana"));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = hs256(&good_claims("root"));
        let forged_payload = forged.split('.').nth(1).unwrap().to_owned();
        parts[1] = &forged_payload;
        parts.join(".")
    };
    let wrong_secret = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims("ana"),
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-not-the-secret"),
    )
    .unwrap();

    let cases: Vec<(&str, String, TokenError, u16)> = vec![
        ("not a JWT", "hello".to_owned(), TokenError::Malformed, 401),
        (
            "alg none",
            alg_none(&good_claims("ana")),
            TokenError::AlgorithmNotAllowed("none".into()),
            401,
        ),
        (
            "HS512 (not accepted)",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS512),
                &good_claims("ana"),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap(),
            TokenError::AlgorithmNotAllowed("HS512".into()),
            401,
        ),
        ("expired", hs256(&expired), TokenError::Expired, 401),
        ("not yet valid", hs256(&early), TokenError::NotYetValid, 401),
        (
            "another secret",
            wrong_secret,
            TokenError::BadSignature,
            401,
        ),
        ("tampered payload", tampered, TokenError::BadSignature, 401),
        (
            "a key the JWKS does not hold, under a known kid",
            signed(
                Algorithm::RS256,
                "rs256-stranger.pem",
                Some("rsa-1"),
                &good_claims("ana"),
            ),
            TokenError::BadSignature,
            401,
        ),
        (
            "an unknown kid",
            signed(
                Algorithm::RS256,
                "rs256-private.pem",
                Some("rsa-2"),
                &good_claims("ana"),
            ),
            TokenError::UnknownKey,
            401,
        ),
        (
            "no exp",
            hs256(&no_exp),
            TokenError::MissingClaim("exp".into()),
            401,
        ),
        (
            "no sub",
            hs256(&no_sub),
            TokenError::MissingClaim("sub".into()),
            401,
        ),
        (
            "wrong issuer",
            hs256(&foreign_issuer),
            TokenError::WrongIssuer,
            403,
        ),
        (
            "wrong audience",
            rs256(&foreign_audience),
            TokenError::WrongAudience,
            403,
        ),
        (
            "a subject that is no user id",
            es256(&bad_sub),
            TokenError::InvalidSubject,
            403,
        ),
    ];
    for (name, token, expected, status) in cases {
        let err = verifier
            .verify(&token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert_eq!(err, expected, "{name}");
        assert_eq!(err.status(), status, "{name}");
    }
}

#[tokio::test]
async fn an_algorithm_is_accepted_only_with_its_keys_configured() {
    // JWKS only: an HS256 token (say, signed with the public key as the secret) is refused.
    let jwks_only = TokenVerifier::new(&JwtSettings {
        hs256_secret: None,
        ..settings()
    })
    .await
    .unwrap();
    assert_eq!(
        jwks_only.verify(&hs256(&good_claims("ana"))).await.err(),
        Some(TokenError::AlgorithmNotAllowed("HS256".into()))
    );
    // A secret only: RS256 is refused.
    let secret_only = TokenVerifier::new(&JwtSettings {
        jwks: None,
        ..settings()
    })
    .await
    .unwrap();
    assert_eq!(
        secret_only.verify(&rs256(&good_claims("ana"))).await.err(),
        Some(TokenError::AlgorithmNotAllowed("RS256".into()))
    );
    // Nothing configured: the verifier refuses to start.
    assert!(TokenVerifier::new(&JwtSettings::default()).await.is_err());
}

#[tokio::test]
async fn leeway_forgives_small_clock_skew_only() {
    let verifier = verifier().await; // 5 s of leeway
    let mut just_expired = good_claims("ana");
    just_expired["exp"] = json!(now() - 2);
    let verified = verifier.verify(&hs256(&just_expired)).await;
    assert_eq!(
        verified.map(|token| token.user_id.to_string()),
        Ok("ana".to_owned()),
        "two seconds late is within the leeway, and the token's own user comes back"
    );
    let mut long_expired = good_claims("ana");
    long_expired["exp"] = json!(now() - 30);
    assert_eq!(
        verifier.verify(&hs256(&long_expired)).await.err(),
        Some(TokenError::Expired)
    );
}

#[tokio::test]
async fn a_jwks_url_is_fetched_over_http() {
    let document = std::fs::read_to_string(keys_dir().join("jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move { document }),
        );
        axum::serve(listener, app).await
    });
    let verifier = TokenVerifier::new(&JwtSettings {
        hs256_secret: None,
        jwks: Some(JwksSource::Url(format!(
            "http://{address}/.well-known/jwks.json"
        ))),
        ..settings()
    })
    .await
    .unwrap();
    server.abort();
    let verified = verifier.verify(&es256(&good_claims("bo"))).await.unwrap();
    assert_eq!(verified.user_id.as_str(), "bo");

    let unreachable = TokenVerifier::new(&JwtSettings {
        jwks: Some(JwksSource::Url(format!("http://{address}/gone.json"))),
        ..settings()
    })
    .await;
    assert!(
        unreachable.is_err(),
        "a JWKS that cannot be read stops start-up"
    );
}

#[tokio::test]
async fn a_jwks_is_fetched_without_redirects_and_bound_to_its_issuer_and_audience() {
    // A redirect to the real document is refused: it could as well lead to an attacker's keys.
    let document = std::fs::read_to_string(keys_dir().join("jwks.json")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = axum::Router::new()
            .route(
                "/keys.json",
                axum::routing::get(move || async move { document }),
            )
            .route(
                "/moved.json",
                axum::routing::get(|| async { axum::response::Redirect::temporary("/keys.json") }),
            );
        axum::serve(listener, app).await
    });
    let at = |path: &str| JwtSettings {
        hs256_secret: None,
        jwks: Some(JwksSource::Url(format!("http://{address}{path}"))),
        ..settings()
    };
    TokenVerifier::new(&at("/keys.json"))
        .await
        .expect("the document itself loads");
    let redirected = TokenVerifier::new(&at("/moved.json")).await.unwrap_err();
    assert!(redirected.to_string().contains("redirect"), "{redirected}");
    // Plain http is for loopback only.
    let remote = TokenVerifier::new(&JwtSettings {
        jwks: Some(JwksSource::Url("http://id.example.com/keys.json".into())),
        ..settings()
    })
    .await
    .unwrap_err();
    assert!(remote.to_string().contains("https"), "{remote}");
    // Without an issuer or an audience, any token the provider signs would be accepted.
    for unbound in [
        JwtSettings {
            issuer: None,
            ..at("/keys.json")
        },
        JwtSettings {
            audience: None,
            ..at("/keys.json")
        },
    ] {
        assert!(TokenVerifier::new(&unbound).await.is_err());
    }
    server.abort();
}

/// A `$connect` authorizer event in AWS's shape (`tests/fixtures/aws/`), with a token added
/// where a client would put it.
fn authorizer_event(header: Option<(&str, &str)>) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let mut event = aws_fixture("example-apigw-v2-custom-authorizer-websocket-request.json");
    if let Some((name, value)) = header {
        event["headers"][name] = json!(value);
        event["multiValueHeaders"][name] = json!([value]);
    }
    serde_json::from_value(event).expect("AWS's authorizer event deserializes")
}

#[tokio::test]
async fn the_authorizer_answers_api_gateway_with_a_policy_for_the_connect_route() {
    let authorizer = Authorizer::new(verifier().await, Default::default());
    let method_arn = "arn:aws:execute-api:eu-west-1:246813579024:jc7x2k9q4d/prod/$connect";

    let protocol = format!("jobcast, bearer.{}", rs256(&good_claims("ana")));
    let allowed = authorizer
        .authorize(&authorizer_event(Some((
            "Sec-WebSocket-Protocol",
            &protocol,
        ))))
        .await
        .unwrap();
    assert_eq!(allowed.principal_id.as_deref(), Some("ana"));
    let statement = &allowed.policy_document.statement[0];
    assert_eq!(statement.effect, IamPolicyEffect::Allow);
    assert_eq!(statement.action, vec!["execute-api:Invoke"]);
    assert_eq!(statement.resource, vec![method_arn]);
    assert_eq!(allowed.context["userId"], "ana");
    assert_eq!(allowed.context["tokenSource"], "subprotocol");
    // What API Gateway reads back from the Lambda's JSON answer.
    let wire = serde_json::to_value(&allowed).unwrap();
    assert_eq!(wire["policyDocument"]["Statement"][0]["Effect"], "Allow");

    let missing = authorizer.authorize(&authorizer_event(None)).await;
    let err = missing.expect_err("no token");
    assert_eq!(err.to_string(), "Unauthorized", "API Gateway's 401 message");
    assert_eq!(err.0, TokenError::Missing);

    let mut foreign = good_claims("ana");
    foreign["aud"] = json!("another-api");
    let cookie = format!("access_token={}", hs256(&foreign));
    let denied = authorizer
        .authorize(&authorizer_event(Some(("Cookie", &cookie))))
        .await
        .unwrap();
    assert_eq!(
        denied.policy_document.statement[0].effect,
        IamPolicyEffect::Deny
    );
    assert!(!jobcast::auth::allows(&denied));
}

async fn start_authenticated<S: Store>(store: S) -> Emulator<S> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut service_settings = test_settings();
    service_settings.auth_mode = jobcast::settings::AuthMode::Authorizer;
    let config = EmulatorConfig {
        authorizer: Some(Arc::new(Authorizer::new(
            verifier().await,
            AllowedOrigins::parse("https://app.example.com").unwrap(),
        ))),
        ..EmulatorConfig::default()
    };
    Emulator::start(listener, Jobcast::new(store, service_settings), config).unwrap()
}

enum Carrier {
    Subprotocol,
    Query,
    Cookie,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket with `token` carried as told: the socket and the upgrade's answer, or the
/// refusal's status.
async fn connect_with<S: Store>(
    emulator: &Emulator<S>,
    token: &str,
    carrier: Carrier,
) -> Result<(Socket, http::Response<Option<Vec<u8>>>), u16> {
    let url = match carrier {
        Carrier::Query => format!("{}/?token={token}", emulator.websocket_url()),
        _ => format!("{}/", emulator.websocket_url()),
    };
    let mut request = url.into_client_request().unwrap();
    match carrier {
        Carrier::Subprotocol => {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                format!("jobcast, bearer.{token}").parse().unwrap(),
            );
        }
        Carrier::Cookie => {
            request.headers_mut().insert(
                "Cookie",
                format!("theme=dark; access_token={token}").parse().unwrap(),
            );
        }
        Carrier::Query => {}
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(pair) => Ok(pair),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected handshake failure: {other}"),
    }
}

/// Valid tokens connect through each carrier and their user reaches later routes; each bad
/// token is refused with its status through each carrier and leaves nothing stored.
async fn the_auth_matrix_holds_on<S: Store + ConnectionStore>(
    store: S,
    count: impl Fn() -> Option<usize>,
) {
    let emulator = start_authenticated(store).await;
    register_job(&emulator, "job-auth", Some("ana")).await;

    for carrier in [Carrier::Subprotocol, Carrier::Query, Carrier::Cookie] {
        let expect_protocol = matches!(carrier, Carrier::Subprotocol).then_some("jobcast");
        let (mut socket, answer) = connect_with(&emulator, &rs256(&good_claims("ana")), carrier)
            .await
            .expect("a valid token connects");
        let echoed = answer
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|value| value.to_str().unwrap().to_owned());
        assert_eq!(echoed.as_deref(), expect_protocol);
        // The authenticated connection serves routes.
        use futures::{SinkExt, StreamExt};
        socket
            .send(tungstenite::Message::text(
                json!({"action": "subscribe", "job_id": "job-auth"}).to_string(),
            ))
            .await
            .unwrap();
        let reply = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
        assert_eq!(reply["type"], "subscribed", "{reply}");
        socket.close(None).await.unwrap();
    }
    // Ana stays connected while the refusals are tried: afterwards, hers is the only one.
    let (socket, _) = connect_with(&emulator, &es256(&good_claims("ana")), Carrier::Query)
        .await
        .unwrap();
    let ana = jobcast::protocol::UserId::parse("ana".to_owned()).unwrap();
    let mallory = jobcast::protocol::UserId::parse("mallory".to_owned()).unwrap();
    let connections_of = |user: jobcast::protocol::UserId| {
        let store = emulator.service().store().clone();
        async move {
            store
                .connections_of(
                    &jobcast::store::Audience::User(user.clone()),
                    jobcast::store::PageRequest::first(10),
                )
                .await
                .expect("the store answers")
                .items
                .len()
        }
    };
    eventually("ana's connections are closed but one", || async {
        connections_of(ana.clone()).await == 1
    })
    .await;
    let before = count();

    let mut expired = good_claims("mallory");
    expired["exp"] = json!(now() - 600);
    let mut foreign = good_claims("mallory");
    foreign["iss"] = json!("https://evil.test/");
    let stranger = signed(
        Algorithm::RS256,
        "rs256-stranger.pem",
        Some("rsa-1"),
        &good_claims("mallory"),
    );
    let mut early = good_claims("mallory");
    early["nbf"] = json!(now() + 600);
    let mut elsewhere = good_claims("mallory");
    elsewhere["aud"] = json!("another-api");
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &good_claims("mallory"),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let refusals = [
        ("not yet valid", hs256(&early), 401),
        ("wrong algorithm", hs512, 401),
        ("wrong audience", rs256(&elsewhere), 403),
        ("empty", String::new(), 401),
        ("garbage", "not-a-token".to_owned(), 401),
        ("alg none", alg_none(&good_claims("mallory")), 401),
        ("expired", hs256(&expired), 401),
        ("badly signed", stranger, 401),
        ("wrong issuer", hs256(&foreign), 403),
    ];
    for (name, token, status) in refusals {
        for carrier in [Carrier::Subprotocol, Carrier::Query, Carrier::Cookie] {
            let refused = connect_with(&emulator, &token, carrier).await;
            assert_eq!(refused.err(), Some(status), "{name}");
        }
    }
    // A refused upgrade never reached $connect: nothing of mallory's, nothing new at all.
    assert_eq!(connections_of(mallory).await, 0);
    assert_eq!(connections_of(ana).await, 1);
    assert_eq!(count(), before);
    drop(socket);
    emulator.shutdown().await;
}

/// Opens a socket carrying `token` as told, from a page at `origin` (if any): the upgrade's
/// status.
async fn connect_from<S: Store>(
    emulator: &Emulator<S>,
    token: &str,
    carrier: Carrier,
    origin: Option<&str>,
) -> u16 {
    let url = match carrier {
        Carrier::Query => format!("{}/?token={token}", emulator.websocket_url()),
        _ => format!("{}/", emulator.websocket_url()),
    };
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    match carrier {
        Carrier::Subprotocol => {
            headers.insert(
                "Sec-WebSocket-Protocol",
                format!("jobcast, bearer.{token}").parse().unwrap(),
            );
        }
        Carrier::Cookie => {
            headers.insert("Cookie", format!("access_token={token}").parse().unwrap());
        }
        Carrier::Query => {}
    }
    if let Some(origin) = origin {
        headers.insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, answer)) => {
            let _ = socket.close(None).await;
            answer.status().as_u16()
        }
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected handshake failure: {other}"),
    }
}

/// Cross-site WebSocket hijacking: a page on another site opens a socket and the browser
/// attaches the victim's cookie. Refused unless the page's origin is allowed or the API's own;
/// tokens the page itself must hold (subprotocol, query) are unaffected.
#[tokio::test]
async fn a_cookie_connects_only_from_allowed_origins() {
    let emulator = start_authenticated(MemoryStore::new()).await;
    let token = hs256(&good_claims("ana"));
    let own = emulator.http_url();
    let cases = [
        (Carrier::Cookie, Some("https://evil.example"), 403),
        (Carrier::Cookie, Some("null"), 403),
        (
            Carrier::Cookie,
            Some("https://app.example.com.evil.example"),
            403,
        ),
        (Carrier::Cookie, Some("https://app.example.com"), 101),
        (Carrier::Cookie, Some(own.as_str()), 101),
        // No Origin: not a browser, so no cookie was attached behind the user's back.
        (Carrier::Cookie, None, 101),
        (Carrier::Subprotocol, Some("https://evil.example"), 101),
        (Carrier::Query, Some("https://evil.example"), 101),
    ];
    for (carrier, origin, expected) in cases {
        let name = format!(
            "{} from {origin:?}",
            match carrier {
                Carrier::Cookie => "cookie",
                Carrier::Subprotocol => "subprotocol",
                Carrier::Query => "query",
            }
        );
        assert_eq!(
            connect_from(&emulator, &token, carrier, origin).await,
            expected,
            "{name}"
        );
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_auth_matrix_holds_in_memory() {
    let store = MemoryStore::new();
    let counted = store.clone();
    the_auth_matrix_holds_on(store, move || Some(counted.connection_count())).await;
}

#[tokio::test]
async fn the_auth_matrix_holds_on_dynamodb() {
    // DynamoDB has no cheap total; the per-user checks cover it.
    the_auth_matrix_holds_on(dynamo_store().await, || None).await;
}
