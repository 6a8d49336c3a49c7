//! Twilio's playout queue for one Media Stream, as a pure model with an injected clock
//! (docs/protocols.md §1.3 and §4): what the caller hears, and when each mark is echoed.
//!
//! - `media` from the application is appended to a queue. A playhead consumes the queue in
//!   real time, 8 µ-law bytes per millisecond (125 µs per byte), from the moment audio
//!   arrives at an idle queue; while the queue is empty the line is silent and the playhead
//!   simply follows the clock.
//! - A `mark` is queued behind the audio sent before it and echoed when the playhead
//!   reaches it, i.e. when that audio has finished playing; at once if nothing is queued.
//! - `clear` drops every queued byte and echoes **all** pending marks at once, in order.
//! - More than ten minutes of queued audio is refused (Twilio's warning 31931).
//!
//! Every call takes `now`, the time since the stream started, and first plays the queue up
//! to it. Echoes that come due are collected and handed out by [`Playback::take_ready`]; the
//! async side (`caller/stream.rs`) sends them, and asks [`Playback::next_due`] when to wake
//! up next. Nothing here reads a clock, spawns or does I/O, so `playback/tests.rs` drives it
//! with a fake clock.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use super::audio::bytes_duration;
use super::record::as_ms;

/// Time one µ-law byte plays, in nanoseconds (8000 bytes per second).
const NANOS_PER_BYTE: u64 = 125_000;

/// Most audio Twilio keeps queued: about ten minutes (docs/protocols.md §1.3, warning 31931).
pub const MAX_QUEUED_BYTES: u64 = 10 * 60 * 8000;

/// The playout queue of one stream, plus what it has played and echoed so far.
#[derive(Debug, Clone)]
pub struct Playback {
    queue: VecDeque<Queued>,
    queued_bytes: u64,
    /// Model time up to which the queue has been played.
    playhead: Duration,
    keep_audio: bool,
    heard: HeardAudio,
    echoes: Vec<MarkEcho>,
    ready: Vec<MarkEcho>,
    clears: Vec<ClearRecord>,
}

/// One mark echoed back to the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkEcho {
    /// The mark's `name`, as sent.
    pub name: String,
    /// When the mark arrived (stream time).
    #[serde(serialize_with = "as_ms")]
    pub enqueued_at: Duration,
    /// Audio still queued ahead of the mark when it arrived, i.e. how long after
    /// `enqueued_at` it was due.
    #[serde(serialize_with = "as_ms")]
    pub audio_ahead: Duration,
    /// When it was echoed (stream time): never before `enqueued_at + audio_ahead` unless
    /// `by_clear`.
    #[serde(serialize_with = "as_ms")]
    pub echoed_at: Duration,
    /// Echoed because of a `clear`, its audio never played.
    pub by_clear: bool,
    /// Bytes the caller had heard on this stream when it was echoed.
    pub heard_bytes: u64,
}

/// One `clear` from the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearRecord {
    /// When it arrived (stream time).
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    /// Queued bytes it dropped (never heard).
    pub dropped_bytes: u64,
    /// Marks it echoed at once.
    pub flushed_marks: usize,
}

/// The audio the caller actually heard on a stream, in play order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeardAudio {
    /// Stretches of uninterrupted playout.
    pub spans: Vec<HeardSpan>,
    /// Bytes heard in all (8 per ms).
    pub total_bytes: u64,
}

/// A stretch of audio played without a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeardSpan {
    /// When it started playing (stream time).
    #[serde(serialize_with = "as_ms")]
    pub start: Duration,
    /// Bytes played.
    pub len: u64,
    /// The µ-law bytes, when audio is kept (empty otherwise); not serialized.
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// Audio refused because the queue already holds [`MAX_QUEUED_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("playout queue full: {queued_bytes} bytes queued, {refused_bytes} refused")]
pub struct QueueFull {
    /// Bytes already queued.
    pub queued_bytes: u64,
    /// Bytes of the refused media.
    pub refused_bytes: u64,
}

#[derive(Debug, Clone)]
enum Queued {
    Audio {
        /// The bytes, when audio is kept; empty otherwise.
        bytes: Vec<u8>,
        len: u64,
        played: u64,
    },
    Mark {
        name: String,
        enqueued_at: Duration,
        audio_ahead: Duration,
    },
}

// === impl Playback ===

impl Playback {
    /// An idle queue at stream time zero. With `keep_audio`, the heard bytes are kept (for
    /// tests and recordings); without it only their amount and timing are.
    pub fn new(keep_audio: bool) -> Self {
        Self {
            queue: VecDeque::new(),
            queued_bytes: 0,
            playhead: Duration::ZERO,
            keep_audio,
            heard: HeardAudio::default(),
            echoes: Vec::new(),
            ready: Vec::new(),
            clears: Vec::new(),
        }
    }

    /// Plays the queue up to `now`, echoing the marks whose audio has finished.
    pub fn advance(&mut self, now: Duration) {
        while let Some(front) = self.queue.front_mut() {
            match front {
                Queued::Mark { .. } => {
                    if let Some(Queued::Mark {
                        name,
                        enqueued_at,
                        audio_ahead,
                    }) = self.queue.pop_front()
                    {
                        self.echo(name, enqueued_at, audio_ahead, now, false);
                    }
                }
                Queued::Audio { bytes, len, played } => {
                    let elapsed = now.saturating_sub(self.playhead);
                    let playable = elapsed_bytes(elapsed);
                    if playable == 0 {
                        return;
                    }
                    let count = playable.min(*len - *played);
                    let start = self.playhead;
                    let chunk = if bytes.is_empty() {
                        &[][..]
                    } else {
                        // played + count ≤ len = bytes.len(), both in memory.
                        &bytes[*played as usize..(*played + count) as usize]
                    };
                    record_heard(&mut self.heard, start, count, chunk, self.keep_audio);
                    *played += count;
                    self.queued_bytes -= count;
                    self.playhead += bytes_duration_exact(count);
                    if *played == *len {
                        self.queue.pop_front();
                    }
                }
            }
        }
        // Idle: the line is silent and the playhead follows the clock.
        self.playhead = self.playhead.max(now);
    }

    /// A `media` message's decoded µ-law arrived at `now`: queue it behind what is queued.
    pub fn push_audio(&mut self, now: Duration, audio: &[u8]) -> Result<(), QueueFull> {
        self.advance(now);
        let len = audio.len() as u64;
        if self.queued_bytes + len > MAX_QUEUED_BYTES {
            return Err(QueueFull {
                queued_bytes: self.queued_bytes,
                refused_bytes: len,
            });
        }
        if len == 0 {
            return Ok(());
        }
        self.queue.push_back(Queued::Audio {
            bytes: if self.keep_audio {
                audio.to_vec()
            } else {
                Vec::new()
            },
            len,
            played: 0,
        });
        self.queued_bytes += len;
        Ok(())
    }

    /// A `mark` arrived at `now`: echo it once the audio queued before it has played, at once
    /// if nothing is queued.
    pub fn push_mark(&mut self, now: Duration, name: &str) {
        self.advance(now);
        let due = self.playhead + bytes_duration_exact(self.queued_bytes);
        let audio_ahead = due.saturating_sub(now);
        if self.queue.is_empty() {
            self.echo(name.to_owned(), now, Duration::ZERO, now, false);
            return;
        }
        self.queue.push_back(Queued::Mark {
            name: name.to_owned(),
            enqueued_at: now,
            audio_ahead,
        });
    }

    /// A `clear` arrived at `now`: drop the queued audio and echo every pending mark at once.
    pub fn clear(&mut self, now: Duration) {
        self.advance(now);
        let mut flushed_marks = 0;
        let dropped_bytes = self.queued_bytes;
        for queued in std::mem::take(&mut self.queue) {
            if let Queued::Mark {
                name,
                enqueued_at,
                audio_ahead,
            } = queued
            {
                flushed_marks += 1;
                self.echo(name, enqueued_at, audio_ahead, now, true);
            }
        }
        self.queued_bytes = 0;
        self.playhead = now;
        self.clears.push(ClearRecord {
            at: now,
            dropped_bytes,
            flushed_marks,
        });
    }

    /// The echoes that came due since the last call, in order, for the caller to send.
    pub fn take_ready(&mut self) -> Vec<MarkEcho> {
        std::mem::take(&mut self.ready)
    }

    /// When the next queued mark comes due (stream time), if one is queued.
    pub fn next_due(&self) -> Option<Duration> {
        let mut ahead = 0u64;
        for queued in &self.queue {
            match queued {
                Queued::Audio { len, played, .. } => ahead += len - played,
                Queued::Mark { .. } => return Some(self.playhead + bytes_duration_exact(ahead)),
            }
        }
        None
    }

    /// Bytes queued and not yet played.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }

    /// Names of the marks still waiting for their audio, in order.
    pub fn pending_marks(&self) -> Vec<String> {
        self.queue
            .iter()
            .filter_map(|queued| match queued {
                Queued::Mark { name, .. } => Some(name.clone()),
                Queued::Audio { .. } => None,
            })
            .collect()
    }

    /// What the caller has heard so far.
    pub fn heard(&self) -> &HeardAudio {
        &self.heard
    }

    /// Every mark echoed so far, in echo order.
    pub fn echoes(&self) -> &[MarkEcho] {
        &self.echoes
    }

    /// Every `clear` so far.
    pub fn clears(&self) -> &[ClearRecord] {
        &self.clears
    }

    fn echo(
        &mut self,
        name: String,
        enqueued_at: Duration,
        audio_ahead: Duration,
        now: Duration,
        by_clear: bool,
    ) {
        let echo = MarkEcho {
            name,
            enqueued_at,
            audio_ahead,
            echoed_at: now,
            by_clear,
            heard_bytes: self.heard.total_bytes,
        };
        self.echoes.push(echo.clone());
        self.ready.push(echo);
    }
}

// === impl HeardAudio ===

impl HeardAudio {
    /// All heard bytes in play order (empty when audio was not kept).
    pub fn concat(&self) -> Vec<u8> {
        self.spans
            .iter()
            .flat_map(|span| span.bytes.iter().copied())
            .collect()
    }

    /// How long the caller heard audio in all.
    pub fn duration(&self) -> Duration {
        bytes_duration(self.total_bytes)
    }
}

fn record_heard(heard: &mut HeardAudio, start: Duration, count: u64, chunk: &[u8], keep: bool) {
    heard.total_bytes += count;
    if let Some(last) = heard.spans.last_mut() {
        if last.start + bytes_duration_exact(last.len) == start {
            last.len += count;
            if keep {
                last.bytes.extend_from_slice(chunk);
            }
            return;
        }
    }
    heard.spans.push(HeardSpan {
        start,
        len: count,
        bytes: if keep { chunk.to_vec() } else { Vec::new() },
    });
}

/// Whole bytes that play in `elapsed`.
fn elapsed_bytes(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos() / u128::from(NANOS_PER_BYTE)).unwrap_or(u64::MAX)
}

/// Exact playing time of `bytes` (125 µs each).
fn bytes_duration_exact(bytes: u64) -> Duration {
    Duration::from_nanos(bytes.saturating_mul(NANOS_PER_BYTE))
}

#[cfg(test)]
mod tests;
