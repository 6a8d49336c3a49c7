//! Reading Media Streams frames in one serde pass over borrowed text: every field any event
//! may carry is optional in one flat shape, then each event checks what it requires, naming
//! the missing or malformed field in its error.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{
    Connected, Dtmf, InboundMessage, Mark, Media, MediaFormat, OutboundMessage, ParseError, Start,
    Stop, MAX_FRAME_BYTES,
};

/// Reads one text frame from Twilio.
///
/// Counters that Twilio sends as JSON strings (`sequenceNumber`, `media.chunk`,
/// `media.timestamp`) are returned as integers; JSON numbers are accepted too. Unknown
/// fields are ignored; an unknown `event` is [`InboundMessage::Unknown`], not an error.
/// Never panics.
pub fn parse_inbound(text: &str) -> Result<InboundMessage<'_>, ParseError> {
    const KNOWN: &[&str] = &["connected", "start", "media", "mark", "dtmf", "stop"];
    let (raw, event) = match decode(text, KNOWN)? {
        Decoded::Frame(raw, event) => (raw, event),
        Decoded::Unknown(event) => return Ok(InboundMessage::Unknown { event }),
    };
    let message = match &*event {
        "connected" => InboundMessage::Connected(Connected {
            protocol: required(raw.protocol, "protocol")?,
            version: required(raw.version, "version")?,
        }),
        "start" => InboundMessage::Start(start_from_raw(raw)?),
        "media" => {
            let sequence_number = counter(raw.sequence_number, "sequenceNumber")?;
            let stream_sid = required(raw.stream_sid, "streamSid")?;
            let media = raw.media.ok_or(ParseError::MissingField("media"))?;
            InboundMessage::Media(Media {
                sequence_number,
                stream_sid,
                track: required(media.track, "media.track")?,
                chunk: counter(media.chunk, "media.chunk")?,
                timestamp_ms: counter(media.timestamp, "media.timestamp")?,
                payload: required(media.payload, "media.payload")?,
            })
        }
        "mark" => InboundMessage::Mark(Mark {
            sequence_number: counter(raw.sequence_number, "sequenceNumber")?,
            stream_sid: required(raw.stream_sid, "streamSid")?,
            name: required(raw.mark.and_then(|mark| mark.name), "mark.name")?,
        }),
        "dtmf" => {
            let dtmf = raw.dtmf.ok_or(ParseError::MissingField("dtmf"))?;
            InboundMessage::Dtmf(Dtmf {
                sequence_number: counter(raw.sequence_number, "sequenceNumber")?,
                stream_sid: required(raw.stream_sid, "streamSid")?,
                track: required(dtmf.track, "dtmf.track")?,
                digit: required(dtmf.digit, "dtmf.digit")?,
            })
        }
        _ => {
            debug_assert_eq!(&*event, "stop");
            let stop = raw.stop.ok_or(ParseError::MissingField("stop"))?;
            InboundMessage::Stop(Stop {
                sequence_number: counter(raw.sequence_number, "sequenceNumber")?,
                stream_sid: required(raw.stream_sid, "streamSid")?,
                account_sid: required(stop.account_sid, "stop.accountSid")?,
                call_sid: required(stop.call_sid, "stop.callSid")?,
            })
        }
    };
    Ok(message)
}

/// Reads one text frame we sent Twilio (`media`, `mark`, `clear`): the simulator's side.
///
/// Lenient like Twilio, which accepts extra fields (with warning 31951) and plays the audio;
/// an unknown `event` is [`OutboundMessage::Unknown`]. Never panics.
pub fn parse_outbound(text: &str) -> Result<OutboundMessage<'_>, ParseError> {
    const KNOWN: &[&str] = &["media", "mark", "clear"];
    let (raw, event) = match decode(text, KNOWN)? {
        Decoded::Frame(raw, event) => (raw, event),
        Decoded::Unknown(event) => return Ok(OutboundMessage::Unknown { event }),
    };
    let stream_sid = required(raw.stream_sid, "streamSid")?;
    let message = match &*event {
        "media" => OutboundMessage::Media {
            stream_sid,
            payload: required(raw.media.and_then(|m| m.payload), "media.payload")?,
        },
        "mark" => OutboundMessage::Mark {
            stream_sid,
            name: required(raw.mark.and_then(|mark| mark.name), "mark.name")?,
        },
        _ => OutboundMessage::Clear { stream_sid },
    };
    Ok(message)
}

fn start_from_raw(raw: RawFrame<'_>) -> Result<Start<'_>, ParseError> {
    let sequence_number = counter(raw.sequence_number, "sequenceNumber")?;
    let start = raw.start.ok_or(ParseError::MissingField("start"))?;
    let stream_sid = required(raw.stream_sid.or(start.stream_sid), "streamSid")?;
    let format = start
        .media_format
        .ok_or(ParseError::MissingField("start.mediaFormat"))?;
    let sample_rate = counter(format.sample_rate, "start.mediaFormat.sampleRate")?;
    let channels = counter(format.channels, "start.mediaFormat.channels")?;
    Ok(Start {
        sequence_number,
        stream_sid,
        account_sid: required(start.account_sid, "start.accountSid")?,
        call_sid: required(start.call_sid, "start.callSid")?,
        tracks: start
            .tracks
            .unwrap_or_default()
            .into_iter()
            .map(|track| track.0)
            .collect(),
        custom_parameters: start.custom_parameters.unwrap_or_default(),
        media_format: MediaFormat {
            encoding: required(format.encoding, "start.mediaFormat.encoding")?,
            sample_rate: u32::try_from(sample_rate)
                .map_err(|_| ParseError::InvalidCounter("start.mediaFormat.sampleRate"))?,
            channels: u32::try_from(channels)
                .map_err(|_| ParseError::InvalidCounter("start.mediaFormat.channels"))?,
        },
    })
}

// === private: raw serde shapes ===

/// Every field any message may carry, all optional, so one pass reads any event without
/// buffering (an internally tagged serde enum would buffer the frame into a DOM first).
#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow, default)]
    event: Option<Text<'a>>,
    #[serde(borrow, default)]
    protocol: Option<Text<'a>>,
    #[serde(borrow, default)]
    version: Option<Text<'a>>,
    #[serde(rename = "sequenceNumber", default)]
    sequence_number: Option<Counter>,
    #[serde(rename = "streamSid", borrow, default)]
    stream_sid: Option<Text<'a>>,
    #[serde(borrow, default)]
    start: Option<RawStart<'a>>,
    #[serde(borrow, default)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow, default)]
    mark: Option<RawMark<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<RawDtmf<'a>>,
    #[serde(borrow, default)]
    stop: Option<RawStop<'a>>,
}

#[derive(Deserialize)]
struct RawStart<'a> {
    #[serde(rename = "streamSid", borrow, default)]
    stream_sid: Option<Text<'a>>,
    #[serde(rename = "accountSid", borrow, default)]
    account_sid: Option<Text<'a>>,
    #[serde(rename = "callSid", borrow, default)]
    call_sid: Option<Text<'a>>,
    #[serde(borrow, default)]
    tracks: Option<Vec<Text<'a>>>,
    #[serde(rename = "customParameters", default)]
    custom_parameters: Option<BTreeMap<String, String>>,
    #[serde(rename = "mediaFormat", borrow, default)]
    media_format: Option<RawMediaFormat<'a>>,
}

#[derive(Deserialize)]
struct RawMediaFormat<'a> {
    #[serde(borrow, default)]
    encoding: Option<Text<'a>>,
    #[serde(rename = "sampleRate", default)]
    sample_rate: Option<Counter>,
    #[serde(default)]
    channels: Option<Counter>,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow, default)]
    track: Option<Text<'a>>,
    #[serde(default)]
    chunk: Option<Counter>,
    #[serde(default)]
    timestamp: Option<Counter>,
    #[serde(borrow, default)]
    payload: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawMark<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow, default)]
    track: Option<Text<'a>>,
    #[serde(borrow, default)]
    digit: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawStop<'a> {
    #[serde(rename = "accountSid", borrow, default)]
    account_sid: Option<Text<'a>>,
    #[serde(rename = "callSid", borrow, default)]
    call_sid: Option<Text<'a>>,
}

/// Only the `event` of a frame; used to tell an unknown event from a malformed known one.
#[derive(Deserialize)]
struct EventOnly<'a> {
    #[serde(borrow, default)]
    event: Option<Text<'a>>,
}

/// A JSON string, borrowed from the input unless it contains escapes. (serde's own
/// `Option<Cow<str>>` would always copy.)
struct Text<'a>(Cow<'a, str>);

/// A counter: `Some` for a non-negative integer given as a decimal string or a JSON number,
/// `None` for anything else, so the caller can name the field in its error.
struct Counter(Option<u64>);

// Returned by value for one call and matched at once: boxing the frame would allocate on
// every media message, which is what this module avoids.
#[allow(clippy::large_enum_variant)]
enum Decoded<'a> {
    Frame(RawFrame<'a>, Cow<'a, str>),
    Unknown(Cow<'a, str>),
}

fn decode<'a>(text: &'a str, known: &[&str]) -> Result<Decoded<'a>, ParseError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ParseError::TooLarge {
            len: text.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let raw: RawFrame<'a> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            // Fields of an event we do not know may have any shape: only then is the
            // error no error. This second pass happens on the error path only.
            return match serde_json::from_str::<EventOnly<'a>>(text) {
                Ok(EventOnly { event: Some(event) }) if !known.contains(&&*event.0) => {
                    Ok(Decoded::Unknown(event.0))
                }
                _ => Err(json_error(&err)),
            };
        }
    };
    let Some(Text(event)) = raw.event else {
        return Err(ParseError::MissingField("event"));
    };
    if !known.contains(&&*event) {
        return Ok(Decoded::Unknown(event));
    }
    Ok(Decoded::Frame(RawFrame { event: None, ..raw }, event))
}

fn json_error(err: &serde_json::Error) -> ParseError {
    let category = match err.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    };
    ParseError::Json {
        category,
        line: err.line(),
        column: err.column(),
    }
}

fn required<'a>(value: Option<Text<'a>>, field: &'static str) -> Result<Cow<'a, str>, ParseError> {
    value
        .map(|text| text.0)
        .ok_or(ParseError::MissingField(field))
}

fn counter(value: Option<Counter>, field: &'static str) -> Result<u64, ParseError> {
    match value {
        None => Err(ParseError::MissingField(field)),
        Some(Counter(None)) => Err(ParseError::InvalidCounter(field)),
        Some(Counter(Some(n))) => Ok(n),
    }
}

// === private: serde impls ===

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

impl<'de> Deserialize<'de> for Counter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CounterVisitor)
    }
}

struct CounterVisitor;

impl<'de> Visitor<'de> for CounterVisitor {
    type Value = Counter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a counter")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Counter, E> {
        Ok(Counter(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Counter, E> {
        Ok(Counter(u64::try_from(v).ok()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Counter, E> {
        // 2^64 is exactly representable; everything below it with no fraction fits in u64.
        let integral =
            v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0;
        Ok(Counter(integral.then_some(v as u64)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Counter, E> {
        let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        Ok(Counter(if digits { v.parse().ok() } else { None }))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Counter, E> {
        Ok(Counter(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Counter, E> {
        Ok(Counter(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counter, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Counter(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counter, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Counter(None))
    }
}
