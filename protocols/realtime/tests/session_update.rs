//! The `session.update` of a Japanese phone agent, field by field against
//! the GA and beta shapes for Twilio µ-law (docs/protocols.md §3.2).

#[path = "support/fixtures.rs"]
mod fixtures;

use serde_json::{json, Value};
use switchboard_realtime::{
    parse_client_event, ClientEvent, Dialect, InputTranscription, MaxOutputTokens, NoiseReduction,
    SessionConfig, Tool, TurnDetection,
};

const INSTRUCTIONS: &str = "あなたはアクメ株式会社の電話受付「さくら」です。\
お客様の名前は山田花子様です。丁寧な日本語で、短く答えてください。";

fn transfer_tool() -> Tool {
    Tool {
        name: "transfer_to_human".into(),
        description: "お客様が担当者を希望したとき、担当者に転送します。".into(),
        parameters: json!({
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"]
        }),
    }
}

/// The agent's settings, as the control plane hands them to the sidecar.
fn japanese_agent(model: &str, voice: &str) -> SessionConfig {
    SessionConfig {
        model: Some(model.into()),
        instructions: Some(INSTRUCTIONS.into()),
        voice: Some(voice.into()),
        speed: Some(1.0),
        temperature: Some(0.8),
        turn_detection: Some(TurnDetection {
            threshold: Some(0.5),
            prefix_padding_ms: Some(300),
            silence_duration_ms: Some(500),
            create_response: Some(true),
            interrupt_response: Some(true),
            ..TurnDetection::server_vad()
        }),
        transcription: Some(InputTranscription {
            model: Some("gpt-4o-transcribe".into()),
            language: Some("ja".into()),
            prompt: None,
        }),
        noise_reduction: Some(NoiseReduction::NearField),
        tools: vec![transfer_tool()],
        tool_choice: Some("auto".into()),
        max_output_tokens: Some(MaxOutputTokens::Inf),
        truncation: Some("auto".into()),
        ..SessionConfig::default()
    }
}

fn encoded(config: SessionConfig, dialect: Dialect) -> Value {
    let text = ClientEvent::session_update(config).encode(dialect);
    let schemas = fixtures::Schemas::load();
    fixtures::assert_valid(schemas.client(dialect), &text, "japanese session.update");
    serde_json::from_str(&text).expect("json")
}

fn tools_json() -> Value {
    json!([{
        "type": "function",
        "name": "transfer_to_human",
        "description": "お客様が担当者を希望したとき、担当者に転送します。",
        "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}, "required": ["reason"]}
    }])
}

#[test]
fn ga_matches_the_documented_shape() {
    let event = encoded(japanese_agent("gpt-realtime", "marin"), Dialect::Ga);
    let expected = json!({"type": "session.update", "session": {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": INSTRUCTIONS,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-4o-transcribe", "language": "ja"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                   "silence_duration_ms": 500, "create_response": true,
                                   "interrupt_response": true}
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}
        },
        "tools": tools_json(),
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "truncation": "auto"
    }});
    assert_fields_eq(&event, &expected, "");
    let session = &event["session"];
    assert!(
        session.get("temperature").is_none(),
        "GA has no temperature"
    );
    for beta_name in [
        "voice",
        "modalities",
        "input_audio_format",
        "turn_detection",
    ] {
        assert!(
            session.get(beta_name).is_none(),
            "beta field {beta_name} in GA"
        );
    }
}

#[test]
fn beta_matches_the_documented_shape() {
    let event = encoded(
        japanese_agent("gpt-4o-realtime-preview-2024-12-17", "alloy"),
        Dialect::Beta,
    );
    // The flat beta shape (docs/protocols.md §3.2) plus the two beta fields of
    // the rename map (§3.4) this agent also sets (speed,
    // input_audio_noise_reduction); no GA-only `truncation`.
    let expected = json!({"type": "session.update", "session": {
        "model": "gpt-4o-realtime-preview-2024-12-17",
        "instructions": INSTRUCTIONS,
        "modalities": ["text", "audio"],
        "voice": "alloy",
        "speed": 1.0,
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_ulaw",
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "ja"},
        "input_audio_noise_reduction": {"type": "near_field"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                           "silence_duration_ms": 500, "create_response": true,
                           "interrupt_response": true},
        "temperature": 0.8,
        "tools": tools_json(),
        "tool_choice": "auto",
        "max_response_output_tokens": "inf"
    }});
    assert_fields_eq(&event, &expected, "");
}

#[test]
fn japanese_text_survives_both_dialects() {
    for dialect in [Dialect::Ga, Dialect::Beta] {
        let config = japanese_agent("gpt-realtime", "marin");
        let text = ClientEvent::session_update(config.clone()).encode(dialect);
        assert!(
            text.contains("さくら"),
            "{dialect}: not escaped to \\u sequences"
        );
        let Ok(ClientEvent::SessionUpdate { session, .. }) = parse_client_event(&text, dialect)
        else {
            panic!("{dialect}: session.update does not read back");
        };
        assert_eq!(session.instructions.as_deref(), Some(INSTRUCTIONS));
        assert_eq!(session.transcription, config.transcription);
        assert_eq!(session.tools, config.tools);
    }
}

/// Compares recursively, naming the first differing path.
fn assert_fields_eq(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            let mut a_keys: Vec<_> = a.keys().collect();
            let mut e_keys: Vec<_> = e.keys().collect();
            a_keys.sort();
            e_keys.sort();
            assert_eq!(a_keys, e_keys, "fields of {path}");
            for (key, value) in e {
                assert_fields_eq(&a[key], value, &format!("{path}.{key}"));
            }
        }
        _ => assert_eq!(actual, expected, "at {path}"),
    }
}
