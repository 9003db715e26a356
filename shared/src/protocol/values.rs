//! Small validated values carried inside messages.

use serde::{Deserialize, Serialize};

/// A percentage within 0–100 (fractions allowed).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64")]
pub struct Percent(f64);

/// A number refused as a [`Percent`]: outside 0–100, or not finite.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be a number within 0 and 100 (got {0})")]
pub struct PercentOutOfRange(pub f64);

impl Percent {
    /// 100 percent.
    pub const COMPLETE: Percent = Percent(100.0);

    /// A percentage, if `value` is finite and within 0–100.
    pub fn new(value: f64) -> Result<Self, PercentOutOfRange> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(PercentOutOfRange(value))
        }
    }

    /// The percentage, within 0–100.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl schemars::JsonSchema for Percent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "number", "minimum": 0, "maximum": 100})
    }
}

impl TryFrom<f64> for Percent {
    type Error = PercentOutOfRange;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl schemars::JsonSchema for StageName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StageName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": StageName::MAX_LEN,
            "pattern": "\\S",
            "description": "A pipeline stage: non-blank, no control or invisible characters.",
        })
    }
}

/// A pipeline stage name: non-blank, at most 128 characters, no control or invisible (bidi, zero-width) characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct StageName(String);

/// A string refused as a [`StageName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a non-blank name of at most {max} characters, without control or invisible characters", max = StageName::MAX_LEN)]
pub struct InvalidStageName;

impl StageName {
    /// The longest stage name, in characters (not bytes).
    pub const MAX_LEN: usize = 128;

    /// A stage name, if `value` is non-blank, at most [`MAX_LEN`](Self::MAX_LEN) characters long
    /// and free of control characters.
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidStageName> {
        let value = value.into();
        if value.trim().is_empty()
            || value.chars().count() > Self::MAX_LEN
            || value.chars().any(char::is_control)
            || value.chars().any(|c| {
                // Emoji need the joiner and the variation selectors ("✔️ build").
                super::ids::is_hidden_char(c) && !matches!(c, '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
            })
        {
            return Err(InvalidStageName);
        }
        Ok(Self(value))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StageName {
    type Error = InvalidStageName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_bounds() {
        assert!(Percent::new(0.0).is_ok());
        assert!(Percent::new(100.0).is_ok());
        assert!(Percent::new(42.5).is_ok());
        for bad in [-0.1, 100.01, f64::NAN, f64::INFINITY] {
            assert!(Percent::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stage_names() {
        assert!(StageName::parse("crawl").is_ok());
        for bad in ["", "   ", "a\nb", &"s".repeat(129)] {
            assert!(StageName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
