//! The two wire dialects of the Realtime API and the beta ⇄ GA name maps.
//!
//! GA is the protocol OpenAI serves today (`wss://api.openai.com/v1/realtime`
//! without the `OpenAI-Beta` header, and Azure's `/openai/v1/realtime`). Beta
//! is the retired `OpenAI-Beta: realtime=v1` protocol that Azure "preview"
//! api-versions still speak. The tables below are the whole of
//! `tests/fixtures/openai-realtime-beta-to-ga.json` (summarised in
//! docs/protocols.md §3.4); a test checks them against that file. Names not listed are identical in both dialects.

use std::fmt;
use std::str::FromStr;

/// Which shape of the protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// The GA protocol (event names `response.output_audio.delta`, nested
    /// `session.audio`, `session.type`). The default.
    #[default]
    Ga,
    /// The beta protocol (`OpenAI-Beta: realtime=v1`; Azure preview
    /// api-versions): `response.audio.delta`, flat session fields.
    Beta,
}

impl Dialect {
    /// `"ga"` or `"beta"`, as used in configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ga => "ga",
            Self::Beta => "beta",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dialect name that is neither `ga` nor `beta`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown realtime dialect {0:?}, expected \"ga\" or \"beta\"")]
pub struct UnknownDialect(pub String);

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ga" => Ok(Self::Ga),
            "beta" => Ok(Self::Beta),
            _ => Err(UnknownDialect(crate::wire::truncate(s, 32).into_owned())),
        }
    }
}

/// Server event types renamed in GA: `(beta, GA)`.
pub const SERVER_EVENT_RENAMES: [(&str, &str); 6] = [
    ("response.audio.delta", "response.output_audio.delta"),
    ("response.audio.done", "response.output_audio.done"),
    (
        "response.audio_transcript.delta",
        "response.output_audio_transcript.delta",
    ),
    (
        "response.audio_transcript.done",
        "response.output_audio_transcript.done",
    ),
    ("response.text.delta", "response.output_text.delta"),
    ("response.text.done", "response.output_text.done"),
];

/// Beta server events replaced by a different GA shape: `(beta, GA)`.
///
/// `conversation.item.created` became `conversation.item.added` (item appears)
/// plus `conversation.item.done` (item final); GA still models `created`, so
/// decoders accept all three. `transcription_session.updated` became
/// `session.updated` with `session.type = "transcription"`.
pub const SERVER_EVENT_REPLACEMENTS: [(&str, &str); 2] = [
    ("conversation.item.created", "conversation.item.added"),
    ("transcription_session.updated", "session.updated"),
];

/// Server events that exist only in GA.
pub const GA_ONLY_SERVER_EVENTS: [&str; 13] = [
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.input_audio_transcription.segment",
    "input_audio_buffer.timeout_triggered",
    "input_audio_buffer.dtmf_event_received",
    "mcp_list_tools.in_progress",
    "mcp_list_tools.completed",
    "mcp_list_tools.failed",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
];

/// Client event types renamed in GA: `(beta, GA)`. The GA event carries
/// `session.type = "transcription"`.
pub const CLIENT_EVENT_RENAMES: [(&str, &str); 1] =
    [("transcription_session.update", "session.update")];

/// `session` fields: `(beta field, GA path)`; `None` means removed in GA.
pub const SESSION_FIELD_RENAMES: [(&str, Option<&str>); 15] = [
    ("modalities", Some("output_modalities")),
    ("voice", Some("audio.output.voice")),
    ("speed", Some("audio.output.speed")),
    ("input_audio_format", Some("audio.input.format")),
    ("output_audio_format", Some("audio.output.format")),
    (
        "input_audio_transcription",
        Some("audio.input.transcription"),
    ),
    (
        "input_audio_noise_reduction",
        Some("audio.input.noise_reduction"),
    ),
    ("turn_detection", Some("audio.input.turn_detection")),
    ("max_response_output_tokens", Some("max_output_tokens")),
    ("temperature", None),
    ("instructions", Some("instructions")),
    ("tools", Some("tools")),
    ("tool_choice", Some("tool_choice")),
    ("tracing", Some("tracing")),
    ("model", Some("model")),
];

/// `session` fields new in GA; `type` (`"realtime"`) is required.
pub const GA_ONLY_SESSION_FIELDS: [&str; 6] = [
    "type",
    "truncation",
    "prompt",
    "include",
    "reasoning",
    "parallel_tool_calls",
];

/// Response fields (`response.create.response` and the Response object):
/// `(beta field, GA path)`; `None` means removed in GA.
pub const RESPONSE_FIELD_RENAMES: [(&str, Option<&str>); 5] = [
    ("modalities", Some("output_modalities")),
    ("voice", Some("audio.output.voice")),
    ("output_audio_format", Some("audio.output.format")),
    ("max_response_output_tokens", Some("max_output_tokens")),
    ("temperature", None),
];

/// Audio formats: `(beta name, GA format type, GA rate)`.
pub const AUDIO_FORMATS: [(&str, &str, Option<u32>); 3] = [
    ("g711_ulaw", "audio/pcmu", None),
    ("g711_alaw", "audio/pcma", None),
    ("pcm16", "audio/pcm", Some(24_000)),
];

/// Assistant content part types: `(beta, GA)`. User `input_text` /
/// `input_audio` are unchanged.
pub const CONTENT_TYPE_RENAMES: [(&str, &str); 2] =
    [("text", "output_text"), ("audio", "output_audio")];

/// The GA name of a server event type: beta renames map to GA, everything
/// else (including `conversation.item.created`) is returned unchanged.
pub fn ga_server_event_type(event_type: &str) -> &str {
    SERVER_EVENT_RENAMES
        .iter()
        .find(|(beta, _)| *beta == event_type)
        .map_or(event_type, |(_, ga)| ga)
}

/// The beta name of a GA server event type (`None` for GA-only events).
pub fn beta_server_event_type(ga_event_type: &str) -> Option<&str> {
    if let Some((beta, _)) = SERVER_EVENT_RENAMES
        .iter()
        .find(|(_, ga)| *ga == ga_event_type)
    {
        return Some(beta);
    }
    if GA_ONLY_SERVER_EVENTS.contains(&ga_event_type) {
        return None;
    }
    Some(ga_event_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_round_trip() {
        for (beta, ga) in SERVER_EVENT_RENAMES {
            assert_eq!(ga_server_event_type(beta), ga);
            assert_eq!(beta_server_event_type(ga), Some(beta));
        }
        assert_eq!(ga_server_event_type("error"), "error");
        assert_eq!(beta_server_event_type("conversation.item.done"), None);
        assert_eq!(
            beta_server_event_type("response.done"),
            Some("response.done")
        );
    }

    #[test]
    fn parses_config_names() {
        assert_eq!("GA".parse::<Dialect>(), Ok(Dialect::Ga));
        assert_eq!(" beta ".parse::<Dialect>(), Ok(Dialect::Beta));
        assert!("v2".parse::<Dialect>().is_err());
    }
}
