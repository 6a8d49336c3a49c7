use super::*;

const SID: &str = "MZ18ad3ab5b1d2c4e7f8091a2b3c4d5e6f";

fn media_frame(sequence: &str, chunk: &str, timestamp: &str) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":{sequence},"media":{{"track":"inbound","chunk":{chunk},"timestamp":{timestamp},"payload":"/w=="}},"streamSid":"{SID}"}}"#
    )
}

#[test]
fn media_payload_is_borrowed_from_the_frame() {
    let text = media_frame(r#""2""#, r#""1""#, r#""0""#);
    let Ok(InboundMessage::Media(media)) = parse_inbound(&text) else {
        panic!("not media: {:?}", parse_inbound(&text));
    };
    assert!(matches!(media.payload, Cow::Borrowed(_)));
    assert!(matches!(media.stream_sid, Cow::Borrowed(_)));
    assert_eq!(media.payload, "/w==");
}

#[test]
fn escaped_strings_are_unescaped() {
    let text = format!(
        r#"{{"event":"mark","sequenceNumber":"3","streamSid":"{SID}","mark":{{"name":"a\"b\\c\u00e9\/d"}}}}"#
    );
    let Ok(InboundMessage::Mark(mark)) = parse_inbound(&text) else {
        panic!("not a mark");
    };
    assert_eq!(mark.name, "a\"b\\cé/d");
}

#[test]
fn counters_are_read_from_strings_and_from_numbers() {
    for (sequence, chunk, timestamp) in [
        (r#""153""#, r#""150""#, r#""2980""#),
        ("153", "150", "2980"),
        ("153.0", "150", "2.98e3"),
    ] {
        let text = media_frame(sequence, chunk, timestamp);
        let parsed = parse_inbound(&text);
        let Ok(InboundMessage::Media(media)) = parsed else {
            panic!("{sequence} {chunk} {timestamp}: {parsed:?}");
        };
        assert_eq!(
            (media.sequence_number, media.chunk, media.timestamp_ms),
            (153, 150, 2980)
        );
    }
}

#[test]
fn counters_compare_numerically_not_lexically() {
    let (nine, ten) = (
        media_frame(r#""9""#, r#""8""#, r#""140""#),
        media_frame(r#""10""#, r#""9""#, r#""160""#),
    );
    let nine = parse_inbound(&nine).expect("9");
    let ten = parse_inbound(&ten).expect("10");
    assert!(nine.sequence_number() < ten.sequence_number());
}

#[test]
fn a_non_numeric_counter_is_an_error_naming_the_field() {
    let cases = [
        (media_frame(r#""x""#, r#""1""#, r#""0""#), "sequenceNumber"),
        (media_frame(r#""-1""#, r#""1""#, r#""0""#), "sequenceNumber"),
        (media_frame(r#""2""#, "-1", r#""0""#), "media.chunk"),
        (media_frame(r#""2""#, "1.5", r#""0""#), "media.chunk"),
        (media_frame(r#""2""#, r#""1""#, r#""""#), "media.timestamp"),
        (
            media_frame(r#""2""#, r#""1""#, r#"" 1""#),
            "media.timestamp",
        ),
        (media_frame(r#""2""#, r#""1""#, "true"), "media.timestamp"),
        (
            media_frame(r#""2""#, r#""1""#, r#"{"a":[1]}"#),
            "media.timestamp",
        ),
        (
            media_frame(r#""2""#, r#""1""#, r#""18446744073709551616""#),
            "media.timestamp",
        ),
    ];
    for (text, field) in cases {
        assert_eq!(
            parse_inbound(&text),
            Err(ParseError::InvalidCounter(field)),
            "{text}"
        );
    }
}

#[test]
fn missing_fields_are_named() {
    let no_payload = format!(
        r#"{{"event":"media","sequenceNumber":"2","media":{{"track":"inbound","chunk":"1","timestamp":"0"}},"streamSid":"{SID}"}}"#
    );
    assert_eq!(
        parse_inbound(&no_payload),
        Err(ParseError::MissingField("media.payload"))
    );
    let no_sid = r#"{"event":"clear"}"#;
    assert_eq!(
        parse_outbound(no_sid),
        Err(ParseError::MissingField("streamSid"))
    );
    assert_eq!(
        parse_inbound(r#"{"protocol":"Call"}"#),
        Err(ParseError::MissingField("event"))
    );
}

#[test]
fn wrong_types_and_garbage_are_errors() {
    for text in [
        "",
        "null",
        "[]",
        "{",
        r#"{"event":5}"#,
        r#"{"event":"media","media":"x","sequenceNumber":"1","streamSid":"s"}"#,
        r#"{"event":"start","sequenceNumber":"1","streamSid":"s","start":{"tracks":"inbound"}}"#,
        r#"{"event":"connected","protocol":1,"version":"1.0.0"}"#,
        r#"{"event":"connected","event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ] {
        assert!(parse_inbound(text).is_err(), "{text}");
    }
}

#[test]
fn an_unknown_event_is_not_an_error_whatever_its_fields() {
    for text in [
        r#"{"event":"transcription","streamSid":"s","sequenceNumber":"7"}"#,
        r#"{"event":"transcription","media":17,"sequenceNumber":{"x":[]}}"#,
    ] {
        assert_eq!(
            parse_inbound(text),
            Ok(InboundMessage::Unknown {
                event: Cow::Borrowed("transcription")
            }),
            "{text}"
        );
    }
    assert_eq!(
        parse_outbound(r#"{"event":"stop","streamSid":"s"}"#),
        Ok(OutboundMessage::Unknown {
            event: Cow::Borrowed("stop")
        })
    );
}

#[test]
fn extra_fields_are_ignored() {
    let text = format!(
        r#"{{"event":"mark","sequenceNumber":"3","streamSid":"{SID}","mark":{{"name":"m","extra":[1,{{}}]}},"future":{{"a":null}}}}"#
    );
    assert!(matches!(parse_inbound(&text), Ok(InboundMessage::Mark(_))));
}

#[test]
fn oversized_frames_are_rejected_before_parsing() {
    let text = " ".repeat(MAX_FRAME_BYTES + 1);
    assert_eq!(
        parse_inbound(&text),
        Err(ParseError::TooLarge {
            len: MAX_FRAME_BYTES + 1,
            max: MAX_FRAME_BYTES
        })
    );
}

#[test]
fn encoders_write_the_minimal_shapes() {
    let mut out = String::new();
    encode_media(SID, "/w==", &mut out);
    assert_eq!(
        out,
        format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"/w=="}}}}"#)
    );
    out.clear();
    encode_mark(SID, "g1:item:1600", &mut out);
    assert_eq!(
        out,
        format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"g1:item:1600"}}}}"#)
    );
    out.clear();
    encode_clear(SID, &mut out);
    assert_eq!(out, format!(r#"{{"event":"clear","streamSid":"{SID}"}}"#));
}

#[test]
fn encoders_append_to_the_buffer() {
    let mut out = String::from("x");
    encode_clear("a", &mut out);
    encode_clear("b", &mut out);
    assert_eq!(
        out,
        r#"x{"event":"clear","streamSid":"a"}{"event":"clear","streamSid":"b"}"#
    );
}

#[test]
fn encoders_escape_json_strings() {
    let name = "q\"b\\s\n\r\t\u{8}\u{c}\u{1}\u{1f}é\u{2028}/";
    let mut out = String::new();
    encode_mark(SID, name, &mut out);
    let value: serde_json::Value = serde_json::from_str(&out).expect("valid json");
    assert_eq!(value["mark"]["name"], name);
    assert!(out.contains(r#"q\"b\\s\n\r\t\b\f\u0001\u001fé"#), "{out}");
    let Ok(OutboundMessage::Mark { name: back, .. }) = parse_outbound(&out) else {
        panic!("not a mark");
    };
    assert_eq!(back, name);
}

#[test]
fn every_inbound_message_round_trips_through_encode() {
    let messages = [
        InboundMessage::Connected(Connected {
            protocol: "Call".into(),
            version: "1.0.0".into(),
        }),
        InboundMessage::Start(Start {
            sequence_number: 1,
            stream_sid: SID.into(),
            account_sid: "AC1".into(),
            call_sid: "CA1".into(),
            tracks: vec!["inbound".into()],
            custom_parameters: [("token", "t\"1"), ("callId", "c")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            media_format: MediaFormat {
                encoding: "audio/x-mulaw".into(),
                sample_rate: 8000,
                channels: 1,
            },
        }),
        InboundMessage::Media(Media {
            sequence_number: u64::MAX,
            stream_sid: SID.into(),
            track: "inbound".into(),
            chunk: 1,
            timestamp_ms: 0,
            payload: "/w==".into(),
        }),
        InboundMessage::Mark(Mark {
            sequence_number: 4,
            stream_sid: SID.into(),
            name: "m".into(),
        }),
        InboundMessage::Dtmf(Dtmf {
            sequence_number: 5,
            stream_sid: SID.into(),
            track: "inbound_track".into(),
            digit: "#".into(),
        }),
        InboundMessage::Stop(Stop {
            sequence_number: 6,
            stream_sid: SID.into(),
            account_sid: "AC1".into(),
            call_sid: "CA1".into(),
        }),
        InboundMessage::Unknown {
            event: "future".into(),
        },
    ];
    for message in messages {
        let mut out = String::new();
        message.encode(&mut out);
        let back = parse_inbound(&out).expect("parses");
        assert_eq!(back, message, "{out}");
        assert_eq!(back.into_owned(), message);
    }
}

#[test]
fn every_outbound_message_round_trips_through_encode() {
    for message in [
        OutboundMessage::Media {
            stream_sid: SID.into(),
            payload: "//8=".into(),
        },
        OutboundMessage::Mark {
            stream_sid: SID.into(),
            name: "g2:item_x:40".into(),
        },
        OutboundMessage::Clear {
            stream_sid: SID.into(),
        },
    ] {
        let mut out = String::new();
        message.encode(&mut out);
        assert_eq!(parse_outbound(&out), Ok(message));
    }
}

#[test]
fn silence_is_0xff_bytes_in_base64() {
    let twenty = ulaw_silence_b64(20);
    assert_eq!(twenty.len(), 216);
    assert_eq!(twenty, format!("{}w==", "/".repeat(213)));
    assert_eq!(ulaw_silence_b64(0), "");
    for ms in [1, 2, 3, 7, 20, 100, 1000] {
        let b64 = ulaw_silence_b64(ms);
        assert_eq!(payload_duration_ms(&b64), u64::from(ms), "{ms}");
        assert_eq!(payload_byte_len(&b64), u64::from(ms) * 8, "{ms}");
    }
}

#[test]
fn payload_length_follows_the_padding_rule() {
    assert_eq!(payload_byte_len(""), 0);
    assert_eq!(payload_byte_len("/w=="), 1);
    assert_eq!(payload_byte_len("//8="), 2);
    assert_eq!(payload_byte_len("////"), 3);
    assert_eq!(payload_byte_len("/w"), 1);
    assert_eq!(payload_byte_len("//8"), 2);
    assert_eq!(payload_byte_len("="), 0);
    assert_eq!(payload_byte_len("==="), 0);
    assert_eq!(payload_duration_ms(&"A".repeat(216)), 20);
    assert_eq!(ulaw_duration_ms(159), 19);
}
