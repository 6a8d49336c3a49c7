//! The output items of a response: a spoken (or written) reply, one chunk
//! per step, and a function call, each with its `output_item` and
//! `conversation.item` events.

use switchboard_realtime::server_event::{
    AudioDelta, ContentDone, ContentPartEvent, FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone, ItemEvent, OutputItemEvent, TextDelta, TextDone, TranscriptDone,
};
use switchboard_realtime::{ContentType, Item, ItemStatus, ItemType, Role, ServerEvent};

use super::{ActiveResponse, Speaking};
use crate::openai::script::{FunctionCall, Reply};
use crate::openai::session::conversation::{part, realtime_item_extra};
use crate::openai::session::{Outbox, Pending, SessionCore};

impl SessionCore {
    pub(super) fn begin_speech(
        &mut self,
        active: &mut ActiveResponse,
        reply: &Reply,
        out: &mut Outbox,
    ) {
        let item_id = self.ids.make("item");
        let output_index = active.next_output_index;
        active.next_output_index += 1;
        let item = Item {
            id: Some(item_id.clone()),
            kind: ItemType::Message,
            role: Some(Role::Assistant),
            status: Some(ItemStatus::InProgress),
            content: Some(Vec::new()),
            call_id: None,
            name: None,
            arguments: None,
            output: None,
            extra: realtime_item_extra(),
        };
        self.add_output_item(active, item, output_index, active.audio.then_some(0), out);
        let mut content_part = part(if active.audio {
            ContentType::Audio
        } else {
            ContentType::Text
        });
        if active.audio {
            content_part.transcript = Some(String::new());
        } else {
            content_part.text = Some(String::new());
        }
        let added = ContentPartEvent {
            event_id: self.ids.event(),
            response_id: active.id.clone(),
            item_id: item_id.clone(),
            output_index,
            content_index: 0,
            part: content_part,
        };
        self.emit(out, ServerEvent::ResponseContentPartAdded(added));

        let total_ms = reply.duration_ms();
        let chunk = u64::from(self.chunk_ms);
        let chunks = total_ms.div_ceil(chunk).max(1);
        let chunk_ms = (0..chunks)
            .map(|i| chunk.min(total_ms.saturating_sub(i * chunk)))
            .collect();
        active.speaking = Some(Speaking {
            item_id,
            output_index,
            pieces: split_text(&reply.text, chunks as usize),
            chunk_ms,
            next: 0,
            transcript: String::new(),
        });
    }

    pub(super) fn send_chunk(&mut self, active: &mut ActiveResponse, out: &mut Outbox) -> u64 {
        let Some(speaking) = active.speaking.as_mut() else {
            return 0;
        };
        let index = speaking.next;
        speaking.next += 1;
        let ms = speaking.chunk_ms[index];
        let ids = [active.id.clone(), speaking.item_id.clone()];
        if active.audio && ms > 0 {
            let delta = AudioDelta {
                event_id: self.ids.event().into(),
                response_id: ids[0].clone().into(),
                item_id: ids[1].clone().into(),
                output_index: speaking.output_index,
                content_index: 0,
                delta: self.tone.chunk(ms as u32).into_owned().into(),
            };
            self.emit(out, ServerEvent::ResponseOutputAudioDelta(delta));
            self.conversation.add_audio(&speaking.item_id, ms);
            self.assistant_audio_sent = true;
            active.audio_ms += ms;
        }
        let piece = std::mem::take(&mut speaking.pieces[index]);
        if !piece.is_empty() {
            speaking.transcript.push_str(&piece);
            let delta = TextDelta {
                event_id: self.ids.event().into(),
                response_id: ids[0].clone().into(),
                item_id: ids[1].clone().into(),
                output_index: speaking.output_index,
                content_index: 0,
                delta: piece.into(),
            };
            self.emit(
                out,
                if active.audio {
                    ServerEvent::ResponseOutputAudioTranscriptDelta(delta)
                } else {
                    ServerEvent::ResponseOutputTextDelta(delta)
                },
            );
        }
        if active.audio {
            ms
        } else {
            0
        }
    }

    pub(super) fn finish_speech(
        &mut self,
        active: &mut ActiveResponse,
        status: ItemStatus,
        out: &mut Outbox,
    ) {
        let Some(speaking) = active.speaking.take() else {
            return;
        };
        let (response_id, item_id) = (active.id.clone(), speaking.item_id.clone());
        let output_index = speaking.output_index;
        let text = speaking.transcript;
        let mut final_part = part(if active.audio {
            ContentType::Audio
        } else {
            ContentType::Text
        });
        let mut item_part = part(if active.audio {
            ContentType::OutputAudio
        } else {
            ContentType::OutputText
        });
        if active.audio {
            let done = ContentDone {
                event_id: self.ids.event(),
                response_id: response_id.clone(),
                item_id: item_id.clone(),
                output_index,
                content_index: 0,
            };
            self.emit(out, ServerEvent::ResponseOutputAudioDone(done));
            let done = TranscriptDone {
                event_id: self.ids.event(),
                response_id: response_id.clone(),
                item_id: item_id.clone(),
                output_index,
                content_index: 0,
                transcript: text.clone(),
            };
            self.emit(out, ServerEvent::ResponseOutputAudioTranscriptDone(done));
            final_part.transcript = Some(text.clone());
            item_part.transcript = Some(text.clone());
        } else {
            let done = TextDone {
                event_id: self.ids.event(),
                response_id: response_id.clone(),
                item_id: item_id.clone(),
                output_index,
                content_index: 0,
                text: text.clone(),
            };
            self.emit(out, ServerEvent::ResponseOutputTextDone(done));
            final_part.text = Some(text.clone());
            item_part.text = Some(text.clone());
        }
        let part_done = ContentPartEvent {
            event_id: self.ids.event(),
            response_id,
            item_id: item_id.clone(),
            output_index,
            content_index: 0,
            part: final_part,
        };
        self.emit(out, ServerEvent::ResponseContentPartDone(part_done));
        let item = Item {
            id: Some(item_id),
            kind: ItemType::Message,
            role: Some(Role::Assistant),
            status: Some(status),
            content: Some(vec![item_part]),
            call_id: None,
            name: None,
            arguments: None,
            output: None,
            extra: realtime_item_extra(),
        };
        active.text_chars += text.chars().count() as u64;
        self.done_output_item(active, item, output_index, out);
    }

    pub(super) fn send_call(
        &mut self,
        active: &mut ActiveResponse,
        call: &FunctionCall,
        out: &mut Outbox,
    ) {
        let item_id = self.ids.make("item");
        let call_id = self.ids.make("call");
        let output_index = active.next_output_index;
        active.next_output_index += 1;
        let arguments = call.arguments_json();
        let mut item = Item {
            id: Some(item_id.clone()),
            kind: ItemType::FunctionCall,
            role: None,
            status: Some(ItemStatus::InProgress),
            content: None,
            call_id: Some(call_id.clone()),
            name: Some(call.name.clone()),
            arguments: Some(String::new()),
            output: None,
            extra: realtime_item_extra(),
        };
        self.add_output_item(active, item.clone(), output_index, None, out);
        let delta = FunctionCallArgumentsDelta {
            event_id: self.ids.event(),
            response_id: active.id.clone(),
            item_id: item_id.clone(),
            output_index,
            call_id: call_id.clone(),
            delta: arguments.clone(),
        };
        self.emit(out, ServerEvent::ResponseFunctionCallArgumentsDelta(delta));
        let done = FunctionCallArgumentsDone {
            event_id: self.ids.event(),
            response_id: active.id.clone(),
            item_id,
            output_index,
            call_id: call_id.clone(),
            name: Some(call.name.clone()),
            arguments: arguments.clone(),
        };
        self.emit(out, ServerEvent::ResponseFunctionCallArgumentsDone(done));
        item.status = Some(ItemStatus::Completed);
        item.arguments = Some(arguments);
        active.text_chars += call.name.len() as u64;
        self.done_output_item(active, item, output_index, out);
        if let Some(turn) = active.turn {
            self.pending = Pending::AfterCall {
                turn,
                call_id,
                output_received: false,
            };
        }
    }

    /// `response.output_item.added` + `conversation.item.added`.
    pub(super) fn add_output_item(
        &mut self,
        active: &ActiveResponse,
        item: Item,
        output_index: u32,
        audio_ms: Option<u64>,
        out: &mut Outbox,
    ) {
        let added = OutputItemEvent {
            event_id: self.ids.event(),
            response_id: active.id.clone(),
            output_index,
            item: item.clone(),
        };
        self.emit(out, ServerEvent::ResponseOutputItemAdded(added));
        let previous_item_id = self.conversation.last_id();
        self.conversation.insert(item.clone(), audio_ms, None);
        let added = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id,
            item,
        };
        self.emit(out, ServerEvent::ConversationItemAdded(added));
    }

    /// `response.output_item.done` + `conversation.item.done`.
    pub(super) fn done_output_item(
        &mut self,
        active: &mut ActiveResponse,
        item: Item,
        output_index: u32,
        out: &mut Outbox,
    ) {
        let id = item.id.clone().unwrap_or_default();
        let previous_item_id = self.conversation.previous_of(&id);
        self.conversation.replace(item.clone());
        let done = OutputItemEvent {
            event_id: self.ids.event(),
            response_id: active.id.clone(),
            output_index,
            item: item.clone(),
        };
        self.emit(out, ServerEvent::ResponseOutputItemDone(done));
        let done = ItemEvent {
            event_id: self.ids.event(),
            previous_item_id,
            item: item.clone(),
        };
        self.emit(out, ServerEvent::ConversationItemDone(done));
        active.output.push(item);
    }
}

/// `text` cut into `pieces` runs of characters, as even as possible.
fn split_text(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let pieces = pieces.max(1);
    (0..pieces)
        .map(|i| {
            let start = i * chars.len() / pieces;
            let end = (i + 1) * chars.len() / pieces;
            chars[start..end].iter().collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::split_text;

    #[test]
    fn text_is_split_evenly_on_char_boundaries() {
        assert_eq!(split_text("abcdef", 3), vec!["ab", "cd", "ef"]);
        assert_eq!(split_text("ありがとう", 2), vec!["あり", "がとう"]);
        assert_eq!(split_text("ab", 4), vec!["", "a", "", "b"]);
        assert_eq!(split_text("", 0), vec![""]);
    }
}
