//! AgentSettings: how an agent answers the phone, and the rules a valid agent obeys.

use serde::{Deserialize, Serialize};

use super::{validate_e164, InvalidField, Timestamp};

/// How calls to an agent are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// The AI answers through the Realtime API.
    Realtime,
    /// Legacy mode: the call joins a conference of human agents.
    Conference,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RealtimeProvider {
    OpenAi,
    OpenAiBeta,
    AzureOpenAi,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// JSON Schema of the parameters, as JSON text.
    pub parameters_json_schema: String,
    pub webhook_url: String,
    /// 0 means the default (10 s).
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnDetectionType {
    ServerVad,
    SemanticVad,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnDetection {
    pub kind: TurnDetectionType,
    pub threshold: Option<f64>,
    pub prefix_padding_ms: Option<u32>,
    pub silence_duration_ms: Option<u32>,
}

impl Default for TurnDetection {
    fn default() -> Self {
        Self {
            kind: TurnDetectionType::ServerVad,
            threshold: None,
            prefix_padding_ms: None,
            silence_duration_ms: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTranscription {
    pub model: String,
    pub language: String,
    pub prompt: String,
}

/// Where a call goes when it is handed to humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffTarget {
    Conference(String),
    PhoneNumber(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackAction {
    HangUp,
    Transfer,
}

/// What the caller hears when the AI is unavailable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// Empty means a short built-in apology.
    pub message: String,
    pub action: FallbackAction,
}

impl Default for Fallback {
    fn default() -> Self {
        Self {
            message: String::new(),
            action: FallbackAction::HangUp,
        }
    }
}

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSettings {
    pub id: String,
    pub name: String,
    pub phone_numbers: Vec<String>,
    pub mode: AgentMode,
    pub provider: RealtimeProvider,
    pub model: String,
    pub voice: String,
    pub instructions: String,
    pub temperature: Option<f64>,
    pub tools: Vec<Tool>,
    pub turn_detection: TurnDetection,
    pub input_transcription: InputTranscription,
    pub greeting: String,
    /// 0 means the media sidecar's default limit.
    pub max_call_duration_ms: u64,
    pub handoff_target: Option<HandoffTarget>,
    pub fallback: Fallback,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Said when the call reaches its maximum length; empty means the sidecar's built-in
    /// goodbye. Absent from records written before it existed.
    #[serde(default)]
    pub goodbye: String,
}

/// The name of the built-in tool that hands a call to humans.
pub const TRANSFER_TO_HUMAN: &str = "transfer_to_human";
/// Longest accepted call limit: four hours.
pub const MAX_CALL_DURATION_MS: u64 = 4 * 60 * 60 * 1000;
/// Longest accepted tool webhook deadline.
pub const MAX_TOOL_TIMEOUT_MS: u64 = 60_000;
const MAX_NAME_CHARS: usize = 200;
/// Longest accepted goodbye line.
pub const MAX_GOODBYE_CHARS: usize = 1_000;
const MAX_INSTRUCTIONS_BYTES: usize = 64 * 1024;
const MAX_TOOLS: usize = 128;

impl AgentSettings {
    /// Checks every rule a stored agent obeys; the error names the offending field
    /// relative to the agent (`phone_numbers[1]`, `tools[0].name`, …).
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(InvalidField::new("name", "must not be empty"));
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidField::new(
                "name",
                format!("longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        for (i, number) in self.phone_numbers.iter().enumerate() {
            let field = format!("phone_numbers[{i}]");
            validate_e164(&field, number)?;
            if self.phone_numbers[..i].contains(number) {
                return Err(InvalidField::new(
                    field,
                    format!("{number} is listed twice"),
                ));
            }
        }
        if self.instructions.len() > MAX_INSTRUCTIONS_BYTES {
            return Err(InvalidField::new("instructions", "longer than 64 KiB"));
        }
        if let Some(t) = self.temperature {
            if !(0.6..=1.2).contains(&t) {
                return Err(InvalidField::new(
                    "temperature",
                    format!("{t} is outside [0.6, 1.2]"),
                ));
            }
        }
        self.validate_tools()?;
        self.validate_turn_detection()?;
        if self.max_call_duration_ms > MAX_CALL_DURATION_MS {
            return Err(InvalidField::new(
                "max_call_duration",
                "longer than 4 hours",
            ));
        }
        if self.goodbye.chars().count() > MAX_GOODBYE_CHARS {
            return Err(InvalidField::new(
                "goodbye",
                format!("longer than {MAX_GOODBYE_CHARS} characters"),
            ));
        }
        match &self.handoff_target {
            Some(HandoffTarget::Conference(name)) if name.trim().is_empty() => {
                return Err(InvalidField::new(
                    "handoff_target.conference_name",
                    "must not be empty",
                ));
            }
            Some(HandoffTarget::PhoneNumber(number)) => {
                validate_e164("handoff_target.phone_number", number)?;
            }
            _ => {}
        }
        if self.fallback.action == FallbackAction::Transfer && self.handoff_target.is_none() {
            return Err(InvalidField::new(
                "fallback.action",
                "TRANSFER needs a handoff_target to transfer to",
            ));
        }
        Ok(())
    }

    fn validate_tools(&self) -> Result<(), InvalidField> {
        if self.tools.len() > MAX_TOOLS {
            return Err(InvalidField::new(
                "tools",
                format!("more than {MAX_TOOLS} tools"),
            ));
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let field = |name: &str| format!("tools[{i}].{name}");
            let name_ok = !tool.name.is_empty()
                && tool.name.len() <= 64
                && tool
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(InvalidField::new(
                    field("name"),
                    "must match [A-Za-z0-9_-]{1,64}",
                ));
            }
            if tool.name == TRANSFER_TO_HUMAN {
                return Err(InvalidField::new(
                    field("name"),
                    "transfer_to_human is built in",
                ));
            }
            if self.tools[..i].iter().any(|t| t.name == tool.name) {
                return Err(InvalidField::new(
                    field("name"),
                    format!("{} is declared twice", tool.name),
                ));
            }
            validate_parameters_schema(&tool.parameters_json_schema)
                .map_err(|reason| InvalidField::new(field("parameters_json_schema"), reason))?;
            let url_ok =
                tool.webhook_url.starts_with("https://") || tool.webhook_url.starts_with("http://");
            if !url_ok || reqwest::Url::parse(&tool.webhook_url).is_err() {
                return Err(InvalidField::new(
                    field("webhook_url"),
                    "must be an http(s) URL",
                ));
            }
            if tool.timeout_ms > MAX_TOOL_TIMEOUT_MS {
                return Err(InvalidField::new(field("timeout"), "longer than 60 s"));
            }
        }
        Ok(())
    }

    fn validate_turn_detection(&self) -> Result<(), InvalidField> {
        let td = &self.turn_detection;
        if let Some(threshold) = td.threshold {
            if !(0.0..=1.0).contains(&threshold) {
                return Err(InvalidField::new(
                    "turn_detection.threshold",
                    format!("{threshold} is outside [0.0, 1.0]"),
                ));
            }
        }
        if td.prefix_padding_ms.is_some_and(|ms| ms > 5_000) {
            return Err(InvalidField::new(
                "turn_detection.prefix_padding_ms",
                "longer than 5000 ms",
            ));
        }
        if td.silence_duration_ms.is_some_and(|ms| ms > 10_000) {
            return Err(InvalidField::new(
                "turn_detection.silence_duration_ms",
                "longer than 10000 ms",
            ));
        }
        Ok(())
    }
}

/// A tool's parameters must be a valid JSON Schema describing an object.
fn validate_parameters_schema(text: &str) -> Result<(), String> {
    let schema: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(object) = schema.as_object() else {
        return Err("must be a JSON object".to_owned());
    };
    if let Some(kind) = object.get("type") {
        if kind != "object" {
            return Err(format!("\"type\" must be \"object\", not {kind}"));
        }
    }
    jsonschema::meta::validate(&schema).map_err(|e| format!("not a valid JSON Schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn agent() -> AgentSettings {
        let now = crate::domain::now();
        AgentSettings {
            id: String::new(),
            name: "Reception".into(),
            phone_numbers: vec!["+81312345678".into()],
            mode: AgentMode::Realtime,
            provider: RealtimeProvider::OpenAi,
            model: String::new(),
            voice: "alloy".into(),
            instructions: "You are a receptionist.".into(),
            temperature: Some(0.8),
            tools: vec![Tool {
                name: "lookup_order".into(),
                description: "Looks up an order".into(),
                parameters_json_schema:
                    r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#
                        .into(),
                webhook_url: "https://example.invalid/tools/order".into(),
                timeout_ms: 5_000,
            }],
            turn_detection: TurnDetection::default(),
            input_transcription: InputTranscription::default(),
            greeting: String::new(),
            goodbye: String::new(),
            max_call_duration_ms: 0,
            handoff_target: None,
            fallback: Fallback::default(),
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    fn field_of(a: &AgentSettings) -> String {
        a.validate().unwrap_err().field
    }

    #[test]
    fn a_complete_agent_is_valid() {
        assert_eq!(agent().validate(), Ok(()));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let mut a = agent();
        a.name = "  ".into();
        assert_eq!(field_of(&a), "name");

        let mut a = agent();
        a.phone_numbers.push("03-1234-5678".into());
        assert_eq!(field_of(&a), "phone_numbers[1]");

        let mut a = agent();
        a.temperature = Some(2.0);
        assert_eq!(field_of(&a), "temperature");

        let mut a = agent();
        a.turn_detection.threshold = Some(1.5);
        assert_eq!(field_of(&a), "turn_detection.threshold");

        let mut a = agent();
        a.turn_detection.silence_duration_ms = Some(60_000);
        assert_eq!(field_of(&a), "turn_detection.silence_duration_ms");

        let mut a = agent();
        a.tools[0].parameters_json_schema =
            r#"{"type":"object","properties":{"id":{"type":12}}}"#.into();
        assert_eq!(field_of(&a), "tools[0].parameters_json_schema");

        let mut a = agent();
        a.tools[0].parameters_json_schema = "{not json".into();
        assert_eq!(field_of(&a), "tools[0].parameters_json_schema");

        let mut a = agent();
        a.tools[0].name = TRANSFER_TO_HUMAN.into();
        assert_eq!(field_of(&a), "tools[0].name");

        let mut a = agent();
        a.tools[0].webhook_url = "ftp://x".into();
        assert_eq!(field_of(&a), "tools[0].webhook_url");

        let mut a = agent();
        a.fallback.action = FallbackAction::Transfer;
        assert_eq!(field_of(&a), "fallback.action");

        let mut a = agent();
        a.goodbye = "さようなら".repeat(201);
        assert_eq!(field_of(&a), "goodbye");
        a.goodbye = "さようなら".repeat(200);
        assert!(a.validate().is_ok(), "1,000 characters, not bytes");
    }
}
