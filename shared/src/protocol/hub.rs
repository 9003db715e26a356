//! The notification hub's envelopes: `{type, payload, timestamp}`. A hub's publishers wrap
//! each message's fields in `payload` and stamp it with their own time; jobcast takes them as
//! they are and gives the time to the frame.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Percent;

/// The hub's envelope around a notification or an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    /// The message.
    pub payload: T,
    /// When the publisher made the message; becomes the frame's `timestamp` (every frame has
    /// one, so a message without it gets the time it was sent).
    #[serde(default, skip_serializing)]
    pub timestamp: Option<HubTimestamp>,
}

/// The hub's free-form `update`: any JSON object as `payload`, at most
/// [`MAX_UPDATE_BYTES`](super::MAX_UPDATE_BYTES).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvelope {
    /// The update, forwarded as it came.
    pub payload: Map<String, Value>,
    /// When the publisher made the message; becomes the frame's `timestamp`.
    #[serde(default, skip_serializing)]
    pub timestamp: Option<HubTimestamp>,
}

/// A project's progress in the hub's envelope. Its `timestamp` becomes the frame's own
/// (every frame has one), so the client sees `{type, payload, timestamp}` as the hub sent it,
/// the time in RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectEnvelope {
    /// The project's counts and status.
    pub payload: ProjectPayload,
    /// When the publisher made the message; becomes the frame's `timestamp`.
    #[serde(skip_serializing)]
    pub timestamp: HubTimestamp,
}

/// The project a hub envelope reports on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPayload {
    /// The hub's id for the project (non-blank).
    pub project_id: String,
    /// Where the project stands.
    pub status: ProjectStatus,
    /// Counts: non-negative integers (a float or a negative number is refused).
    pub total: u64,
    /// How many of `total` are done.
    pub done: u64,
    /// How many ended in error.
    pub errors: u64,
    /// How far along, in percent (0–100).
    pub progress_percent: Percent,
}

/// A project's status, as the hub writes it (upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProjectStatus {
    /// Starting.
    Initializing,
    /// Crawling.
    Crawling,
    /// Processing.
    Processing,
    /// Finished.
    Done,
    /// Failed.
    Failed,
}

/// A hub timestamp: RFC 3339 text or epoch milliseconds. Text without an offset (what
/// Python's `datetime.utcnow().isoformat()` writes, with a `T` or a space) is taken as UTC.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum HubTimestamp {
    /// RFC 3339 text.
    Rfc3339(DateTime<Utc>),
    /// Milliseconds since the Unix epoch.
    EpochMillis(u64),
}

impl<'de> Deserialize<'de> for HubTimestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Millis(u64),
        }
        let raw = Raw::deserialize(deserializer).map_err(|err| {
            // A missing timestamp keeps serde's own words, which name the field.
            if err.to_string().starts_with("missing field") {
                err
            } else {
                D::Error::custom("must be RFC 3339 text or epoch milliseconds (a whole number)")
            }
        })?;
        match raw {
            Raw::Millis(millis) => Ok(Self::EpochMillis(millis)),
            Raw::Text(text) => parse_time(&text).map(Self::Rfc3339).ok_or_else(|| {
                D::Error::custom(format!(
                    "{:?} is not an RFC 3339 time",
                    super::fields::truncate(text)
                ))
            }),
        }
    }
}

/// RFC 3339, or ISO 8601 without an offset taken as UTC.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

impl HubTimestamp {
    /// The time as UTC; `None` when epoch milliseconds are out of range.
    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Rfc3339(time) => Some(*time),
            Self::EpochMillis(millis) => i64::try_from(*millis)
                .ok()
                .and_then(DateTime::from_timestamp_millis),
        }
    }
}
