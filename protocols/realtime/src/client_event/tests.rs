//! Unit tests of the client event codec.

use serde_json::Value;

use super::*;

#[test]
fn append_is_passed_through_and_borrowed_back() {
    let mut buf = String::new();
    encode_audio_append("/8u9ta+t==", &mut buf);
    assert_eq!(
        buf,
        r#"{"type":"input_audio_buffer.append","audio":"/8u9ta+t=="}"#
    );
    let event = parse_client_event(&buf, Dialect::Ga).expect("valid");
    let ClientEvent::InputAudioBufferAppend { audio, .. } = &event else {
        panic!("wrong variant {event:?}");
    };
    assert!(matches!(audio, Cow::Borrowed("/8u9ta+t==")));
    assert_eq!(event.encode(Dialect::Beta), buf);
}

#[test]
fn hostile_audio_is_escaped() {
    let mut buf = String::new();
    encode_audio_append("a\"}b\\", &mut buf);
    let event = parse_client_event(&buf, Dialect::Ga).expect("still valid json");
    assert_eq!(event, ClientEvent::append("a\"}b\\").into_owned());
}

#[test]
fn truncate_and_cancel_shapes() {
    assert_eq!(
        ClientEvent::truncate("item_1", 285).encode(Dialect::Ga),
        r#"{"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":285}"#
    );
    let cancel = ClientEvent::ResponseCancel {
        event_id: Some("evt_1".into()),
        response_id: Some("resp_1".into()),
    };
    assert_eq!(
        cancel.encode(Dialect::Beta),
        r#"{"type":"response.cancel","event_id":"evt_1","response_id":"resp_1"}"#
    );
}

#[test]
fn response_overrides_follow_the_dialect() {
    let event = ClientEvent::ResponseCreate {
        event_id: None,
        response: Some(Box::new(ResponseParams {
            output_modalities: Some(OutputModality::Audio),
            max_output_tokens: Some(MaxOutputTokens::Limit(200)),
            ..ResponseParams::default()
        })),
    };
    let ga: Value = serde_json::from_str(&event.encode(Dialect::Ga)).expect("json");
    assert_eq!(
        ga["response"]["output_modalities"],
        serde_json::json!(["audio"])
    );
    assert_eq!(ga["response"]["max_output_tokens"], 200);
    let beta_text = event.encode(Dialect::Beta);
    let beta: Value = serde_json::from_str(&beta_text).expect("json");
    assert_eq!(
        beta["response"]["modalities"],
        serde_json::json!(["text", "audio"])
    );
    assert_eq!(beta["response"]["max_response_output_tokens"], 200);
    assert_eq!(parse_client_event(&beta_text, Dialect::Beta), Ok(event));
    assert!(matches!(
        parse_client_event(&beta_text, Dialect::Ga),
        Err(ParseError::DialectMismatch { .. })
    ));
}
