//! A Redis message turned into a sender request: parsed exactly as the sender will parse it,
//! so a message that cannot be delivered is refused here, logged, and never forwarded.

use jobcast::protocol::{MessageId, SenderRequest, UserId, UserPayload};
use serde_json::{Value, json};

/// A message ready for the sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// The sender request: `{channel, message}` (or `{user_id, message}`), with `message_id`
    /// for a stream entry.
    pub request: Value,
    /// The user whose connections receive it: its lane, and its FIFO message group.
    pub user_id: UserId,
    /// The message's `type`, for metrics.
    pub message_type: &'static str,
    /// The stream entry it came from, acknowledged once the sender has taken it.
    pub entry_id: Option<String>,
}

/// Why a message is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not a message the sender would take: bad JSON, a bad field, a channel naming no user.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A `type` the server does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
}

impl Rejection {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownType(_) => "unknown_type",
        }
    }
}

/// A Pub/Sub message: its channel (`user_noti:{user_id}`) and payload.
pub fn from_channel(channel: &str, payload: &str) -> Result<Forward, Rejection> {
    parse(json!({"channel": channel, "message": payload}), None)
}

/// A stream entry's fields: `message`, with `channel` (`user_noti:{user_id}`) or `user_id`.
pub fn from_entry(
    entry_id: &str,
    channel: Option<String>,
    user_id: Option<String>,
    message: Option<String>,
) -> Result<Forward, Rejection> {
    let message =
        message.ok_or_else(|| Rejection::Malformed("the entry has no `message` field".into()))?;
    let mut request = match (channel, user_id) {
        (Some(channel), None) => json!({"channel": channel, "message": message}),
        (None, Some(user_id)) => json!({"user_id": user_id, "message": message}),
        _ => {
            return Err(Rejection::Malformed(
                "the entry needs one of `channel` or `user_id`".into(),
            ));
        }
    };
    // The entry id travels as the message id: a client shows a redelivered entry once.
    if MessageId::parse(entry_id).is_ok() {
        request["message_id"] = json!(entry_id);
    }
    parse(request, Some(entry_id.to_owned()))
}

fn parse(request: Value, entry_id: Option<String>) -> Result<Forward, Rejection> {
    match SenderRequest::from_value(request.clone()) {
        Ok(SenderRequest::User(user)) => match user.message {
            UserPayload::Known(message) => Ok(Forward {
                request,
                user_id: user.user_id,
                message_type: message.type_name(),
                entry_id,
            }),
            UserPayload::Unknown(kind) => Err(Rejection::UnknownType(kind)),
        },
        Ok(_) => Err(Rejection::Malformed("not a user message".into())),
        Err(err) => Err(Rejection::Malformed(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_message_becomes_the_senders_request() {
        let payload =
            r#"{"type":"notification","payload":{"title":"t","message":"m","level":"info"}}"#;
        let forward = from_channel("user_noti:u1", payload).unwrap();
        assert_eq!(forward.user_id.as_str(), "u1");
        assert_eq!(forward.message_type, "notification");
        assert_eq!(
            forward.request,
            json!({"channel": "user_noti:u1", "message": payload})
        );
    }

    #[test]
    fn what_the_sender_would_refuse_is_refused_here() {
        let good = r#"{"type":"alert","title":"t","message":"m","severity":"low"}"#;
        assert!(matches!(
            from_channel("team:u1", good),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            from_channel("user_noti:u1", "{nope"),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            from_channel("user_noti:u1", r#"{"type":"alert","title":"t"}"#),
            Err(Rejection::Malformed(_))
        ));
        assert_eq!(
            from_channel("user_noti:u1", r#"{"type":"confetti"}"#),
            Err(Rejection::UnknownType("confetti".into()))
        );
    }

    #[test]
    fn a_stream_entry_carries_its_id() {
        let message = r#"{"type":"update","payload":{"k":1}}"#.to_owned();
        let forward =
            from_entry("1700000000000-0", None, Some("u2".into()), Some(message)).unwrap();
        assert_eq!(forward.request["message_id"], "1700000000000-0");
        assert_eq!(forward.entry_id.as_deref(), Some("1700000000000-0"));
        assert!(matches!(
            from_entry(
                "1-0",
                Some("user_noti:u2".into()),
                Some("u2".into()),
                Some("{}".into())
            ),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            from_entry("1-0", None, Some("u2".into()), None),
            Err(Rejection::Malformed(_))
        ));
    }
}
