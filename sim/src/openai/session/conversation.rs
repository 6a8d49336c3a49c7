//! The conversation: committed caller turns, client-created items, and
//! `conversation.item.truncate` / `.delete` / `.retrieve`.
//!
//! Each assistant audio item remembers how much audio was generated for it,
//! which is what a truncate is checked against ("Audio content of Xms is
//! already shorter than Yms").

use serde_json::{Map, Value};
use switchboard_realtime::server_event::{
    BufferCommitted, ItemDeleted, ItemEvent, ItemTruncated, TranscriptionCompleted,
    TranscriptionDelta, TranscriptionUsage,
};
use switchboard_realtime::{
    ContentPart, ContentType, Item, ItemStatus, ItemType, Role, ServerEvent,
};

use super::{ApiError, Outbox, Pending, SessionCore};
use crate::openai::records::Truncation;

/// Items in conversation order.
#[derive(Debug, Default)]
pub(super) struct Conversation {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    id: String,
    item: Item,
    /// Audio generated for an assistant audio item, ms.
    audio_ms: Option<u64>,
}

impl Conversation {
    pub(super) fn last_id(&self) -> Option<String> {
        self.entries.last().map(|e| e.id.clone())
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.id == id)
    }

    /// Appends (or inserts after `previous`) an item that has an id.
    pub(super) fn insert(&mut self, item: Item, audio_ms: Option<u64>, previous: Option<&str>) {
        let id = item.id.clone().unwrap_or_default();
        let entry = Entry { id, item, audio_ms };
        match previous.and_then(|p| self.position(p)) {
            Some(index) => self.entries.insert(index + 1, entry),
            None => self.entries.push(entry),
        }
    }

    /// The id of the item before `id`.
    pub(super) fn previous_of(&self, id: &str) -> Option<String> {
        let index = self.position(id)?;
        index
            .checked_sub(1)
            .map(|before| self.entries[before].id.clone())
    }

    /// Replaces the item with the same id, keeping its audio length.
    pub(super) fn replace(&mut self, item: Item) {
        let id = item.id.as_deref().unwrap_or_default();
        if let Some(index) = self.position(id) {
            self.entries[index].item = item;
        }
    }

    pub(super) fn add_audio(&mut self, id: &str, ms: u64) {
        if let Some(index) = self.position(id) {
            let audio = self.entries[index].audio_ms.get_or_insert(0);
            *audio += ms;
        }
    }

    fn has_call(&self, call_id: &str) -> bool {
        self.entries.iter().any(|e| {
            e.item.kind == ItemType::FunctionCall && e.item.call_id.as_deref() == Some(call_id)
        })
    }
}

/// An item's `object` field, as the server sends it.
pub(super) fn realtime_item_extra() -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert(
        "object".to_owned(),
        Value::String("realtime.item".to_owned()),
    );
    extra
}

/// One content part of `kind` with nothing set.
pub(super) fn part(kind: ContentType) -> ContentPart {
    ContentPart {
        kind,
        text: None,
        audio: None,
        transcript: None,
        extra: Map::new(),
    }
}

impl SessionCore {
    /// Commits the input buffer as the user item `item_id`, which takes the
    /// script's next caller turn.
    pub(super) fn commit(&mut self, item_id: String, end_ms: u64, out: &mut Outbox) {
        let buffered_ms = end_ms.saturating_sub(self.input.buffer_start_ms);
        self.input.buffer_start_ms = end_ms;
        if let Some(vad) = self.input.vad.as_mut() {
            vad.set_floor(end_ms);
        }
        let previous_item_id = self.conversation.last_id();
        let committed = BufferCommitted {
            event_id: self.ids.event(),
            item_id: item_id.clone(),
            previous_item_id: previous_item_id.clone(),
        };
        self.emit(out, ServerEvent::InputAudioBufferCommitted(committed));

        let turn = self.next_turn;
        self.next_turn += 1;
        self.pending = Pending::Turn(turn);
        let transcript = self.script.turn(turn).caller.clone();
        let mut item = Item {
            id: Some(item_id.clone()),
            kind: ItemType::Message,
            role: Some(Role::User),
            status: Some(ItemStatus::Completed),
            content: Some(vec![part(ContentType::InputAudio)]),
            call_id: None,
            name: None,
            arguments: None,
            output: None,
            extra: realtime_item_extra(),
        };
        self.conversation.insert(item.clone(), None, None);
        let added = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id: previous_item_id.clone(),
            item: item.clone(),
        };
        self.emit(out, ServerEvent::ConversationItemAdded(added));

        if let Some(transcription) = self.config.transcription.clone() {
            if transcription.model.as_deref() != Some("whisper-1") {
                let delta = TranscriptionDelta {
                    event_id: self.ids.event().into(),
                    item_id: item_id.clone().into(),
                    content_index: 0,
                    delta: transcript.clone().into(),
                };
                self.emit(out, ServerEvent::InputAudioTranscriptionDelta(delta));
            }
            let completed = TranscriptionCompleted {
                event_id: self.ids.event(),
                item_id: item_id.clone(),
                content_index: 0,
                transcript: transcript.clone(),
                usage: Some(TranscriptionUsage::Duration {
                    seconds: buffered_ms as f64 / 1000.0,
                }),
            };
            self.emit(
                out,
                ServerEvent::InputAudioTranscriptionCompleted(completed),
            );
            if let Some(content) = item.content.as_mut() {
                content[0].transcript = Some(transcript.clone());
            }
            self.conversation.replace(item.clone());
        }
        let done = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id,
            item,
        };
        self.emit(out, ServerEvent::ConversationItemDone(done));
        self.usage.history_text_tokens += transcript.chars().count() as u64 / 4 + 1;
        self.recorder
            .update(|r| r.user_turns.push((item_id, transcript)));
    }

    /// Why the server would refuse to create `item`, if it would.
    fn item_rejection(&self, previous_item_id: Option<&str>, item: &Item) -> Option<ApiError> {
        if let Some(previous) = previous_item_id {
            if self.conversation.position(previous).is_none() {
                return Some(ApiError::item_not_found(previous, "previous_item_id"));
            }
        }
        if let Some(id) = item.id.as_deref() {
            if self.conversation.position(id).is_some() {
                return Some(ApiError::invalid_value(
                    format!("Item with id '{id}' already exists in the conversation"),
                    "item.id",
                ));
            }
        }
        let assistant_audio = item
            .content
            .iter()
            .flatten()
            .any(|p| p.kind == ContentType::OutputAudio);
        match (&item.kind, &item.role) {
            (ItemType::Message, None) => Some(ApiError::missing("item.role")),
            (ItemType::Message, Some(Role::Assistant)) if assistant_audio => {
                Some(ApiError::invalid_value(
                    "Assistant audio messages cannot be created by the client".to_owned(),
                    "item.content",
                ))
            }
            (ItemType::FunctionCallOutput, _) => match item.call_id.as_deref() {
                None => Some(ApiError::missing("item.call_id")),
                Some(call_id) if !self.conversation.has_call(call_id) => {
                    Some(ApiError::invalid_value(
                        format!("Tool call ID '{call_id}' not found in conversation."),
                        "item.call_id",
                    ))
                }
                Some(_) => None,
            },
            (ItemType::Other(_), _) => Some(ApiError::invalid_value(
                "Invalid value for 'item.type'".to_owned(),
                "item.type",
            )),
            _ => None,
        }
    }

    pub(super) fn on_item_create(
        &mut self,
        event_id: Option<String>,
        previous_item_id: Option<String>,
        mut item: Item,
        out: &mut Outbox,
    ) {
        if let Some(error) = self.item_rejection(previous_item_id.as_deref(), &item) {
            self.send_error(out, error.for_event(event_id));
            return;
        }
        if item.kind == ItemType::FunctionCallOutput {
            let call_id = item.call_id.clone().unwrap_or_default();
            let output = item.output.clone().unwrap_or_default();
            if let Pending::AfterCall {
                call_id: pending,
                output_received,
                ..
            } = &mut self.pending
            {
                if *pending == call_id {
                    *output_received = true;
                }
            }
            self.recorder
                .update(|r| r.function_outputs.push((call_id, output)));
        }
        if let Some(text) = item.transcript() {
            self.usage.history_text_tokens += text.chars().count() as u64 / 4 + 1;
        }
        let id = match item.id.clone() {
            Some(id) => id,
            None => self.ids.make("item"),
        };
        item.id = Some(id.clone());
        item.status.get_or_insert(ItemStatus::Completed);
        item.extra.extend(realtime_item_extra());
        let previous = previous_item_id.or_else(|| self.conversation.last_id());
        self.conversation
            .insert(item.clone(), None, previous.as_deref());
        let added = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id: previous.clone(),
            item: item.clone(),
        };
        self.emit(out, ServerEvent::ConversationItemAdded(added));
        let done = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id: previous,
            item,
        };
        self.emit(out, ServerEvent::ConversationItemDone(done));
    }

    pub(super) fn on_truncate(
        &mut self,
        event_id: Option<String>,
        item_id: String,
        content_index: u32,
        audio_end_ms: u64,
        out: &mut Outbox,
    ) {
        let result = match self.conversation.position(&item_id) {
            None => Err(ApiError::item_not_found(&item_id, "item_id")),
            Some(index) => {
                let entry = &mut self.conversation.entries[index];
                match entry.audio_ms {
                    None => Err(ApiError::not_truncatable()),
                    Some(_) if content_index != 0 => Err(ApiError::invalid_value(
                        format!(
                            "Invalid content_index {content_index}: the item has one audio part"
                        ),
                        "content_index",
                    )),
                    Some(audio_ms) if audio_end_ms > audio_ms => {
                        Err(ApiError::already_shorter(audio_ms, audio_end_ms))
                    }
                    Some(_) => {
                        entry.audio_ms = Some(audio_end_ms);
                        for part in entry.item.content.iter_mut().flatten() {
                            part.transcript = None;
                        }
                        Ok(())
                    }
                }
            }
        };
        let accepted = result.is_ok();
        let record = Truncation {
            item_id: item_id.clone(),
            audio_end_ms,
            accepted,
        };
        self.recorder.update(|r| r.truncations.push(record));
        match result {
            Err(error) => self.send_error(out, error.for_event(event_id)),
            Ok(()) => {
                let truncated = ItemTruncated {
                    event_id: self.ids.event(),
                    item_id,
                    content_index,
                    audio_end_ms,
                };
                self.emit(out, ServerEvent::ConversationItemTruncated(truncated));
            }
        }
    }

    pub(super) fn on_item_delete(
        &mut self,
        event_id: Option<String>,
        item_id: String,
        out: &mut Outbox,
    ) {
        let Some(index) = self.conversation.position(&item_id) else {
            let error = ApiError::item_not_found(&item_id, "item_id");
            self.send_error(out, error.for_event(event_id));
            return;
        };
        self.conversation.entries.remove(index);
        let deleted = ItemDeleted {
            event_id: self.ids.event(),
            item_id,
        };
        self.emit(out, ServerEvent::ConversationItemDeleted(deleted));
    }

    pub(super) fn on_item_retrieve(
        &mut self,
        event_id: Option<String>,
        item_id: String,
        out: &mut Outbox,
    ) {
        let Some(index) = self.conversation.position(&item_id) else {
            let error = ApiError::item_not_found(&item_id, "item_id");
            self.send_error(out, error.for_event(event_id));
            return;
        };
        let retrieved = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id: None,
            item: self.conversation.entries[index].item.clone(),
        };
        self.emit(out, ServerEvent::ConversationItemRetrieved(retrieved));
    }
}
