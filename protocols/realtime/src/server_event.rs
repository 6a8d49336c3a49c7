//! Server events: decoded from either dialect into one GA-named enum, and
//! encoded in a chosen dialect (for the OpenAI simulator).
//!
//! Beta aliases are absorbed here: `response.audio.delta` decodes as
//! [`ServerEvent::ResponseOutputAudioDelta`], beta assistant content `text` /
//! `audio` as `output_text` / `output_audio`, a beta
//! `response.function_call_arguments.done` has `name: None`. Types this crate
//! does not model decode to [`ServerEvent::Unknown`]; callers count and skip
//! them.
//!
//! Hot path: [`AudioDelta`] borrows its ids and base64 `delta` from the frame
//! (`Cow::Borrowed` unless the JSON escapes them), and is encoded without
//! serde into a reusable buffer by [`ServerEvent::encode_into`].
//!
//! Fields not modelled (dropped on decode): `logprobs` and `languages` of
//! transcription events; everything else a schema lists is either a field
//! here or kept verbatim in an `extra` map (items, content parts, responses).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::dialect::{self, Dialect};
use crate::error::ParseError;
use crate::item::Item;
use crate::response::Response;
use crate::wire;

mod payloads;

pub use payloads::{
    AudioDelta, BufferCommitted, ContentDone, ContentPartEvent, ErrorDetails, ErrorEvent, EventId,
    FunctionCallArgumentsDelta, FunctionCallArgumentsDone, ItemDeleted, ItemEvent, ItemTruncated,
    OutputItemEvent, RateLimitsUpdated, ResponseEvent, SessionEvent, SpeechStarted, SpeechStopped,
    TextDelta, TextDone, TimeoutTriggered, TranscriptDone, TranscriptionCompleted,
    TranscriptionDelta, TranscriptionError, TranscriptionFailed, TranscriptionSegment,
    TranscriptionUsage,
};

/// A server event, GA-named, from either dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent<'a> {
    /// `error`.
    Error(ErrorEvent),
    /// `session.created`: the first event of a session.
    SessionCreated(SessionEvent),
    /// `session.updated`: the answer to `session.update`.
    SessionUpdated(SessionEvent),
    /// `input_audio_buffer.speech_started`.
    InputAudioBufferSpeechStarted(SpeechStarted),
    /// `input_audio_buffer.speech_stopped`.
    InputAudioBufferSpeechStopped(SpeechStopped),
    /// `input_audio_buffer.committed`.
    InputAudioBufferCommitted(BufferCommitted),
    /// `input_audio_buffer.cleared`.
    InputAudioBufferCleared(EventId),
    /// `input_audio_buffer.timeout_triggered` (GA only).
    InputAudioBufferTimeoutTriggered(TimeoutTriggered),
    /// `conversation.item.created` (beta; still in the GA union).
    ConversationItemCreated(ItemEvent),
    /// `conversation.item.added` (GA; beta sends `created`).
    ConversationItemAdded(ItemEvent),
    /// `conversation.item.done` (GA only).
    ConversationItemDone(ItemEvent),
    /// `conversation.item.retrieved`.
    ConversationItemRetrieved(ItemEvent),
    /// `conversation.item.deleted`.
    ConversationItemDeleted(ItemDeleted),
    /// `conversation.item.truncated`.
    ConversationItemTruncated(ItemTruncated),
    /// `conversation.item.input_audio_transcription.delta`.
    InputAudioTranscriptionDelta(TranscriptionDelta<'a>),
    /// `conversation.item.input_audio_transcription.completed`.
    InputAudioTranscriptionCompleted(TranscriptionCompleted),
    /// `conversation.item.input_audio_transcription.failed`.
    InputAudioTranscriptionFailed(TranscriptionFailed),
    /// `conversation.item.input_audio_transcription.segment` (GA only).
    InputAudioTranscriptionSegment(TranscriptionSegment),
    /// `response.created`.
    ResponseCreated(ResponseEvent),
    /// `response.done`: always sent; billing; run tools from here.
    ResponseDone(ResponseEvent),
    /// `response.output_item.added`.
    ResponseOutputItemAdded(OutputItemEvent),
    /// `response.output_item.done`.
    ResponseOutputItemDone(OutputItemEvent),
    /// `response.content_part.added`.
    ResponseContentPartAdded(ContentPartEvent),
    /// `response.content_part.done`.
    ResponseContentPartDone(ContentPartEvent),
    /// `response.output_audio.delta` (beta `response.audio.delta`).
    ResponseOutputAudioDelta(AudioDelta<'a>),
    /// `response.output_audio.done` (beta `response.audio.done`).
    ResponseOutputAudioDone(ContentDone),
    /// `response.output_audio_transcript.delta` (beta
    /// `response.audio_transcript.delta`).
    ResponseOutputAudioTranscriptDelta(TextDelta<'a>),
    /// `response.output_audio_transcript.done` (beta
    /// `response.audio_transcript.done`).
    ResponseOutputAudioTranscriptDone(TranscriptDone),
    /// `response.output_text.delta` (beta `response.text.delta`).
    ResponseOutputTextDelta(TextDelta<'a>),
    /// `response.output_text.done` (beta `response.text.done`).
    ResponseOutputTextDone(TextDone),
    /// `response.function_call_arguments.delta`.
    ResponseFunctionCallArgumentsDelta(FunctionCallArgumentsDelta),
    /// `response.function_call_arguments.done`.
    ResponseFunctionCallArgumentsDone(FunctionCallArgumentsDone),
    /// `rate_limits.updated`.
    RateLimitsUpdated(RateLimitsUpdated),
    /// Any other type (MCP, WebRTC-only `output_audio_buffer.*`, future
    /// events): count and skip. Encodes as `{"type": …}` alone.
    Unknown {
        /// The `type` as sent.
        event_type: Cow<'a, str>,
    },
}

/// Decodes one server event, in either dialect (the names tell which).
pub fn parse_server_event(text: &str) -> Result<ServerEvent<'_>, ParseError> {
    ServerEvent::parse(text)
}

fn de<'a, T: Deserialize<'a>>(text: &'a str, event_type: &str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|e| ParseError::invalid(event_type, &e))
}

impl<'a> ServerEvent<'a> {
    /// Decodes one server event, in either dialect (the names tell which).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        use ServerEvent as E;
        let event_type = wire::peek_type(text)?;
        let t = dialect::ga_server_event_type(&event_type);
        let event = match t {
            "response.output_audio.delta" => E::ResponseOutputAudioDelta(de(text, t)?),
            "response.output_audio_transcript.delta" => {
                E::ResponseOutputAudioTranscriptDelta(de(text, t)?)
            }
            "response.output_text.delta" => E::ResponseOutputTextDelta(de(text, t)?),
            "error" => E::Error(de(text, t)?),
            "session.created" => E::SessionCreated(de(text, t)?),
            "session.updated" => E::SessionUpdated(de(text, t)?),
            "input_audio_buffer.speech_started" => E::InputAudioBufferSpeechStarted(de(text, t)?),
            "input_audio_buffer.speech_stopped" => E::InputAudioBufferSpeechStopped(de(text, t)?),
            "input_audio_buffer.committed" => E::InputAudioBufferCommitted(de(text, t)?),
            "input_audio_buffer.cleared" => E::InputAudioBufferCleared(de(text, t)?),
            "input_audio_buffer.timeout_triggered" => {
                E::InputAudioBufferTimeoutTriggered(de(text, t)?)
            }
            "conversation.item.created" => E::ConversationItemCreated(item_event(text, t)?),
            "conversation.item.added" => E::ConversationItemAdded(item_event(text, t)?),
            "conversation.item.done" => E::ConversationItemDone(item_event(text, t)?),
            "conversation.item.retrieved" => E::ConversationItemRetrieved(item_event(text, t)?),
            "conversation.item.deleted" => E::ConversationItemDeleted(de(text, t)?),
            "conversation.item.truncated" => E::ConversationItemTruncated(de(text, t)?),
            "conversation.item.input_audio_transcription.delta" => {
                E::InputAudioTranscriptionDelta(de(text, t)?)
            }
            "conversation.item.input_audio_transcription.completed" => {
                E::InputAudioTranscriptionCompleted(de(text, t)?)
            }
            "conversation.item.input_audio_transcription.failed" => {
                E::InputAudioTranscriptionFailed(de(text, t)?)
            }
            "conversation.item.input_audio_transcription.segment" => {
                E::InputAudioTranscriptionSegment(de(text, t)?)
            }
            "response.created" => E::ResponseCreated(response_event(text, t)?),
            "response.done" => E::ResponseDone(response_event(text, t)?),
            "response.output_item.added" => E::ResponseOutputItemAdded(output_item(text, t)?),
            "response.output_item.done" => E::ResponseOutputItemDone(output_item(text, t)?),
            "response.content_part.added" => E::ResponseContentPartAdded(de(text, t)?),
            "response.content_part.done" => E::ResponseContentPartDone(de(text, t)?),
            "response.output_audio.done" => E::ResponseOutputAudioDone(de(text, t)?),
            "response.output_audio_transcript.done" => {
                E::ResponseOutputAudioTranscriptDone(de(text, t)?)
            }
            "response.output_text.done" => E::ResponseOutputTextDone(de(text, t)?),
            "response.function_call_arguments.delta" => {
                E::ResponseFunctionCallArgumentsDelta(de(text, t)?)
            }
            "response.function_call_arguments.done" => {
                E::ResponseFunctionCallArgumentsDone(de(text, t)?)
            }
            "rate_limits.updated" => E::RateLimitsUpdated(de(text, t)?),
            _ => E::Unknown { event_type },
        };
        Ok(event)
    }

    /// The GA `type` of this event.
    pub fn ga_type(&self) -> &str {
        use ServerEvent as E;
        match self {
            E::Error(_) => "error",
            E::SessionCreated(_) => "session.created",
            E::SessionUpdated(_) => "session.updated",
            E::InputAudioBufferSpeechStarted(_) => "input_audio_buffer.speech_started",
            E::InputAudioBufferSpeechStopped(_) => "input_audio_buffer.speech_stopped",
            E::InputAudioBufferCommitted(_) => "input_audio_buffer.committed",
            E::InputAudioBufferCleared(_) => "input_audio_buffer.cleared",
            E::InputAudioBufferTimeoutTriggered(_) => "input_audio_buffer.timeout_triggered",
            E::ConversationItemCreated(_) => "conversation.item.created",
            E::ConversationItemAdded(_) => "conversation.item.added",
            E::ConversationItemDone(_) => "conversation.item.done",
            E::ConversationItemRetrieved(_) => "conversation.item.retrieved",
            E::ConversationItemDeleted(_) => "conversation.item.deleted",
            E::ConversationItemTruncated(_) => "conversation.item.truncated",
            E::InputAudioTranscriptionDelta(_) => {
                "conversation.item.input_audio_transcription.delta"
            }
            E::InputAudioTranscriptionCompleted(_) => {
                "conversation.item.input_audio_transcription.completed"
            }
            E::InputAudioTranscriptionFailed(_) => {
                "conversation.item.input_audio_transcription.failed"
            }
            E::InputAudioTranscriptionSegment(_) => {
                "conversation.item.input_audio_transcription.segment"
            }
            E::ResponseCreated(_) => "response.created",
            E::ResponseDone(_) => "response.done",
            E::ResponseOutputItemAdded(_) => "response.output_item.added",
            E::ResponseOutputItemDone(_) => "response.output_item.done",
            E::ResponseContentPartAdded(_) => "response.content_part.added",
            E::ResponseContentPartDone(_) => "response.content_part.done",
            E::ResponseOutputAudioDelta(_) => "response.output_audio.delta",
            E::ResponseOutputAudioDone(_) => "response.output_audio.done",
            E::ResponseOutputAudioTranscriptDelta(_) => "response.output_audio_transcript.delta",
            E::ResponseOutputAudioTranscriptDone(_) => "response.output_audio_transcript.done",
            E::ResponseOutputTextDelta(_) => "response.output_text.delta",
            E::ResponseOutputTextDone(_) => "response.output_text.done",
            E::ResponseFunctionCallArgumentsDelta(_) => "response.function_call_arguments.delta",
            E::ResponseFunctionCallArgumentsDone(_) => "response.function_call_arguments.done",
            E::RateLimitsUpdated(_) => "rate_limits.updated",
            E::Unknown { event_type } => event_type,
        }
    }

    /// The `type` this event has in `dialect`, or `None` when the dialect
    /// has no such event (GA-only `conversation.item.done`,
    /// `input_audio_buffer.timeout_triggered`, `...transcription.segment`).
    /// `conversation.item.added` is `conversation.item.created` in beta.
    pub fn type_in(&self, dialect: Dialect) -> Option<&str> {
        match (dialect, self) {
            (Dialect::Ga, _) | (_, ServerEvent::Unknown { .. }) => Some(self.ga_type()),
            (Dialect::Beta, ServerEvent::ConversationItemAdded(_)) => {
                Some("conversation.item.created")
            }
            (Dialect::Beta, _) => dialect::beta_server_event_type(self.ga_type()),
        }
    }

    /// Encodes the event as `dialect` writes it. An event the dialect lacks
    /// (see [`ServerEvent::type_in`]) keeps its GA name; skip those for beta.
    pub fn encode(&self, dialect: Dialect) -> String {
        let mut out = String::new();
        self.encode_into(dialect, &mut out);
        out
    }

    /// Appends the encoded event to `out` (clear it first to reuse it).
    /// Deltas are written without serde.
    pub fn encode_into(&self, dialect: Dialect, out: &mut String) {
        use ServerEvent as E;
        let event_type = self.type_in(dialect).unwrap_or_else(|| self.ga_type());
        match self {
            E::ResponseOutputAudioDelta(d) => write_delta(
                out,
                event_type,
                [&*d.event_id, &*d.response_id, &*d.item_id],
                [d.output_index, d.content_index],
                &d.delta,
            ),
            E::ResponseOutputAudioTranscriptDelta(d) | E::ResponseOutputTextDelta(d) => {
                write_delta(
                    out,
                    event_type,
                    [&*d.event_id, &*d.response_id, &*d.item_id],
                    [d.output_index, d.content_index],
                    &d.delta,
                )
            }
            E::Error(e) => push_tagged(out, event_type, e),
            E::SessionCreated(e) | E::SessionUpdated(e) => push_tagged(out, event_type, e),
            E::InputAudioBufferSpeechStarted(e) => push_tagged(out, event_type, e),
            E::InputAudioBufferSpeechStopped(e) => push_tagged(out, event_type, e),
            E::InputAudioBufferCommitted(e) => push_tagged(out, event_type, e),
            E::InputAudioBufferCleared(e) => push_tagged(out, event_type, e),
            E::InputAudioBufferTimeoutTriggered(e) => push_tagged(out, event_type, e),
            E::ConversationItemCreated(e)
            | E::ConversationItemAdded(e)
            | E::ConversationItemDone(e)
            | E::ConversationItemRetrieved(e) => {
                let item = e.item.for_dialect(dialect);
                let e = ItemEventOut {
                    event_id: &e.event_id,
                    previous_item_id: e.previous_item_id.as_deref(),
                    item: &item,
                };
                push_tagged(out, event_type, &e);
            }
            E::ConversationItemDeleted(e) => push_tagged(out, event_type, e),
            E::ConversationItemTruncated(e) => push_tagged(out, event_type, e),
            E::InputAudioTranscriptionDelta(e) => push_tagged(out, event_type, e),
            E::InputAudioTranscriptionCompleted(e) => push_tagged(out, event_type, e),
            E::InputAudioTranscriptionFailed(e) => push_tagged(out, event_type, e),
            E::InputAudioTranscriptionSegment(e) => push_tagged(out, event_type, e),
            E::ResponseCreated(e) | E::ResponseDone(e) => {
                let response = e.response.for_dialect(dialect);
                let e = ResponseEventOut {
                    event_id: &e.event_id,
                    response: &response,
                };
                push_tagged(out, event_type, &e);
            }
            E::ResponseOutputItemAdded(e) | E::ResponseOutputItemDone(e) => {
                let item = e.item.for_dialect(dialect);
                let e = OutputItemEventOut {
                    event_id: &e.event_id,
                    response_id: &e.response_id,
                    output_index: e.output_index,
                    item: &item,
                };
                push_tagged(out, event_type, &e);
            }
            E::ResponseContentPartAdded(e) | E::ResponseContentPartDone(e) => {
                push_tagged(out, event_type, e)
            }
            E::ResponseOutputAudioDone(e) => push_tagged(out, event_type, e),
            E::ResponseOutputAudioTranscriptDone(e) => push_tagged(out, event_type, e),
            E::ResponseOutputTextDone(e) => push_tagged(out, event_type, e),
            E::ResponseFunctionCallArgumentsDelta(e) => push_tagged(out, event_type, e),
            E::ResponseFunctionCallArgumentsDone(e) => {
                if dialect == Dialect::Beta && e.name.is_some() {
                    let beta = FunctionCallArgumentsDone {
                        name: None,
                        ..e.clone()
                    };
                    push_tagged(out, event_type, &beta);
                } else {
                    push_tagged(out, event_type, e);
                }
            }
            E::RateLimitsUpdated(e) => push_tagged(out, event_type, e),
            E::Unknown { .. } => {
                out.push_str("{\"type\":");
                wire::push_json_str(out, event_type);
                out.push('}');
            }
        }
    }

    /// Detaches the event from the frame it was decoded from.
    pub fn into_owned(self) -> ServerEvent<'static> {
        use ServerEvent as E;
        fn own(s: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(s.into_owned())
        }
        fn text(d: TextDelta<'_>) -> TextDelta<'static> {
            TextDelta {
                event_id: own(d.event_id),
                response_id: own(d.response_id),
                item_id: own(d.item_id),
                output_index: d.output_index,
                content_index: d.content_index,
                delta: own(d.delta),
            }
        }
        match self {
            E::ResponseOutputAudioDelta(d) => E::ResponseOutputAudioDelta(AudioDelta {
                event_id: own(d.event_id),
                response_id: own(d.response_id),
                item_id: own(d.item_id),
                output_index: d.output_index,
                content_index: d.content_index,
                delta: own(d.delta),
            }),
            E::ResponseOutputAudioTranscriptDelta(d) => {
                E::ResponseOutputAudioTranscriptDelta(text(d))
            }
            E::ResponseOutputTextDelta(d) => E::ResponseOutputTextDelta(text(d)),
            E::InputAudioTranscriptionDelta(d) => {
                E::InputAudioTranscriptionDelta(TranscriptionDelta {
                    event_id: own(d.event_id),
                    item_id: own(d.item_id),
                    content_index: d.content_index,
                    delta: own(d.delta),
                })
            }
            E::Unknown { event_type } => E::Unknown {
                event_type: own(event_type),
            },
            E::Error(e) => E::Error(e),
            E::SessionCreated(e) => E::SessionCreated(e),
            E::SessionUpdated(e) => E::SessionUpdated(e),
            E::InputAudioBufferSpeechStarted(e) => E::InputAudioBufferSpeechStarted(e),
            E::InputAudioBufferSpeechStopped(e) => E::InputAudioBufferSpeechStopped(e),
            E::InputAudioBufferCommitted(e) => E::InputAudioBufferCommitted(e),
            E::InputAudioBufferCleared(e) => E::InputAudioBufferCleared(e),
            E::InputAudioBufferTimeoutTriggered(e) => E::InputAudioBufferTimeoutTriggered(e),
            E::ConversationItemCreated(e) => E::ConversationItemCreated(e),
            E::ConversationItemAdded(e) => E::ConversationItemAdded(e),
            E::ConversationItemDone(e) => E::ConversationItemDone(e),
            E::ConversationItemRetrieved(e) => E::ConversationItemRetrieved(e),
            E::ConversationItemDeleted(e) => E::ConversationItemDeleted(e),
            E::ConversationItemTruncated(e) => E::ConversationItemTruncated(e),
            E::InputAudioTranscriptionCompleted(e) => E::InputAudioTranscriptionCompleted(e),
            E::InputAudioTranscriptionFailed(e) => E::InputAudioTranscriptionFailed(e),
            E::InputAudioTranscriptionSegment(e) => E::InputAudioTranscriptionSegment(e),
            E::ResponseCreated(e) => E::ResponseCreated(e),
            E::ResponseDone(e) => E::ResponseDone(e),
            E::ResponseOutputItemAdded(e) => E::ResponseOutputItemAdded(e),
            E::ResponseOutputItemDone(e) => E::ResponseOutputItemDone(e),
            E::ResponseContentPartAdded(e) => E::ResponseContentPartAdded(e),
            E::ResponseContentPartDone(e) => E::ResponseContentPartDone(e),
            E::ResponseOutputAudioDone(e) => E::ResponseOutputAudioDone(e),
            E::ResponseOutputAudioTranscriptDone(e) => E::ResponseOutputAudioTranscriptDone(e),
            E::ResponseOutputTextDone(e) => E::ResponseOutputTextDone(e),
            E::ResponseFunctionCallArgumentsDelta(e) => E::ResponseFunctionCallArgumentsDelta(e),
            E::ResponseFunctionCallArgumentsDone(e) => E::ResponseFunctionCallArgumentsDone(e),
            E::RateLimitsUpdated(e) => E::RateLimitsUpdated(e),
        }
    }
}

fn item_event(text: &str, event_type: &str) -> Result<ItemEvent, ParseError> {
    let mut event: ItemEvent = de(text, event_type)?;
    event.item.normalize();
    Ok(event)
}

fn output_item(text: &str, event_type: &str) -> Result<OutputItemEvent, ParseError> {
    let mut event: OutputItemEvent = de(text, event_type)?;
    event.item.normalize();
    Ok(event)
}

fn response_event(text: &str, event_type: &str) -> Result<ResponseEvent, ParseError> {
    let mut event: ResponseEvent = de(text, event_type)?;
    event.response.normalize();
    Ok(event)
}

#[derive(Serialize)]
struct ItemEventOut<'e> {
    event_id: &'e str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_item_id: Option<&'e str>,
    item: &'e Item,
}

#[derive(Serialize)]
struct OutputItemEventOut<'e> {
    event_id: &'e str,
    response_id: &'e str,
    output_index: u32,
    item: &'e Item,
}

#[derive(Serialize)]
struct ResponseEventOut<'e> {
    event_id: &'e str,
    response: &'e Response,
}

/// `{"type": …, <body fields>}` through serde (not the audio path).
fn push_tagged<T: Serialize>(out: &mut String, event_type: &str, body: &T) {
    #[derive(Serialize)]
    struct Tagged<'e, T> {
        #[serde(rename = "type")]
        kind: &'e str,
        #[serde(flatten)]
        body: &'e T,
    }
    wire::push_serialized(
        out,
        &Tagged {
            kind: event_type,
            body,
        },
    );
}

/// A delta event written by hand: no serde, no allocation beyond `out`.
fn write_delta(
    out: &mut String,
    event_type: &str,
    [event_id, response_id, item_id]: [&str; 3],
    [output_index, content_index]: [u32; 2],
    delta: &str,
) {
    out.reserve(delta.len() + event_type.len() + 128);
    out.push_str("{\"type\":");
    wire::push_json_str(out, event_type);
    wire::push_str_field(out, "event_id", event_id);
    wire::push_str_field(out, "response_id", response_id);
    wire::push_str_field(out, "item_id", item_id);
    wire::push_u64_field(out, "output_index", u64::from(output_index));
    wire::push_u64_field(out, "content_index", u64::from(content_index));
    wire::push_str_field(out, "delta", delta);
    out.push('}');
}

#[cfg(test)]
mod tests;
