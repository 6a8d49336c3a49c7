//! Arbitrary input never panics: the property-test twin of the `fuzz/` targets, run with the
//! ordinary test suite. Inputs are both raw noise and near-valid messages built from the
//! field names Twilio uses, so the parsers' deeper branches are reached too.

use proptest::prelude::*;
use quick_xml::events::Event;
use serde_json::{Map, Value};
use switchboard_twilio::media_stream::{
    encode_mark, encode_media, parse_inbound, parse_outbound, payload_duration_ms,
    ulaw_silence_b64, OutboundMessage,
};
use switchboard_twilio::rest::{
    CreateCall, CreateParticipant, UpdateCall, UpdateConference, UpdateParticipant,
};
use switchboard_twilio::signature::RequestValidator;
use switchboard_twilio::twiml::{Conference, Dial, Number, Response, Say, Stream};
use switchboard_twilio::webhooks::{
    form_params, AmdStatusCallback, CallStatusCallback, ConferenceStatusCallback,
    StreamStatusCallback, VoiceWebhook,
};

const KEYS: &[&str] = &[
    "event",
    "sequenceNumber",
    "streamSid",
    "protocol",
    "version",
    "start",
    "accountSid",
    "callSid",
    "tracks",
    "customParameters",
    "mediaFormat",
    "encoding",
    "sampleRate",
    "channels",
    "media",
    "track",
    "chunk",
    "timestamp",
    "payload",
    "mark",
    "name",
    "dtmf",
    "digit",
    "stop",
];

const EVENTS: &[&str] = &[
    "connected",
    "start",
    "media",
    "mark",
    "dtmf",
    "stop",
    "clear",
    "other",
];

const FORM_KEYS: &[&str] = &[
    "CallSid",
    "AccountSid",
    "From",
    "To",
    "CallStatus",
    "Direction",
    "AnsweredBy",
    "SequenceNumber",
    "CallDuration",
    "SipResponseCode",
    "StreamSid",
    "StreamEvent",
    "ConferenceSid",
    "StatusCallbackEvent",
    "Muted",
    "MachineDetectionDuration",
    "Url",
    "Twiml",
    "Timeout",
    "StatusCallbackEvent",
    "Status",
    "Method",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(EVENTS).prop_map(Value::from),
        "[0-9]{0,21}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// An object with an `event`, so most inputs get past the first checks.
fn arb_frame() -> impl Strategy<Value = String> {
    (
        prop::sample::select(EVENTS),
        prop::collection::vec((prop::sample::select(KEYS), arb_json()), 0..8),
    )
        .prop_map(|(event, fields)| {
            let mut object = Map::new();
            for (key, value) in fields {
                object.insert(key.to_owned(), value);
            }
            object.insert("event".to_owned(), Value::from(event));
            Value::Object(object).to_string()
        })
}

fn arb_form() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::sample::select(FORM_KEYS),
            "([a-z0-9+%=&-]|%[0-9A-Fa-f]{0,2}){0,12}",
        ),
        0..16,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    })
}

fn parse_all_webhooks(body: &[u8]) {
    let _ = form_params(body);
    let _ = VoiceWebhook::parse(body);
    let _ = CallStatusCallback::parse(body);
    let _ = AmdStatusCallback::parse(body);
    let _ = StreamStatusCallback::parse(body);
    let _ = ConferenceStatusCallback::parse(body);
    let params = form_params(body);
    let _ = CreateCall::from_form(&params);
    let _ = UpdateCall::from_form(&params);
    let _ = CreateParticipant::from_form(&params);
    let _ = UpdateParticipant::from_form(&params);
    let _ = UpdateConference::from_form(&params);
}

fn assert_well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0_i32;
    loop {
        match reader.read_event() {
            Ok(Event::Start(element)) => {
                depth += 1;
                check_attributes(&element);
            }
            Ok(Event::Empty(element)) => check_attributes(&element),
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Text(text)) => {
                text.unescape().expect("text unescapes");
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => panic!("{err}: {xml}"),
        }
    }
    assert_eq!(depth, 0, "{xml}");
}

fn check_attributes(element: &quick_xml::events::BytesStart<'_>) {
    for attr in element.attributes() {
        attr.expect("attribute")
            .unescape_value()
            .expect("value unescapes");
    }
}

proptest! {
    #[test]
    fn media_stream_parsers_never_panic_on_any_string(text in any::<String>()) {
        let _ = parse_inbound(&text);
        let _ = parse_outbound(&text);
        let _ = payload_duration_ms(&text);
    }

    #[test]
    fn media_stream_parsers_never_panic_on_near_valid_frames(text in arb_frame()) {
        if let Ok(message) = parse_inbound(&text) {
            // Whatever parses re-encodes to something that parses again, equal.
            let mut out = String::new();
            message.encode(&mut out);
            prop_assert_eq!(parse_inbound(&out).map(|m| m.into_owned()), Ok(message.into_owned()));
        }
        let _ = parse_outbound(&text);
    }

    #[test]
    fn media_stream_parsers_never_panic_on_arbitrary_json(value in arb_json()) {
        let text = value.to_string();
        let _ = parse_inbound(&text);
        let _ = parse_outbound(&text);
    }

    #[test]
    fn our_frames_carry_any_string_intact(
        sid in any::<String>(),
        name in any::<String>(),
        payload in "[A-Za-z0-9+/]{0,64}={0,2}",
    ) {
        let mut out = String::new();
        encode_mark(&sid, &name, &mut out);
        let mark = OutboundMessage::Mark {
            stream_sid: sid.as_str().into(),
            name: name.as_str().into(),
        };
        prop_assert_eq!(parse_outbound(&out), Ok(mark));
        out.clear();
        encode_media(&sid, &payload, &mut out);
        let media = OutboundMessage::Media {
            stream_sid: sid.as_str().into(),
            payload: payload.as_str().into(),
        };
        prop_assert_eq!(parse_outbound(&out), Ok(media));
    }

    #[test]
    fn silence_lasts_what_was_asked(ms in 0_u32..5_000) {
        prop_assert_eq!(payload_duration_ms(&ulaw_silence_b64(ms)), u64::from(ms));
    }

    #[test]
    fn webhook_parsers_never_panic_on_any_bytes(
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        parse_all_webhooks(&body);
    }

    #[test]
    fn webhook_parsers_never_panic_on_near_valid_forms(body in arb_form()) {
        parse_all_webhooks(&body);
    }

    #[test]
    fn signature_checks_never_panic(
        token in any::<String>(),
        url in any::<String>(),
        params in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
        signature in any::<String>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let validator = RequestValidator::new(&token);
        let _ = validator.validate(&url, &params, &signature);
        let _ = validator.validate_url(&url, &signature);
        let _ = validator.validate_json(&url, &body, &signature);
        let _ = validator.validate_form_body(&url, &body, &signature);
        // And a signature we compute always validates, whatever the URL looks like.
        let computed = validator.compute(&url, &params);
        prop_assert_eq!(validator.validate(&url, &params, &computed), Ok(()));
    }

    #[test]
    fn signature_port_handling_never_panics_on_url_like_strings(
        url in "(https?|wss?)://([a-z@:\\[\\]0-9.]{0,12})(:[0-9]{0,6})?([/?#][ -~]{0,12})?",
        signature in any::<String>(),
    ) {
        let validator = RequestValidator::new("token");
        let _ = validator.validate_url(&url, &signature);
        let computed = validator.compute(&url, &[] as &[(&str, &str)]);
        prop_assert_eq!(validator.validate_url(&url, &computed), Ok(()));
    }

    #[test]
    fn twiml_is_well_formed_or_refused(
        text in any::<String>(),
        attr in any::<String>(),
        name in any::<String>(),
        value in any::<String>(),
    ) {
        let response = Response::new()
            .say(Say::new(text.clone()).voice(attr.clone()))
            .connect_stream(Stream::new("wss://h/m").name(attr.clone()).parameter(name, value))
            .dial(Dial::conference(Conference::new(text.clone()).wait_url(attr.clone())))
            .dial(Dial::number(Number::new(text).url(attr)))
            .hangup();
        if let Ok(xml) = response.to_xml() {
            assert_well_formed(&xml);
        }
    }
}
