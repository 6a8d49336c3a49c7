//! Twilio Media Streams messages on a bidirectional `<Connect><Stream>` (docs/protocols.md §1):
//! `connected`/`start`/`media`/`mark`/`dtmf`/`stop` from Twilio, `media`/`mark`/`clear` to it.
//!
//! It is a codec, not a connection: text in, [`InboundMessage`] or [`ParseError`] out; a
//! message plus a `&mut String` in, JSON appended. The media path is hot, so parsing borrows
//! the base64 payload and every other string from the input (no per-frame allocation unless
//! a string carries a JSON escape) and encoding writes straight into the caller's buffer, with
//! no JSON DOM either way. The payload stays an opaque base64 string: nothing here decodes
//! audio; [`payload_duration_ms`] counts it without decoding.
//!
//! Both directions are here because the Twilio simulator speaks Twilio's side with the same
//! code: [`InboundMessage::encode`] writes Twilio's shapes and [`parse_outbound`] reads ours.
//! Who may send what, and when, is the caller's business (`media-sidecar/src/call/core.rs`).
//! Reading is in `media_stream/parse.rs`, writing in `media_stream/encode.rs`.

use std::borrow::Cow;
use std::collections::BTreeMap;

mod encode;
mod parse;

pub use encode::{encode_clear, encode_mark, encode_media};
pub use parse::{parse_inbound, parse_outbound};

/// Largest text frame [`parse_inbound`] and [`parse_outbound`] accept, in bytes. Twilio's
/// frames are ~400 bytes; anything near this size is not Twilio.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// G.711 µ-law at 8 kHz mono: one byte per sample, so 8 bytes per millisecond.
pub const ULAW_BYTES_PER_MS: u64 = 8;

/// The µ-law byte that decodes to silence.
pub const ULAW_SILENCE_BYTE: u8 = 0xFF;

/// A message Twilio sends us, borrowing its strings from the frame's text where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundMessage<'a> {
    /// `connected`: the first frame; carries no `streamSid` and no `sequenceNumber`.
    Connected(Connected<'a>),
    /// `start`: sent once; from here on the stream has a `streamSid`.
    Start(Start<'a>),
    /// `media`: one chunk of the caller's audio, ~20 ms.
    Media(Media<'a>),
    /// `mark`: the echo of a mark we sent (played, or flushed by `clear`).
    Mark(Mark<'a>),
    /// `dtmf`: the caller pressed a key.
    Dtmf(Dtmf<'a>),
    /// `stop`: the stream is over; Twilio closes the socket next.
    Stop(Stop<'a>),
    /// A well-formed frame whose `event` this crate does not know: count it and skip it.
    Unknown {
        /// The frame's `event` value.
        event: Cow<'a, str>,
    },
}

/// The `connected` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected<'a> {
    /// `protocol`, `"Call"`.
    pub protocol: Cow<'a, str>,
    /// `version`, `"1.0.0"`.
    pub version: Cow<'a, str>,
}

/// The `start` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start<'a> {
    /// `sequenceNumber`, `1` on a normal stream.
    pub sequence_number: u64,
    /// `streamSid` (`MZ…`); the top-level one, or `start.streamSid` if that is all there is.
    pub stream_sid: Cow<'a, str>,
    /// `start.accountSid` (`AC…`).
    pub account_sid: Cow<'a, str>,
    /// `start.callSid` (`CA…`).
    pub call_sid: Cow<'a, str>,
    /// `start.tracks`, `["inbound"]` on `<Connect><Stream>`.
    pub tracks: Vec<Cow<'a, str>>,
    /// `start.customParameters`: the `<Parameter>`s of the `<Stream>`; empty if none.
    pub custom_parameters: BTreeMap<String, String>,
    /// `start.mediaFormat`.
    pub media_format: MediaFormat<'a>,
}

/// `start.mediaFormat`: always µ-law, 8000 Hz, mono in practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat<'a> {
    /// `encoding`, `"audio/x-mulaw"`.
    pub encoding: Cow<'a, str>,
    /// `sampleRate`, `8000`.
    pub sample_rate: u32,
    /// `channels`, `1`.
    pub channels: u32,
}

/// The `media` message from Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// `sequenceNumber`: one counter over all messages of the stream.
    pub sequence_number: u64,
    /// `streamSid`.
    pub stream_sid: Cow<'a, str>,
    /// `media.track`, `"inbound"`.
    pub track: Cow<'a, str>,
    /// `media.chunk`: 1 for the first media message, +1 per media message.
    pub chunk: u64,
    /// `media.timestamp`: presentation time since the stream started, in ms.
    pub timestamp_ms: u64,
    /// `media.payload`: base64 of raw µ-law, passed through untouched.
    pub payload: Cow<'a, str>,
}

/// The `mark` message from Twilio: the echo of one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark<'a> {
    /// `sequenceNumber`.
    pub sequence_number: u64,
    /// `streamSid`.
    pub stream_sid: Cow<'a, str>,
    /// `mark.name`, as we sent it.
    pub name: Cow<'a, str>,
}

/// The `dtmf` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf<'a> {
    /// `sequenceNumber`.
    pub sequence_number: u64,
    /// `streamSid`.
    pub stream_sid: Cow<'a, str>,
    /// `dtmf.track`, `"inbound_track"`.
    pub track: Cow<'a, str>,
    /// `dtmf.digit`: `0`-`9`, `*` or `#`.
    pub digit: Cow<'a, str>,
}

/// The `stop` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop<'a> {
    /// `sequenceNumber`.
    pub sequence_number: u64,
    /// `streamSid`.
    pub stream_sid: Cow<'a, str>,
    /// `stop.accountSid`.
    pub account_sid: Cow<'a, str>,
    /// `stop.callSid`.
    pub call_sid: Cow<'a, str>,
}

/// A message we send Twilio, as read back by [`parse_outbound`] (the simulator's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundMessage<'a> {
    /// `media`: audio to append to Twilio's playout queue.
    Media {
        /// `streamSid`.
        stream_sid: Cow<'a, str>,
        /// `media.payload`: base64 µ-law, any length.
        payload: Cow<'a, str>,
    },
    /// `mark`: echoed by Twilio once the audio queued before it has played.
    Mark {
        /// `streamSid`.
        stream_sid: Cow<'a, str>,
        /// `mark.name`.
        name: Cow<'a, str>,
    },
    /// `clear`: drop the queued audio; Twilio echoes every outstanding mark.
    Clear {
        /// `streamSid`.
        stream_sid: Cow<'a, str>,
    },
    /// A well-formed frame with an `event` Twilio does not accept from us.
    Unknown {
        /// The frame's `event` value.
        event: Cow<'a, str>,
    },
}

/// Why a frame could not be read. The frame is rejected; the stream can go on.
///
/// Messages never quote the frame, so they cannot leak tokens or audio into logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the frame, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape (a field of the wrong type, a duplicate key).
    #[error("invalid json ({category}) at line {line} column {column}")]
    Json {
        /// `syntax`, `data` (wrong shape), `eof` (truncated) or `io`.
        category: &'static str,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A field this event requires is absent; the name is its JSON path.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A counter (`sequenceNumber`, `media.chunk`, …) is not a non-negative integer.
    #[error("field `{0}` is not a non-negative integer")]
    InvalidCounter(&'static str),
}

// === impl InboundMessage ===

impl InboundMessage<'_> {
    /// The `event` name of this message.
    pub fn event(&self) -> &str {
        match self {
            Self::Connected(_) => "connected",
            Self::Start(_) => "start",
            Self::Media(_) => "media",
            Self::Mark(_) => "mark",
            Self::Dtmf(_) => "dtmf",
            Self::Stop(_) => "stop",
            Self::Unknown { event } => event,
        }
    }

    /// `streamSid`, for every message that has one (all but `connected` and unknown ones).
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            Self::Start(m) => Some(&m.stream_sid),
            Self::Media(m) => Some(&m.stream_sid),
            Self::Mark(m) => Some(&m.stream_sid),
            Self::Dtmf(m) => Some(&m.stream_sid),
            Self::Stop(m) => Some(&m.stream_sid),
            Self::Connected(_) | Self::Unknown { .. } => None,
        }
    }

    /// `sequenceNumber`, for every message that has one.
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            Self::Start(m) => Some(m.sequence_number),
            Self::Media(m) => Some(m.sequence_number),
            Self::Mark(m) => Some(m.sequence_number),
            Self::Dtmf(m) => Some(m.sequence_number),
            Self::Stop(m) => Some(m.sequence_number),
            Self::Connected(_) | Self::Unknown { .. } => None,
        }
    }

    /// Copies every borrowed string so the message can outlive the frame's text.
    pub fn into_owned(self) -> InboundMessage<'static> {
        match self {
            Self::Connected(m) => InboundMessage::Connected(Connected {
                protocol: owned(m.protocol),
                version: owned(m.version),
            }),
            Self::Start(m) => InboundMessage::Start(Start {
                sequence_number: m.sequence_number,
                stream_sid: owned(m.stream_sid),
                account_sid: owned(m.account_sid),
                call_sid: owned(m.call_sid),
                tracks: m.tracks.into_iter().map(owned).collect(),
                custom_parameters: m.custom_parameters,
                media_format: MediaFormat {
                    encoding: owned(m.media_format.encoding),
                    sample_rate: m.media_format.sample_rate,
                    channels: m.media_format.channels,
                },
            }),
            Self::Media(m) => InboundMessage::Media(Media {
                sequence_number: m.sequence_number,
                stream_sid: owned(m.stream_sid),
                track: owned(m.track),
                chunk: m.chunk,
                timestamp_ms: m.timestamp_ms,
                payload: owned(m.payload),
            }),
            Self::Mark(m) => InboundMessage::Mark(Mark {
                sequence_number: m.sequence_number,
                stream_sid: owned(m.stream_sid),
                name: owned(m.name),
            }),
            Self::Dtmf(m) => InboundMessage::Dtmf(Dtmf {
                sequence_number: m.sequence_number,
                stream_sid: owned(m.stream_sid),
                track: owned(m.track),
                digit: owned(m.digit),
            }),
            Self::Stop(m) => InboundMessage::Stop(Stop {
                sequence_number: m.sequence_number,
                stream_sid: owned(m.stream_sid),
                account_sid: owned(m.account_sid),
                call_sid: owned(m.call_sid),
            }),
            Self::Unknown { event } => InboundMessage::Unknown {
                event: owned(event),
            },
        }
    }
}

// === impl OutboundMessage ===

impl OutboundMessage<'_> {
    /// The `event` name of this message.
    pub fn event(&self) -> &str {
        match self {
            Self::Media { .. } => "media",
            Self::Mark { .. } => "mark",
            Self::Clear { .. } => "clear",
            Self::Unknown { event } => event,
        }
    }
}

// === audio arithmetic ===

/// Number of µ-law bytes in a base64 payload, without decoding it (docs/protocols.md §1.4):
/// `len / 4 * 3 − padding`. Unpadded base64 is counted the same way.
pub fn payload_byte_len(payload_b64: &str) -> u64 {
    let padding = payload_b64
        .as_bytes()
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    let significant = (payload_b64.len() - padding) as u64;
    significant * 3 / 4
}

/// Playing time of a base64 µ-law payload in whole milliseconds (8 bytes = 1 ms), without
/// decoding it. A 216-character frame is 160 bytes, 20 ms.
pub fn payload_duration_ms(payload_b64: &str) -> u64 {
    ulaw_duration_ms(payload_byte_len(payload_b64))
}

/// Playing time of `bytes` of µ-law in whole milliseconds (8 bytes = 1 ms).
pub fn ulaw_duration_ms(bytes: u64) -> u64 {
    bytes / ULAW_BYTES_PER_MS
}

/// Base64 of `ms` milliseconds of µ-law silence (`0xFF` bytes); 20 ms is 213 `/` then `w==`.
pub fn ulaw_silence_b64(ms: u32) -> String {
    let bytes = u64::from(ms) * ULAW_BYTES_PER_MS;
    let (groups, rest) = (bytes / 3, bytes % 3);
    let len = (groups + u64::from(rest > 0)) * 4;
    let mut out = String::with_capacity(usize::try_from(len).unwrap_or(0));
    for _ in 0..groups {
        out.push_str("////");
    }
    match rest {
        1 => out.push_str("/w=="),
        2 => out.push_str("//8="),
        _ => {}
    }
    out
}

fn owned(text: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(text.into_owned())
}

#[cfg(test)]
mod tests;
