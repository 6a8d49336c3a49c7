use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::*;
use crate::vocabulary::{Beep, CallProgressEvent, ConferenceEvent};

/// docs/protocols.md §2.1, inbound AI mode, as printed there (indented for reading).
const DOCUMENTED_CONNECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Connect action="https://sidecar.example.com/api/twilio/connect-done" method="POST">
    <Stream url="wss://sidecar.example.com/api/twilio/media-stream/65a9f001c2b3d4e5f6a7b8c9"
            name="ai" statusCallback="https://sidecar.example.com/api/twilio/stream-status"
            statusCallbackMethod="POST">
      <Parameter name="token" value="v1.eyJ…sig"/>
      <Parameter name="callId" value="65a9f001c2b3d4e5f6a7b8c9"/>
    </Stream>
  </Connect>
</Response>"#;

/// What twilio-python 9.13.0 writes for the document above.
const TWILIO_PYTHON_CONNECT: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect action="https://sidecar.example.com/api/twilio/connect-done" method="POST"><Stream name="ai" statusCallback="https://sidecar.example.com/api/twilio/stream-status" statusCallbackMethod="POST" url="wss://sidecar.example.com/api/twilio/media-stream/65a9f001c2b3d4e5f6a7b8c9"><Parameter name="token" value="v1.eyJ…sig" /><Parameter name="callId" value="65a9f001c2b3d4e5f6a7b8c9" /></Stream></Connect></Response>"#;

/// docs/protocols.md §2.1, conference / hand-off mode, as printed there.
const DOCUMENTED_CONFERENCE: &str = r#"<Response>
  <Say voice="Polly.Joanna" language="en-US">Connecting you to an agent.</Say>
  <Dial action="https://cp.example.com/api/twilio/dial-done" timeout="30" callerId="+14155550100">
    <Conference startConferenceOnEnter="true" endConferenceOnExit="true" beep="false"
                waitUrl="" participantLabel="customer"
                statusCallback="https://cp.example.com/api/twilio/conference-status"
                statusCallbackEvent="start end join leave" statusCallbackMethod="POST">handoff-65a9f001c2b3d4e5f6a7b8c9</Conference>
  </Dial>
  <Hangup/>
</Response>"#;

/// What twilio-python 9.13.0 writes for the document above.
const TWILIO_PYTHON_CONFERENCE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-US" voice="Polly.Joanna">Connecting you to an agent.</Say><Dial action="https://cp.example.com/api/twilio/dial-done" callerId="+14155550100" timeout="30"><Conference beep="false" endConferenceOnExit="true" participantLabel="customer" startConferenceOnEnter="true" statusCallback="https://cp.example.com/api/twilio/conference-status" statusCallbackEvent="start end join leave" statusCallbackMethod="POST" waitUrl="">handoff-65a9f001c2b3d4e5f6a7b8c9</Conference></Dial><Hangup /></Response>"#;

fn connect_example() -> Response {
    Response::new().connect(
        Connect::new(
            Stream::new(
                "wss://sidecar.example.com/api/twilio/media-stream/65a9f001c2b3d4e5f6a7b8c9",
            )
            .name("ai")
            .status_callback("https://sidecar.example.com/api/twilio/stream-status")
            .status_callback_method(HttpMethod::Post)
            .parameter("token", "v1.eyJ…sig")
            .parameter("callId", "65a9f001c2b3d4e5f6a7b8c9"),
        )
        .action("https://sidecar.example.com/api/twilio/connect-done")
        .method(HttpMethod::Post),
    )
}

fn conference_example() -> Response {
    Response::new()
        .say(
            Say::new("Connecting you to an agent.")
                .voice("Polly.Joanna")
                .language("en-US"),
        )
        .dial(
            Dial::conference(
                Conference::new("handoff-65a9f001c2b3d4e5f6a7b8c9")
                    .start_conference_on_enter(true)
                    .end_conference_on_exit(true)
                    .beep(Beep::False)
                    .wait_url("")
                    .participant_label("customer")
                    .status_callback("https://cp.example.com/api/twilio/conference-status")
                    .status_callback_events([
                        ConferenceEvent::Start,
                        ConferenceEvent::End,
                        ConferenceEvent::Join,
                        ConferenceEvent::Leave,
                    ])
                    .status_callback_method(HttpMethod::Post),
            )
            .action("https://cp.example.com/api/twilio/dial-done")
            .timeout_secs(30)
            .caller_id("+14155550100"),
        )
        .hangup()
}

#[test]
fn connect_stream_matches_twilio_python_byte_for_byte() {
    assert_eq!(
        connect_example().to_xml(),
        Ok(TWILIO_PYTHON_CONNECT.to_owned())
    );
}

#[test]
fn conference_matches_twilio_python_byte_for_byte() {
    assert_eq!(
        conference_example().to_xml(),
        Ok(TWILIO_PYTHON_CONFERENCE.to_owned())
    );
}

#[test]
fn documents_are_the_same_xml_as_printed_in_the_protocols_doc() {
    let ours = connect_example().to_xml().expect("connect");
    assert_eq!(tree(&ours), tree(DOCUMENTED_CONNECT));
    let ours = conference_example().to_xml().expect("conference");
    assert_eq!(tree(&ours), tree(DOCUMENTED_CONFERENCE));
}

#[test]
fn special_characters_are_escaped_as_elementtree_does() {
    // Expected output written by twilio-python 9.13.0 for the same calls.
    let xml = Response::new()
        .say(
            Say::new("a & b < c > d \" e ' f\n\tg\r]]>é😀")
                .voice("x&\"'<>\n\t\r")
                .language("en-US")
                .loop_count(2),
        )
        .dial(
            Dial::number(
                Number::new("+14155550100")
                    .send_digits("ww1")
                    .url("https://x/whisper")
                    .method(HttpMethod::Get)
                    .status_callback_events([
                        CallProgressEvent::Initiated,
                        CallProgressEvent::Ringing,
                        CallProgressEvent::Answered,
                        CallProgressEvent::Completed,
                    ])
                    .status_callback("https://x/?a=1&b=2")
                    .status_callback_method(HttpMethod::Post),
            )
            .caller_id("+1")
            .answer_on_bridge(true)
            .time_limit_secs(600)
            .method(HttpMethod::Post)
            .record("record-from-answer"),
        )
        .dial(Dial::conference(
            Conference::new("room & <1>")
                .muted(false)
                .beep(Beep::OnEnter)
                .wait_method(HttpMethod::Get)
                .max_participants(10),
        ))
        .hangup()
        .to_xml()
        .expect("valid");
    let expected = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response>"#,
        r#"<Say language="en-US" loop="2" voice="x&amp;&quot;'&lt;&gt;&#10;&#09;&#13;">"#,
        "a &amp; b &lt; c &gt; d \" e ' f\n\tg\r]]&gt;é😀</Say>",
        r#"<Dial answerOnBridge="true" callerId="+1" method="POST" record="record-from-answer" timeLimit="600">"#,
        r#"<Number method="GET" sendDigits="ww1" statusCallback="https://x/?a=1&amp;b=2" statusCallbackEvent="initiated ringing answered completed" statusCallbackMethod="POST" url="https://x/whisper">+14155550100</Number></Dial>"#,
        r#"<Dial><Conference beep="onEnter" maxParticipants="10" muted="false" waitMethod="GET">room &amp; &lt;1&gt;</Conference></Dial>"#,
        r#"<Hangup /></Response>"#,
    );
    assert_eq!(xml, expected);
    let parsed = tree(&xml);
    assert_eq!(parsed.children[0].attrs["voice"], "x&\"'<>\n\t\r");
    assert_eq!(parsed.children[2].children[0].text, "room & <1>");
}

#[test]
fn empty_elements_are_self_closed() {
    assert_eq!(
        Response::new().say("").hangup().to_xml(),
        Ok(format!(
            "{XML_DECLARATION}<Response><Say /><Hangup /></Response>"
        ))
    );
    assert_eq!(
        Response::new().to_xml(),
        Ok(format!("{XML_DECLARATION}<Response />"))
    );
}

#[test]
fn a_parameter_of_500_characters_is_refused() {
    let ok = Stream::new("wss://a/b").parameter("token", "x".repeat(494));
    assert!(Response::new().connect_stream(ok).to_xml().is_ok());
    let too_long = Stream::new("wss://a/b").parameter("token", "é".repeat(495));
    assert_eq!(
        Response::new().connect_stream(too_long).to_xml(),
        Err(TwimlError::ParameterTooLong {
            name: "token".to_owned(),
            chars: 500
        })
    );
}

#[test]
fn stream_urls_must_be_wss_without_a_query() {
    for (url, ok) in [
        ("wss://a/media/1", true),
        ("/api/twilio/media-stream/1", true),
        ("wss://a/media?token=1", false),
        ("https://a/media", false),
        ("ws://a/media", false),
    ] {
        let result = Response::new().connect_stream(Stream::new(url)).to_xml();
        assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
    }
}

#[test]
fn long_participant_labels_are_refused() {
    let label = |n| {
        Response::new().dial(Dial::conference(
            Conference::new("r").participant_label("l".repeat(n)),
        ))
    };
    assert!(label(128).to_xml().is_ok());
    assert_eq!(
        label(129).to_xml(),
        Err(TwimlError::ParticipantLabelTooLong { chars: 129 })
    );
}

#[test]
fn characters_xml_cannot_carry_are_refused() {
    assert_eq!(
        Response::new().say("a\u{0}b").to_xml(),
        Err(TwimlError::InvalidCharacter {
            element: "Say",
            field: "text"
        })
    );
    assert_eq!(
        Response::new()
            .say(Say::new("a").voice("\u{FFFF}"))
            .to_xml(),
        Err(TwimlError::InvalidCharacter {
            element: "Say",
            field: "voice"
        })
    );
}

/// An element tree with sorted attributes and whitespace-only text dropped, for comparing
/// documents that differ only in formatting.
#[derive(Debug, Default, PartialEq)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
    children: Vec<Node>,
}

fn tree(xml: &str) -> Node {
    let mut reader = Reader::from_str(xml);
    let mut stack = vec![Node::default()];
    loop {
        match reader.read_event().expect("well-formed xml") {
            Event::Start(start) => stack.push(node(&start)),
            Event::Empty(start) => {
                let leaf = node(&start);
                stack.last_mut().expect("parent").children.push(leaf);
            }
            Event::End(_) => {
                let done = stack.pop().expect("open element");
                stack.last_mut().expect("parent").children.push(done);
            }
            Event::Text(text) => {
                let text = text.unescape().expect("valid text");
                if !text.trim().is_empty() {
                    stack.last_mut().expect("element").text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().expect("document");
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.remove(0)
}

fn node(start: &quick_xml::events::BytesStart<'_>) -> Node {
    let attrs = start
        .attributes()
        .map(|attr| {
            let attr = attr.expect("valid attribute");
            let key = String::from_utf8(attr.key.as_ref().to_vec()).expect("utf-8 name");
            let value = attr.unescape_value().expect("valid value").into_owned();
            (key, value)
        })
        .collect();
    Node {
        name: String::from_utf8(start.name().as_ref().to_vec()).expect("utf-8 name"),
        attrs,
        ..Node::default()
    }
}
