//! Conversation items: what `conversation.item.create` sends and what the
//! `conversation.item.*` and `response.output_item.*` events carry.
//!
//! One flat struct serves both dialects (beta's `ConversationItem` is flat;
//! GA's union only adds constraints per `type`). Values are kept in GA form:
//! beta assistant content types `text` / `audio` are read as `output_text` /
//! `output_audio` and written back when encoding for beta.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dialect::Dialect;
use crate::wire::string_enum;

string_enum! {
    /// `item.type`.
    pub enum ItemType {
        /// A user, system or assistant message.
        Message = "message",
        /// A tool call made by the model.
        FunctionCall = "function_call",
        /// The result of a tool call, sent by us.
        FunctionCallOutput = "function_call_output",
    }
}

string_enum! {
    /// `item.role` of a message.
    pub enum Role {
        /// The caller (or text we inject on their behalf).
        User = "user",
        /// The model.
        Assistant = "assistant",
        /// System instructions inserted into the conversation.
        System = "system",
    }
}

string_enum! {
    /// `item.status`.
    pub enum ItemStatus {
        /// Being generated.
        InProgress = "in_progress",
        /// Finished.
        Completed = "completed",
        /// Cut short (interrupted or token limit).
        Incomplete = "incomplete",
    }
}

string_enum! {
    /// `content[].type` of an item, and `part.type` of the
    /// `response.content_part.*` events.
    pub enum ContentType {
        /// User or system text.
        InputText = "input_text",
        /// User audio (`transcript` filled in later).
        InputAudio = "input_audio",
        /// User image.
        InputImage = "input_image",
        /// Assistant text (GA; beta `text`).
        OutputText = "output_text",
        /// Assistant audio (GA; beta `audio`); carries `transcript`.
        OutputAudio = "output_audio",
        /// Text part of `response.content_part.*` (both dialects) and beta
        /// assistant text.
        Text = "text",
        /// Audio part of `response.content_part.*` (both dialects) and beta
        /// assistant audio.
        Audio = "audio",
    }
}

/// One content part of a message item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: ContentType,
    /// Text of `input_text` / `output_text` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Base64 audio (absent from server events; audio streams as deltas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    /// Transcript of an audio part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// Fields this crate does not model, kept verbatim (not translated
    /// between dialects).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContentPart {
    /// An `input_text` part.
    pub fn input_text(text: impl Into<String>) -> Self {
        Self {
            kind: ContentType::InputText,
            text: Some(text.into()),
            audio: None,
            transcript: None,
            extra: Map::new(),
        }
    }
}

/// A conversation item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Server-assigned (or client-chosen) item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: ItemType,
    /// Role of a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Status (server items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// Content parts of a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentPart>>,
    /// Call id of a `function_call` / `function_call_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Function name of a `function_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON-encoded arguments of a `function_call`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Output of a `function_call_output` (usually JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Fields this crate does not model (e.g. `object`), kept verbatim (not
    /// translated between dialects).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Item {
    fn empty(kind: ItemType) -> Self {
        Self {
            id: None,
            kind,
            role: None,
            status: None,
            content: None,
            call_id: None,
            name: None,
            arguments: None,
            output: None,
            extra: Map::new(),
        }
    }

    fn message(role: Role, text: impl Into<String>) -> Self {
        Self {
            role: Some(role),
            content: Some(vec![ContentPart::input_text(text)]),
            ..Self::empty(ItemType::Message)
        }
    }

    /// A user message with one `input_text` part (e.g. to make the agent
    /// speak first, or to tell the model about a DTMF key press).
    pub fn user_text(text: impl Into<String>) -> Self {
        Self::message(Role::User, text)
    }

    /// A system message with one `input_text` part.
    pub fn system_text(text: impl Into<String>) -> Self {
        Self::message(Role::System, text)
    }

    /// A `function_call_output` answering the call `call_id`.
    pub fn function_call_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        Self {
            call_id: Some(call_id.into()),
            output: Some(output.into()),
            ..Self::empty(ItemType::FunctionCallOutput)
        }
    }

    /// A `function_call` (to re-inject history into a new session).
    pub fn function_call(
        call_id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            call_id: Some(call_id.into()),
            name: Some(name.into()),
            arguments: Some(arguments.into()),
            ..Self::empty(ItemType::FunctionCall)
        }
    }

    /// The transcript of the first audio part, or the text of the first text
    /// part (what an assistant or user said in this item).
    pub fn transcript(&self) -> Option<&str> {
        self.content
            .iter()
            .flatten()
            .find_map(|part| part.transcript.as_deref().or(part.text.as_deref()))
    }

    /// Rewrites beta assistant content types (`text`, `audio`) as GA ones.
    pub(crate) fn normalize(&mut self) {
        if self.role != Some(Role::Assistant) {
            return;
        }
        for part in self.content.iter_mut().flatten() {
            part.kind = match std::mem::replace(&mut part.kind, ContentType::Text) {
                ContentType::Text => ContentType::OutputText,
                ContentType::Audio => ContentType::OutputAudio,
                other => other,
            };
        }
    }

    /// This item as the given dialect writes it.
    pub(crate) fn for_dialect(&self, dialect: Dialect) -> std::borrow::Cow<'_, Self> {
        let has_output_parts = self.content.iter().flatten().any(|part| {
            matches!(
                part.kind,
                ContentType::OutputText | ContentType::OutputAudio
            )
        });
        if dialect == Dialect::Ga || !has_output_parts {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut item = self.clone();
        for part in item.content.iter_mut().flatten() {
            part.kind = match std::mem::replace(&mut part.kind, ContentType::Text) {
                ContentType::OutputText => ContentType::Text,
                ContentType::OutputAudio => ContentType::Audio,
                other => other,
            };
        }
        std::borrow::Cow::Owned(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_assistant_content_is_read_as_ga() {
        let mut item: Item = serde_json::from_str(
            r#"{"type":"message","role":"assistant","content":[{"type":"audio","transcript":"hi"}],"object":"realtime.item"}"#,
        )
        .expect("valid item");
        item.normalize();
        let part = &item.content.as_ref().expect("content")[0];
        assert_eq!(part.kind, ContentType::OutputAudio);
        assert_eq!(item.transcript(), Some("hi"));
        assert_eq!(item.extra["object"], "realtime.item");
        let beta = item.for_dialect(Dialect::Beta);
        assert_eq!(
            beta.content.as_ref().expect("content")[0].kind,
            ContentType::Audio
        );
    }

    #[test]
    fn unknown_types_are_kept() {
        let item: Item =
            serde_json::from_str(r#"{"type":"mcp_call","id":"x"}"#).expect("valid item");
        assert_eq!(item.kind, ItemType::Other("mcp_call".into()));
        let json = serde_json::to_value(&item).expect("serializes");
        assert_eq!(json["type"], "mcp_call");
    }
}
