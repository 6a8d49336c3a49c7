//! The Media Streams codec against Twilio's own frames: `fixtures/twilio-media-stream-*`.

use serde_json::Value;
use switchboard_twilio::media_stream::{
    encode_clear, encode_mark, encode_media, parse_inbound, parse_outbound, payload_byte_len,
    payload_duration_ms, ulaw_silence_b64, InboundMessage, OutboundMessage,
};

const EXAMPLES: &str = include_str!("fixtures/twilio-media-stream-examples.json");
const SESSION: &str = include_str!("fixtures/twilio-media-stream-session.jsonl");

fn examples() -> Value {
    serde_json::from_str(EXAMPLES).expect("examples are json")
}

fn counter(value: &Value) -> u64 {
    value
        .as_str()
        .expect("counters arrive as strings")
        .parse()
        .expect("decimal")
}

/// Checks that `parsed` carries the same values as Twilio's `frame`.
fn assert_same_values(parsed: &InboundMessage<'_>, frame: &Value) {
    assert_eq!(parsed.event(), frame["event"]);
    if let Some(sequence) = frame.get("sequenceNumber") {
        assert_eq!(parsed.sequence_number(), Some(counter(sequence)));
        assert_eq!(parsed.stream_sid(), frame["streamSid"].as_str());
    }
    match parsed {
        InboundMessage::Connected(m) => {
            assert_eq!(&*m.protocol, frame["protocol"]);
            assert_eq!(&*m.version, frame["version"]);
        }
        InboundMessage::Start(m) => {
            let start = &frame["start"];
            assert_eq!(&*m.account_sid, start["accountSid"]);
            assert_eq!(&*m.call_sid, start["callSid"]);
            assert_eq!(&*m.stream_sid, start["streamSid"]);
            assert_eq!(m.tracks, ["inbound"]);
            assert_eq!(m.media_format.encoding, "audio/x-mulaw");
            assert_eq!(m.media_format.sample_rate, 8000);
            assert_eq!(m.media_format.channels, 1);
            let params = start["customParameters"].as_object().expect("object");
            assert_eq!(m.custom_parameters.len(), params.len());
            for (name, value) in params {
                assert_eq!(m.custom_parameters[name], *value);
            }
        }
        InboundMessage::Media(m) => {
            let media = &frame["media"];
            assert_eq!(&*m.track, media["track"]);
            assert_eq!(m.chunk, counter(&media["chunk"]));
            assert_eq!(m.timestamp_ms, counter(&media["timestamp"]));
            assert_eq!(&*m.payload, media["payload"]);
        }
        InboundMessage::Mark(m) => assert_eq!(&*m.name, frame["mark"]["name"]),
        InboundMessage::Dtmf(m) => {
            assert_eq!(&*m.track, frame["dtmf"]["track"]);
            assert_eq!(&*m.digit, frame["dtmf"]["digit"]);
        }
        InboundMessage::Stop(m) => {
            assert_eq!(&*m.account_sid, frame["stop"]["accountSid"]);
            assert_eq!(&*m.call_sid, frame["stop"]["callSid"]);
        }
        InboundMessage::Unknown { event } => panic!("example event {event} not recognised"),
    }
}

fn encode_inbound(message: &InboundMessage<'_>) -> Value {
    let mut out = String::new();
    message.encode(&mut out);
    serde_json::from_str(&out).expect("encoder writes json")
}

#[test]
fn every_example_from_twilio_parses_with_its_values() {
    let examples = examples();
    let frames = examples["from_twilio"].as_object().expect("object");
    assert_eq!(frames.len(), 7);
    for (name, frame) in frames {
        let text = serde_json::to_string_pretty(frame).expect("serialize");
        let parsed = parse_inbound(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_same_values(&parsed, frame);
    }
}

#[test]
fn twilio_side_encoder_writes_the_example_shapes() {
    let examples = examples();
    for (name, frame) in examples["from_twilio"].as_object().expect("object") {
        let text = frame.to_string();
        let parsed = parse_inbound(&text).expect("parses");
        assert_eq!(&encode_inbound(&parsed), frame, "{name}");
    }
}

#[test]
fn our_encoders_write_the_examples_to_twilio_exactly() {
    let examples = examples();
    let to_twilio = &examples["to_twilio"];
    let sid = to_twilio["clear"]["streamSid"].as_str().expect("sid");
    let payload = to_twilio["media"]["media"]["payload"]
        .as_str()
        .expect("payload");
    let name = to_twilio["mark"]["mark"]["name"].as_str().expect("name");

    let mut media = String::new();
    encode_media(sid, payload, &mut media);
    let mut mark = String::new();
    encode_mark(sid, name, &mut mark);
    let mut clear = String::new();
    encode_clear(sid, &mut clear);

    // Byte for byte: the example's keys in its order, no whitespace.
    assert_eq!(
        media,
        format!(r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"{payload}"}}}}"#)
    );
    assert_eq!(
        mark,
        format!(r#"{{"event":"mark","streamSid":"{sid}","mark":{{"name":"{name}"}}}}"#)
    );
    assert_eq!(clear, format!(r#"{{"event":"clear","streamSid":"{sid}"}}"#));
    for (ours, example) in [(media, "media"), (mark, "mark"), (clear, "clear")] {
        let ours: Value = serde_json::from_str(&ours).expect("json");
        assert_eq!(ours, to_twilio[example], "{example}");
    }
}

#[test]
fn example_payloads_have_the_documented_durations() {
    let examples = examples();
    let about = &examples["_about"];
    let silence = about["payload_silence_20ms"].as_str().expect("silence");
    assert_eq!(silence, ulaw_silence_b64(20));
    assert_eq!(payload_byte_len(silence), 160);
    assert_eq!(payload_duration_ms(silence), 20);
    let tone = about["payload_tone_20ms"].as_str().expect("tone");
    assert_eq!(payload_duration_ms(tone), 20);
    let outbound = examples["to_twilio"]["media"]["media"]["payload"]
        .as_str()
        .expect("payload");
    assert_eq!(payload_duration_ms(outbound), 100);
}

/// One line of the session: (direction, raw `msg` text as recorded, parsed `msg`).
fn session() -> Vec<(String, String, Value)> {
    let mut lines = SESSION.lines();
    let about: Value = serde_json::from_str(lines.next().expect("about line")).expect("json");
    assert!(about.get("_about").is_some());
    lines
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("json line");
            // The recorded frame text itself, not a re-serialisation of it.
            let start = line.find(r#""msg": "#).expect("msg key") + r#""msg": "#.len();
            let raw = line[start..line.len() - 1].to_owned();
            let raw_value: Value = serde_json::from_str(&raw).expect("raw msg is json");
            assert_eq!(raw_value, record["msg"]);
            let dir = record["dir"].as_str().expect("dir").to_owned();
            (dir, raw, raw_value)
        })
        .collect()
}

#[test]
fn every_line_of_the_recorded_session_parses_and_reencodes() {
    let lines = session();
    assert_eq!(lines.len(), 92);
    for (dir, raw, frame) in &lines {
        if dir == "in" {
            let parsed = parse_inbound(raw).unwrap_or_else(|err| panic!("{raw}: {err}"));
            assert_same_values(&parsed, frame);
            assert_eq!(&encode_inbound(&parsed), frame);
        } else {
            assert_eq!(dir, "out");
            let parsed = parse_outbound(raw).unwrap_or_else(|err| panic!("{raw}: {err}"));
            assert!(!matches!(parsed, OutboundMessage::Unknown { .. }), "{raw}");
            let mut out = String::new();
            parsed.encode(&mut out);
            let ours: Value = serde_json::from_str(&out).expect("json");
            assert_eq!(&ours, frame);
        }
    }
}

#[test]
fn session_counters_advance_numerically() {
    let mut last_sequence = 0;
    let mut last_chunk = 0;
    let mut last_timestamp = None;
    for (dir, raw, _) in session() {
        if dir != "in" {
            continue;
        }
        let message = parse_inbound(&raw).expect("parses");
        if let Some(sequence) = message.sequence_number() {
            assert_eq!(sequence, last_sequence + 1, "one counter over all events");
            last_sequence = sequence;
        }
        if let InboundMessage::Media(media) = message {
            assert_eq!(media.chunk, last_chunk + 1);
            last_chunk = media.chunk;
            assert!(last_timestamp < Some(media.timestamp_ms));
            last_timestamp = Some(media.timestamp_ms);
            assert_eq!(payload_duration_ms(&media.payload), 20);
        }
    }
    // "9" < "10" only numerically: the session crosses both boundaries.
    assert!(last_sequence > 10 && last_chunk > 10);
}

#[test]
fn session_marks_name_the_audio_sent_before_them() {
    // The session names marks generation:item:cumulative_ms; check that against our count.
    let mut sent_ms = 0;
    let mut sent_marks = Vec::new();
    let mut echoed = Vec::new();
    for (dir, raw, _) in session() {
        if dir == "out" {
            match parse_outbound(&raw).expect("parses") {
                OutboundMessage::Media { payload, .. } => sent_ms += payload_duration_ms(&payload),
                OutboundMessage::Mark { name, .. } => {
                    assert_eq!(name.rsplit(':').next(), Some(sent_ms.to_string().as_str()));
                    sent_marks.push(name.into_owned());
                }
                _ => {}
            }
        } else if let InboundMessage::Mark(mark) = parse_inbound(&raw).expect("parses") {
            echoed.push(mark.name.into_owned());
        }
    }
    assert_eq!(sent_marks.len(), 4);
    assert_eq!(echoed, sent_marks, "every mark echoed once, in order");
}
