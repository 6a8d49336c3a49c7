//! The sample agent: a small JSON file of `AgentSettings` fields, read into the proto
//! message the control plane's `CreateAgentSettings` takes.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use switchboard_proto::v1 as pb;

/// The agent the demo creates unless `--agent FILE` names another.
pub const SAMPLE_AGENT: &str = include_str!("../agents/sample.json");

/// The fields of an agent file (a subset of `AgentSettings`, in its JSON names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub name: String,
    pub phone_numbers: Vec<String>,
    #[serde(default)]
    pub voice: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub greeting: String,
    #[serde(default)]
    pub input_transcription: Option<Transcription>,
    #[serde(default)]
    pub fallback: Option<Fallback>,
    #[serde(default)]
    pub handoff_target: Option<HandoffTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcription {
    pub model: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub prompt: String,
}

/// What the caller hears when the AI is unavailable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    #[serde(default)]
    pub message: String,
    pub action: FallbackAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackAction {
    HangUp,
    Transfer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HandoffTarget {
    ConferenceName(String),
    PhoneNumber(String),
}

impl AgentFile {
    /// Parses the JSON of an agent file.
    pub fn parse(json: &str) -> anyhow::Result<AgentFile> {
        serde_json::from_str(json).context("agent file")
    }

    /// Reads and parses `path`.
    pub fn read(path: &Path) -> anyhow::Result<AgentFile> {
        let json = std::fs::read_to_string(path)
            .with_context(|| format!("read agent file {}", path.display()))?;
        Self::parse(&json).with_context(|| path.display().to_string())
    }

    /// The status a call ends in when the AI is unavailable.
    pub fn fallback_status(&self) -> pb::CallStatus {
        match self.fallback.as_ref().map(|f| f.action) {
            Some(FallbackAction::Transfer) => pb::CallStatus::HandedOff,
            _ => pb::CallStatus::Failed,
        }
    }

    /// The proto message for `CreateAgentSettings`.
    pub fn to_proto(&self) -> pb::AgentSettings {
        pb::AgentSettings {
            name: self.name.clone(),
            phone_numbers: self.phone_numbers.clone(),
            voice: self.voice.clone(),
            model: self.model.clone(),
            instructions: self.instructions.clone(),
            temperature: self.temperature,
            greeting: self.greeting.clone(),
            input_transcription: self.input_transcription.as_ref().map(|t| {
                pb::InputTranscription {
                    model: t.model.clone(),
                    language: t.language.clone(),
                    prompt: t.prompt.clone(),
                }
            }),
            fallback: self.fallback.as_ref().map(|f| pb::Fallback {
                message: f.message.clone(),
                action: match f.action {
                    FallbackAction::HangUp => pb::fallback::Action::HangUp,
                    FallbackAction::Transfer => pb::fallback::Action::Transfer,
                }
                .into(),
            }),
            handoff_target: self.handoff_target.as_ref().map(|t| pb::HandoffTarget {
                target: Some(match t {
                    HandoffTarget::ConferenceName(name) => {
                        pb::handoff_target::Target::ConferenceName(name.clone())
                    }
                    HandoffTarget::PhoneNumber(number) => {
                        pb::handoff_target::Target::PhoneNumber(number.clone())
                    }
                }),
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_agent_parses_and_transfers_on_fallback() {
        let agent = AgentFile::parse(SAMPLE_AGENT).unwrap();
        let proto = agent.to_proto();
        assert_eq!(proto.phone_numbers, ["+14155550100"]);
        assert_eq!(
            proto.fallback.unwrap().action,
            pb::fallback::Action::Transfer as i32
        );
        assert_eq!(agent.fallback_status(), pb::CallStatus::HandedOff);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(AgentFile::parse(r#"{"name": "x", "phone_numbers": [], "colour": 1}"#).is_err());
    }
}
