use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;
use switchboard_realtime::{Dialect, ServerEvent};

use super::*;
use crate::openai::audio::{linear_to_ulaw, sine};
use crate::openai::records::SessionRecord;

fn core(dialect: Dialect) -> SessionCore {
    let recorder = Recorder::detached(SessionRecord::new("sess_t".into(), dialect, "m".into()));
    let mut core = SessionCore::new(CoreParams {
        session_id: "sess_t".into(),
        dialect,
        model: "gpt-realtime".into(),
        script: Arc::new(Script::default()),
        recorder,
        tone_hz: 440,
        chunk_ms: 100,
    });
    let mut out = Vec::new();
    core.start(&mut out);
    core
}

fn send(core: &mut SessionCore, event: serde_json::Value) -> Vec<ServerEvent<'static>> {
    let mut out = Vec::new();
    core.on_text(&event.to_string(), &mut out);
    out
}

fn types(events: &[ServerEvent<'_>], dialect: Dialect) -> Vec<String> {
    events
        .iter()
        .map(|e| e.type_in(dialect).unwrap_or("?").to_owned())
        .collect()
}

fn ulaw_update(dialect: Dialect) -> serde_json::Value {
    match dialect {
        Dialect::Ga => json!({"type": "session.update", "session": {"type": "realtime",
            "audio": {"input": {"format": {"type": "audio/pcmu"},
                                "transcription": {"model": "gpt-4o-transcribe"}},
                      "output": {"format": {"type": "audio/pcmu"}}}}}),
        Dialect::Beta => json!({"type": "session.update", "session": {
            "input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "whisper-1"}}}),
    }
}

/// `ms` of µ-law: a loud tone, or line silence.
fn append(ms: u32, loud: bool) -> serde_json::Value {
    let bytes: Vec<u8> = if loud {
        sine(300, ms, 8_000, 6_000.0)
            .into_iter()
            .map(linear_to_ulaw)
            .collect()
    } else {
        vec![0xFF; (ms * 8) as usize]
    };
    let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
    json!({"type": "input_audio_buffer.append", "audio": audio})
}

fn drain(core: &mut SessionCore) -> Vec<ServerEvent<'static>> {
    let mut out = Vec::new();
    while core.step(&mut out).is_some() {}
    out
}

fn error_code<'e>(event: &'e ServerEvent<'_>) -> Option<&'e str> {
    match event {
        ServerEvent::Error(e) => e.error.code.as_deref(),
        _ => None,
    }
}

/// Speaks one caller turn and lets the response finish.
fn caller_turn(core: &mut SessionCore) -> (Vec<ServerEvent<'static>>, Vec<ServerEvent<'static>>) {
    let mut turn = send(core, append(400, false));
    turn.extend(send(core, append(800, true)));
    turn.extend(send(core, append(700, false)));
    let response = drain(core);
    (turn, response)
}

#[test]
fn a_caller_turn_is_detected_transcribed_and_answered() {
    let mut core = core(Dialect::Ga);
    let updated = send(&mut core, ulaw_update(Dialect::Ga));
    assert_eq!(types(&updated, Dialect::Ga), ["session.updated"]);
    let (turn, response) = caller_turn(&mut core);
    assert_eq!(
        types(&turn, Dialect::Ga),
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "conversation.item.done",
            "response.created",
            "rate_limits.updated",
        ]
    );
    let ServerEvent::InputAudioBufferSpeechStarted(started) = &turn[0] else {
        panic!("speech_started first");
    };
    assert_eq!(
        started.audio_start_ms, 100,
        "400 ms silence minus 300 ms padding"
    );
    let ServerEvent::InputAudioBufferSpeechStopped(stopped) = &turn[1] else {
        panic!("speech_stopped second");
    };
    assert_eq!(stopped.audio_end_ms, 1_700);
    let ServerEvent::InputAudioTranscriptionCompleted(done) = &turn[5] else {
        panic!("transcription");
    };
    assert_eq!(done.transcript, "Hi, where is my order 4471?");

    let names = types(&response, Dialect::Ga);
    assert_eq!(
        names.first().map(String::as_str),
        Some("response.output_item.added")
    );
    assert_eq!(names.last().map(String::as_str), Some("response.done"));
    assert!(names.contains(&"response.function_call_arguments.done".to_owned()));
    let ServerEvent::ResponseDone(done) = response.last().expect("done") else {
        panic!("response.done last");
    };
    let usage = done.response.usage.as_ref().expect("usage");
    assert!(usage.total_tokens.unwrap_or(0) > 0);
    assert_eq!(done.response.function_calls().count(), 1);
}

#[test]
fn the_reply_after_a_tool_call_needs_its_output() {
    let mut core = core(Dialect::Ga);
    send(&mut core, ulaw_update(Dialect::Ga));
    let (_, response) = caller_turn(&mut core);
    let call_id = response
        .iter()
        .find_map(|e| match e {
            ServerEvent::ResponseFunctionCallArgumentsDone(d) => Some(d.call_id.clone()),
            _ => None,
        })
        .expect("a function call");
    let unknown = send(
        &mut core,
        json!({"type": "conversation.item.create",
               "item": {"type": "function_call_output", "call_id": "call_nope", "output": "{}"}}),
    );
    assert_eq!(error_code(&unknown[0]), Some("invalid_value"));
    let created = send(
        &mut core,
        json!({"type": "conversation.item.create",
               "item": {"type": "function_call_output", "call_id": call_id, "output": "{\"eta\":\"tomorrow\"}"}}),
    );
    assert_eq!(
        types(&created, Dialect::Ga),
        ["conversation.item.added", "conversation.item.done"]
    );
    send(&mut core, json!({"type": "response.create"}));
    let answer = drain(&mut core);
    let transcript = answer.iter().find_map(|e| match e {
        ServerEvent::ResponseOutputAudioTranscriptDone(d) => Some(d.transcript.clone()),
        _ => None,
    });
    assert_eq!(
        transcript.as_deref(),
        Some("Your order 4471 has shipped and arrives tomorrow.")
    );
}

#[test]
fn truncation_is_checked_against_generated_audio() {
    let mut core = core(Dialect::Beta);
    send(&mut core, ulaw_update(Dialect::Beta));
    send(&mut core, json!({"type": "response.create"}));
    let greeting = drain(&mut core);
    let item_id = greeting
        .iter()
        .find_map(|e| match e {
            ServerEvent::ResponseOutputAudioDelta(d) => Some(d.item_id.to_string()),
            _ => None,
        })
        .expect("audio");
    let audio_ms: u64 = greeting
        .iter()
        .filter_map(|e| match e {
            ServerEvent::ResponseOutputAudioDelta(d) => {
                Some(switchboard_realtime::mulaw_duration_ms(&d.delta))
            }
            _ => None,
        })
        .sum();
    let over = send(
        &mut core,
        json!({"type": "conversation.item.truncate", "item_id": item_id,
               "content_index": 0, "audio_end_ms": audio_ms + 60, "event_id": "evt_7"}),
    );
    let ServerEvent::Error(error) = &over[0] else {
        panic!("error expected");
    };
    assert_eq!(
        error.error.message,
        format!(
            "Audio content of {audio_ms}ms is already shorter than {}ms",
            audio_ms + 60
        )
    );
    assert_eq!(error.error.event_id.as_deref(), Some("evt_7"));
    let within = send(
        &mut core,
        json!({"type": "conversation.item.truncate", "item_id": item_id,
               "content_index": 0, "audio_end_ms": 250}),
    );
    assert_eq!(
        types(&within, Dialect::Beta),
        ["conversation.item.truncated"]
    );
    let shorter = send(
        &mut core,
        json!({"type": "conversation.item.truncate", "item_id": item_id,
               "content_index": 0, "audio_end_ms": 300}),
    );
    assert!(
        matches!(&shorter[0], ServerEvent::Error(_)),
        "now only 250 ms long"
    );
    let unknown = send(
        &mut core,
        json!({"type": "conversation.item.truncate", "item_id": "item_x",
               "content_index": 0, "audio_end_ms": 0}),
    );
    assert_eq!(error_code(&unknown[0]), Some("invalid_value"));
    let record = core.recorder.snapshot();
    let accepted: Vec<bool> = record.truncations.iter().map(|t| t.accepted).collect();
    assert_eq!(accepted, [false, true, false, false]);
}

#[test]
fn cancel_ends_the_active_response_or_reports_none() {
    let mut core = core(Dialect::Ga);
    send(&mut core, ulaw_update(Dialect::Ga));
    let nothing = send(&mut core, json!({"type": "response.cancel"}));
    assert_eq!(error_code(&nothing[0]), Some("response_cancel_not_active"));
    send(&mut core, json!({"type": "response.create"}));
    let mut out = Vec::new();
    core.step(&mut out);
    let busy = send(&mut core, json!({"type": "response.create"}));
    assert_eq!(
        error_code(&busy[0]),
        Some("conversation_already_has_active_response")
    );
    let cancelled = send(&mut core, json!({"type": "response.cancel"}));
    let ServerEvent::ResponseDone(done) = cancelled.last().expect("events") else {
        panic!("response.done last");
    };
    assert_eq!(
        done.response.status.as_ref().map(|s| s.as_str()),
        Some("cancelled")
    );
    let reason = done
        .response
        .status_details
        .as_ref()
        .and_then(|d| d.reason.as_deref());
    assert_eq!(reason, Some("client_cancelled"));
    assert!(!core.response_active());
}

#[test]
fn barge_in_cancels_a_response_still_speaking() {
    let mut core = core(Dialect::Ga);
    send(&mut core, ulaw_update(Dialect::Ga));
    send(&mut core, json!({"type": "response.create"}));
    let mut out = Vec::new();
    core.step(&mut out);
    let speech = send(&mut core, append(200, true));
    let names = types(&speech, Dialect::Ga);
    assert_eq!(names[0], "input_audio_buffer.speech_started");
    assert_eq!(names.last().map(String::as_str), Some("response.done"));
    assert_eq!(core.recorder.snapshot().responses_cancelled.len(), 1);
}

#[test]
fn malformed_and_unknown_events_get_errors_and_the_session_goes_on() {
    let mut core = core(Dialect::Ga);
    let mut out = Vec::new();
    core.on_text("{not json", &mut out);
    core.on_text(r#"{"type":"bogus.event","event_id":"e1"}"#, &mut out);
    core.on_text(
        r#"{"type":"input_audio_buffer.append","audio":"***"}"#,
        &mut out,
    );
    core.on_text(
        r#"{"type":"conversation.item.truncate","item_id":"x"}"#,
        &mut out,
    );
    core.on_text(
        r#"{"type":"session.update","session":{"type":"realtime","temperature":0.8}}"#,
        &mut out,
    );
    core.on_text(r#"{"type":"input_audio_buffer.commit"}"#, &mut out);
    let codes: Vec<_> = out.iter().filter_map(error_code).collect();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "invalid_value",
            "invalid_value",
            "missing_required_parameter",
            "unknown_parameter",
            "input_audio_buffer_commit_empty"
        ]
    );
    let updated = send(&mut core, ulaw_update(Dialect::Ga));
    assert_eq!(types(&updated, Dialect::Ga), ["session.updated"]);
}

#[test]
fn beta_sessions_use_beta_names_and_skip_ga_only_events() {
    let mut core = core(Dialect::Beta);
    send(&mut core, ulaw_update(Dialect::Beta));
    let (turn, response) = caller_turn(&mut core);
    let turn_names = types(&turn, Dialect::Beta);
    assert!(turn_names.contains(&"conversation.item.created".to_owned()));
    assert!(!turn_names.iter().any(|n| n == "conversation.item.done"));
    assert!(
        !turn_names
            .iter()
            .any(|n| n.ends_with("transcription.delta")),
        "whisper-1"
    );
    let encoded: Vec<String> = response.iter().map(|e| e.encode(Dialect::Beta)).collect();
    assert!(encoded
        .iter()
        .any(|e| e.contains("\"type\":\"response.audio.delta\"")));
    assert!(encoded
        .iter()
        .any(|e| e.contains("\"type\":\"response.audio_transcript.delta\"")));
}

#[test]
fn rate_limited_sessions_refuse_responses() {
    let mut core = core(Dialect::Ga);
    core.set_rate_limited(true);
    let refused = send(
        &mut core,
        json!({"type": "response.create", "event_id": "e9"}),
    );
    assert_eq!(
        types(&refused, Dialect::Ga),
        ["rate_limits.updated", "error"]
    );
    assert_eq!(error_code(&refused[1]), Some("rate_limit_exceeded"));
    assert!(!core.response_active());
}

#[test]
fn voice_cannot_change_after_assistant_audio() {
    let mut core = core(Dialect::Ga);
    send(&mut core, ulaw_update(Dialect::Ga));
    send(&mut core, json!({"type": "response.create"}));
    drain(&mut core);
    let update = json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"output": {"voice": "cedar"}}}});
    let refused = send(&mut core, update);
    assert_eq!(error_code(&refused[0]), Some("cannot_update_voice"));
}

#[test]
fn the_model_chosen_in_the_url_cannot_be_changed_by_session_update() {
    for dialect in [Dialect::Ga, Dialect::Beta] {
        let mut core = core(dialect);
        let update = |model: &str| {
            let mut session = json!({"model": model, "instructions": "be brief"});
            if dialect == Dialect::Ga {
                session["type"] = json!("realtime");
            }
            json!({"type": "session.update", "event_id": "evt_1", "session": session})
        };

        let refused = send(&mut core, update("gpt-4o-realtime-preview"));
        assert_eq!(
            refused.len(),
            1,
            "{dialect}: an error and no session.updated"
        );
        let ServerEvent::Error(error) = &refused[0] else {
            panic!("{dialect}: expected an error, got {:?}", refused[0]);
        };
        assert_eq!(error.error.kind, "invalid_request_error");
        assert_eq!(error.error.code.as_deref(), Some("cannot_update_model"));
        assert_eq!(error.error.param.as_deref(), Some("session.model"));
        assert_eq!(error.error.event_id.as_deref(), Some("evt_1"));
        let message = &error.error.message;
        assert!(
            message.contains("'gpt-realtime'") && message.contains("'gpt-4o-realtime-preview'"),
            "{message}"
        );
        assert_eq!(core.config().model.as_deref(), Some("gpt-realtime"));
        assert_eq!(
            core.config().instructions.as_deref(),
            Some(""),
            "{dialect}: no field of a refused update is applied"
        );
        assert_eq!(core.recorder.snapshot().session_updates, 0);

        let accepted = send(&mut core, update("gpt-realtime"));
        assert_eq!(types(&accepted, dialect), ["session.updated"], "{dialect}");
        assert_eq!(core.config().instructions.as_deref(), Some("be brief"));
    }
}
