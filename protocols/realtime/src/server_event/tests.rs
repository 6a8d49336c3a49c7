//! Unit tests of the server event codec.

use super::*;

const DELTA: &str = r#"{"type":"response.audio.delta","event_id":"e1","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"delta":"/w=="}"#;

#[test]
fn beta_audio_delta_borrows_and_reencodes() {
    let event = parse_server_event(DELTA).expect("valid");
    let ServerEvent::ResponseOutputAudioDelta(delta) = &event else {
        panic!("wrong variant: {event:?}");
    };
    assert!(matches!(delta.delta, Cow::Borrowed("/w==")));
    assert!(matches!(delta.item_id, Cow::Borrowed("i1")));
    assert_eq!(event.encode(Dialect::Beta), DELTA);
    assert_eq!(
        event.encode(Dialect::Ga),
        DELTA.replace("response.audio.delta", "response.output_audio.delta")
    );
}

#[test]
fn escaped_delta_is_owned_and_correct() {
    let text = DELTA.replace("/w==", "\\/w==");
    let event = parse_server_event(&text).expect("valid");
    let ServerEvent::ResponseOutputAudioDelta(delta) = event else {
        panic!("wrong variant");
    };
    assert_eq!(delta.delta, "/w==");
}

#[test]
fn unknown_and_malformed() {
    let event =
        parse_server_event(r#"{"type":"output_audio_buffer.started","x":1}"#).expect("valid json");
    assert_eq!(
        event,
        ServerEvent::Unknown {
            event_type: Cow::Borrowed("output_audio_buffer.started")
        }
    );
    assert_eq!(
        parse_server_event(r#"{"event_id":"x"}"#),
        Err(ParseError::MissingType)
    );
    assert!(matches!(
        parse_server_event("[1]"),
        Err(ParseError::Json { .. })
    ));
    let err = parse_server_event(r#"{"type":"response.audio.delta","delta":"secret"}"#)
        .expect_err("missing ids");
    assert!(matches!(err, ParseError::Invalid { .. }));
    assert!(!err.to_string().contains("secret"));
}

#[test]
fn beta_only_names_for_ga_only_events() {
    let done = ServerEvent::ConversationItemDone(ItemEvent {
        event_id: "e".into(),
        previous_item_id: None,
        item: Item::user_text("hi"),
    });
    assert_eq!(done.type_in(Dialect::Beta), None);
    let added = ServerEvent::ConversationItemAdded(ItemEvent {
        event_id: "e".into(),
        previous_item_id: None,
        item: Item::user_text("hi"),
    });
    assert_eq!(
        added.type_in(Dialect::Beta),
        Some("conversation.item.created")
    );
}
