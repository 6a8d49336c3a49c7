//! From the agent's settings to the Realtime session of a call.
//!
//! [`session_config`] maps the `AgentSettings` of a `CallConfig` (instructions already
//! templated by the control plane) to a [`SessionConfig`]: voice, instructions,
//! temperature (beta only — GA has none), the agent's tools plus the built-in
//! [`TRANSFER_TO_HUMAN`], turn detection, caller transcription, and G.711 µ-law both ways
//! so Twilio's audio is relayed untouched. The realtime crate writes it in the shape of
//! either dialect (`SessionConfig::to_json`, `ClientEvent::session_update`).
//!
//! The model is not part of it: it is chosen in the connection URL
//! (`realtime_client.rs`), and `session.update` cannot change a session's model — the
//! server rejects such an update, which would end the call.
//!
//! What it is not: it sends nothing and reads no environment. Empty proto fields mean
//! "the provider's default", so they are left out of `session.update`. A tool whose
//! parameter schema is not a JSON object is skipped and reported, not fatal: a call should
//! not fail because of one bad tool (the control plane validates tools when they are
//! saved, so this is a safety net).
//!
//! Read next: `core.rs`, which sends this as the first client event of the session.

use serde_json::{json, Value};
use switchboard_proto::v1::{turn_detection, AgentSettings, TurnDetection as PbTurnDetection};
use switchboard_realtime::{
    AudioFormat, Dialect, InputTranscription, OutputModality, SessionConfig, Tool, TurnDetection,
};

/// Name of the built-in tool the model calls to hand the caller to a human. Reserved: an
/// agent tool of that name is skipped.
pub const TRANSFER_TO_HUMAN: &str = "transfer_to_human";

const TRANSFER_TO_HUMAN_DESCRIPTION: &str = "Transfer the caller to a human agent. Use it when \
     the caller asks for a person, or when you cannot help them.";

/// The session settings of one call, and the agent tools that could not be offered.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPlan {
    /// What `session.update` sends.
    pub config: SessionConfig,
    /// Agent tools left out of the session, with the reason; log them once.
    pub skipped_tools: Vec<SkippedTool>,
}

/// An agent tool left out of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedTool {
    /// The tool's name.
    pub name: String,
    /// Why it was skipped.
    pub reason: &'static str,
}

/// Builds the session settings of a call to `agent` on a `dialect` connection.
///
/// Always µ-law in and out, audio output, `tool_choice: auto` when there are tools (there
/// always are: [`TRANSFER_TO_HUMAN`] is built in). Turn detection defaults to server VAD;
/// both VAD modes get `create_response` and `interrupt_response`, so the server answers
/// at the end of a turn and cancels its answer when the caller barges in. Temperature is
/// set only for [`Dialect::Beta`].
pub fn session_config(agent: &AgentSettings, dialect: Dialect) -> SessionPlan {
    let (tools, skipped_tools) = tools(agent);
    let config = SessionConfig {
        model: None,
        instructions: non_empty(&agent.instructions),
        voice: non_empty(&agent.voice),
        temperature: agent.temperature.filter(|_| dialect == Dialect::Beta),
        output_modalities: Some(OutputModality::Audio),
        input_audio_format: Some(AudioFormat::Pcmu),
        output_audio_format: Some(AudioFormat::Pcmu),
        turn_detection: Some(turn_detection(agent.turn_detection.as_ref())),
        transcription: transcription(agent),
        tool_choice: (!tools.is_empty()).then(|| "auto".to_owned()),
        tools,
        ..SessionConfig::default()
    };
    SessionPlan {
        config,
        skipped_tools,
    }
}

/// The built-in [`TRANSFER_TO_HUMAN`] function: one required string argument, `reason`.
pub fn transfer_to_human_tool() -> Tool {
    Tool {
        name: TRANSFER_TO_HUMAN.to_owned(),
        description: TRANSFER_TO_HUMAN_DESCRIPTION.to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "Why the caller needs a human, in a few words.",
                }
            },
            "required": ["reason"],
        }),
    }
}

fn tools(agent: &AgentSettings) -> (Vec<Tool>, Vec<SkippedTool>) {
    let mut tools = Vec::with_capacity(agent.tools.len() + 1);
    let mut skipped = Vec::new();
    for tool in &agent.tools {
        let parameters = if tool.name == TRANSFER_TO_HUMAN {
            Err("the name is reserved for the built-in tool")
        } else if tool.parameters_json_schema.trim().is_empty() {
            Ok(json!({"type": "object", "properties": {}}))
        } else {
            match serde_json::from_str::<Value>(&tool.parameters_json_schema) {
                Ok(schema @ Value::Object(_)) => Ok(schema),
                Ok(_) => Err("parameters_json_schema is not a json object"),
                Err(_) => Err("parameters_json_schema is not valid json"),
            }
        };
        match parameters {
            Ok(parameters) => tools.push(Tool {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters,
            }),
            Err(reason) => skipped.push(SkippedTool {
                name: tool.name.clone(),
                reason,
            }),
        }
    }
    tools.push(transfer_to_human_tool());
    (tools, skipped)
}

fn turn_detection(settings: Option<&PbTurnDetection>) -> TurnDetection {
    let kind = settings.map_or(turn_detection::Type::Unspecified, |t| t.r#type());
    let mut detection = match kind {
        turn_detection::Type::None => return TurnDetection::disabled(),
        turn_detection::Type::SemanticVad => TurnDetection::semantic_vad(),
        turn_detection::Type::ServerVad | turn_detection::Type::Unspecified => {
            TurnDetection::server_vad()
        }
    };
    if let Some(settings) = settings {
        // The realtime crate sends these for server VAD only.
        detection.threshold = settings.threshold;
        detection.prefix_padding_ms = settings.prefix_padding_ms;
        detection.silence_duration_ms = settings.silence_duration_ms;
    }
    detection.create_response = Some(true);
    detection.interrupt_response = Some(true);
    detection
}

fn transcription(agent: &AgentSettings) -> Option<InputTranscription> {
    let settings = agent.input_transcription.as_ref()?;
    let model = non_empty(&settings.model)?;
    Some(InputTranscription {
        model: Some(model),
        language: non_empty(&settings.language),
        prompt: non_empty(&settings.prompt),
    })
}

fn non_empty(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests;
