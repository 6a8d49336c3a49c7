//! Barge-in bookkeeping: how much of the assistant's audio the caller has
//! actually heard, from the marks Twilio echoes (docs/protocols.md §4.3).
//!
//! Every assistant audio chunk relayed to Twilio is followed by a mark named
//! `g{generation}:{item_id}:{sent_ms}`. Twilio echoes a mark when the audio
//! before it has played, and echoes every pending mark at once after a
//! `clear`; the generation (bumped on each `clear`) tells those flushed
//! echoes apart. On `input_audio_buffer.speech_started` [`Playback::barge_in`]
//! says whether anything is audible and, if so, the item and `audio_end_ms`
//! for `conversation.item.truncate`:
//!
//! `audio_end_ms = clamp(played_ms[I] + (now − t0), played_ms[I], sent_ms[I])`
//!
//! where `I` is the item of the oldest pending mark, `played_ms[I]` the end
//! of its last echoed mark (0 if none) and `t0` the moment `I`'s unplayed
//! audio could start playing: the later of the last echo (of `I`, or of the
//! item before it) and the send time of the oldest pending chunk. When `I` has
//! no echo yet that chunk is `I`'s first, so `t0` is when `I` could first
//! play; the oldest pending chunk's send time also covers Twilio running dry
//! between two chunks of one item.
//!
//! Pure: the caller passes its monotonic clock as milliseconds.

use std::collections::VecDeque;
use std::fmt;

/// Muted ids kept per kind; late deltas arrive within a second, so old
/// entries can go.
const MUTED_CAP: usize = 32;

/// Decoded length of a base64 string: `(len − padding) · 3 / 4` (the same as
/// `len/4·3 − padding` for padded input; tolerates missing padding).
pub fn base64_decoded_len(base64: &str) -> u64 {
    let padding = base64
        .bytes()
        .rev()
        .take(2)
        .take_while(|&b| b == b'=')
        .count();
    let significant = base64.len().saturating_sub(padding) as u64;
    significant.saturating_mul(3) / 4
}

/// Duration in ms of base64 G.711 µ-law (8 bytes = 1 ms).
pub fn mulaw_duration_ms(base64: &str) -> u64 {
    base64_decoded_len(base64) / 8
}

/// The name of the mark to send right after a chunk:
/// `g{generation}:{item_id}:{end_ms}`. Format it with `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkName<'a> {
    /// Generation (bumped on each `clear`).
    pub generation: u32,
    /// The assistant item.
    pub item_id: &'a str,
    /// Audio of the item sent so far, ms, up to the end of this chunk.
    pub end_ms: u64,
}

impl fmt::Display for MarkName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}:{}:{}", self.generation, self.item_id, self.end_ms)
    }
}

impl<'a> MarkName<'a> {
    /// Reads a mark name; `None` if it is not one of ours.
    pub fn parse(name: &'a str) -> Option<Self> {
        let rest = name.strip_prefix('g')?;
        let (generation, rest) = rest.split_once(':')?;
        let (item_id, end_ms) = rest.rsplit_once(':')?;
        Some(Self {
            generation: generation.parse().ok()?,
            item_id,
            end_ms: end_ms.parse().ok()?,
        })
    }
}

/// What a mark echo meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkEcho {
    /// The audio up to the mark has played.
    Played {
        /// Audio of the item heard so far, ms.
        played_ms: u64,
    },
    /// Flushed by a `clear` (older generation): ignored.
    Stale,
    /// Not a mark of this tracker, or already accounted for: ignored.
    Foreign,
}

/// What to do about a barge-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// The assistant item to truncate (content index 0).
    pub item_id: String,
    /// `audio_end_ms` for `conversation.item.truncate`: what the caller
    /// heard, never more than was sent.
    pub audio_end_ms: u64,
}

#[derive(Debug)]
struct ItemPlayback {
    seq: u64,
    item_id: String,
    sent_bytes: u64,
    played_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct PendingMark {
    item_seq: u64,
    end_ms: u64,
    sent_at: u64,
}

/// Playback tracker of one call. See the module docs.
#[derive(Debug)]
pub struct Playback {
    generation: u32,
    next_seq: u64,
    items: VecDeque<ItemPlayback>,
    pending: VecDeque<PendingMark>,
    last_echo_at: Option<u64>,
    streaming: Option<(String, String)>,
    muted_items: VecDeque<String>,
    muted_responses: VecDeque<String>,
}

impl Default for Playback {
    fn default() -> Self {
        Self::new()
    }
}

impl Playback {
    /// A tracker at generation 1 with nothing sent.
    pub fn new() -> Self {
        Self {
            generation: 1,
            next_seq: 0,
            items: VecDeque::new(),
            pending: VecDeque::new(),
            last_echo_at: None,
            streaming: None,
            muted_items: VecDeque::new(),
            muted_responses: VecDeque::new(),
        }
    }

    /// The current generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Marks sent and not yet echoed: audio may still be playing.
    pub fn pending_marks(&self) -> usize {
        self.pending.len()
    }

    /// Whether deltas of this item or response must be dropped (it was
    /// interrupted).
    pub fn is_muted(&self, item_id: &str, response_id: &str) -> bool {
        self.muted_items.iter().any(|id| id == item_id)
            || self.muted_responses.iter().any(|id| id == response_id)
    }

    /// Records an audio delta about to be relayed. `None`: the item or
    /// response was interrupted; drop the delta (send nothing). Otherwise
    /// send the media, then a mark with the returned name.
    pub fn push_chunk(
        &mut self,
        item_id: &str,
        response_id: &str,
        audio_base64: &str,
        now_ms: u64,
    ) -> Option<MarkName<'_>> {
        if self.is_muted(item_id, response_id) {
            return None;
        }
        if self
            .streaming
            .as_ref()
            .is_none_or(|(r, i)| r != response_id || i != item_id)
        {
            self.streaming = Some((response_id.to_owned(), item_id.to_owned()));
        }
        let index = match self.items.iter().rposition(|i| i.item_id == item_id) {
            Some(index) => index,
            None => {
                self.items.push_back(ItemPlayback {
                    seq: self.next_seq,
                    item_id: item_id.to_owned(),
                    sent_bytes: 0,
                    played_ms: 0,
                });
                self.next_seq += 1;
                self.items.len() - 1
            }
        };
        let item = &mut self.items[index];
        item.sent_bytes = item
            .sent_bytes
            .saturating_add(base64_decoded_len(audio_base64));
        let end_ms = item.sent_bytes / 8;
        self.pending.push_back(PendingMark {
            item_seq: item.seq,
            end_ms,
            sent_at: now_ms,
        });
        Some(MarkName {
            generation: self.generation,
            item_id: &self.items[index].item_id,
            end_ms,
        })
    }

    /// Records a mark echoed by Twilio.
    pub fn on_mark(&mut self, name: &str, now_ms: u64) -> MarkEcho {
        let Some(mark) = MarkName::parse(name) else {
            return MarkEcho::Foreign;
        };
        if mark.generation != self.generation {
            return MarkEcho::Stale;
        }
        let Some(item) = self.items.iter().find(|i| i.item_id == mark.item_id) else {
            return MarkEcho::Foreign;
        };
        let seq = item.seq;
        let Some(position) = self
            .pending
            .iter()
            .position(|p| p.item_seq == seq && p.end_ms == mark.end_ms)
        else {
            return MarkEcho::Foreign;
        };
        // Twilio echoes in order; anything queued before this mark has played.
        self.pending.drain(..=position);
        self.last_echo_at = Some(now_ms);
        let played_ms = mark.end_ms;
        if let Some(item) = self.items.iter_mut().find(|i| i.seq == seq) {
            item.played_ms = played_ms;
        }
        self.forget_played_items();
        MarkEcho::Played { played_ms }
    }

    /// Records that a response finished streaming (`response.done`).
    pub fn response_done(&mut self, response_id: &str) {
        if self
            .streaming
            .as_ref()
            .is_some_and(|(r, _)| r == response_id)
        {
            self.streaming = None;
        }
    }

    /// The caller started speaking (`input_audio_buffer.speech_started`) at
    /// `now_ms`. `cancelling_response`: the streaming response is being
    /// cancelled (server VAD with `interrupt_response`, or we send
    /// `response.cancel`), so its late deltas are muted.
    ///
    /// `None`: nothing is audible — no `clear`, no truncate. `Some`: send
    /// Twilio `clear` and `conversation.item.truncate`; the tracker has moved
    /// to the next generation and muted every item whose audio was cleared.
    pub fn barge_in(&mut self, now_ms: u64, cancelling_response: bool) -> Option<Interruption> {
        if cancelling_response {
            if let Some((response_id, item_id)) = self.streaming.take() {
                push_capped(&mut self.muted_responses, response_id);
                push_capped(&mut self.muted_items, item_id);
            }
        }
        let oldest = *self.pending.front()?;
        let item = self.items.iter().find(|i| i.seq == oldest.item_seq)?;
        let sent_ms = item.sent_bytes / 8;
        let played_ms = item.played_ms.min(sent_ms);
        let t0 = self.last_echo_at.unwrap_or(0).max(oldest.sent_at);
        let audio_end_ms = played_ms
            .saturating_add(now_ms.saturating_sub(t0))
            .clamp(played_ms, sent_ms);
        let interruption = Interruption {
            item_id: item.item_id.clone(),
            audio_end_ms,
        };
        // Everything pending is flushed by the clear: none of it will play.
        let cleared: Vec<u64> = self.pending.iter().map(|p| p.item_seq).collect();
        for item in self.items.iter().filter(|i| cleared.contains(&i.seq)) {
            if !self.muted_items.contains(&item.item_id) {
                push_capped(&mut self.muted_items, item.item_id.clone());
            }
        }
        self.generation = self.generation.wrapping_add(1);
        self.pending.clear();
        self.items.clear();
        self.last_echo_at = None;
        Some(interruption)
    }

    /// Drops state of items that are fully played and not the newest.
    fn forget_played_items(&mut self) {
        while self.items.len() > 1 {
            let Some(front) = self.items.front() else {
                break;
            };
            if self.pending.iter().any(|p| p.item_seq == front.seq) {
                break;
            }
            self.items.pop_front();
        }
    }
}

fn push_capped(list: &mut VecDeque<String>, id: String) {
    if list.len() == MUTED_CAP {
        list.pop_front();
    }
    list.push_back(id);
}

#[cfg(test)]
mod tests;
