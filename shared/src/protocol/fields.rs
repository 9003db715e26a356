//! Field-level parsing shared by every parser of the protocol: size and shape checks first,
//! then one field at a time, so an error always names the field at fault.

use serde_json::Value;

use super::frame_error::{FrameError, MAX_FRAME_BYTES, MAX_REASON, bounded};

/// A [`FrameError::InvalidField`] naming `field`, bounded ([`FrameError::invalid_field`]).
pub(crate) fn invalid_field(field: &str, reason: impl Into<String>) -> FrameError {
    FrameError::invalid_field(field, reason)
}

/// Refuses oversize input before parsing it, then requires a JSON object.
pub(crate) fn parse_object(frame: &str) -> Result<serde_json::Map<String, Value>, FrameError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            size: frame.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    match serde_json::from_str::<Value>(frame) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(FrameError::NotAnObject),
        Err(err) => Err(FrameError::InvalidJson(bounded(
            err.to_string(),
            MAX_REASON,
        ))),
    }
}

/// Takes an optional field out of an object, parsing it (an explicit `null` counts as absent).
pub(crate) fn optional_field<T: serde::de::DeserializeOwned>(
    fields: &mut serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<T>, FrameError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|err| invalid_field(name, err.to_string())),
    }
}

/// Deserializes a struct from the remaining fields, reporting the path of the field at fault.
pub(crate) fn from_fields<T: serde::de::DeserializeOwned>(
    fields: serde_json::Map<String, Value>,
) -> Result<T, FrameError> {
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|err| {
        let reason = err.inner().to_string();
        let path = err.path().to_string();
        // A missing field is reported at the struct that lacks it; serde names the field in
        // backticks. (An unknown field's own name already ends the path.)
        let named = reason
            .starts_with("missing field")
            .then(|| reason.split('`').nth(1))
            .flatten();
        let field = match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (_, Some(name)) => format!("{path}.{name}"),
            (".", None) => "message".to_owned(),
            _ => path,
        };
        invalid_field(&field, reason)
    })
}

/// Echoed names are bounded so an error reply can never be larger than the frame that caused it.
pub(crate) fn truncate(value: String) -> String {
    bounded(value, 64)
}
