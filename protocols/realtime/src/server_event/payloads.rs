//! Payload structs of the server events, one per event shape. Owned
//! strings, except the deltas, which borrow from the frame.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::item::{ContentPart, Item};
use crate::response::{RateLimit, Response};

/// `error`: most errors leave the session open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The error.
    pub error: ErrorDetails,
}

/// `error.error`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// e.g. `invalid_request_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// e.g. `conversation_already_has_active_response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// The offending parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The `event_id` of *our* client event that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// `session.created` / `session.updated`. The session object is kept as
/// sent, in its dialect's shape; read it with
/// [`SessionConfig::from_json`](crate::SessionConfig::from_json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The effective session configuration.
    pub session: Value,
}

/// `input_audio_buffer.speech_started`: the barge-in trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechStarted {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// Ms from the start of all audio appended this session (includes the
    /// prefix padding).
    pub audio_start_ms: u64,
    /// The user item that will be created for this speech.
    pub item_id: String,
}

/// `input_audio_buffer.speech_stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechStopped {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// Ms from the start of all audio appended this session.
    pub audio_end_ms: u64,
    /// The user item.
    pub item_id: String,
}

/// `input_audio_buffer.committed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferCommitted {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The user item created from the buffer.
    pub item_id: String,
    /// The item it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
}

/// An event that carries only its id (`input_audio_buffer.cleared`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventId {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
}

/// `input_audio_buffer.timeout_triggered` (GA, server VAD idle timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutTriggered {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// Start of the idle audio.
    pub audio_start_ms: u64,
    /// End of the idle audio.
    pub audio_end_ms: u64,
    /// The user item created for it.
    pub item_id: String,
}

/// `conversation.item.created` / `.added` / `.done` / `.retrieved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemEvent {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The item it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_item_id: Option<String>,
    /// The item (`.done`: final, with the assistant transcript).
    pub item: Item,
}

/// `conversation.item.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDeleted {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The deleted item.
    pub item_id: String,
}

/// `conversation.item.truncated`: the ack of our truncate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemTruncated {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The truncated assistant item.
    pub item_id: String,
    /// Its audio content part.
    #[serde(default)]
    pub content_index: u32,
    /// Where its audio now ends.
    pub audio_end_ms: u64,
}

/// `conversation.item.input_audio_transcription.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionDelta<'a> {
    /// Server event id.
    #[serde(borrow, default)]
    pub event_id: Cow<'a, str>,
    /// The user item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Its audio content part.
    #[serde(default)]
    pub content_index: u32,
    /// Transcript text so far (empty when absent).
    #[serde(borrow, default)]
    pub delta: Cow<'a, str>,
}

/// Usage of a transcription (`...input_audio_transcription.completed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TranscriptionUsage {
    /// Billed by audio duration (`whisper-1`).
    #[serde(rename = "duration")]
    Duration {
        /// Seconds of audio.
        seconds: f64,
    },
    /// Billed by tokens.
    #[serde(rename = "tokens")]
    Tokens {
        /// Input tokens.
        input_tokens: u64,
        /// Output tokens.
        output_tokens: u64,
        /// Total tokens.
        total_tokens: u64,
        /// Breakdown, kept verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_token_details: Option<Value>,
    },
}

/// `conversation.item.input_audio_transcription.completed`: the caller's
/// transcript (may arrive before or after the response events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionCompleted {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The user item.
    pub item_id: String,
    /// Its audio content part.
    #[serde(default)]
    pub content_index: u32,
    /// What the caller said.
    pub transcript: String,
    /// Billing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TranscriptionUsage>,
}

/// `conversation.item.input_audio_transcription.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionFailed {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The user item.
    pub item_id: String,
    /// Its audio content part.
    #[serde(default)]
    pub content_index: u32,
    /// Why.
    #[serde(default)]
    pub error: TranscriptionError,
}

/// `...input_audio_transcription.failed.error`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TranscriptionError {
    /// Error type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// `conversation.item.input_audio_transcription.segment` (GA, diarization).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionSegment {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The user item.
    pub item_id: String,
    /// Its audio content part.
    #[serde(default)]
    pub content_index: u32,
    /// Segment id.
    pub id: String,
    /// Segment text.
    pub text: String,
    /// Speaker label.
    pub speaker: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEvent {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response: Response,
}

/// `response.output_item.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputItemEvent {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// The item (function calls appear here).
    pub item: Item,
}

/// `response.content_part.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPartEvent {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The item.
    pub item_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
    /// The part (`type` is `text` or `audio` in both dialects).
    pub part: ContentPart,
}

/// `response.output_audio.delta` (beta `response.audio.delta`): a chunk of
/// assistant audio, relayed to Twilio as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioDelta<'a> {
    /// Server event id.
    #[serde(borrow, default)]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
    /// Base64 audio in the session's output format.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
}

/// `response.output_audio_transcript.delta` / `response.output_text.delta`
/// (beta `response.audio_transcript.delta` / `response.text.delta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDelta<'a> {
    /// Server event id.
    #[serde(borrow, default)]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
    /// The next piece of text.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
}

/// `response.output_audio.done` (beta `response.audio.done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentDone {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The assistant item.
    pub item_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
}

/// `response.output_audio_transcript.done` (beta
/// `response.audio_transcript.done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptDone {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The assistant item.
    pub item_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
    /// The full assistant transcript of the part.
    pub transcript: String,
}

/// `response.output_text.done` (beta `response.text.done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDone {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The assistant item.
    pub item_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
    /// The full text of the part.
    pub text: String,
}

/// `response.function_call_arguments.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallArgumentsDelta {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The `function_call` item.
    pub item_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// The call id.
    pub call_id: String,
    /// The next piece of the JSON arguments.
    pub delta: String,
}

/// `response.function_call_arguments.done`. Also sent for cancelled or
/// incomplete responses: run tools from `response.done` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallArgumentsDone {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// The response.
    pub response_id: String,
    /// The `function_call` item.
    pub item_id: String,
    /// Index of the item in the response's output.
    #[serde(default)]
    pub output_index: u32,
    /// The call id.
    pub call_id: String,
    /// The function name. GA only: beta omits it (take it from the
    /// `function_call` item), and encoding for beta drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The JSON arguments.
    pub arguments: String,
}

/// `rate_limits.updated`, sent at the start of each response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitsUpdated {
    /// Server event id.
    #[serde(default)]
    pub event_id: String,
    /// One entry per limit.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
}
