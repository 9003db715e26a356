//! Builds the events API Gateway sends to the route integrations, in AWS's exact shape.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayWebsocketProxyRequest, ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue};
use rand::RngCore;

/// What the emulator knows of a connection when it builds an event for it.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub domain_name: String,
    pub stage: String,
    pub api_id: String,
    /// What the REQUEST authorizer put in its context (with `principalId`); API Gateway
    /// hands it to `$connect` and to every later route of the connection.
    pub authorizer: HashMap<String, serde_json::Value>,
}

/// A fresh id in API Gateway's style: 11 random bytes, base64 (e.g. `L0SM9cOFvHcCIhw=`).
/// The URL-safe alphabet keeps ids usable unescaped in `@connections/{id}` paths.
pub(crate) fn new_connection_id() -> String {
    random_id(11)
}

fn random_id(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE.encode(raw)
}

fn context(
    info: &ConnectionInfo,
    route_key: &str,
    event_type: &str,
) -> ApiGatewayWebsocketProxyRequestContext {
    let now = Utc::now();
    let mut context = ApiGatewayWebsocketProxyRequestContext::default();
    context.route_key = Some(route_key.to_owned());
    context.event_type = Some(event_type.to_owned());
    context.message_direction = Some("IN".to_owned());
    context.stage = Some(info.stage.clone());
    context.connected_at = info.connected_at.timestamp_millis();
    context.request_time_epoch = now.timestamp_millis();
    context.request_time = Some(now.format("%d/%b/%Y:%H:%M:%S %z").to_string());
    context.request_id = Some(random_id(6));
    context.extended_request_id = context.request_id.clone();
    context.domain_name = Some(info.domain_name.clone());
    context.connection_id = Some(info.connection_id.clone());
    context.apiid = Some(info.api_id.clone());
    context.identity.source_ip = Some(info.source_ip.clone());
    context.identity.user_agent = info.user_agent.clone();
    context.authorizer.fields = info.authorizer.clone();
    context
}

/// The `$connect` method ARN the authorizer's policy must cover.
pub(crate) fn connect_method_arn(info: &ConnectionInfo) -> String {
    format!(
        "arn:aws:execute-api:local:000000000000:{}/{}/$connect",
        info.api_id, info.stage
    )
}

/// The REQUEST authorizer's input on `$connect`, in API Gateway's JSON shape (see the AWS
/// fixture `example-apigw-v2-custom-authorizer-websocket-request.json`).
pub(crate) fn authorizer_request(
    info: &ConnectionInfo,
    headers: &HeaderMap,
    query: Option<&str>,
) -> serde_json::Value {
    let mut single = serde_json::Map::new();
    let mut multi: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        if let Some(last) = values.last() {
            single.insert(name.as_str().to_owned(), last.clone().into());
        }
        multi.insert(name.as_str().to_owned(), values.into());
    }
    // As plain JSON: the typed maps would serialize single values as arrays.
    let (query_last, query_all) = query_values(query);
    let now = Utc::now();
    serde_json::json!({
        "type": "REQUEST",
        "methodArn": connect_method_arn(info),
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": query_last,
        "multiValueQueryStringParameters": query_all,
        "stageVariables": {},
        "requestContext": {
            "apiId": info.api_id,
            "connectedAt": info.connected_at.timestamp_millis(),
            "connectionId": info.connection_id,
            "domainName": info.domain_name,
            "eventType": "CONNECT",
            "extendedRequestId": random_id(6),
            "identity": {
                "sourceIp": info.source_ip,
                "userAgent": info.user_agent,
            },
            "messageDirection": "IN",
            "requestId": random_id(6),
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "requestTimeEpoch": now.timestamp_millis(),
            "routeKey": "$connect",
            "stage": info.stage,
        },
    })
}

fn multi_value(headers: &HeaderMap) -> HeaderMap {
    // Both maps carry every value; the single-value map keeps the last, as AWS does.
    headers.clone()
}

/// The query string as API Gateway hands it over: every value in the multi-value map, the last
/// value of each key in the single-value one.
fn query_maps(query: Option<&str>) -> (QueryMap, QueryMap) {
    let (last, all) = query_values(query);
    (QueryMap::from(last), QueryMap::from(all))
}

/// Each query key's last value, and all of its values.
type QueryValues = (HashMap<String, String>, HashMap<String, Vec<String>>);

fn query_values(query: Option<&str>) -> QueryValues {
    let mut last: HashMap<String, String> = HashMap::new();
    let mut all: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        last.insert(key.to_string(), value.to_string());
        all.entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    (last, all)
}

/// `$connect`: the upgrade request's headers and query string.
pub(crate) fn connect(
    info: &ConnectionInfo,
    headers: &HeaderMap,
    query: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let mut single = HeaderMap::new();
    for name in headers.keys() {
        if let Some(last) = headers.get_all(name).iter().next_back() {
            single.insert(name.clone(), last.clone());
        }
    }
    event.headers = single;
    event.multi_value_headers = multi_value(headers);
    (
        event.query_string_parameters,
        event.multi_value_query_string_parameters,
    ) = query_maps(query);
    event.request_context = context(info, "$connect", "CONNECT");
    event.is_base64_encoded = false;
    event
}

/// A client frame, routed to `route_key`. Binary frames arrive base64-encoded, as in AWS.
pub(crate) fn message(
    info: &ConnectionInfo,
    route_key: &str,
    body: String,
    is_base64_encoded: bool,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let mut context = context(info, route_key, "MESSAGE");
    context.message_id = Some(random_id(6));
    event.request_context = context;
    event.body = Some(body);
    event.is_base64_encoded = is_base64_encoded;
    event
}

/// `$disconnect`, with the close code and reason.
pub(crate) fn disconnect(
    info: &ConnectionInfo,
    status_code: u16,
    reason: &str,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let mut headers = HeaderMap::new();
    if let Ok(host) = HeaderValue::from_str(&info.domain_name) {
        headers.insert(http::header::HOST, host);
    }
    headers.insert("x-api-key", HeaderValue::from_static(""));
    headers.insert("X-Forwarded-For", HeaderValue::from_static(""));
    headers.insert("x-restapi", HeaderValue::from_static(""));
    event.multi_value_headers = headers.clone();
    event.headers = headers;
    let mut context = context(info, "$disconnect", "DISCONNECT");
    context.disconnect_status_code = Some(i64::from(status_code));
    context.disconnect_reason = Some(reason.to_owned());
    event.request_context = context;
    event.is_base64_encoded = false;
    event
}

/// API Gateway's route selection on `$request.body.action`: a JSON object whose `action`
/// names a route goes there; anything else goes to `$default`.
pub(crate) fn select_route(body: &str, routes: &[&str]) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("action")?.as_str().map(str::to_owned))
        .filter(|action| routes.contains(&action.as_str()))
        .unwrap_or_else(|| "$default".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ConnectionInfo {
        ConnectionInfo {
            connection_id: new_connection_id(),
            connected_at: Utc::now(),
            source_ip: "127.0.0.1".into(),
            user_agent: Some("test".into()),
            domain_name: "127.0.0.1:3001".into(),
            stage: "local".into(),
            authorizer: HashMap::new(),
            api_id: "local".into(),
        }
    }

    #[test]
    fn connection_ids_look_like_api_gateways() {
        let id = new_connection_id();
        assert_eq!(id.len(), 16);
        assert!(id.ends_with('='));
        assert!(jobcast::protocol::ConnectionId::parse(id).is_ok());
    }

    #[test]
    fn routes_follow_the_action_field() {
        let routes = ["subscribe", "ping"];
        assert_eq!(
            select_route(r#"{"action":"subscribe"}"#, &routes),
            "subscribe"
        );
        assert_eq!(select_route(r#"{"action":"fly"}"#, &routes), "$default");
        assert_eq!(select_route("not json", &routes), "$default");
        assert_eq!(select_route(r#"{"action":5}"#, &routes), "$default");
    }

    /// The events we build serialize to the same keys AWS sends (compared with AWS's own
    /// samples in the integration tests).
    #[test]
    fn events_carry_the_fields_handlers_need() {
        let mut headers = HeaderMap::new();
        headers.insert("Host", HeaderValue::from_static("127.0.0.1:3001"));
        let event = connect(&info(), &headers, Some("user_id=u1&x=1&x=2"));
        let json = serde_json::to_value(&event).unwrap();
        let context = &json["requestContext"];
        for key in [
            "routeKey",
            "eventType",
            "connectionId",
            "connectedAt",
            "requestTimeEpoch",
            "domainName",
            "stage",
            "apiId",
            "requestId",
            "messageDirection",
        ] {
            assert!(!context[key].is_null(), "{key} missing: {context}");
        }
        assert_eq!(event.query_string_parameters.first("user_id"), Some("u1"));
        assert_eq!(
            event.query_string_parameters.first("x"),
            Some("2"),
            "the last value, as in AWS"
        );
        assert_eq!(
            event.multi_value_query_string_parameters.all("x"),
            Some(vec!["1", "2"])
        );
        let back: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back.request_context.route_key.as_deref(), Some("$connect"));
        let gone = serde_json::to_value(disconnect(
            &info(),
            1005,
            "Client-side close frame status not set",
        ))
        .unwrap();
        assert_eq!(gone["requestContext"]["disconnectStatusCode"], 1005);
    }

    #[test]
    fn the_authorizer_context_rides_on_every_event_of_the_connection() {
        let mut authorized = info();
        authorized
            .authorizer
            .insert("userId".into(), serde_json::json!("ana"));
        let frame =
            serde_json::to_value(message(&authorized, "$default", "{}".into(), false)).unwrap();
        assert_eq!(frame["requestContext"]["authorizer"]["userId"], "ana");
        let gone = serde_json::to_value(disconnect(&authorized, 1000, "")).unwrap();
        assert_eq!(gone["requestContext"]["authorizer"]["userId"], "ana");
    }

    #[test]
    fn the_authorizer_request_has_aws_shape() {
        let mut headers = HeaderMap::new();
        headers.insert("Cookie", HeaderValue::from_static("access_token=t"));
        let event = authorizer_request(&info(), &headers, Some("token=q"));
        for key in [
            "type",
            "methodArn",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
        ] {
            assert!(!event[key].is_null(), "{key}");
        }
        // The requestContext keys of AWS's sample authorizer event.
        for key in [
            "apiId",
            "connectedAt",
            "connectionId",
            "domainName",
            "eventType",
            "extendedRequestId",
            "identity",
            "messageDirection",
            "requestId",
            "requestTime",
            "requestTimeEpoch",
            "routeKey",
            "stage",
        ] {
            assert!(
                !event["requestContext"][key].is_null(),
                "requestContext.{key}"
            );
        }
        assert_eq!(event["queryStringParameters"]["token"], "q");
        assert_eq!(
            event["multiValueQueryStringParameters"]["token"],
            serde_json::json!(["q"])
        );
        assert_eq!(event["headers"]["cookie"], "access_token=t");
        assert_eq!(
            event["multiValueHeaders"]["cookie"],
            serde_json::json!(["access_token=t"])
        );
        assert!(
            event["methodArn"]
                .as_str()
                .unwrap()
                .ends_with("/local/$connect")
        );
    }
}
