//! Arbitrary input never panics the decoders, and whatever they accept
//! encodes to JSON they accept again. The cargo-fuzz targets in `fuzz/` run
//! the same checks without a time limit.

#[path = "support/fixtures.rs"]
mod fixtures;

use proptest::prelude::*;
use serde_json::{Map, Value};
use switchboard_realtime::{parse_client_event, parse_server_event, Dialect, Playback};

const DIALECTS: [Dialect; 2] = [Dialect::Ga, Dialect::Beta];

const TYPES: &[&str] = &[
    "error",
    "session.created",
    "session.updated",
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "conversation.item.created",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "conversation.item.deleted",
    "conversation.item.truncated",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.segment",
    "response.create",
    "response.cancel",
    "response.created",
    "response.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_audio.delta",
    "response.audio.delta",
    "response.output_audio.done",
    "response.audio.done",
    "response.output_audio_transcript.delta",
    "response.audio_transcript.done",
    "response.output_text.delta",
    "response.text.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "rate_limits.updated",
    "output_audio_buffer.clear",
    "something.else",
];

const FIELDS: &[&str] = &[
    "event_id",
    "item_id",
    "response_id",
    "previous_item_id",
    "call_id",
    "name",
    "arguments",
    "delta",
    "audio",
    "transcript",
    "text",
    "item",
    "response",
    "session",
    "error",
    "part",
    "output",
    "usage",
    "status",
    "content",
    "role",
    "type",
    "output_index",
    "content_index",
    "audio_start_ms",
    "audio_end_ms",
    "rate_limits",
    "model",
    "voice",
    "audio",
    "input",
    "format",
    "turn_detection",
    "tools",
    "temperature",
    "modalities",
    "output_modalities",
    "max_output_tokens",
    "parameters",
    "metadata",
    "seconds",
    "start",
    "end",
    "speaker",
    "id",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop::sample::select(TYPES).prop_map(Value::from),
        "[a-z_/+=.]{0,12}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..6).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// An event-shaped object: a known `type` plus arbitrary known fields.
fn event_json() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..8),
    )
        .prop_map(|(event_type, fields)| {
            let mut map: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            map.insert("type".into(), Value::from(event_type));
            Value::Object(map).to_string()
        })
}

fn fixture_texts() -> Vec<String> {
    ["ga_client", "beta_client", "ga_server", "beta_server"]
        .into_iter()
        .flat_map(fixtures::examples)
        .map(|(_, event)| event.to_string())
        .collect()
}

/// A real example with a byte range replaced (kept on char boundaries).
fn mutated_fixture() -> impl Strategy<Value = String> {
    let texts = fixture_texts();
    (
        prop::sample::select(texts),
        any::<prop::sample::Index>(),
        0usize..16,
        "[\\x00-\\x7f]{0,4}|\\PC{0,3}",
    )
        .prop_map(|(text, at, len, insert)| {
            let mut start = at.index(text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}{}", &text[..start], insert, &text[end..])
        })
}

fn check(text: &str) {
    if let Ok(event) = parse_server_event(text) {
        for dialect in DIALECTS {
            let encoded = event.encode(dialect);
            assert!(
                serde_json::from_str::<Value>(&encoded).is_ok(),
                "bad json: {encoded}"
            );
            if let Err(e) = parse_server_event(&encoded) {
                panic!("re-decode of {encoded} failed: {e} (input {text})");
            }
        }
    }
    for dialect in DIALECTS {
        if let Ok(event) = parse_client_event(text, dialect) {
            let encoded = event.encode(dialect);
            if let Err(e) = parse_client_event(&encoded, dialect) {
                panic!("{dialect} re-decode of {encoded} failed: {e} (input {text})");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn arbitrary_json(value in json_value()) {
        check(&value.to_string());
    }

    #[test]
    fn event_shaped_json(text in event_json()) {
        check(&text);
    }

    #[test]
    fn mutated_examples(text in mutated_fixture()) {
        check(&text);
    }

    #[test]
    fn playback_survives_any_sequence(
        ops in prop::collection::vec(
            (0u8..4, "[a-c]", "[a-c]", "[A-Za-z0-9+/=]{0,40}", any::<u64>(), any::<String>()),
            0..64,
        )
    ) {
        let mut playback = Playback::new();
        let mut marks = Vec::new();
        for (op, item, response, audio, now, junk) in ops {
            match op {
                0 => {
                    if let Some(mark) = playback.push_chunk(&item, &response, &audio, now) {
                        marks.push(mark.to_string());
                    }
                }
                1 => {
                    let name = marks.pop().unwrap_or(junk);
                    playback.on_mark(&name, now);
                }
                2 => {
                    if let Some(cut) = playback.barge_in(now, now % 2 == 0) {
                        prop_assert!(!cut.item_id.is_empty());
                    }
                }
                _ => playback.response_done(&response),
            }
        }
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let deep = format!(
        "{{\"type\":\"response.done\",\"response\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(parse_server_event(&deep).is_err());
    let deep_item = format!(
        "{{\"type\":\"conversation.item.create\",\"item\":{{\"type\":\"message\",\"x\":{}{}}}}}",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    for dialect in DIALECTS {
        assert!(parse_client_event(&deep_item, dialect).is_err());
    }
}
