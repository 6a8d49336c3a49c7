//! Reading TwiML the way Twilio does, for the simulated call to run: a `<Response>` of verbs,
//! in order.
//!
//! The codec crate (`switchboard_twilio::twiml`) only writes TwiML, so the simulator reads it
//! here with quick-xml. It knows the verbs Switchboard answers with (`<Connect><Stream>` with
//! `<Parameter>`s, `<Say>`, `<Dial>` to a `<Conference>` or `<Number>`, `<Hangup/>`) and the
//! ones a call flow may add (`<Pause>`, `<Play>`, `<Redirect>`, `<Reject>`); anything else is
//! kept as [`Verb::Other`] and skipped, as Twilio would reject it. Attribute values and text
//! are unescaped; nothing is validated beyond what running the call needs.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde::Serialize;

/// A parsed `<Response>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Document {
    /// The verbs, in document order.
    pub verbs: Vec<Verb>,
}

/// One TwiML verb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Verb {
    /// `<Connect>`: a bidirectional Media Stream (if it holds a `<Stream>`).
    Connect {
        /// `action`: requested when the stream ends, instead of running the next verb.
        action: Option<String>,
        /// `method` for `action` (`POST` if unset).
        method: Option<String>,
        /// The `<Stream>` noun.
        stream: Option<StreamNoun>,
    },
    /// `<Say>`: text-to-speech.
    Say {
        /// The text.
        text: String,
        /// `voice`.
        voice: Option<String>,
        /// `language`.
        language: Option<String>,
    },
    /// `<Play>`: an audio file.
    Play {
        /// The URL.
        url: String,
    },
    /// `<Pause>`: silence.
    Pause {
        /// `length` in seconds (1 if unset).
        length_secs: u32,
    },
    /// `<Dial>`: connect the caller to another party.
    Dial {
        /// `action`.
        action: Option<String>,
        /// `timeout` in seconds.
        timeout_secs: Option<u32>,
        /// `callerId`.
        caller_id: Option<String>,
        /// What is dialled.
        targets: Vec<DialTarget>,
    },
    /// `<Redirect>`: fetch more TwiML.
    Redirect {
        /// The URL (the element's text).
        url: String,
        /// `method` (`POST` if unset).
        method: Option<String>,
    },
    /// `<Hangup/>`.
    Hangup,
    /// `<Reject/>`.
    Reject {
        /// `reason`: `rejected` or `busy`.
        reason: Option<String>,
    },
    /// A verb the simulator does not run.
    Other {
        /// The element name.
        name: String,
    },
}

/// `<Stream>` under `<Connect>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamNoun {
    /// `url`, as written.
    pub url: String,
    /// `name`.
    pub name: Option<String>,
    /// `statusCallback`.
    pub status_callback: Option<String>,
    /// The `<Parameter name value>`s, in order.
    pub parameters: Vec<(String, String)>,
}

/// What a `<Dial>` dials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum DialTarget {
    /// `<Number>` or the `<Dial>`'s own text.
    Number(String),
    /// `<Conference>`: the room name.
    Conference(String),
    /// Another noun (`<Client>`, `<Sip>`, `<Queue>` …): its name.
    Other(String),
}

/// Why a document is not TwiML the simulator can run (Twilio's error 12100).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not well-formed XML.
    #[error("twiml is not well-formed xml: {0}")]
    Xml(String),
    /// The root element is not `<Response>`.
    #[error("twiml root element is <{0}>, not <Response>")]
    NotResponse(String),
    /// No root element at all.
    #[error("twiml has no root element")]
    Empty,
}

/// An element and what is inside it.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

/// Reads a TwiML document.
pub fn parse(xml: &str) -> Result<Document, DocumentError> {
    let root = read_tree(xml)?;
    if root.name != "Response" {
        return Err(DocumentError::NotResponse(root.name));
    }
    Ok(Document {
        verbs: root.children.iter().map(verb).collect(),
    })
}

impl std::str::FromStr for Document {
    type Err = DocumentError;

    fn from_str(xml: &str) -> Result<Self, Self::Err> {
        parse(xml)
    }
}

fn verb(node: &Node) -> Verb {
    match node.name.as_str() {
        "Connect" => Verb::Connect {
            action: node.attr("action"),
            method: node.attr("method"),
            stream: node.child("Stream").map(|stream| StreamNoun {
                url: stream.attr("url").unwrap_or_default(),
                name: stream.attr("name"),
                status_callback: stream.attr("statusCallback"),
                parameters: stream
                    .children
                    .iter()
                    .filter(|child| child.name == "Parameter")
                    .map(|p| {
                        let name = p.attr("name").unwrap_or_default();
                        (name, p.attr("value").unwrap_or_default())
                    })
                    .collect(),
            }),
        },
        "Say" => Verb::Say {
            text: node.text.clone(),
            voice: node.attr("voice"),
            language: node.attr("language"),
        },
        "Play" => Verb::Play {
            url: node.text.clone(),
        },
        "Pause" => Verb::Pause {
            length_secs: node
                .attr("length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1),
        },
        "Dial" => {
            let mut targets: Vec<DialTarget> = node
                .children
                .iter()
                .map(|child| match child.name.as_str() {
                    "Number" => DialTarget::Number(child.text.clone()),
                    "Conference" => DialTarget::Conference(child.text.clone()),
                    other => DialTarget::Other(other.to_owned()),
                })
                .collect();
            if targets.is_empty() && !node.text.is_empty() {
                targets.push(DialTarget::Number(node.text.clone()));
            }
            Verb::Dial {
                action: node.attr("action"),
                timeout_secs: node.attr("timeout").and_then(|t| t.parse().ok()),
                caller_id: node.attr("callerId"),
                targets,
            }
        }
        "Redirect" => Verb::Redirect {
            url: node.text.clone(),
            method: node.attr("method"),
        },
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject {
            reason: node.attr("reason"),
        },
        other => Verb::Other {
            name: other.to_owned(),
        },
    }
}

fn read_tree(xml: &str) -> Result<Node, DocumentError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|err| DocumentError::Xml(err.to_string()))?;
        match event {
            Event::Start(start) => stack.push(node(&start)?),
            Event::Empty(start) => {
                let leaf = node(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(leaf),
                    None => return Ok(leaf),
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(DocumentError::Xml("unexpected end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Text(text) => {
                let text = text
                    .unescape()
                    .map_err(|err| DocumentError::Xml(err.to_string()))?;
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&text);
                }
            }
            Event::CData(data) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::Eof => {
                return Err(if stack.is_empty() {
                    DocumentError::Empty
                } else {
                    DocumentError::Xml("unexpected end of document".into())
                })
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

fn node(start: &BytesStart<'_>) -> Result<Node, DocumentError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|err| DocumentError::Xml(err.to_string()))?;
        let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
        let value = attribute
            .unescape_value()
            .map_err(|err| DocumentError::Xml(err.to_string()))?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Node {
        name,
        attributes,
        ..Node::default()
    })
}

// === impl Node ===

impl Node {
    fn attr(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|child| child.name == name)
    }
}

// === impl Document ===

impl Document {
    /// The first `<Connect><Stream>`, if any.
    pub fn stream(&self) -> Option<&StreamNoun> {
        self.verbs.iter().find_map(|verb| match verb {
            Verb::Connect { stream, .. } => stream.as_ref(),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_twilio::twiml::{Conference, Dial, Response, Say, Stream};

    #[test]
    fn reads_what_the_codec_writes_for_the_inbound_ai_answer() {
        let xml = Response::new()
            .connect_stream(
                Stream::new("wss://sidecar.example.com/api/twilio/media-stream/c1")
                    .parameter("token", "v1.a&b<c>\"d\"")
                    .parameter("callId", "c1"),
            )
            .to_xml()
            .expect("valid twiml");
        let document = parse(&xml).expect("parses");
        let stream = document.stream().expect("a stream");
        assert_eq!(
            stream.url,
            "wss://sidecar.example.com/api/twilio/media-stream/c1"
        );
        assert_eq!(
            stream.parameters,
            [
                ("token".to_owned(), "v1.a&b<c>\"d\"".to_owned()),
                ("callId".to_owned(), "c1".to_owned())
            ]
        );
    }

    #[test]
    fn reads_the_handoff_document() {
        let xml = Response::new()
            .say(Say::new("Connecting you & an agent.").voice("Polly.Joanna"))
            .dial(Dial::conference(Conference::new("handoff-c1")).timeout_secs(30))
            .hangup()
            .to_xml()
            .expect("valid twiml");
        let document = parse(&xml).expect("parses");
        assert_eq!(
            document.verbs,
            [
                Verb::Say {
                    text: "Connecting you & an agent.".into(),
                    voice: Some("Polly.Joanna".into()),
                    language: None
                },
                Verb::Dial {
                    action: None,
                    timeout_secs: Some(30),
                    caller_id: None,
                    targets: vec![DialTarget::Conference("handoff-c1".into())]
                },
                Verb::Hangup,
            ]
        );
    }

    #[test]
    fn reads_hand_written_twiml_with_whitespace_and_plain_dial() {
        let xml = r#"<?xml version="1.0"?>
            <Response>
              <Connect action="http://127.0.0.1:1/done">
                <Stream url="ws://127.0.0.1:1/media"><Parameter name="k" value="v"/></Stream>
              </Connect>
              <Pause length="2"/>
              <Dial>+14155550100</Dial>
              <Redirect method="GET">http://127.0.0.1:1/next</Redirect>
              <Gather/>
            </Response>"#;
        let document = parse(xml).expect("parses");
        assert_eq!(document.verbs.len(), 5);
        assert!(
            matches!(&document.verbs[0], Verb::Connect { action: Some(a), .. } if a == "http://127.0.0.1:1/done")
        );
        assert_eq!(document.verbs[1], Verb::Pause { length_secs: 2 });
        assert!(matches!(&document.verbs[2], Verb::Dial { targets, .. }
            if targets == &[DialTarget::Number("+14155550100".into())]));
        assert_eq!(
            document.verbs[3],
            Verb::Redirect {
                url: "http://127.0.0.1:1/next".into(),
                method: Some("GET".into())
            }
        );
        assert_eq!(
            document.verbs[4],
            Verb::Other {
                name: "Gather".into()
            }
        );
    }

    #[test]
    fn refuses_what_is_not_twiml() {
        assert!(matches!(parse("<Reply/>"), Err(DocumentError::NotResponse(n)) if n == "Reply"));
        assert!(matches!(parse(""), Err(DocumentError::Empty)));
        assert!(matches!(
            parse("<Response><Say>hi</Response>"),
            Err(DocumentError::Xml(_))
        ));
        assert!(matches!(parse("<Response>"), Err(DocumentError::Xml(_))));
        assert_eq!(parse("<Response/>").map(|d| d.verbs.len()), Ok(0));
    }
}
