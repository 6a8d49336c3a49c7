//! The Response object of `response.created` / `response.done`, its usage
//! (billing), and `rate_limits.updated` entries.
//!
//! Modelled: `id`, `status`, `status_details`, `output`, `usage`. Every other
//! field (`object`, `conversation_id`, `output_modalities` / `modalities`,
//! `audio` / `voice` / `output_audio_format`, `max_output_tokens`,
//! `metadata`, beta `temperature`) is kept verbatim in [`Response::extra`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dialect::Dialect;
use crate::item::Item;
use crate::wire::string_enum;

string_enum! {
    /// `response.status`.
    pub enum ResponseStatus {
        /// Still generating (`response.created`).
        InProgress = "in_progress",
        /// Finished normally.
        Completed = "completed",
        /// Cancelled (barge-in with `interrupt_response`, or `response.cancel`).
        Cancelled = "cancelled",
        /// Failed; see `status_details.error`.
        Failed = "failed",
        /// Cut short (token limit, content filter).
        Incomplete = "incomplete",
    }
}

/// `response.status_details`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusDetails {
    /// `completed`, `cancelled`, `incomplete` or `failed`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `turn_detected`, `client_cancelled`, `max_output_tokens` or
    /// `content_filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why a response failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
}

/// `response.status_details.error`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusError {
    /// Error type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Token usage of one response (`response.done`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input plus output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Input tokens (the whole conversation so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Breakdown of the input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<InputTokenDetails>,
    /// Breakdown of the output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_token_details: Option<OutputTokenDetails>,
}

/// `usage.input_token_details`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputTokenDetails {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Image tokens (GA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
    /// Tokens served from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Breakdown of the cached tokens (GA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens_details: Option<CachedTokensDetails>,
}

/// `usage.input_token_details.cached_tokens_details`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CachedTokensDetails {
    /// Cached text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Cached audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Cached image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
}

/// `usage.output_token_details`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputTokenDetails {
    /// Text tokens (transcript or text output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
}

/// The Response resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Response {
    /// Response id (`resp_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Why it was cancelled, cut short or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Items produced (messages, function calls). Run tools from here when
    /// `status` is `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<Item>>,
    /// Token usage (`response.done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Fields this crate does not model, kept verbatim (not translated
    /// between dialects).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Response {
    /// The function calls among `output`.
    pub fn function_calls(&self) -> impl Iterator<Item = &Item> {
        self.output
            .iter()
            .flatten()
            .filter(|item| item.kind == crate::item::ItemType::FunctionCall)
    }

    pub(crate) fn normalize(&mut self) {
        for item in self.output.iter_mut().flatten() {
            item.normalize();
        }
    }

    pub(crate) fn for_dialect(&self, dialect: Dialect) -> std::borrow::Cow<'_, Self> {
        let Some(output) = &self.output else {
            return std::borrow::Cow::Borrowed(self);
        };
        if dialect == Dialect::Ga {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut response = self.clone();
        response.output = Some(
            output
                .iter()
                .map(|item| item.for_dialect(dialect).into_owned())
                .collect(),
        );
        std::borrow::Cow::Owned(response)
    }
}

/// One entry of `rate_limits.updated`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RateLimit {
    /// `requests` or `tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// What is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// Seconds until the limit resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_seconds: Option<f64>,
}
