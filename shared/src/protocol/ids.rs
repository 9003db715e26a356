//! Identifiers that are valid once constructed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be {rule} (got {length} characters)")]
pub struct InvalidId {
    kind: &'static str,
    rule: &'static str,
    length: usize,
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $rule:literal, $pattern:literal, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest accepted identifier, in characters.
            pub const MAX_LEN: usize = $max;

            /// The identifier, if `value` is 1 to `MAX_LEN` characters, all of the allowed
            /// alphabet.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let allowed: fn(char) -> bool = $allowed;
                let length = value.chars().count();
                if (1..=Self::MAX_LEN).contains(&length) && value.chars().all(allowed) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId { kind: $kind, rule: $rule, length })
                }
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A fresh identifier: 128 random bits, in hex (`cancel_job` and
            /// `jobcast::publish` give every event one; a user message sent without an id gets
            /// one).
            pub fn random() -> Self {
                Self(format!("{:032x}", rand::random::<u128>()))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": $max,
                    "pattern": $pattern,
                    "description": concat!("A ", $kind, ": ", $rule, "."),
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }
    };
}

fn is_job_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

identifier!(
    /// A job, as the pipeline names it: 1–128 characters of `[A-Za-z0-9_.:-]`.
    JobId, "job_id", 128, "1-128 characters of A-Z a-z 0-9 _ . : -", "^[A-Za-z0-9_.:-]+$",
    is_job_char
);

identifier!(
    /// An API Gateway connection id (base64-like, e.g. `L0SM9cOFvHcCIhw=`).
    ConnectionId, "connection_id", 128, "1-128 characters of A-Z a-z 0-9 + / = _ -",
    "^[A-Za-z0-9+/=_-]+$",
    |c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-')
);

identifier!(
    /// The user a connection belongs to (a JWT `sub`, an authorizer principal). Characters that
    /// show nothing or reorder text (bidi controls, zero-width and other format characters)
    /// are refused: two ids that look alike must be alike.
    UserId, "user_id", 256, "1-256 printable characters without spaces or invisible characters", "^\\S+$",
    |c| c.is_ascii_graphic()
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace() && !is_hidden_char(c))
);

/// A character that shows nothing, or changes how the text around it shows: bidirectional
/// controls (the "Trojan Source" characters), zero-width characters and joiners, the byte-order
/// mark, invisible fillers, variation selectors, tags, and the line and paragraph separators.
pub(crate) fn is_hidden_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}'
    )
}

identifier!(
    /// Ties a reply or an event to the request or pipeline run that caused it.
    CorrelationId, "correlation_id", 128, "1-128 characters of A-Z a-z 0-9 _ . : -",
    "^[A-Za-z0-9_.:-]+$", is_job_char
);

identifier!(
    /// The pipeline's own id for one event (an idempotency key; SQS's message id by default).
    /// A retry carrying the id of a job's latest event is recorded once.
    EventId, "event_id", 128, "1-128 characters of A-Z a-z 0-9 _ . : -", "^[A-Za-z0-9_.:-]+$",
    is_job_char
);

identifier!(
    /// A user message, as its publisher (or SQS) names it: a redelivery carries the same id, so
    /// a client shows the message once. 1–128 characters of `[A-Za-z0-9_.:-]`.
    MessageId, "message_id", 128, "1-128 characters of A-Z a-z 0-9 _ . : -", "^[A-Za-z0-9_.:-]+$",
    is_job_char
);

impl UserId {
    /// The user of connections accepted without authentication (`AUTH_MODE=none`).
    pub fn anonymous() -> Self {
        Self("anonymous".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_accepts_the_documented_alphabet() {
        for ok in ["a", "job-1", "crawl:2026.11.22_x", &"x".repeat(128)] {
            assert!(JobId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn job_id_rejects_empty_long_and_foreign_characters() {
        for bad in ["", "a b", "job/1", "ünï", "x\n", &"x".repeat(129)] {
            let err = JobId::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("job_id must be"), "{err}");
        }
    }

    #[test]
    fn user_ids_refuse_characters_that_hide_or_reorder_text() {
        assert!(UserId::parse("ana").is_ok());
        assert!(UserId::parse("anaïs-日本").is_ok());
        for bad in [
            "ana\u{202E}evil",
            "an\u{200B}a",
            "ana\u{2066}",
            "\u{FEFF}ana",
            "ana\u{E0041}",
            "a\u{00AD}na",
            "ana\u{0007}",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<JobId>("\"ok-1\"").is_ok());
        let err = serde_json::from_str::<JobId>("\"not ok\"").unwrap_err();
        assert!(err.to_string().contains("job_id must be"));
        assert!(serde_json::from_str::<ConnectionId>("\"L0SM9cOFvHcCIhw=\"").is_ok());
        assert!(serde_json::from_str::<UserId>("\"user 1\"").is_err());
    }
}

#[cfg(test)]
mod random_event_id {
    use super::EventId;

    #[test]
    fn a_random_event_id_is_valid_and_fresh() {
        let (a, b) = (EventId::random(), EventId::random());
        assert_ne!(a, b);
        assert_eq!(EventId::parse(a.as_str()), Ok(a));
    }
}
