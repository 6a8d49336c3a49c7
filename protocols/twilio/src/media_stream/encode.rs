//! Writing Media Streams frames straight into the caller's `String`: our `media`/`mark`/`clear`
//! in their minimal shapes, and Twilio's messages for the simulator. No JSON DOM, no
//! allocation beyond the buffer's own growth.

use std::fmt::{self, Write as _};

use super::{InboundMessage, Media, OutboundMessage, Start};

/// Appends our `media` message: `{"event":"media","streamSid":…,"media":{"payload":…}}`,
/// exactly the minimal shape Twilio asks for (docs/protocols.md §1.3).
pub fn encode_media(stream_sid: &str, payload_b64: &str, out: &mut String) {
    out.reserve(56 + stream_sid.len() + payload_b64.len());
    out.push_str(r#"{"event":"media","streamSid":"#);
    push_json_str(out, stream_sid);
    out.push_str(r#","media":{"payload":"#);
    push_json_str(out, payload_b64);
    out.push_str("}}");
}

/// Appends our `mark` message: `{"event":"mark","streamSid":…,"mark":{"name":…}}`.
pub fn encode_mark(stream_sid: &str, name: &str, out: &mut String) {
    out.reserve(52 + stream_sid.len() + name.len());
    out.push_str(r#"{"event":"mark","streamSid":"#);
    push_json_str(out, stream_sid);
    out.push_str(r#","mark":{"name":"#);
    push_json_str(out, name);
    out.push_str("}}");
}

/// Appends our `clear` message: `{"event":"clear","streamSid":…}`.
pub fn encode_clear(stream_sid: &str, out: &mut String) {
    out.reserve(34 + stream_sid.len());
    out.push_str(r#"{"event":"clear","streamSid":"#);
    push_json_str(out, stream_sid);
    out.push('}');
}

// === impl InboundMessage ===

impl InboundMessage<'_> {
    /// Appends this message as Twilio writes it: counters as JSON strings, fields in the order
    /// of Twilio's own frames (the simulator's side). An unknown message is `{"event":…}`.
    pub fn encode(&self, out: &mut String) {
        match self {
            Self::Connected(m) => {
                out.push_str(r#"{"event":"connected","protocol":"#);
                push_json_str(out, &m.protocol);
                out.push_str(r#","version":"#);
                push_json_str(out, &m.version);
                out.push('}');
            }
            Self::Start(m) => m.encode(out),
            Self::Media(m) => m.encode(out),
            Self::Mark(m) => {
                push_head(out, "mark", m.sequence_number);
                out.push_str(r#","streamSid":"#);
                push_json_str(out, &m.stream_sid);
                out.push_str(r#","mark":{"name":"#);
                push_json_str(out, &m.name);
                out.push_str("}}");
            }
            Self::Dtmf(m) => {
                push_head(out, "dtmf", m.sequence_number);
                out.push_str(r#","streamSid":"#);
                push_json_str(out, &m.stream_sid);
                out.push_str(r#","dtmf":{"track":"#);
                push_json_str(out, &m.track);
                out.push_str(r#","digit":"#);
                push_json_str(out, &m.digit);
                out.push_str("}}");
            }
            Self::Stop(m) => {
                push_head(out, "stop", m.sequence_number);
                out.push_str(r#","stop":{"accountSid":"#);
                push_json_str(out, &m.account_sid);
                out.push_str(r#","callSid":"#);
                push_json_str(out, &m.call_sid);
                out.push_str(r#"},"streamSid":"#);
                push_json_str(out, &m.stream_sid);
                out.push('}');
            }
            Self::Unknown { event } => {
                out.push_str(r#"{"event":"#);
                push_json_str(out, event);
                out.push('}');
            }
        }
    }
}

// === impl Start ===

impl Start<'_> {
    fn encode(&self, out: &mut String) {
        push_head(out, "start", self.sequence_number);
        out.push_str(r#","start":{"accountSid":"#);
        push_json_str(out, &self.account_sid);
        out.push_str(r#","streamSid":"#);
        push_json_str(out, &self.stream_sid);
        out.push_str(r#","callSid":"#);
        push_json_str(out, &self.call_sid);
        out.push_str(r#","tracks":["#);
        for (i, track) in self.tracks.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, track);
        }
        out.push_str(r#"],"mediaFormat":{"encoding":"#);
        push_json_str(out, &self.media_format.encoding);
        push_fmt(
            out,
            format_args!(
                r#","sampleRate":{},"channels":{}}},"customParameters":{{"#,
                self.media_format.sample_rate, self.media_format.channels
            ),
        );
        for (i, (name, value)) in self.custom_parameters.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, name);
            out.push(':');
            push_json_str(out, value);
        }
        out.push_str(r#"}},"streamSid":"#);
        push_json_str(out, &self.stream_sid);
        out.push('}');
    }
}

// === impl Media ===

impl Media<'_> {
    fn encode(&self, out: &mut String) {
        out.reserve(160 + self.stream_sid.len() + self.payload.len());
        push_head(out, "media", self.sequence_number);
        out.push_str(r#","media":{"track":"#);
        push_json_str(out, &self.track);
        push_fmt(
            out,
            format_args!(
                r#","chunk":"{}","timestamp":"{}","payload":"#,
                self.chunk, self.timestamp_ms
            ),
        );
        push_json_str(out, &self.payload);
        out.push_str(r#"},"streamSid":"#);
        push_json_str(out, &self.stream_sid);
        out.push('}');
    }
}

// === impl OutboundMessage ===

impl OutboundMessage<'_> {
    /// Appends this message in the minimal shape of docs/protocols.md §1.3 (see [`encode_media`],
    /// [`encode_mark`], [`encode_clear`]). An unknown message is `{"event":…}`.
    pub fn encode(&self, out: &mut String) {
        match self {
            Self::Media {
                stream_sid,
                payload,
            } => encode_media(stream_sid, payload, out),
            Self::Mark { stream_sid, name } => encode_mark(stream_sid, name, out),
            Self::Clear { stream_sid } => encode_clear(stream_sid, out),
            Self::Unknown { event } => {
                out.push_str(r#"{"event":"#);
                push_json_str(out, event);
                out.push('}');
            }
        }
    }
}

// === private: writing JSON ===

/// `{"event":"<event>","sequenceNumber":"<n>"`
fn push_head(out: &mut String, event: &str, sequence_number: u64) {
    out.push_str(r#"{"event":"#);
    push_json_str(out, event);
    push_fmt(
        out,
        format_args!(r#","sequenceNumber":"{sequence_number}""#),
    );
}

fn push_fmt(out: &mut String, args: fmt::Arguments<'_>) {
    // Writing to a String only fails if a Display impl fails; integers' never do.
    let _ = out.write_fmt(args);
}

/// Appends `s` as a JSON string literal, escaping `"`, `\` and control characters.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `byte` is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            push_fmt(out, format_args!("\\u{:04x}", byte));
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}
