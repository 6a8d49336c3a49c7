//! The conversation items the core writes, one constructor per kind, and the
//! `payload_json` each carries. Items leave here without a sequence number; the outbox
//! assigns it.
//!
//! | item | role | kind | text | payload_json |
//! |---|---|---|---|---|
//! | caller transcript | USER | MESSAGE | transcript | — |
//! | assistant transcript | ASSISTANT | MESSAGE | transcript | `{"interrupted":true,"audio_end_ms":N}` when cut |
//! | tool call | ASSISTANT | FUNCTION_CALL | name | `{"call_id","name","arguments"}` |
//! | tool result | TOOL | FUNCTION_CALL_OUTPUT | output | `{"call_id","output","error"?}` |
//! | handoff | SYSTEM | HANDOFF | reason | `{"requested_by","reason","target"?}` |
//! | DTMF | USER | NOTE | `dtmf <digit>` | `{"dtmf":"<digit>"}` |
//! | failed transcription | USER | NOTE | `transcription failed` | `{"transcription_failed":{…}}` |
//! | fallback | SYSTEM | NOTE | `fallback: …` | `{"fallback":"<end reason>","error":…}` |
//!
//! Arguments and outputs that are JSON are embedded as JSON, anything else as a string.

use serde_json::{json, Map, Value};
use switchboard_proto::v1::{
    handoff_target::Target, CallError, ConversationItem, ConversationItemKind, ConversationRole,
    HandoffTarget,
};

/// A finished transcript of what the caller said.
pub(super) fn user_message(
    transcript: &str,
    provider_item_id: &str,
    now_ms: u64,
) -> ConversationItem {
    item(
        ConversationRole::User,
        ConversationItemKind::Message,
        transcript.to_owned(),
        provider_item_id,
        String::new(),
        now_ms,
    )
}

/// A finished transcript of what the assistant said; `interrupted_at` is the heard audio,
/// in ms, when the caller barged in.
pub(super) fn assistant_message(
    transcript: &str,
    provider_item_id: &str,
    interrupted_at: Option<u64>,
    now_ms: u64,
) -> ConversationItem {
    let payload = interrupted_at.map_or_else(String::new, |audio_end_ms| {
        json!({"interrupted": true, "audio_end_ms": audio_end_ms}).to_string()
    });
    item(
        ConversationRole::Assistant,
        ConversationItemKind::Message,
        transcript.to_owned(),
        provider_item_id,
        payload,
        now_ms,
    )
}

/// The model called a tool.
pub(super) fn function_call(
    call_id: &str,
    name: &str,
    arguments: &str,
    provider_item_id: &str,
    now_ms: u64,
) -> ConversationItem {
    let payload = json!({"call_id": call_id, "name": name, "arguments": embed(arguments)});
    item(
        ConversationRole::Assistant,
        ConversationItemKind::FunctionCall,
        name.to_owned(),
        provider_item_id,
        payload.to_string(),
        now_ms,
    )
}

/// A tool's result, as given to the model.
pub(super) fn function_call_output(
    call_id: &str,
    output: &str,
    error: Option<&CallError>,
    now_ms: u64,
) -> ConversationItem {
    let mut payload = Map::new();
    payload.insert("call_id".into(), call_id.into());
    payload.insert("output".into(), embed(output));
    if let Some(error) = error {
        payload.insert("error".into(), error_json(error));
    }
    item(
        ConversationRole::Tool,
        ConversationItemKind::FunctionCallOutput,
        output.to_owned(),
        "",
        Value::Object(payload).to_string(),
        now_ms,
    )
}

/// The call is handed to humans; `requested_by` is `model` or `control_plane`.
pub(super) fn handoff(
    requested_by: &str,
    reason: &str,
    target: Option<&HandoffTarget>,
    now_ms: u64,
) -> ConversationItem {
    let mut payload = Map::new();
    payload.insert("requested_by".into(), requested_by.into());
    payload.insert("reason".into(), reason.into());
    if let Some(target) = target.and_then(|t| t.target.as_ref()) {
        let target = match target {
            Target::ConferenceName(name) => json!({"conference_name": name}),
            Target::PhoneNumber(number) => json!({"phone_number": number}),
        };
        payload.insert("target".into(), target);
    }
    item(
        ConversationRole::System,
        ConversationItemKind::Handoff,
        reason.to_owned(),
        "",
        Value::Object(payload).to_string(),
        now_ms,
    )
}

/// The caller pressed a key.
pub(super) fn dtmf(digit: &str, now_ms: u64) -> ConversationItem {
    item(
        ConversationRole::User,
        ConversationItemKind::Note,
        format!("dtmf {digit}"),
        "",
        json!({"dtmf": digit}).to_string(),
        now_ms,
    )
}

/// The caller's speech could not be transcribed.
pub(super) fn transcription_failed(
    provider_item_id: &str,
    code: Option<&str>,
    message: Option<&str>,
    now_ms: u64,
) -> ConversationItem {
    let detail = json!({"code": code, "message": message});
    item(
        ConversationRole::User,
        ConversationItemKind::Note,
        "transcription failed".to_owned(),
        provider_item_id,
        json!({ "transcription_failed": detail }).to_string(),
        now_ms,
    )
}

/// The model is gone; the caller gets the agent's fallback.
pub(super) fn fallback(end_reason: &str, error: &CallError, now_ms: u64) -> ConversationItem {
    item(
        ConversationRole::System,
        ConversationItemKind::Note,
        format!("fallback: {end_reason}"),
        "",
        json!({"fallback": end_reason, "error": error_json(error)}).to_string(),
        now_ms,
    )
}

fn item(
    role: ConversationRole,
    kind: ConversationItemKind,
    text: String,
    provider_item_id: &str,
    payload_json: String,
    now_ms: u64,
) -> ConversationItem {
    let mut item = ConversationItem {
        seq: 0,
        role: role.into(),
        kind: kind.into(),
        text,
        provider_item_id: provider_item_id.to_owned(),
        payload_json,
        created_at: Some(Default::default()),
    };
    // `now_ms` is wall-clock ms since the Unix epoch (see `CallCore`).
    if let Some(created_at) = item.created_at.as_mut() {
        created_at.seconds = i64::try_from(now_ms / 1_000).unwrap_or(i64::MAX);
        created_at.nanos = i32::try_from((now_ms % 1_000) * 1_000_000).unwrap_or(0);
    }
    item
}

fn error_json(error: &CallError) -> Value {
    json!({"code": error.code, "message": error.message})
}

/// JSON text as JSON, anything else as a string.
fn embed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
