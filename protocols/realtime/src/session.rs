//! Session configuration: the agent settings a call needs, and the
//! `session` object of `session.update` in each dialect (docs/protocols.md
//! §3.2).
//!
//! GA nests audio settings (`audio.input.format {type: "audio/pcmu"}`,
//! `audio.output.voice`, `audio.input.turn_detection`, …), requires
//! `type: "realtime"` and has no `temperature`. Beta is flat
//! (`input_audio_format: "g711_ulaw"`, `voice`, `turn_detection`,
//! `temperature`, `modalities`). [`SessionConfig`] holds the settings once;
//! [`SessionConfig::to_json`] writes either shape and
//! [`SessionConfig::from_json`] reads either back (the simulator uses it).
//!
//! Not modelled, dropped when read: `include`, `prompt`, `reasoning`,
//! `tracing`, `parallel_tool_calls`, noise-reduction `strength`,
//! transcription `keywords` and `delay`. Not supported, an error when read:
//! MCP tools, tool-choice objects, custom voice ids (`{"id": …}`), a
//! truncation object, `session.type = "transcription"`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dialect::{Dialect, AUDIO_FORMATS, GA_ONLY_SESSION_FIELDS, SESSION_FIELD_RENAMES};
use crate::error::ParseError;
use crate::wire;

mod shapes;

pub(crate) use shapes::SessionWire;
use shapes::{
    BetaSession, GaAudio, GaAudioInput, GaAudioOutput, GaFormat, GaSession, NoiseWire, ToolWire,
    TurnDetectionWire,
};

/// An audio encoding of the session's input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// G.711 µ-law, 8 kHz: what Twilio carries. GA `{"type":"audio/pcmu"}`,
    /// beta `"g711_ulaw"`.
    Pcmu,
    /// G.711 A-law, 8 kHz. GA `{"type":"audio/pcma"}`, beta `"g711_alaw"`.
    Pcma,
    /// 16-bit PCM, 24 kHz, mono, little-endian. GA
    /// `{"type":"audio/pcm","rate":24000}`, beta `"pcm16"`.
    Pcm24k,
}

impl AudioFormat {
    const ALL: [Self; 3] = [Self::Pcmu, Self::Pcma, Self::Pcm24k];

    fn index(self) -> usize {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 1,
            Self::Pcm24k => 2,
        }
    }

    /// The beta name (`g711_ulaw`, `g711_alaw`, `pcm16`).
    pub fn beta_name(self) -> &'static str {
        AUDIO_FORMATS[self.index()].0
    }

    /// The GA `format.type` (`audio/pcmu`, `audio/pcma`, `audio/pcm`).
    pub fn ga_type(self) -> &'static str {
        AUDIO_FORMATS[self.index()].1
    }

    /// The GA `format.rate` (only PCM has one).
    pub fn ga_rate(self) -> Option<u32> {
        AUDIO_FORMATS[self.index()].2
    }

    /// Reads a beta name.
    pub fn from_beta_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.beta_name() == name)
    }

    /// Reads a GA `format.type`.
    pub fn from_ga_type(ga_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.ga_type() == ga_type)
    }
}

/// What the model answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputModality {
    /// Audio plus its transcript: GA `["audio"]`, beta `["text","audio"]`.
    Audio,
    /// Text only: `["text"]` in both dialects.
    Text,
}

impl OutputModality {
    pub(crate) fn to_wire(self, dialect: Dialect) -> Vec<String> {
        let names: &[&str] = match (self, dialect) {
            (Self::Audio, Dialect::Ga) => &["audio"],
            (Self::Audio, Dialect::Beta) => &["text", "audio"],
            (Self::Text, _) => &["text"],
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    pub(crate) fn from_wire(names: &[String]) -> Option<Self> {
        if names.iter().any(|n| n == "audio") {
            Some(Self::Audio)
        } else if names.iter().any(|n| n == "text") {
            Some(Self::Text)
        } else {
            None
        }
    }
}

/// Which turn detection the server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TurnDetectionMode {
    /// Voice activity detection on volume (`server_vad`).
    ServerVad,
    /// Detection on the meaning of what was said (`semantic_vad`).
    SemanticVad,
    /// No server turn detection (`null`): the client commits and asks for
    /// responses itself.
    Disabled,
}

/// A turn detection mode name that is not `server_vad`, `semantic_vad` or
/// `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown turn detection {0:?}, expected server_vad, semantic_vad or none")]
pub struct UnknownTurnDetection(pub String);

impl std::str::FromStr for TurnDetectionMode {
    type Err = UnknownTurnDetection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "server_vad" => Ok(Self::ServerVad),
            "semantic_vad" => Ok(Self::SemanticVad),
            "none" | "" => Ok(Self::Disabled),
            other => Err(UnknownTurnDetection(wire::truncate(other, 32).into_owned())),
        }
    }
}

/// Turn detection settings. Fields that do not apply to the mode are not
/// sent (`threshold`, padding and silence only for `server_vad`,
/// `eagerness` only for `semantic_vad`, nothing for `Disabled`).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnDetection {
    /// The mode.
    pub mode: TurnDetectionMode,
    /// `server_vad` activation threshold, 0–1 (server default 0.5).
    pub threshold: Option<f64>,
    /// `server_vad` audio kept before speech start, ms (default 300).
    pub prefix_padding_ms: Option<u32>,
    /// `server_vad` silence that ends a turn, ms (default 500).
    pub silence_duration_ms: Option<u32>,
    /// Start a response when a turn ends.
    pub create_response: Option<bool>,
    /// Cancel the running response when the caller starts speaking.
    pub interrupt_response: Option<bool>,
    /// GA `server_vad` only: respond after this much silence from the end of
    /// playback (emits `input_audio_buffer.timeout_triggered`).
    pub idle_timeout_ms: Option<u32>,
    /// `semantic_vad` eagerness: `low`, `medium`, `high` or `auto`.
    pub eagerness: Option<String>,
}

impl TurnDetection {
    /// `server_vad` with the server's defaults.
    pub fn server_vad() -> Self {
        Self::with_mode(TurnDetectionMode::ServerVad)
    }

    /// `semantic_vad` with the server's defaults.
    pub fn semantic_vad() -> Self {
        Self::with_mode(TurnDetectionMode::SemanticVad)
    }

    /// Turn detection off (`null`).
    pub fn disabled() -> Self {
        Self::with_mode(TurnDetectionMode::Disabled)
    }

    /// Empty settings for `mode`.
    pub fn with_mode(mode: TurnDetectionMode) -> Self {
        Self {
            mode,
            threshold: None,
            prefix_padding_ms: None,
            silence_duration_ms: None,
            create_response: None,
            interrupt_response: None,
            idle_timeout_ms: None,
            eagerness: None,
        }
    }

    fn to_wire(&self, dialect: Dialect) -> Option<TurnDetectionWire> {
        let server = self.mode == TurnDetectionMode::ServerVad;
        let kind = match self.mode {
            TurnDetectionMode::ServerVad => "server_vad",
            TurnDetectionMode::SemanticVad => "semantic_vad",
            TurnDetectionMode::Disabled => return None,
        };
        Some(TurnDetectionWire {
            kind: Some(kind.to_owned()),
            threshold: self.threshold.filter(|_| server),
            prefix_padding_ms: self.prefix_padding_ms.filter(|_| server),
            silence_duration_ms: self.silence_duration_ms.filter(|_| server),
            create_response: self.create_response,
            interrupt_response: self.interrupt_response,
            idle_timeout_ms: self
                .idle_timeout_ms
                .filter(|_| server && dialect == Dialect::Ga),
            eagerness: self.eagerness.clone().filter(|_| !server),
        })
    }

    fn from_wire(wire: Option<TurnDetectionWire>) -> Result<Self, String> {
        let Some(wire) = wire else {
            return Ok(Self::disabled());
        };
        let mode = match wire.kind.as_deref() {
            Some("server_vad") | None => TurnDetectionMode::ServerVad,
            Some("semantic_vad") => TurnDetectionMode::SemanticVad,
            Some(_) => return Err("unknown turn_detection type".into()),
        };
        Ok(Self {
            mode,
            threshold: wire.threshold,
            prefix_padding_ms: wire.prefix_padding_ms,
            silence_duration_ms: wire.silence_duration_ms,
            create_response: wire.create_response,
            interrupt_response: wire.interrupt_response,
            idle_timeout_ms: wire.idle_timeout_ms,
            eagerness: wire.eagerness,
        })
    }
}

/// Transcription of the caller's audio (asynchronous; an approximation of
/// what the model heard).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputTranscription {
    /// `whisper-1`, `gpt-4o-transcribe`, `gpt-4o-mini-transcribe`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// ISO-639-1 language of the caller, e.g. `ja`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Prompt guiding the transcription model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// Input noise reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoiseReduction {
    /// Close-talking microphones (handsets, headsets).
    NearField,
    /// Laptops and conference-room microphones.
    FarField,
    /// Explicitly off (`null`).
    Off,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Function name, e.g. `transfer_to_human`.
    pub name: String,
    /// When and how to call it (read by the model).
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// Cap on output tokens per response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxOutputTokens {
    /// `"inf"`: the model's maximum.
    Inf,
    /// 1–4096.
    Limit(u32),
}

impl Serialize for MaxOutputTokens {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Inf => serializer.serialize_str("inf"),
            Self::Limit(n) => serializer.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for MaxOutputTokens {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MaxOutputTokens;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"inf\" or a token count")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "inf" {
                    Ok(MaxOutputTokens::Inf)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(MaxOutputTokens::Limit)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u32::try_from(v)
                    .map(MaxOutputTokens::Limit)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The settings of one call's session, built from the agent's settings.
///
/// `None` / empty fields are left out of `session.update`, so the server
/// keeps its value. [`Default`] is the Twilio set-up: µ-law in and out, audio
/// output.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Model id (`gpt-realtime`, …). Usually also in the URL; `None` leaves
    /// the one the connection chose (Azure: the deployment).
    pub model: Option<String>,
    /// System prompt.
    pub instructions: Option<String>,
    /// Output voice (`marin`, `alloy`, …); cannot change after the first
    /// audio of the session.
    pub voice: Option<String>,
    /// Speaking speed (GA `audio.output.speed`, beta `speed`).
    pub speed: Option<f64>,
    /// Sampling temperature. Beta only: GA has no temperature anywhere, so
    /// it is not sent on a GA session.
    pub temperature: Option<f64>,
    /// Audio (with transcript) or text.
    pub output_modalities: Option<OutputModality>,
    /// Format of the audio we append.
    pub input_audio_format: Option<AudioFormat>,
    /// Format of the audio the model sends.
    pub output_audio_format: Option<AudioFormat>,
    /// Turn detection.
    pub turn_detection: Option<TurnDetection>,
    /// Caller transcription.
    pub transcription: Option<InputTranscription>,
    /// Input noise reduction.
    pub noise_reduction: Option<NoiseReduction>,
    /// Functions the model may call (sent only when non-empty).
    pub tools: Vec<Tool>,
    /// `auto`, `none`, `required`, or a function name.
    pub tool_choice: Option<String>,
    /// Cap per response (GA `max_output_tokens`, beta
    /// `max_response_output_tokens`).
    pub max_output_tokens: Option<MaxOutputTokens>,
    /// GA only: context truncation (`auto` or `disabled`).
    pub truncation: Option<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            model: None,
            instructions: None,
            voice: None,
            speed: None,
            temperature: None,
            output_modalities: Some(OutputModality::Audio),
            input_audio_format: Some(AudioFormat::Pcmu),
            output_audio_format: Some(AudioFormat::Pcmu),
            turn_detection: None,
            transcription: None,
            noise_reduction: None,
            tools: Vec::new(),
            tool_choice: None,
            max_output_tokens: None,
            truncation: None,
        }
    }
}

impl SessionConfig {
    /// The `session` object of `session.update` for `dialect`.
    pub fn to_json(&self, dialect: Dialect) -> Value {
        // Serializing plain data into a Value cannot fail.
        serde_json::to_value(self.to_wire(dialect)).unwrap_or(Value::Null)
    }

    /// Reads a `session` object of `dialect` (from `session.update`, or the
    /// effective config in `session.created` / `session.updated`).
    ///
    /// A field that belongs only to the other dialect is an error (the server
    /// rejects it); unmodelled fields are ignored.
    pub fn from_json(session: &Value, dialect: Dialect) -> Result<Self, ParseError> {
        Self::from_map(session_map(session)?, dialect, "session.update")
    }

    pub(crate) fn from_map(
        session: Map<String, Value>,
        dialect: Dialect,
        event_type: &str,
    ) -> Result<Self, ParseError> {
        check_dialect_fields(&session, dialect, event_type)?;
        let session = Value::Object(session);
        match dialect {
            Dialect::Ga => {
                let wire: GaSession = serde_json::from_value(session)
                    .map_err(|e| ParseError::invalid(event_type, &e))?;
                if wire.kind != "realtime" {
                    return Err(ParseError::invalid_reason(
                        event_type,
                        "session.type must be \"realtime\"",
                    ));
                }
                Self::from_ga(wire).map_err(|r| ParseError::invalid_reason(event_type, r))
            }
            Dialect::Beta => {
                let wire: BetaSession = serde_json::from_value(session)
                    .map_err(|e| ParseError::invalid(event_type, &e))?;
                Self::from_beta(wire).map_err(|r| ParseError::invalid_reason(event_type, r))
            }
        }
    }

    pub(crate) fn to_wire(&self, dialect: Dialect) -> SessionWire {
        let tools = (!self.tools.is_empty()).then(|| {
            self.tools
                .iter()
                .map(|tool| ToolWire {
                    kind: "function".to_owned(),
                    name: Some(tool.name.clone()),
                    description: Some(tool.description.clone()),
                    parameters: Some(tool.parameters.clone()),
                })
                .collect()
        });
        let turn_detection = self.turn_detection.as_ref().map(|t| t.to_wire(dialect));
        let noise_reduction = self.noise_reduction.map(NoiseWire::from_config);
        let modalities = self.output_modalities.map(|m| m.to_wire(dialect));
        match dialect {
            Dialect::Ga => {
                let input = GaAudioInput {
                    format: self.input_audio_format.map(GaFormat::from_config),
                    transcription: self.transcription.clone().map(Some),
                    noise_reduction,
                    turn_detection,
                };
                let output = GaAudioOutput {
                    format: self.output_audio_format.map(GaFormat::from_config),
                    voice: self.voice.clone(),
                    speed: self.speed,
                };
                let audio = GaAudio {
                    input: (!input.is_empty()).then_some(input),
                    output: (!output.is_empty()).then_some(output),
                };
                SessionWire::Ga(GaSession {
                    kind: "realtime".to_owned(),
                    model: self.model.clone(),
                    instructions: self.instructions.clone(),
                    output_modalities: modalities,
                    audio: (audio.input.is_some() || audio.output.is_some()).then_some(audio),
                    tools,
                    tool_choice: self.tool_choice.clone(),
                    max_output_tokens: self.max_output_tokens,
                    truncation: self.truncation.clone(),
                })
            }
            Dialect::Beta => SessionWire::Beta(BetaSession {
                model: self.model.clone(),
                instructions: self.instructions.clone(),
                modalities,
                voice: self.voice.clone(),
                speed: self.speed,
                input_audio_format: self.input_audio_format.map(|f| f.beta_name().to_owned()),
                output_audio_format: self.output_audio_format.map(|f| f.beta_name().to_owned()),
                input_audio_transcription: self.transcription.clone().map(Some),
                input_audio_noise_reduction: noise_reduction,
                turn_detection,
                temperature: self.temperature,
                tools,
                tool_choice: self.tool_choice.clone(),
                max_response_output_tokens: self.max_output_tokens,
            }),
        }
    }

    fn from_ga(wire: GaSession) -> Result<Self, String> {
        let audio = wire.audio.unwrap_or_default();
        let input = audio.input.unwrap_or_default();
        let output = audio.output.unwrap_or_default();
        Ok(Self {
            model: wire.model,
            instructions: wire.instructions,
            voice: output.voice,
            speed: output.speed,
            temperature: None,
            output_modalities: wire
                .output_modalities
                .as_deref()
                .and_then(OutputModality::from_wire),
            input_audio_format: input.format.map(GaFormat::into_config).transpose()?,
            output_audio_format: output.format.map(GaFormat::into_config).transpose()?,
            turn_detection: input
                .turn_detection
                .map(TurnDetection::from_wire)
                .transpose()?,
            transcription: input.transcription.flatten(),
            noise_reduction: input.noise_reduction.map(NoiseWire::to_config),
            tools: tools_from_wire(wire.tools)?,
            tool_choice: wire.tool_choice,
            max_output_tokens: wire.max_output_tokens,
            truncation: wire.truncation,
        })
    }

    fn from_beta(wire: BetaSession) -> Result<Self, String> {
        let format = |name: Option<String>| {
            name.map(|n| AudioFormat::from_beta_name(&n).ok_or("unknown audio format"))
                .transpose()
        };
        Ok(Self {
            model: wire.model,
            instructions: wire.instructions,
            voice: wire.voice,
            speed: wire.speed,
            temperature: wire.temperature,
            output_modalities: wire
                .modalities
                .as_deref()
                .and_then(OutputModality::from_wire),
            input_audio_format: format(wire.input_audio_format)?,
            output_audio_format: format(wire.output_audio_format)?,
            turn_detection: wire
                .turn_detection
                .map(TurnDetection::from_wire)
                .transpose()?,
            transcription: wire.input_audio_transcription.flatten(),
            noise_reduction: wire.input_audio_noise_reduction.map(NoiseWire::to_config),
            tools: tools_from_wire(wire.tools)?,
            tool_choice: wire.tool_choice,
            max_output_tokens: wire.max_response_output_tokens,
            truncation: None,
        })
    }
}

pub(crate) fn session_map(session: &Value) -> Result<Map<String, Value>, ParseError> {
    match session {
        Value::Object(map) => Ok(map.clone()),
        _ => Err(ParseError::invalid_reason(
            "session.update",
            "session is not an object",
        )),
    }
}

/// Rejects fields that exist only in the other dialect.
fn check_dialect_fields(
    session: &Map<String, Value>,
    dialect: Dialect,
    event_type: &str,
) -> Result<(), ParseError> {
    let foreign = match dialect {
        // Beta field names whose GA place differs (or that GA removed).
        Dialect::Ga => SESSION_FIELD_RENAMES
            .iter()
            .filter(|(beta, ga)| *ga != Some(*beta))
            .map(|(beta, _)| *beta)
            .find(|field| session.contains_key(*field)),
        Dialect::Beta => GA_ONLY_SESSION_FIELDS
            .iter()
            .copied()
            .chain(["audio", "output_modalities", "max_output_tokens"])
            .find(|field| session.contains_key(*field)),
    };
    match foreign {
        None => Ok(()),
        Some(field) => Err(ParseError::DialectMismatch {
            event_type: event_type.to_owned(),
            field: format!("session.{field}"),
            dialect: match dialect {
                Dialect::Ga => "beta",
                Dialect::Beta => "ga",
            },
        }),
    }
}

fn tools_from_wire(tools: Option<Vec<ToolWire>>) -> Result<Vec<Tool>, String> {
    tools
        .unwrap_or_default()
        .into_iter()
        .map(|tool| {
            if tool.kind != "function" {
                return Err("only function tools are supported".to_owned());
            }
            Ok(Tool {
                name: tool.name.unwrap_or_default(),
                description: tool.description.unwrap_or_default(),
                parameters: tool.parameters.unwrap_or(Value::Null),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
