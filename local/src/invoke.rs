//! The Lambda Invoke API path for the sender, so `aws lambda invoke --endpoint-url` and SDK
//! Lambda clients work unchanged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jobcast::store::Store;
use serde_json::json;

use crate::App;
use crate::management::aws_error;

/// Whether `name` (a name, a partial or full ARN, maybe with a qualifier) is the sender.
fn is_sender(name: &str) -> bool {
    let name = name
        .rsplit_once(":function:")
        .map_or(name, |(_, rest)| rest);
    let name = name.split(':').next().unwrap_or(name);
    name.to_ascii_lowercase().contains("sender")
}

/// `POST /2015-03-31/functions/{name}/invocations`.
pub(crate) async fn invoke<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_sender(&function) {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!(
                "Function not found: {function} (jobcast-local serves the sender, e.g. \"sender\")"
            ),
        );
    }
    let payload: serde_json::Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(err) => {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {err}"),
                );
            }
        }
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    match invocation_type {
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        "Event" => {
            // Lambda throttles asynchronous invocations past its concurrency too.
            let Ok(running) = app.async_invocations.clone().try_acquire_owned() else {
                return aws_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                );
            };
            tokio::spawn(async move {
                let _running = running;
                if let Err(err) = app
                    .service
                    .handle_sender_invocation(&app.registry, payload)
                    .await
                {
                    tracing::warn!(error = %err, "asynchronous sender invocation failed");
                }
            });
            return StatusCode::ACCEPTED.into_response();
        }
        _ => {}
    }
    let (body, function_error) = match app
        .service
        .handle_sender_invocation(&app.registry, payload)
        .await
    {
        Ok(outcome) => (serde_json::to_string(&outcome).unwrap_or_default(), None),
        Err(err) => {
            tracing::info!(error = %err, "sender invocation failed");
            let body = json!({ "errorType": err.error_type(), "errorMessage": err.to_string() });
            (body.to_string(), Some("Unhandled"))
        }
    };
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("x-amz-executed-version"),
                HeaderValue::from_static("$LATEST"),
            ),
        ],
        body,
    )
        .into_response();
    if let Some(kind) = function_error {
        response
            .headers_mut()
            .insert("x-amz-function-error", HeaderValue::from_static(kind));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::is_sender;

    #[test]
    fn sender_names() {
        for name in [
            "sender",
            "jobcast-sender",
            "arn:aws:lambda:eu-west-1:1:function:jobcast-SenderFunction-X:$LATEST",
        ] {
            assert!(is_sender(name), "{name}");
        }
        assert!(!is_sender("connect"));
    }
}
