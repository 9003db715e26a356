//! Where the bridge forwards: jobcast-local's Invoke API (`--local`), the sender function
//! (`--function`), or the stack's FIFO queue (`--queue`). jobcast-local's in-process bridge
//! brings a destination of its own. The sender function and the queue are behind the `aws`
//! feature.

use std::future::Future;

#[cfg(feature = "aws")]
use aws_sdk_lambda::primitives::Blob;
use serde_json::Value;

use crate::message::Forward;

/// What the destination made of a message it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Connections the message was posted to (0 when queued: the sender posts it later).
    pub delivered: u64,
    /// Connections it could not reach.
    pub failed: u64,
    /// Queued for the sender rather than delivered.
    pub queued: bool,
}

/// Why a destination did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// The sender refused the message: no retry can help.
    #[error("refused: {0}")]
    Refused(String),
    /// The destination could not be reached or failed for now: try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Takes the bridge's messages.
pub trait Destination: Send + Sync + 'static {
    /// Hands one message to the sender.
    fn forward(
        &self,
        forward: &Forward,
    ) -> impl Future<Output = Result<Accepted, DestinationError>> + Send;
}

/// Reads the sender's answer to a direct request: an outcome, or a Lambda error
/// (`errorType`, `errorMessage`).
pub fn read_answer(answer: &Value, function_error: bool) -> Result<Accepted, DestinationError> {
    if function_error {
        let kind = answer["errorType"].as_str().unwrap_or("Unhandled");
        let message = answer["errorMessage"].as_str().unwrap_or_default();
        return Err(match kind {
            "InvalidRequest" | "PayloadTooLarge" => {
                DestinationError::Refused(format!("{kind}: {message}"))
            }
            _ => DestinationError::Unavailable(format!("{kind}: {message}")),
        });
    }
    match answer["outcome"].as_str() {
        Some("delivered") => Ok(Accepted {
            delivered: answer["delivered"].as_u64().unwrap_or(0),
            failed: answer["failed"].as_u64().unwrap_or(0),
            queued: false,
        }),
        Some("ignored") => Err(DestinationError::Refused(
            answer["reason"].as_str().unwrap_or("ignored").to_owned(),
        )),
        _ => Err(DestinationError::Refused(format!(
            "an answer the bridge does not understand: {answer}"
        ))),
    }
}

/// jobcast-local (or anything serving the Lambda Invoke API) at a base URL.
#[derive(Debug, Clone)]
pub struct InvokeApi {
    client: reqwest::Client,
    url: String,
}

impl InvokeApi {
    /// The sender behind `base` (`http://127.0.0.1:3001`).
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!(
                "{}/2015-03-31/functions/sender/invocations",
                base.trim_end_matches('/')
            ),
        }
    }
}

impl Destination for InvokeApi {
    async fn forward(&self, forward: &Forward) -> Result<Accepted, DestinationError> {
        let response = self
            .client
            .post(&self.url)
            .json(&forward.request)
            .send()
            .await
            .map_err(|err| DestinationError::Unavailable(err.to_string()))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(DestinationError::Unavailable(format!("HTTP {status}")));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|err| DestinationError::Unavailable(err.to_string()))?;
        if !status.is_success() {
            return Err(DestinationError::Refused(format!(
                "HTTP {status}: {answer}"
            )));
        }
        read_answer(&answer, function_error)
    }
}

#[cfg(feature = "aws")]
/// The sender function, invoked directly (its answer says what the fan-out reached).
#[derive(Debug, Clone)]
pub struct Function {
    client: aws_sdk_lambda::Client,
    name: String,
}

#[cfg(feature = "aws")]
impl Function {
    /// Invokes `name` (a name or an ARN).
    pub fn new(client: aws_sdk_lambda::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }
}

#[cfg(feature = "aws")]
impl Destination for Function {
    async fn forward(&self, forward: &Forward) -> Result<Accepted, DestinationError> {
        let body = serde_json::to_vec(&forward.request).expect("a request serializes");
        let output = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|err| {
                DestinationError::Unavailable(
                    aws_sdk_lambda::error::DisplayErrorContext(err).to_string(),
                )
            })?;
        let answer: Value = output
            .payload()
            .and_then(|payload| serde_json::from_slice(payload.as_ref()).ok())
            .unwrap_or(Value::Null);
        read_answer(&answer, output.function_error().is_some())
    }
}

#[cfg(feature = "aws")]
/// The stack's FIFO queue: the user id is the message group (one user's messages stay in
/// order), a stream entry's id (or a random id) the deduplication id.
#[derive(Debug, Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

#[cfg(feature = "aws")]
impl Queue {
    /// Sends to the queue at `url` (`EventQueueUrl`).
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[cfg(feature = "aws")]
impl Destination for Queue {
    async fn forward(&self, forward: &Forward) -> Result<Accepted, DestinationError> {
        let deduplication = forward
            .entry_id
            .clone()
            .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(forward.request.to_string())
            .message_group_id(message_group(forward.user_id.as_str()))
            .message_deduplication_id(deduplication)
            .send()
            .await
            .map_err(|err| {
                DestinationError::Unavailable(
                    aws_sdk_sqs::error::DisplayErrorContext(err).to_string(),
                )
            })?;
        Ok(Accepted {
            queued: true,
            ..Accepted::default()
        })
    }
}

#[cfg(feature = "aws")]
/// SQS takes 1–128 printable ASCII characters as a message group; a user id outside that
/// (jobcast's allow 256 characters, and any script) goes by a stable digest of itself.
fn message_group(user_id: &str) -> String {
    let printable = user_id.chars().all(|c| c.is_ascii_graphic());
    if printable && user_id.len() <= 128 {
        return user_id.to_owned();
    }
    // FNV-1a over the bytes, twice with different offsets: stable across runs and builds.
    let fnv = |offset: u64| {
        user_id.bytes().fold(offset, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    format!(
        "user-{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x8422_2325_cbf2_9ce4)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[cfg(feature = "aws")]
    #[test]
    fn every_user_id_makes_a_valid_message_group() {
        assert_eq!(message_group("u1"), "u1");
        let long = "u".repeat(200);
        let unicode = "анна";
        for id in [long.as_str(), unicode] {
            let group = message_group(id);
            assert!(
                group.len() <= 128 && group.chars().all(|c| c.is_ascii_graphic()),
                "{group}"
            );
            assert_eq!(group, message_group(id), "stable");
        }
        assert_ne!(message_group(&long), message_group(unicode));
    }

    #[test]
    fn the_senders_answers_are_read() {
        let delivered =
            json!({"outcome": "delivered", "user_id": "u1", "delivered": 3, "failed": 1});
        assert_eq!(
            read_answer(&delivered, false),
            Ok(Accepted {
                delivered: 3,
                failed: 1,
                queued: false
            })
        );
        let invalid = json!({"errorType": "InvalidRequest", "errorMessage": "message.level: bad"});
        assert!(matches!(
            read_answer(&invalid, true),
            Err(DestinationError::Refused(_))
        ));
        let store = json!({"errorType": "StoreUnavailable", "errorMessage": "timeout"});
        assert!(matches!(
            read_answer(&store, true),
            Err(DestinationError::Unavailable(_))
        ));
    }
}
