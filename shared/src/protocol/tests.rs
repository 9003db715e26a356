//! Tests of the protocol's parsers and frames: every action, the code and field named in each
//! refusal, the size limit, the shape of server frames, and properties over arbitrary text and
//! JSON objects.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn parse(frame: serde_json::Value) -> Result<ClientRequest, FrameError> {
    ClientRequest::parse(&frame.to_string())
}

#[test]
fn parses_every_action() {
    let subscribe = parse(json!({"action": "subscribe", "job_id": "j1", "last_seq": 4})).unwrap();
    assert_eq!(
        subscribe.message,
        ClientMessage::Subscribe(Subscribe {
            job_id: JobId::parse("j1").unwrap(),
            last_seq: Some(4)
        })
    );
    let cancel = parse(
        json!({"action": "cancel_job", "job_id": "j1", "reason": "stop", "correlation_id": "c-1"}),
    )
    .unwrap();
    assert_eq!(cancel.correlation_id.unwrap().as_str(), "c-1");
    assert!(matches!(
        cancel.message,
        ClientMessage::CancelJob(CancelJob {
            reason: Some(_),
            ..
        })
    ));
    assert!(matches!(
        parse(json!({"action": "unsubscribe", "job_id": "j"}))
            .unwrap()
            .message,
        ClientMessage::Unsubscribe(_)
    ));
    assert!(matches!(
        parse(json!({"action": "request_status", "job_id": "j"}))
            .unwrap()
            .message,
        ClientMessage::RequestStatus(_)
    ));
    assert_eq!(
        parse(json!({"action": "ping"})).unwrap().message,
        ClientMessage::Ping
    );
}

#[test]
fn the_action_list_matches_the_parser_and_the_serde_tags() {
    for action in ClientMessage::ACTIONS {
        let mut frame = json!({"action": action});
        if action != "ping" {
            frame["job_id"] = json!("j");
        }
        let request = parse(frame.clone()).unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_eq!(request.message.action(), action);
        // The hand-written dispatch and the derived enum agree.
        let derived: ClientMessage = serde_json::from_value(frame).unwrap();
        assert_eq!(derived, request.message);
        assert_eq!(
            serde_json::to_value(&request.message).unwrap()["action"],
            action
        );
    }
}

#[test]
fn invalid_json_is_its_own_code() {
    let err = ClientRequest::parse("{not json").unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidJson);
}

#[test]
fn unknown_action_names_the_valid_ones() {
    let err = parse(json!({"action": "explode"})).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownAction);
    let text = err.to_string();
    for action in ClientMessage::ACTIONS {
        assert!(text.contains(action), "{text}");
    }
}

#[test]
fn wrong_types_name_the_field() {
    let cases = [
        (json!({"action": "subscribe", "job_id": 5}), "job_id"),
        (
            json!({"action": "subscribe", "job_id": "j", "last_seq": "x"}),
            "last_seq",
        ),
        (
            json!({"action": "subscribe", "job_id": "j", "last_seq": -1}),
            "last_seq",
        ),
        (json!({"action": "subscribe"}), "job_id"),
        (
            json!({"action": "subscribe", "job_id": "has space"}),
            "job_id",
        ),
        (
            json!({"action": "subscribe", "job_id": "j", "lastSeq": 3}),
            "lastSeq",
        ),
        (
            json!({"action": "cancel_job", "job_id": "j", "reason": 1}),
            "reason",
        ),
        (json!({"action": "ping", "extra": true}), "extra"),
        (json!({"action": 7}), "action"),
        (json!({"job_id": "j"}), "action"),
        (
            json!({"action": "ping", "correlation_id": "a b"}),
            "correlation_id",
        ),
    ];
    for (frame, field) in cases {
        let err = parse(frame.clone()).unwrap_err();
        assert_eq!(err.field(), Some(field), "{frame}: {err}");
        assert!(err.to_string().contains(field), "{frame}: {err}");
        assert_eq!(err.code(), ErrorCode::InvalidMessage, "{frame}");
    }
}

#[test]
fn oversize_frames_are_refused_before_parsing() {
    let frame = format!(
        "{{\"action\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(MAX_FRAME_BYTES)
    );
    let err = ClientRequest::parse(&frame).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
}

#[test]
fn job_events_validate_their_fields() {
    let ok = JobEvent::from_value(
        json!({"type": "progress_update", "stage": "crawl", "progress": 40, "message": "4/10"}),
    )
    .unwrap();
    assert_eq!(ok.type_name(), "progress_update");
    let cases = [
        (
            json!({"type": "progress_update", "stage": "crawl", "progress": 101}),
            "progress",
        ),
        (
            json!({"type": "progress_update", "stage": "", "progress": 1}),
            "stage",
        ),
        (json!({"type": "progress_update", "stage": "s"}), "progress"),
        (
            json!({"type": "job_failed", "error": {"code": "x"}}),
            "error.message",
        ),
        (json!({"type": "job_complete", "result": {}}), "result"),
        (json!({"type": "teleport"}), "type"),
        (json!({"stage": "s"}), "type"),
    ];
    for (event, field) in cases {
        let err = JobEvent::from_value(event.clone()).unwrap_err();
        assert_eq!(err.field(), Some(field), "{event}: {err}");
    }
}

#[test]
fn server_frames_carry_type_timestamp_and_correlation_id() {
    let event = JobEvent::from_value(
        json!({"type": "progress_update", "stage": "crawl", "progress": 50, "message": "half"}),
    )
    .unwrap();
    let frame = ServerFrame::new(
        ServerMessage::job_event(JobId::parse("j1").unwrap(), 7, event),
        Some(CorrelationId::parse("run-1").unwrap()),
    );
    let value: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
    assert_eq!(value["type"], "progress_update");
    assert_eq!(value["job_id"], "j1");
    assert_eq!(value["seq"], 7);
    assert_eq!(value["progress"], 50.0);
    assert_eq!(value["correlation_id"], "run-1");
    let timestamp = value["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.contains('T'),
        "{timestamp}"
    );
    let back: ServerFrame = serde_json::from_value(value).unwrap();
    assert_eq!(back.message, frame.message);
}

#[test]
fn error_replies_serialize_their_code_in_snake_case() {
    let frame = ServerFrame::new(
        ServerMessage::Error(ErrorReply {
            code: ErrorCode::UnknownAction,
            message: "nope".into(),
            suggested_action: None,
            action: Some("explode".into()),
        }),
        None,
    );
    let value: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
    assert_eq!(value["type"], "error");
    assert_eq!(value["code"], "unknown_action");
    assert!(value.get("correlation_id").is_none());
}

proptest! {
    /// Any text is either a request that writes back as itself, or a typed refusal whose
    /// message stays small whatever the frame echoed.
    #[test]
    fn any_text_is_a_request_that_round_trips_or_a_typed_refusal(frame in ".{0,512}") {
        match ClientRequest::parse(&frame) {
            Ok(request) => {
                let again = ClientRequest::parse(&serde_json::to_string(&request).unwrap());
                prop_assert_eq!(again, Ok(request));
            }
            Err(err) => {
                prop_assert!(
                    matches!(err.code(), ErrorCode::InvalidJson | ErrorCode::InvalidMessage | ErrorCode::UnknownAction),
                    "{:?} for {:?}", err.code(), frame
                );
                prop_assert!(err.to_string().len() <= 300, "a refusal of {} bytes", err.to_string().len());
            }
        }
    }

    /// Any JSON object: the client parser accepts it only with a known action and refuses it
    /// naming `action` or a field that is in the object (or one the action needs); the event
    /// parser accepts it only with a known `type`, and otherwise names what is wrong.
    #[test]
    fn any_object_is_accepted_only_when_valid_and_refused_naming_the_fault(
        keys in prop::collection::vec(prop_oneof![
            Just("action".to_owned()), Just("job_id".to_owned()), Just("last_seq".to_owned()),
            Just("type".to_owned()), Just("stage".to_owned()), Just("progress".to_owned()),
            "[a-z_]{1,8}"], 0..6),
        values in prop::collection::vec(prop_oneof![
            Just(json!(null)), Just(json!(-1)), Just(json!(1.5e300)), Just(json!("subscribe")),
            Just(json!("ping")), Just(json!("j1")),
            Just(json!("progress_update")), Just(json!([1])), Just(json!({"a": {}})),
            "[ -~]{0,16}".prop_map(serde_json::Value::from)], 6),
    ) {
        let object: serde_json::Map<_, _> = keys.into_iter().zip(values).collect();
        let action = object.get("action").and_then(|a| a.as_str()).map(str::to_owned);
        match ClientRequest::parse(&serde_json::Value::Object(object.clone()).to_string()) {
            Ok(request) => prop_assert_eq!(Some(request.message.action()), action.as_deref()),
            Err(FrameError::MissingAction { .. }) => prop_assert!(!object.contains_key("action")),
            Err(FrameError::UnknownAction { action: named, .. }) => {
                prop_assert!(action.is_some_and(|a| !ClientMessage::ACTIONS.contains(&a.as_str()) && a.starts_with(named.trim_end_matches('…'))));
            }
            Err(FrameError::InvalidField { field, .. }) => {
                let top = field.split('.').next().unwrap_or_default().to_owned();
                prop_assert!(
                    object.contains_key(&top) || ["job_id", "message", "action"].contains(&top.as_str()),
                    "{} named for {:?}", field, object
                );
            }
            Err(other) => prop_assert!(false, "unexpected {:?} for {:?}", other, object),
        }
        let kind = object.get("type").cloned();
        match JobEvent::from_value(serde_json::Value::Object(object.clone())) {
            Ok(event) => prop_assert_eq!(Some(json!(event.type_name())), kind),
            Err(FrameError::UnknownEventType { .. }) => {
                prop_assert!(kind.as_ref().and_then(|k| k.as_str()).is_some_and(|k| !JobEvent::TYPES.contains(&k)));
            }
            Err(FrameError::InvalidField { field, .. }) => {
                prop_assert!(!field.is_empty());
                if field == "type" {
                    prop_assert!(!kind.as_ref().is_some_and(|k| k.is_string()));
                }
            }
            Err(other) => prop_assert!(false, "unexpected {:?} for {:?}", other, object),
        }
    }

    #[test]
    fn valid_subscribes_round_trip(job in "[A-Za-z0-9_.:-]{1,128}", last_seq in proptest::option::of(any::<u64>())) {
        let request = ClientRequest {
            message: ClientMessage::Subscribe(Subscribe { job_id: JobId::parse(job).unwrap(), last_seq }),
            correlation_id: None,
        };
        let parsed = ClientRequest::parse(&serde_json::to_string(&request).unwrap()).unwrap();
        prop_assert_eq!(parsed, request);
    }
}
