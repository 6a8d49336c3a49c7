//! Small wire helpers shared by the codecs: JSON string escaping for the
//! hand-written hot-path encoders, string enums that keep values they do not
//! know, the "absent vs `null`" distinction, and redaction of parse errors.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ParseError;

/// Appends `s` to `out` as a JSON string literal, quotes included.
///
/// Base64 audio never needs escaping, so the common case is one `push_str`.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
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
        // `b` is ASCII, so `start..i` and `i + 1` are char boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `"key":` (with a leading comma) followed by the string value.
pub(crate) fn push_str_field(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    push_json_str(out, value);
}

/// Appends `"key":` (with a leading comma) followed by the number.
pub(crate) fn push_u64_field(out: &mut String, key: &str, value: u64) {
    use std::fmt::Write as _;
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    // Writing into a String cannot fail.
    let _ = write!(out, "{value}");
}

/// Reads the `type` of an event frame: the first of the two passes of every
/// decoder (the second deserializes the payload struct of that type).
pub(crate) fn peek_type(text: &str) -> Result<Cow<'_, str>, ParseError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Cow<'a, str>,
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| ParseError::json(&e))?;
    if envelope.kind.is_empty() {
        return Err(ParseError::MissingType);
    }
    Ok(envelope.kind)
}

/// Deserializes an optional string, borrowing it from the frame when it has
/// no escapes (serde borrows a bare `Cow<str>`, never one inside `Option`).
pub(crate) fn opt_cow<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Borrowed<'a>>::deserialize(deserializer).map(|o| o.map(|b| b.0))
}

/// Appends `value` serialized by serde (not for the audio path).
pub(crate) fn push_serialized<T: Serialize>(out: &mut String, value: &T) {
    let json = serde_json::to_string(value)
        .expect("event payloads have string keys and no fallible Serialize impls");
    out.push_str(&json);
}

/// Deserializes a present field (even `null`) as `Some(..)`; with
/// `#[serde(default)]` an absent field stays `None`. Lets a wire struct tell
/// "omitted, keep the server's value" from "`null`, disable".
pub(crate) fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Keeps at most `max` bytes of `s` (cut on a char boundary).
pub(crate) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// A serde error message with quoted input removed, so that no audio, prompt
/// or transcript text from the frame ends up in a log line.
pub(crate) fn redact(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let mut out = String::with_capacity(message.len().min(160));
    let mut quoted = false;
    for c in message.chars() {
        if c == '"' {
            if quoted {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    truncate(&out, 160).into_owned()
}

/// Declares a string enum whose unknown values are kept in `Other(String)`,
/// so decoding never fails on a value added by OpenAI later and re-encoding
/// reproduces it.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Other(other) => other,
                }
            }

            /// Reads a wire value; unknown values become `Other`.
            pub fn from_wire(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl ::serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: ::serde::de::Error>(self, value: &str) -> Result<$name, E> {
                        Ok($name::from_wire(value))
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_json_str(&mut out, s);
        out
    }

    #[test]
    fn escaping_matches_serde_json() {
        for s in [
            "",
            "/8u9ta+trKysrrO6xd9TPzcxLiw==",
            "quote \" backslash \\ slash /",
            "ctl \u{0} \u{1f} \n \r \t \u{8} \u{c}",
            "こんにちは \u{7f} \u{2028}",
        ] {
            let ours = escaped(s);
            let back: String = serde_json::from_str(&ours).expect("valid json string");
            assert_eq!(back, s);
            assert_eq!(ours, serde_json::to_string(s).expect("serializes"));
        }
    }

    #[test]
    fn redact_drops_quoted_input() {
        let err = serde_json::from_str::<u32>("\"secret audio\"").expect_err("not a number");
        let message = redact(&err);
        assert!(!message.contains("secret"), "{message}");
        assert!(message.starts_with("invalid type: string"), "{message}");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ああああ", 4), "あ…");
    }
}
