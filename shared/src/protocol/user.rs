//! User-level messages: not about one job but for every connection of a user (all tabs and
//! devices). They include the message types of per-user notification hubs, so a hub's
//! publishers can send to jobcast unchanged, and each kind of client reads what it expects:
//! a notification or an alert is delivered in the form it was published in, flat
//! (`{type, title, message, level}`) or in the hub's envelope
//! (`{type, payload: {title, message, level}, timestamp}`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::FrameError;
use super::fields::{from_fields, invalid_field, truncate};
use super::hub::{Envelope, HubTimestamp, ProjectEnvelope, UpdateEnvelope};

/// The longest title a notification or alert may carry.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest text a notification or alert may carry.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// The largest `update` payload, as compact JSON: a free-form object must still fit a frame
/// with room to spare.
pub const MAX_UPDATE_BYTES: usize = 16 * 1024;

/// A message for a user, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserMessage {
    /// A notice for the user, with a level.
    Notification(Form<Notification>),
    /// An alert for the user, with a severity.
    Alert(Form<Alert>),
    /// The hub's envelope: `{type, payload, timestamp}`.
    ProjectProgress(ProjectEnvelope),
    /// The hub's envelope, for a completed project: `{type, payload, timestamp}`.
    ProjectCompleted(ProjectEnvelope),
    /// The hub's free-form `update`: `{type, payload: {…}, timestamp?}`, forwarded as it came.
    Update(UpdateEnvelope),
}

/// A notification or an alert, in the form it was published in, which is the form its
/// clients receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Form<T> {
    /// The fields beside `type`: `{type, title, message, …}`.
    Flat(T),
    /// The hub's envelope: `{type, payload: {title, message, …}, timestamp?}`.
    Enveloped(Envelope<T>),
}

impl<T> Form<T> {
    /// The message, whichever form it came in.
    pub fn body(&self) -> &T {
        match self {
            Self::Flat(body) => body,
            Self::Enveloped(envelope) => &envelope.payload,
        }
    }
}

/// Written by hand: each form's fields refuse unknown ones, and beside them sits the enum's
/// `type` tag, which the derived schema would refuse as unknown.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Form<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}Form", T::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut flat = T::json_schema(generator);
        let mut enveloped = Envelope::<T>::json_schema(generator);
        for schema in [&mut flat, &mut enveloped] {
            if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                properties.insert("type".to_owned(), serde_json::json!({"type": "string"}));
            }
        }
        schemars::json_schema!({
            "description": "The message in the form it was published in: flat, or in the hub's envelope.",
            "anyOf": [flat, enveloped],
        })
    }
}

/// How a user message failed to parse: unknown types are skipped, the rest are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMessageError {
    /// A `type` this server does not know: logged and counted, never forwarded.
    UnknownType(String),
    /// Not JSON, not an object, without a `type`, or of a known type with a field at fault:
    /// refused.
    Invalid(FrameError),
}

/// Parses the fields of a notification or an alert in either form: with a `payload`, the
/// hub's envelope; without, flat.
fn form<T: serde::de::DeserializeOwned>(fields: Map<String, Value>) -> Result<Form<T>, FrameError> {
    if fields.contains_key("payload") {
        from_fields(fields).map(Form::Enveloped)
    } else {
        from_fields(fields).map(Form::Flat)
    }
}

impl UserMessage {
    /// Every user message `type` this server forwards.
    pub const TYPES: [&'static str; 5] = [
        "notification",
        "alert",
        "project_progress",
        "project_completed",
        "update",
    ];

    /// The message's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Notification(_) => "notification",
            Self::Alert(_) => "alert",
            Self::ProjectProgress(_) => "project_progress",
            Self::ProjectCompleted(_) => "project_completed",
            Self::Update(_) => "update",
        }
    }

    /// Parses a message given as an object, or as a string holding one (what a hub's
    /// publishers put on their channel), naming the field at fault on error.
    pub fn from_value(value: Value) -> Result<Self, UserMessageError> {
        let value = match value {
            Value::String(text) => serde_json::from_str(&text).map_err(|err| {
                UserMessageError::Invalid(FrameError::InvalidJson(err.to_string()))
            })?,
            other => other,
        };
        let Value::Object(mut fields) = value else {
            return Err(UserMessageError::Invalid(FrameError::NotAnObject));
        };
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => {
                return Err(UserMessageError::Invalid(invalid_field(
                    "type",
                    "must be a string",
                )));
            }
            None => {
                return Err(UserMessageError::Invalid(invalid_field(
                    "type",
                    "is missing",
                )));
            }
        };
        let parsed = match kind.as_str() {
            "notification" => form(fields).map(Self::Notification),
            "alert" => form(fields).map(Self::Alert),
            "project_progress" => from_fields(fields).map(Self::ProjectProgress),
            "project_completed" => from_fields(fields).map(Self::ProjectCompleted),
            "update" => from_fields(fields).map(Self::Update),
            _ => return Err(UserMessageError::UnknownType(truncate(kind))),
        };
        let message = parsed.map_err(UserMessageError::Invalid)?;
        message.check().map_err(UserMessageError::Invalid)?;
        Ok(message)
    }

    /// Limits serde cannot express.
    fn check(&self) -> Result<(), FrameError> {
        // Fields inside the hub's envelope are named by their path.
        let (prefix, texts) = match self {
            Self::Notification(form) => {
                let n = form.body();
                (
                    form_prefix(form),
                    [(&n.title, "title"), (&n.message, "message")],
                )
            }
            Self::Alert(form) => {
                let a = form.body();
                (
                    form_prefix(form),
                    [(&a.title, "title"), (&a.message, "message")],
                )
            }
            Self::ProjectProgress(envelope) | Self::ProjectCompleted(envelope) => {
                if envelope.payload.project_id.trim().is_empty() {
                    return Err(invalid_field("payload.project_id", "must not be empty"));
                }
                if envelope.timestamp.to_datetime().is_none() {
                    return Err(invalid_field("timestamp", "is out of range"));
                }
                return Ok(());
            }
            Self::Update(update) => {
                let bytes = serde_json::to_vec(&update.payload).map_or(usize::MAX, |b| b.len());
                if bytes > MAX_UPDATE_BYTES {
                    return Err(invalid_field(
                        "payload",
                        format!("is larger than {MAX_UPDATE_BYTES} bytes"),
                    ));
                }
                return check_timestamp(update.timestamp.as_ref());
            }
        };
        if let Self::Notification(Form::Enveloped(Envelope { timestamp, .. }))
        | Self::Alert(Form::Enveloped(Envelope { timestamp, .. })) = self
        {
            check_timestamp(timestamp.as_ref())?;
        }
        for (text, field) in texts {
            let limit = if field == "title" {
                MAX_TITLE_CHARS
            } else {
                MAX_TEXT_CHARS
            };
            let path = format!("{prefix}{field}");
            if field == "title" && text.trim().is_empty() {
                return Err(invalid_field(&path, "must not be empty"));
            }
            if text.chars().count() > limit {
                return Err(invalid_field(
                    &path,
                    format!("is longer than {limit} characters"),
                ));
            }
        }
        Ok(())
    }
}

/// `payload.` for a message in the hub's envelope, nothing for a flat one.
fn form_prefix<T>(form: &Form<T>) -> &'static str {
    match form {
        Form::Flat(_) => "",
        Form::Enveloped(_) => "payload.",
    }
}

/// An optional hub timestamp must name a time that exists.
fn check_timestamp(timestamp: Option<&HubTimestamp>) -> Result<(), FrameError> {
    match timestamp {
        Some(time) if time.to_datetime().is_none() => {
            Err(invalid_field("timestamp", "is out of range"))
        }
        _ => Ok(()),
    }
}

/// A notice for the user: `type: notification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// The heading: non-blank, at most 200 characters.
    pub title: String,
    /// The text: at most 4,000 characters.
    pub message: String,
    /// The notification's level.
    pub level: NotificationLevel,
}

/// A notification's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// For information.
    Info,
    /// Something succeeded.
    Success,
    /// Something needs attention.
    Warning,
    /// Something failed.
    Error,
}

/// An alert for the user: `type: alert`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// The heading: non-blank, at most 200 characters.
    pub title: String,
    /// The text: at most 4,000 characters.
    pub message: String,
    /// How serious it is.
    pub severity: AlertSeverity,
}

/// An alert's severity, from least to most serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl UserMessage {
    /// The time the publisher gave the message, if it carries one.
    pub fn published_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::ProjectProgress(envelope) | Self::ProjectCompleted(envelope) => {
                envelope.timestamp.to_datetime()
            }
            Self::Notification(Form::Enveloped(envelope)) => {
                envelope.timestamp.as_ref()?.to_datetime()
            }
            Self::Alert(Form::Enveloped(envelope)) => envelope.timestamp.as_ref()?.to_datetime(),
            Self::Update(update) => update.timestamp.as_ref()?.to_datetime(),
            Self::Notification(Form::Flat(_)) | Self::Alert(Form::Flat(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn progress(payload: Value) -> Value {
        json!({"type": "project_progress", "payload": payload, "timestamp": "2026-11-24T08:00:00Z"})
    }

    fn good_payload() -> Value {
        json!({"project_id": "p-1", "status": "CRAWLING", "total": 10, "done": 4, "errors": 0, "progress_percent": 40.0})
    }

    fn refused_field(value: Value) -> String {
        match UserMessage::from_value(value) {
            Err(UserMessageError::Invalid(FrameError::InvalidField { field, .. })) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_project_envelope_round_trips_unchanged() {
        use crate::protocol::{ServerFrame, ServerMessage};
        let message = progress(good_payload());
        let parsed = UserMessage::from_value(message.clone()).unwrap();
        let frame = ServerFrame::new(ServerMessage::User(parsed), None);
        let back: Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(
            back,
            json!({"type": "project_progress", "payload": good_payload(), "timestamp": "2026-11-24T08:00:00.000Z"})
        );
        let millis = json!({"type": "project_completed", "payload": good_payload(), "timestamp": 1_790_000_000_123u64});
        let parsed = UserMessage::from_value(millis).unwrap();
        let frame = ServerFrame::new(ServerMessage::User(parsed), None);
        let back: Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(back["timestamp"], "2026-09-21T14:13:20.123Z");
    }

    #[test]
    fn a_time_without_an_offset_is_utc() {
        for (given, read) in [
            ("2026-11-24T08:00:00.123456", "2026-11-24T08:00:00.123Z"),
            ("2026-11-24 08:00:00", "2026-11-24T08:00:00.000Z"),
            ("2026-11-24T10:00:00+02:00", "2026-11-24T08:00:00.000Z"),
        ] {
            let back = delivered(
                json!({"type": "project_progress", "payload": good_payload(), "timestamp": given}),
            );
            assert_eq!(back["timestamp"], read, "{given}");
        }
        assert_eq!(
            refused_field(
                progress(good_payload())
                    .as_object()
                    .cloned()
                    .map(|mut m| {
                        m.insert("timestamp".into(), json!("yesterday"));
                        Value::Object(m)
                    })
                    .unwrap()
            ),
            "timestamp"
        );
    }

    #[test]
    fn a_message_may_come_as_a_json_string() {
        let text = progress(good_payload()).to_string();
        assert!(UserMessage::from_value(Value::String(text)).is_ok());
        assert!(matches!(
            UserMessage::from_value(Value::String("{not json".into())),
            Err(UserMessageError::Invalid(FrameError::InvalidJson(_)))
        ));
    }

    #[test]
    fn each_bad_project_field_is_named() {
        let mut missing = good_payload();
        missing.as_object_mut().unwrap().remove("done");
        assert_eq!(refused_field(progress(missing)), "payload.done");
        let mut status = good_payload();
        status["status"] = json!("SLEEPING");
        assert_eq!(refused_field(progress(status)), "payload.status");
        let mut negative = good_payload();
        negative["errors"] = json!(-1);
        assert_eq!(refused_field(progress(negative)), "payload.errors");
        let mut fraction = good_payload();
        fraction["total"] = json!(2.5);
        assert_eq!(refused_field(progress(fraction)), "payload.total");
        let mut text = good_payload();
        text["total"] = json!("10");
        assert_eq!(refused_field(progress(text)), "payload.total");
        let mut over = good_payload();
        over["progress_percent"] = json!(100.5);
        assert_eq!(refused_field(progress(over)), "payload.progress_percent");
        let mut empty = good_payload();
        empty["project_id"] = json!(" ");
        assert_eq!(refused_field(progress(empty)), "payload.project_id");
        assert_eq!(
            refused_field(json!({"type": "project_progress", "payload": good_payload()})),
            "timestamp"
        );
    }

    #[test]
    fn notifications_and_alerts_are_checked() {
        assert!(
            UserMessage::from_value(
                json!({"type": "notification", "title": "Export ready", "message": "Download it", "level": "success"})
            )
            .is_ok()
        );
        assert_eq!(
            refused_field(
                json!({"type": "notification", "title": "t", "message": "m", "level": "loud"})
            ),
            "level"
        );
        assert_eq!(
            refused_field(
                json!({"type": "alert", "title": "", "message": "m", "severity": "high"})
            ),
            "title"
        );
        assert_eq!(
            refused_field(
                json!({"type": "alert", "title": "t", "message": "m", "severity": "high", "color": "red"})
            ),
            "color"
        );
    }

    fn delivered(value: Value) -> Value {
        use crate::protocol::{ServerFrame, ServerMessage};
        let parsed = UserMessage::from_value(value).unwrap();
        let frame = ServerFrame::new(ServerMessage::User(parsed), None);
        serde_json::from_str(&frame.to_json()).unwrap()
    }

    #[test]
    fn notifications_and_alerts_keep_the_form_they_came_in() {
        let flat = json!({"type": "notification", "title": "Export ready", "message": "Download it", "level": "success"});
        let back = delivered(flat.clone());
        assert_eq!(back["title"], "Export ready");
        assert!(back.get("payload").is_none());

        let body = json!({"title": "Export ready", "message": "Download it", "level": "success"});
        let enveloped =
            json!({"type": "notification", "payload": body, "timestamp": "2026-11-24T08:00:00Z"});
        let back = delivered(enveloped);
        assert_eq!(back["payload"], body);
        assert!(back.get("title").is_none());
        assert_eq!(back["timestamp"], "2026-11-24T08:00:00.000Z");

        let alert = json!({"type": "alert", "payload": {"title": "Quota", "message": "90% used", "severity": "high"}});
        let back = delivered(alert);
        assert_eq!(back["payload"]["severity"], "high");
        assert!(back["timestamp"].is_string(), "every frame has a time");
    }

    #[test]
    fn the_envelope_is_checked_as_strictly_as_the_flat_form() {
        let bad_level = json!({"type": "notification", "payload": {"title": "t", "message": "m", "level": "loud"}});
        assert_eq!(refused_field(bad_level), "payload.level");
        let blank =
            json!({"type": "alert", "payload": {"title": " ", "message": "m", "severity": "low"}});
        assert_eq!(refused_field(blank), "payload.title");
        let long = json!({"type": "notification", "payload": {"title": "t", "message": "x".repeat(MAX_TEXT_CHARS + 1), "level": "info"}});
        assert_eq!(refused_field(long), "payload.message");
        let extra = json!({"type": "alert", "payload": {"title": "t", "message": "m", "severity": "low"}, "color": "red"});
        assert_eq!(refused_field(extra), "color");
        let both = json!({"type": "notification", "title": "t", "payload": {"title": "t", "message": "m", "level": "info"}});
        assert_eq!(refused_field(both), "title");
        let when = json!({"type": "notification", "payload": {"title": "t", "message": "m", "level": "info"}, "timestamp": u64::MAX});
        assert_eq!(refused_field(when), "timestamp");
    }

    #[test]
    fn updates_are_free_form_objects_of_bounded_size() {
        let update = json!({"type": "update", "payload": {"anything": [1, 2, {"x": null}]}, "timestamp": 1_790_000_000_123u64});
        let back = delivered(update);
        assert_eq!(back["payload"], json!({"anything": [1, 2, {"x": null}]}));
        assert_eq!(back["timestamp"], "2026-09-21T14:13:20.123Z");
        assert_eq!(
            refused_field(json!({"type": "update", "payload": [1, 2]})),
            "payload"
        );
        assert_eq!(refused_field(json!({"type": "update"})), "payload");
        let big = json!({"type": "update", "payload": {"blob": "x".repeat(MAX_UPDATE_BYTES)}});
        assert_eq!(refused_field(big), "payload");
        assert_eq!(
            refused_field(json!({"type": "update", "payload": {}, "extra": 1})),
            "extra"
        );
    }

    #[test]
    fn unknown_types_are_told_apart_from_invalid_ones() {
        assert_eq!(
            UserMessage::from_value(json!({"type": "confetti"})),
            Err(UserMessageError::UnknownType("confetti".into()))
        );
    }
}
