//! What the application sends on the stream, taken as Twilio takes it (docs/protocols.md §1.1,
//! §1.3): first judged ([`check`]), then applied to the record and the playout queue
//! ([`apply`]).
//!
//! A malformed message, an unknown `event`, a missing or extra field, or a wrong
//! `streamSid` raises warning 31951; a binary frame 31950 (in `stream.rs`). Extra fields do
//! not stop Twilio from acting on the message; the rest do. The codec's `parse_outbound` is
//! lenient by design (it ignores unknown fields), so the extra-field check is a second,
//! value-free pass: a shape with `deny_unknown_fields` whose values are all `IgnoredAny`.

use std::time::Duration;

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;
use switchboard_twilio::media_stream::{parse_outbound, OutboundMessage};

use crate::twilio::playback::Playback;
use crate::twilio::record::{StreamRecord, Warning, WARNING_INVALID_MESSAGE, WARNING_QUEUE_FULL};

/// A message as Twilio would take it.
#[derive(Debug)]
pub(super) struct Checked<'a> {
    /// The message to act on, if Twilio would act on it.
    pub(super) message: Option<OutboundMessage<'a>>,
    /// Why Twilio would warn (31951), if it would.
    pub(super) warnings: Vec<String>,
}

/// The only fields Twilio accepts from us, per event.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    #[serde(rename = "event")]
    _event: IgnoredAny,
    #[serde(rename = "streamSid", default)]
    _stream_sid: Option<IgnoredAny>,
    #[serde(default)]
    media: Option<MediaShape>,
    #[serde(default)]
    mark: Option<MarkShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaShape {
    #[serde(rename = "payload")]
    _payload: IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkShape {
    #[serde(rename = "name")]
    _name: IgnoredAny,
}

/// Checks one text frame from the application on the stream `stream_sid`.
pub(super) fn check<'a>(text: &'a str, stream_sid: &str) -> Checked<'a> {
    let message = match parse_outbound(text) {
        Ok(message) => message,
        Err(err) => {
            return Checked {
                message: None,
                warnings: vec![format!("malformed message: {err}")],
            }
        }
    };
    let mut warnings = Vec::new();
    let sid = match &message {
        OutboundMessage::Unknown { event } => {
            warnings.push(format!("unknown event {event:?}"));
            return Checked {
                message: None,
                warnings,
            };
        }
        OutboundMessage::Media { stream_sid, .. }
        | OutboundMessage::Mark { stream_sid, .. }
        | OutboundMessage::Clear { stream_sid } => stream_sid,
    };
    if sid != stream_sid {
        warnings.push(format!("{} for unknown streamSid {sid:?}", message.event()));
        return Checked {
            message: None,
            warnings,
        };
    }
    if let Some(extra) = extra_fields(text, message.event()) {
        warnings.push(format!("{}: {extra}", message.event()));
    }
    Checked {
        message: Some(message),
        warnings,
    }
}

/// Applies a checked message, received at stream time `now`, to the stream's record and
/// playout queue. `scratch` is reused for decoding the payload.
pub(super) fn apply(
    checked: Checked<'_>,
    now: Duration,
    stream: &mut StreamRecord,
    playback: &mut Playback,
    scratch: &mut Vec<u8>,
) {
    for detail in checked.warnings {
        stream.warnings.push(Warning {
            code: WARNING_INVALID_MESSAGE,
            at: now,
            detail,
        });
    }
    match checked.message {
        Some(OutboundMessage::Media { payload, .. }) => {
            scratch.clear();
            let decoded =
                base64::engine::general_purpose::STANDARD.decode_vec(payload.as_bytes(), scratch);
            if decoded.is_err() {
                stream.warnings.push(Warning {
                    code: WARNING_INVALID_MESSAGE,
                    at: now,
                    detail: "media.payload is not base64".to_owned(),
                });
                return;
            }
            stream.received.media += 1;
            stream.received.bytes += scratch.len() as u64;
            if let Err(full) = playback.push_audio(now, scratch) {
                stream.warnings.push(Warning {
                    code: WARNING_QUEUE_FULL,
                    at: now,
                    detail: full.to_string(),
                });
            }
        }
        Some(OutboundMessage::Mark { name, .. }) => {
            stream.received.marks += 1;
            playback.push_mark(now, &name);
        }
        Some(OutboundMessage::Clear { .. }) => {
            stream.received.clears += 1;
            playback.clear(now);
        }
        Some(OutboundMessage::Unknown { .. }) | None => playback.advance(now),
    }
}

/// Describes the fields `event` must not carry, if it carries any.
fn extra_fields(text: &str, event: &str) -> Option<String> {
    let shape: Shape = match serde_json::from_str(text) {
        Ok(shape) => shape,
        Err(err) => {
            // serde names the field ("unknown field `sequenceNumber`, expected …"); keep
            // only that part, never the frame.
            let message = err.to_string();
            let head = message
                .split(", expected")
                .next()
                .unwrap_or("unexpected field");
            return Some(head.to_owned());
        }
    };
    let unexpected = match event {
        "media" => shape.mark.is_some().then_some("mark"),
        "mark" => shape.media.is_some().then_some("media"),
        _ => match (&shape.media, &shape.mark) {
            (Some(_), _) => Some("media"),
            (_, Some(_)) => Some("mark"),
            _ => None,
        },
    };
    unexpected.map(|field| format!("unexpected field `{field}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "MZ00000000000000000000000000000001";

    fn warnings(text: &str) -> Vec<String> {
        check(text, SID).warnings
    }

    #[test]
    fn minimal_messages_pass() {
        for text in [
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"/w=="}}}}"#),
            format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"m1"}}}}"#),
            format!(r#"{{"event":"clear","streamSid":"{SID}"}}"#),
        ] {
            let checked = check(&text, SID);
            assert!(
                checked.warnings.is_empty(),
                "{text}: {:?}",
                checked.warnings
            );
            assert!(checked.message.is_some());
        }
    }

    #[test]
    fn extra_fields_warn_but_the_message_still_counts() {
        let text = format!(
            r#"{{"event":"media","sequenceNumber":"3","streamSid":"{SID}","media":{{"payload":"/w==","track":"outbound"}}}}"#
        );
        let checked = check(&text, SID);
        assert!(checked.message.is_some());
        assert_eq!(checked.warnings.len(), 1);
        assert!(
            checked.warnings[0].contains("sequenceNumber"),
            "{:?}",
            checked.warnings
        );
        let clear = format!(r#"{{"event":"clear","streamSid":"{SID}","mark":{{"name":"x"}}}}"#);
        assert_eq!(warnings(&clear), ["clear: unexpected field `mark`"]);
    }

    #[test]
    fn applied_messages_feed_the_playout_queue() {
        let mut stream = StreamRecord::default();
        let mut playback = Playback::new(true);
        let mut scratch = Vec::new();
        let now = Duration::from_millis(10);
        let media =
            format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"AAEC"}}}}"#);
        apply(
            check(&media, SID),
            now,
            &mut stream,
            &mut playback,
            &mut scratch,
        );
        let mark = format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"m"}}}}"#);
        apply(
            check(&mark, SID),
            now,
            &mut stream,
            &mut playback,
            &mut scratch,
        );
        let bad = format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"!!"}}}}"#);
        apply(
            check(&bad, SID),
            now,
            &mut stream,
            &mut playback,
            &mut scratch,
        );
        assert_eq!(
            (
                stream.received.media,
                stream.received.bytes,
                stream.received.marks
            ),
            (1, 3, 1)
        );
        assert_eq!(playback.pending_marks(), ["m"]);
        assert_eq!(stream.warnings.len(), 1, "the payload that is not base64");
        let clear = format!(r#"{{"event":"clear","streamSid":"{SID}"}}"#);
        apply(
            check(&clear, SID),
            now,
            &mut stream,
            &mut playback,
            &mut scratch,
        );
        assert_eq!(playback.take_ready().len(), 1);
        assert_eq!(stream.received.clears, 1);
    }

    #[test]
    fn unknown_events_wrong_sids_and_garbage_are_dropped_with_a_warning() {
        for text in [
            format!(r#"{{"event":"hello","streamSid":"{SID}"}}"#),
            r#"{"event":"clear","streamSid":"MZother"}"#.to_owned(),
            r#"{"event":"mark","streamSid":"MZx"}"#.to_owned(),
            "not json".to_owned(),
        ] {
            let checked = check(&text, SID);
            assert!(checked.message.is_none(), "{text}");
            assert_eq!(checked.warnings.len(), 1, "{text}");
        }
    }
}
