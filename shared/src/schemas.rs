//! The message contract as JSON Schema, generated from the types that parse and write the
//! messages, so the two cannot drift (`jobcast schemas --out schemas/` writes them; a test
//! fails when the files in `schemas/` differ).

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::Value;

use crate::protocol::{
    ClientRequest, CorrelationId, JobId, MessageId, SendOutcome, SendRequest, ServerFrame, UserId,
    UserMessage,
};

/// Every schema document: its file name under `schemas/`, and its JSON.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        ("client-message.json", client_message()),
        (
            "server-message.json",
            document::<ServerFrame>("A frame the server sends to a client"),
        ),
        ("sender-request.json", sender_request()),
        (
            "sender-outcome.json",
            document::<SendOutcome>("What the sender answers a direct invocation"),
        ),
    ]
}

/// Client frames refuse unknown fields, as the parser does (the derive leaves that out where
/// the action's fields are flattened beside `correlation_id`).
fn client_message() -> Value {
    let mut document = document::<ClientRequest>("A frame a client sends over the WebSocket");
    document["unevaluatedProperties"] = Value::Bool(false);
    document
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

fn document<T: JsonSchema>(title: &str) -> Value {
    let mut schema = generator().into_root_schema_for::<T>();
    schema.insert("title".into(), title.into());
    schema.to_value()
}

/// The sender takes four shapes, told apart by their fields (the parser is written out, so
/// there is no single Rust type to derive this from).
fn sender_request() -> Value {
    let mut generator = generator();
    let job_event = generator.subschema_for::<SendRequest>();
    let job_id = generator.subschema_for::<JobId>();
    let user_id = generator.subschema_for::<UserId>();
    let correlation_id = generator.subschema_for::<CorrelationId>();
    let user_message = generator.subschema_for::<UserMessage>();
    let message_id = generator.subschema_for::<MessageId>();
    let register = json_schema!({
        "title": "register_job",
        "type": "object",
        "properties": {
            "action": {"const": "register_job"},
            "job_id": job_id,
            "user_id": user_id,
            "correlation_id": correlation_id,
        },
        "required": ["action", "job_id"],
        "additionalProperties": false,
    });
    let query = json_schema!({
        "title": "get_job / is_cancelled",
        "type": "object",
        "properties": {
            "action": {"enum": ["get_job", "is_cancelled"]},
            "job_id": job_id,
            "correlation_id": correlation_id,
        },
        "required": ["action", "job_id"],
        "additionalProperties": false,
    });
    let to_user = json_schema!({
        "title": "a user message",
        "type": "object",
        "properties": {
            "user_id": user_id,
            "channel": {"type": "string", "pattern": "^user_noti:\\S+$"},
            "message": {
                "description": "The message, or a string holding it as JSON (a hub's publishers send that)",
                "oneOf": [user_message, {"type": "string"}],
            },
            "correlation_id": correlation_id,
            "message_id": message_id,
        },
        "oneOf": [{"required": ["user_id", "message"]}, {"required": ["channel", "message"]}],
        "additionalProperties": false,
    });
    let mut root: Schema = json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "What a pipeline sends the sender (by invocation, or as an SQS message body)",
        "oneOf": [job_event, register, query, to_user],
    });
    let definitions: serde_json::Map<String, Value> = generator.take_definitions(true);
    root.insert("$defs".into(), Value::Object(definitions));
    root.to_value()
}

/// A document as written to its file: pretty JSON and a final newline.
pub fn to_file_text(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("a schema serializes");
    text.push('\n');
    text
}
