//! A Japanese agent's settings land where the GA and beta `session.update` shapes put them
//! (docs/protocols.md §3.2).

use serde_json::{json, Value};
use switchboard_proto::v1::{turn_detection, InputTranscription, Tool as PbTool};
use switchboard_realtime::ClientEvent;

use super::*;

const INSTRUCTIONS: &str = "あなたはアクメ株式会社の電話窓口のアヤです。お客様（山田太郎様）に丁寧な日本語で対応してください。";

fn japanese_agent() -> AgentSettings {
    AgentSettings {
        id: "agent_ja".into(),
        name: "アヤ".into(),
        model: "gpt-realtime".into(),
        voice: "marin".into(),
        instructions: INSTRUCTIONS.into(),
        temperature: Some(0.7),
        tools: vec![PbTool {
            name: "lookup_order".into(),
            description: "注文状況を調べる".into(),
            parameters_json_schema: r#"{"type":"object","properties":{"order_number":{"type":"string"}},"required":["order_number"]}"#.into(),
            webhook_url: "https://tools.example.jp/orders".into(),
            timeout: None,
        }],
        turn_detection: Some(PbTurnDetection {
            r#type: turn_detection::Type::ServerVad.into(),
            threshold: Some(0.6),
            prefix_padding_ms: Some(200),
            silence_duration_ms: Some(700),
        }),
        input_transcription: Some(InputTranscription {
            model: "gpt-4o-transcribe".into(),
            language: "ja".into(),
            prompt: "注文番号、山田".into(),
        }),
        greeting: "お電話ありがとうございます。アクメのアヤです。".into(),
        ..AgentSettings::default()
    }
}

/// The `session` object of the `session.update` the core would send.
fn session_json(agent: &AgentSettings, dialect: Dialect) -> Value {
    let plan = session_config(agent, dialect);
    let text = ClientEvent::session_update(plan.config).encode(dialect);
    let mut event: Value = serde_json::from_str(&text).expect("session.update is json");
    assert_eq!(event["type"], "session.update");
    event["session"].take()
}

fn expected_tools() -> Value {
    json!([
        {
            "type": "function",
            "name": "lookup_order",
            "description": "注文状況を調べる",
            "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}},
                           "required": ["order_number"]},
        },
        {
            "type": "function",
            "name": "transfer_to_human",
            "description": TRANSFER_TO_HUMAN_DESCRIPTION,
            "parameters": {"type": "object",
                           "properties": {"reason": {"type": "string",
                               "description": "Why the caller needs a human, in a few words."}},
                           "required": ["reason"]},
        },
    ])
}

#[test]
fn a_japanese_agent_lands_where_the_ga_session_wants_it() {
    let session = session_json(&japanese_agent(), Dialect::Ga);
    let expected = json!({
        "type": "realtime",
        "instructions": INSTRUCTIONS,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "gpt-4o-transcribe", "language": "ja",
                                  "prompt": "注文番号、山田"},
                "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200,
                                   "silence_duration_ms": 700, "create_response": true,
                                   "interrupt_response": true},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
        "tools": expected_tools(),
        "tool_choice": "auto",
    });
    assert_eq!(session, expected);
    assert!(
        session.get("temperature").is_none(),
        "GA has no temperature"
    );
}

#[test]
fn the_model_is_never_in_session_update_it_is_chosen_in_the_url() {
    // A session's model cannot be changed by session.update; a rejected update would
    // end the call. The agent's model goes into the connection URL instead.
    let agent = japanese_agent();
    assert_eq!(agent.model, "gpt-realtime");
    for dialect in [Dialect::Ga, Dialect::Beta] {
        let session = session_json(&agent, dialect);
        assert!(session.get("model").is_none(), "{dialect:?}: {session}");
    }
}

#[test]
fn a_japanese_agent_lands_where_the_beta_session_wants_it() {
    let session = session_json(&japanese_agent(), Dialect::Beta);
    let expected = json!({
        "instructions": INSTRUCTIONS,
        "modalities": ["text", "audio"],
        "voice": "marin",
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_ulaw",
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "ja",
                                      "prompt": "注文番号、山田"},
        "turn_detection": {"type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200,
                           "silence_duration_ms": 700, "create_response": true,
                           "interrupt_response": true},
        "temperature": 0.7,
        "tools": expected_tools(),
        "tool_choice": "auto",
    });
    assert_eq!(session, expected);
}

#[test]
fn unset_fields_are_left_to_the_provider_and_vad_defaults_to_server_vad() {
    let session = session_json(&AgentSettings::default(), Dialect::Ga);
    for absent in ["model", "instructions"] {
        assert!(session.get(absent).is_none(), "{absent}");
    }
    assert!(session["audio"]["output"].get("voice").is_none());
    assert!(session["audio"]["input"].get("transcription").is_none());
    assert_eq!(
        session["audio"]["input"]["turn_detection"],
        json!({"type": "server_vad", "create_response": true, "interrupt_response": true})
    );
    assert_eq!(session["tools"][0]["name"], TRANSFER_TO_HUMAN);
}

#[test]
fn semantic_vad_and_no_turn_detection_map_to_their_wire_forms() {
    let mut agent = japanese_agent();
    if let Some(t) = agent.turn_detection.as_mut() {
        t.r#type = turn_detection::Type::SemanticVad.into();
    }
    let session = session_json(&agent, Dialect::Ga);
    assert_eq!(
        session["audio"]["input"]["turn_detection"],
        json!({"type": "semantic_vad", "create_response": true, "interrupt_response": true})
    );
    if let Some(t) = agent.turn_detection.as_mut() {
        t.r#type = turn_detection::Type::None.into();
    }
    for dialect in [Dialect::Ga, Dialect::Beta] {
        let session = session_json(&agent, dialect);
        let detection = match dialect {
            Dialect::Ga => &session["audio"]["input"]["turn_detection"],
            Dialect::Beta => &session["turn_detection"],
        };
        assert_eq!(detection, &Value::Null, "{dialect}: null disables VAD");
    }
}

#[test]
fn bad_or_reserved_tools_are_skipped_and_reported() {
    let mut agent = japanese_agent();
    agent.tools.push(PbTool {
        name: "broken".into(),
        parameters_json_schema: "{not json".into(),
        ..PbTool::default()
    });
    agent.tools.push(PbTool {
        name: "a_list".into(),
        parameters_json_schema: "[]".into(),
        ..PbTool::default()
    });
    agent.tools.push(PbTool {
        name: TRANSFER_TO_HUMAN.into(),
        parameters_json_schema: "{}".into(),
        ..PbTool::default()
    });
    agent.tools.push(PbTool {
        name: "no_arguments".into(),
        ..PbTool::default()
    });
    let plan = session_config(&agent, Dialect::Ga);
    let names: Vec<&str> = plan.config.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["lookup_order", "no_arguments", TRANSFER_TO_HUMAN]);
    let skipped: Vec<&str> = plan.skipped_tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(skipped, ["broken", "a_list", TRANSFER_TO_HUMAN]);
    assert_eq!(
        plan.config.tools[1].parameters,
        json!({"type": "object", "properties": {}})
    );
}
