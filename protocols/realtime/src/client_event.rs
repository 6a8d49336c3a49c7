//! Client events: what the sidecar sends, encoded per dialect, and decoded
//! again by the OpenAI simulator.
//!
//! Client event names are the same in both dialects (beta's
//! `transcription_session.update` is not used and decodes as
//! [`ClientEvent::Unknown`]); the dialect changes the `session` object, the
//! `response.create` overrides and assistant content types inside items.
//!
//! Hot path: [`encode_audio_append`] writes `input_audio_buffer.append`
//! straight into a reusable buffer, passing the base64 audio through.
//!
//! `response.create` overrides modelled: `instructions`, `tool_choice`
//! (string forms), `output_modalities` (beta `modalities`), `conversation`,
//! `metadata`, `max_output_tokens` (beta `max_response_output_tokens`);
//! others (`input`, `tools`, `audio`, `prompt`, beta `voice` /
//! `temperature`) are dropped on decode.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dialect::Dialect;
use crate::error::ParseError;
use crate::item::Item;
use crate::session::{MaxOutputTokens, OutputModality, SessionConfig, SessionWire};
use crate::wire;

/// Per-response overrides of `response.create`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseParams {
    /// Instructions for this response only.
    pub instructions: Option<String>,
    /// `auto`, `none`, `required`, or a function name.
    pub tool_choice: Option<String>,
    /// Audio or text for this response.
    pub output_modalities: Option<OutputModality>,
    /// `auto` (default conversation) or `none` (out of band).
    pub conversation: Option<String>,
    /// Up to 16 string pairs echoed in the response.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Output token cap for this response.
    pub max_output_tokens: Option<MaxOutputTokens>,
}

impl ResponseParams {
    fn to_wire(&self, dialect: Dialect) -> ResponseParamsWire {
        let modalities = self.output_modalities.map(|m| m.to_wire(dialect));
        let (ga, beta) = match dialect {
            Dialect::Ga => (true, false),
            Dialect::Beta => (false, true),
        };
        ResponseParamsWire {
            instructions: self.instructions.clone(),
            tool_choice: self.tool_choice.clone(),
            output_modalities: modalities.clone().filter(|_| ga),
            modalities: modalities.filter(|_| beta),
            conversation: self.conversation.clone(),
            metadata: self.metadata.clone(),
            max_output_tokens: self.max_output_tokens.filter(|_| ga),
            max_response_output_tokens: self.max_output_tokens.filter(|_| beta),
        }
    }

    fn from_wire(wire: ResponseParamsWire) -> Self {
        Self {
            instructions: wire.instructions,
            tool_choice: wire.tool_choice,
            output_modalities: wire
                .output_modalities
                .or(wire.modalities)
                .as_deref()
                .and_then(OutputModality::from_wire),
            conversation: wire.conversation,
            metadata: wire.metadata,
            max_output_tokens: wire.max_output_tokens.or(wire.max_response_output_tokens),
        }
    }
}

/// A client event.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent<'a> {
    /// `session.update`: send first, before any audio.
    SessionUpdate {
        /// Optional client event id (echoed in `error.event_id`).
        event_id: Option<String>,
        /// The settings.
        session: Box<SessionConfig>,
    },
    /// `input_audio_buffer.append`: caller audio, base64 in the session's
    /// input format (the Twilio payload, untouched).
    InputAudioBufferAppend {
        /// Optional client event id.
        event_id: Option<Cow<'a, str>>,
        /// Base64 audio.
        audio: Cow<'a, str>,
    },
    /// `input_audio_buffer.commit` (only without server VAD).
    InputAudioBufferCommit {
        /// Optional client event id.
        event_id: Option<String>,
    },
    /// `input_audio_buffer.clear`.
    InputAudioBufferClear {
        /// Optional client event id.
        event_id: Option<String>,
    },
    /// `conversation.item.create`: a user/system message or a tool result.
    ConversationItemCreate {
        /// Optional client event id.
        event_id: Option<String>,
        /// Insert after this item (default: at the end).
        previous_item_id: Option<String>,
        /// The item.
        item: Box<Item>,
    },
    /// `conversation.item.truncate`: cut an assistant item's audio at what
    /// the caller heard.
    ConversationItemTruncate {
        /// Optional client event id.
        event_id: Option<String>,
        /// The assistant item.
        item_id: String,
        /// Its audio content part (`0`).
        content_index: u32,
        /// Audio heard, ms; at most the item's audio duration.
        audio_end_ms: u64,
    },
    /// `conversation.item.delete`.
    ConversationItemDelete {
        /// Optional client event id.
        event_id: Option<String>,
        /// The item.
        item_id: String,
    },
    /// `conversation.item.retrieve`.
    ConversationItemRetrieve {
        /// Optional client event id.
        event_id: Option<String>,
        /// The item.
        item_id: String,
    },
    /// `response.create`.
    ResponseCreate {
        /// Optional client event id.
        event_id: Option<String>,
        /// Per-response overrides.
        response: Option<Box<ResponseParams>>,
    },
    /// `response.cancel`.
    ResponseCancel {
        /// Optional client event id.
        event_id: Option<String>,
        /// The response to cancel (default: the active one).
        response_id: Option<String>,
    },
    /// `output_audio_buffer.clear` (WebRTC/SIP only; useless on WebSocket).
    OutputAudioBufferClear {
        /// Optional client event id.
        event_id: Option<String>,
    },
    /// Any other type: count and skip.
    Unknown {
        /// The `type` as sent.
        event_type: Cow<'a, str>,
    },
}

/// Appends `{"type":"input_audio_buffer.append","audio":"…"}` to `out`,
/// passing the base64 through (escaped only if it holds a character JSON
/// must escape). The same bytes in both dialects; clear `out` to reuse it.
pub fn encode_audio_append(audio: &str, out: &mut String) {
    out.reserve(audio.len() + 48);
    out.push_str("{\"type\":\"input_audio_buffer.append\",\"audio\":");
    wire::push_json_str(out, audio);
    out.push('}');
}

/// Decodes one client event sent on a `dialect` connection.
pub fn parse_client_event(text: &str, dialect: Dialect) -> Result<ClientEvent<'_>, ParseError> {
    ClientEvent::parse(text, dialect)
}

impl<'a> ClientEvent<'a> {
    /// `session.update` from `config`.
    pub fn session_update(config: SessionConfig) -> Self {
        Self::SessionUpdate {
            event_id: None,
            session: Box::new(config),
        }
    }

    /// `input_audio_buffer.append` borrowing `audio`.
    pub fn append(audio: &'a str) -> Self {
        Self::InputAudioBufferAppend {
            event_id: None,
            audio: Cow::Borrowed(audio),
        }
    }

    /// `conversation.item.create` of `item`.
    pub fn item_create(item: Item) -> Self {
        Self::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: Box::new(item),
        }
    }

    /// `conversation.item.truncate` of content part 0 of `item_id`.
    pub fn truncate(item_id: impl Into<String>, audio_end_ms: u64) -> Self {
        Self::ConversationItemTruncate {
            event_id: None,
            item_id: item_id.into(),
            content_index: 0,
            audio_end_ms,
        }
    }

    /// `response.create` without overrides.
    pub fn response_create() -> Self {
        Self::ResponseCreate {
            event_id: None,
            response: None,
        }
    }

    /// `response.create` with instructions for this response only.
    pub fn response_create_with_instructions(instructions: impl Into<String>) -> Self {
        Self::ResponseCreate {
            event_id: None,
            response: Some(Box::new(ResponseParams {
                instructions: Some(instructions.into()),
                ..ResponseParams::default()
            })),
        }
    }

    /// `response.cancel` of the active response.
    pub fn response_cancel() -> Self {
        Self::ResponseCancel {
            event_id: None,
            response_id: None,
        }
    }

    /// The `type` (the same in both dialects).
    pub fn event_type(&self) -> &str {
        match self {
            Self::SessionUpdate { .. } => "session.update",
            Self::InputAudioBufferAppend { .. } => "input_audio_buffer.append",
            Self::InputAudioBufferCommit { .. } => "input_audio_buffer.commit",
            Self::InputAudioBufferClear { .. } => "input_audio_buffer.clear",
            Self::ConversationItemCreate { .. } => "conversation.item.create",
            Self::ConversationItemTruncate { .. } => "conversation.item.truncate",
            Self::ConversationItemDelete { .. } => "conversation.item.delete",
            Self::ConversationItemRetrieve { .. } => "conversation.item.retrieve",
            Self::ResponseCreate { .. } => "response.create",
            Self::ResponseCancel { .. } => "response.cancel",
            Self::OutputAudioBufferClear { .. } => "output_audio_buffer.clear",
            Self::Unknown { event_type } => event_type,
        }
    }

    /// Encodes the event for a `dialect` connection.
    pub fn encode(&self, dialect: Dialect) -> String {
        let mut out = String::new();
        self.encode_into(dialect, &mut out);
        out
    }

    /// Appends the encoded event to `out` (clear it first to reuse it).
    pub fn encode_into(&self, dialect: Dialect, out: &mut String) {
        let event_type = self.event_type();
        match self {
            Self::InputAudioBufferAppend {
                event_id: None,
                audio,
            } => encode_audio_append(audio, out),
            Self::InputAudioBufferAppend {
                event_id: Some(id),
                audio,
            } => {
                start(out, event_type, Some(id));
                wire::push_str_field(out, "audio", audio);
                out.push('}');
            }
            Self::InputAudioBufferCommit { event_id }
            | Self::InputAudioBufferClear { event_id }
            | Self::OutputAudioBufferClear { event_id } => {
                start(out, event_type, event_id.as_deref());
                out.push('}');
            }
            Self::ConversationItemTruncate {
                event_id,
                item_id,
                content_index,
                audio_end_ms,
            } => {
                start(out, event_type, event_id.as_deref());
                wire::push_str_field(out, "item_id", item_id);
                wire::push_u64_field(out, "content_index", u64::from(*content_index));
                wire::push_u64_field(out, "audio_end_ms", *audio_end_ms);
                out.push('}');
            }
            Self::ConversationItemDelete { event_id, item_id }
            | Self::ConversationItemRetrieve { event_id, item_id } => {
                start(out, event_type, event_id.as_deref());
                wire::push_str_field(out, "item_id", item_id);
                out.push('}');
            }
            Self::ResponseCancel {
                event_id,
                response_id,
            } => {
                start(out, event_type, event_id.as_deref());
                if let Some(response_id) = response_id {
                    wire::push_str_field(out, "response_id", response_id);
                }
                out.push('}');
            }
            Self::SessionUpdate { event_id, session } => {
                #[derive(Serialize)]
                struct Body<'e> {
                    #[serde(rename = "type")]
                    kind: &'e str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    event_id: Option<&'e str>,
                    session: SessionWire,
                }
                let body = Body {
                    kind: event_type,
                    event_id: event_id.as_deref(),
                    session: session.to_wire(dialect),
                };
                wire::push_serialized(out, &body);
            }
            Self::ConversationItemCreate {
                event_id,
                previous_item_id,
                item,
            } => {
                #[derive(Serialize)]
                struct Body<'e> {
                    #[serde(rename = "type")]
                    kind: &'e str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    event_id: Option<&'e str>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    previous_item_id: Option<&'e str>,
                    item: &'e Item,
                }
                let item = item.for_dialect(dialect);
                let body = Body {
                    kind: event_type,
                    event_id: event_id.as_deref(),
                    previous_item_id: previous_item_id.as_deref(),
                    item: &item,
                };
                wire::push_serialized(out, &body);
            }
            Self::ResponseCreate { event_id, response } => {
                #[derive(Serialize)]
                struct Body<'e> {
                    #[serde(rename = "type")]
                    kind: &'e str,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    event_id: Option<&'e str>,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    response: Option<ResponseParamsWire>,
                }
                let body = Body {
                    kind: event_type,
                    event_id: event_id.as_deref(),
                    response: response.as_ref().map(|r| r.to_wire(dialect)),
                };
                wire::push_serialized(out, &body);
            }
            Self::Unknown { .. } => {
                start(out, event_type, None);
                out.push('}');
            }
        }
    }

    /// Decodes one client event sent on a `dialect` connection. A field of
    /// the other dialect in `session.update` or `response.create` is a
    /// [`ParseError::DialectMismatch`] (the real server rejects it).
    pub fn parse(text: &'a str, dialect: Dialect) -> Result<Self, ParseError> {
        decode::parse(text, dialect)
    }

    /// Detaches the event from the frame it was decoded from.
    pub fn into_owned(self) -> ClientEvent<'static> {
        match self {
            Self::InputAudioBufferAppend { event_id, audio } => {
                ClientEvent::InputAudioBufferAppend {
                    event_id: event_id.map(|id| Cow::Owned(id.into_owned())),
                    audio: Cow::Owned(audio.into_owned()),
                }
            }
            Self::Unknown { event_type } => ClientEvent::Unknown {
                event_type: Cow::Owned(event_type.into_owned()),
            },
            Self::SessionUpdate { event_id, session } => {
                ClientEvent::SessionUpdate { event_id, session }
            }
            Self::InputAudioBufferCommit { event_id } => {
                ClientEvent::InputAudioBufferCommit { event_id }
            }
            Self::InputAudioBufferClear { event_id } => {
                ClientEvent::InputAudioBufferClear { event_id }
            }
            Self::ConversationItemCreate {
                event_id,
                previous_item_id,
                item,
            } => ClientEvent::ConversationItemCreate {
                event_id,
                previous_item_id,
                item,
            },
            Self::ConversationItemTruncate {
                event_id,
                item_id,
                content_index,
                audio_end_ms,
            } => ClientEvent::ConversationItemTruncate {
                event_id,
                item_id,
                content_index,
                audio_end_ms,
            },
            Self::ConversationItemDelete { event_id, item_id } => {
                ClientEvent::ConversationItemDelete { event_id, item_id }
            }
            Self::ConversationItemRetrieve { event_id, item_id } => {
                ClientEvent::ConversationItemRetrieve { event_id, item_id }
            }
            Self::ResponseCreate { event_id, response } => {
                ClientEvent::ResponseCreate { event_id, response }
            }
            Self::ResponseCancel {
                event_id,
                response_id,
            } => ClientEvent::ResponseCancel {
                event_id,
                response_id,
            },
            Self::OutputAudioBufferClear { event_id } => {
                ClientEvent::OutputAudioBufferClear { event_id }
            }
        }
    }
}

/// `{"type":…` plus `,"event_id":…` when given; the caller closes the object.
fn start(out: &mut String, event_type: &str, event_id: Option<&str>) {
    out.push_str("{\"type\":");
    wire::push_json_str(out, event_type);
    if let Some(event_id) = event_id {
        wire::push_str_field(out, "event_id", event_id);
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ResponseParamsWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_choice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output_modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conversation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<MaxOutputTokens>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_response_output_tokens: Option<MaxOutputTokens>,
}

mod decode;

#[cfg(test)]
mod tests;
