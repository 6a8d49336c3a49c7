//! Scripts: what the caller "says" on each turn (the transcript the
//! simulator reports) and what the assistant answers (a spoken reply, a
//! function call, and the reply after the call's result).
//!
//! The simulator does not listen to the words: the n-th caller turn the VAD
//! (or a manual commit) closes is the script's n-th turn, and the
//! `fallback` turn once the script has run out. A `response.create` with no
//! caller turn pending (the agent speaks first) speaks the `greeting`.
//!
//! ```json
//! {"greeting": {"text": "Hello, Acme here."},
//!  "turns": [
//!    {"caller": "Where is my order 4471?",
//!     "reply": {"text": "Let me check that for you."},
//!     "function_call": {"name": "lookup_order", "arguments": {"order_number": "4471"}},
//!     "after_call": {"text": "It ships tomorrow.", "audio_ms": 1500}}],
//!  "fallback": {"caller": "…", "reply": {"text": "Could you say that again?"}}}
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Audio per character of reply text when `audio_ms` is not given.
const MS_PER_CHAR: u64 = 60;
/// Shortest reply audio when `audio_ms` is not given.
const MIN_REPLY_MS: u64 = 400;

/// A scenario for one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Spoken when a response is asked for before any caller turn.
    pub greeting: Reply,
    /// The caller's turns, in order.
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// Used for every caller turn past the end of `turns`, and for a
    /// response asked for with nothing to answer.
    pub fallback: Turn,
}

/// One caller turn and the assistant's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// What the caller says: the transcript the simulator reports.
    pub caller: String,
    /// Spoken first (before the function call, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// A tool the model calls in the same response, after `reply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// Spoken in the response the client asks for after sending the
    /// call's `function_call_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_call: Option<Reply>,
}

/// Something the assistant says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The transcript of the reply.
    pub text: String,
    /// Length of its audio, ms (default: 60 ms per character, at least
    /// 400 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_ms: Option<u64>,
}

/// A function call the model makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments (sent as a JSON string).
    #[serde(default)]
    pub arguments: Value,
}

/// A script file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The file could not be read.
    #[error("cannot read script {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a script.
    #[error("invalid script {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl Reply {
    /// A reply with the default audio length.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            audio_ms: None,
        }
    }

    /// Length of the reply's audio, ms.
    pub fn duration_ms(&self) -> u64 {
        self.audio_ms.unwrap_or_else(|| {
            let chars = self.text.chars().count() as u64;
            (chars * MS_PER_CHAR).max(MIN_REPLY_MS)
        })
    }
}

impl FunctionCall {
    /// The arguments as the JSON string the wire carries.
    pub fn arguments_json(&self) -> String {
        match &self.arguments {
            Value::Null => "{}".to_owned(),
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        }
    }
}

impl Script {
    /// Reads a JSON script.
    pub fn from_file(path: &Path) -> Result<Self, ScriptError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ScriptError::Parse {
            path: shown,
            source,
        })
    }

    /// The caller turn with index `index` (the fallback past the end).
    pub fn turn(&self, index: usize) -> &Turn {
        self.turns.get(index).unwrap_or(&self.fallback)
    }
}

impl Default for Script {
    /// A short bilingual call: a Japanese greeting, an order question that
    /// calls `lookup_order`, and a thank-you.
    fn default() -> Self {
        Self {
            greeting: Reply::new("お電話ありがとうございます。Acme の Ava です。ご用件をどうぞ。"),
            turns: vec![
                Turn {
                    caller: "Hi, where is my order 4471?".to_owned(),
                    reply: Some(Reply::new("Let me check that for you.")),
                    function_call: Some(FunctionCall {
                        name: "lookup_order".to_owned(),
                        arguments: serde_json::json!({"order_number": "4471"}),
                    }),
                    after_call: Some(Reply::new(
                        "Your order 4471 has shipped and arrives tomorrow.",
                    )),
                },
                Turn {
                    caller: "ありがとうございます。".to_owned(),
                    reply: Some(Reply::new("どういたしまして。ほかにご用件はございますか？")),
                    function_call: None,
                    after_call: None,
                },
            ],
            fallback: Turn {
                caller: "Hmm.".to_owned(),
                reply: Some(Reply::new("Sorry, could you say that again?")),
                function_call: None,
                after_call: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_script_round_trips_through_json() {
        let script = Script::default();
        let json = serde_json::to_string(&script).expect("serializes");
        let back: Script = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, script);
        assert_eq!(script.turn(0).caller, "Hi, where is my order 4471?");
        assert_eq!(script.turn(99).caller, "Hmm.");
    }

    #[test]
    fn loads_a_minimal_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("script.json");
        let text = r#"{"greeting":{"text":"Hi","audio_ms":250},
            "turns":[{"caller":"one","reply":{"text":"two"},
                      "function_call":{"name":"f","arguments":"{\"a\":1}"}}],
            "fallback":{"caller":"?"}}"#;
        std::fs::write(&path, text).expect("write");
        let script = Script::from_file(&path).expect("loads");
        assert_eq!(script.greeting.duration_ms(), 250);
        let call = script.turns[0].function_call.as_ref().expect("call");
        assert_eq!(call.arguments_json(), "{\"a\":1}");
        assert_eq!(Reply::new("abc").duration_ms(), 400);
        assert_eq!(Reply::new("x".repeat(20)).duration_ms(), 1_200);
        assert!(Script::from_file(&dir.path().join("missing.json")).is_err());
    }
}
