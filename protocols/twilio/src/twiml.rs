//! TwiML builders for the documents Switchboard answers with (docs/protocols.md §2.1): `<Connect>`
//! with a `<Stream>` and its `<Parameter>`s, `<Say>`, `<Dial>` to a `<Conference>` or a
//! `<Number>`, and `<Hangup/>`.
//!
//! The output is byte-for-byte what twilio-python 9.13.0 writes for the same document: the
//! XML declaration, no whitespace between elements, attributes sorted by name, `" />"` on
//! empty elements, and ElementTree's escaping (`& < > "` plus tab, LF and CR in attributes;
//! `& < >` in text). Unlike twilio-python it refuses what Twilio would reject or choke on
//! (see [`TwimlError`]). It only writes TwiML; it does not parse it, and it has no verbs the
//! gateway does not use.
//!
//! `<Dial>` and its nouns are in `twiml/dial.rs`; the ElementTree-compatible writer is in
//! `twiml/element.rs`.

use crate::vocabulary::HttpMethod;
use element::Element;

mod dial;
mod element;

pub use dial::{Conference, Dial, Number};

/// The declaration twilio-python puts before every document.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// The `Content-Type` to answer a webhook with.
pub const CONTENT_TYPE: &str = "text/xml";

/// A `<Parameter>`'s name and value must total fewer than this many characters.
pub const PARAMETER_MAX_CHARS: usize = 500;

/// Longest `<Conference participantLabel>`, in characters.
pub const PARTICIPANT_LABEL_MAX_CHARS: usize = 128;

/// A `<Response>` document: verbs run in order.
///
/// ```
/// use switchboard_twilio::twiml::{Response, Stream};
///
/// let stream = Stream::new("wss://sidecar.example.com/api/twilio/media-stream/c1")
///     .parameter("callId", "c1");
/// let xml = Response::new().connect_stream(stream).to_xml().expect("valid twiml");
/// assert!(xml.ends_with(
///     r#"<Parameter name="callId" value="c1" /></Stream></Connect></Response>"#
/// ));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    verbs: Vec<Verb>,
}

/// `<Say>`: speak text with Twilio's text-to-speech.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say {
    text: String,
    voice: Option<String>,
    language: Option<String>,
    loop_count: Option<u32>,
}

/// `<Connect>` holding one `<Stream>`: a bidirectional Media Stream. Blocks until the
/// WebSocket closes, then requests `action` if set, else runs the next verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    action: Option<String>,
    method: Option<HttpMethod>,
    stream: Stream,
}

/// `<Stream>` under `<Connect>`: where Twilio opens the Media Stream WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    url: String,
    name: Option<String>,
    status_callback: Option<String>,
    status_callback_method: Option<HttpMethod>,
    parameters: Vec<(String, String)>,
}

/// Why a document was not written. Messages never include parameter values (tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwimlError {
    /// A `<Parameter>`'s name and value total [`PARAMETER_MAX_CHARS`] characters or more.
    #[error(
        "<Parameter> {name:?}: name and value total {chars} characters, twilio needs fewer than 500"
    )]
    ParameterTooLong {
        /// The parameter's name.
        name: String,
        /// Characters in name plus value.
        chars: usize,
    },
    /// `participantLabel` is longer than [`PARTICIPANT_LABEL_MAX_CHARS`].
    #[error("<Conference> participantLabel has {chars} characters, twilio allows at most 128")]
    ParticipantLabelTooLong {
        /// Characters in the label.
        chars: usize,
    },
    /// The `<Stream url>` is not usable by Twilio.
    #[error("<Stream> url {reason}")]
    InvalidStreamUrl {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A string holds a character XML 1.0 cannot carry (a control character other than
    /// tab, LF, CR; U+FFFE; U+FFFF).
    #[error("<{element}> {field} contains a character xml cannot carry")]
    InvalidCharacter {
        /// The element.
        element: &'static str,
        /// The attribute, or `text` for the element's text.
        field: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verb {
    Say(Say),
    Connect(Connect),
    Dial(Dial),
    Hangup,
}

// === impl Response ===

impl Response {
    /// An empty `<Response/>` (Twilio hangs up on it).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a `<Say>`; a `&str` or `String` says the text with Twilio's default voice.
    pub fn say(mut self, say: impl Into<Say>) -> Self {
        self.verbs.push(Verb::Say(say.into()));
        self
    }

    /// Appends a `<Connect>`.
    pub fn connect(mut self, connect: Connect) -> Self {
        self.verbs.push(Verb::Connect(connect));
        self
    }

    /// Appends a `<Connect>` with only this `<Stream>` in it.
    pub fn connect_stream(self, stream: Stream) -> Self {
        self.connect(Connect::new(stream))
    }

    /// Appends a `<Dial>`.
    pub fn dial(mut self, dial: Dial) -> Self {
        self.verbs.push(Verb::Dial(dial));
        self
    }

    /// Appends `<Hangup />`.
    pub fn hangup(mut self) -> Self {
        self.verbs.push(Verb::Hangup);
        self
    }

    /// Writes the document, declaration included, as twilio-python 9.13.0 would.
    pub fn to_xml(&self) -> Result<String, TwimlError> {
        let mut children = Vec::with_capacity(self.verbs.len());
        for verb in &self.verbs {
            children.push(match verb {
                Verb::Say(say) => say.element(),
                Verb::Connect(connect) => connect.element()?,
                Verb::Dial(dial) => dial.element()?,
                Verb::Hangup => Element::new("Hangup"),
            });
        }
        let root = children
            .into_iter()
            .fold(Element::new("Response"), Element::child);
        let mut out = String::with_capacity(256);
        out.push_str(XML_DECLARATION);
        root.write(&mut out)?;
        Ok(out)
    }
}

// === impl Say ===

impl Say {
    /// `<Say>` of `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice: None,
            language: None,
            loop_count: None,
        }
    }

    /// `voice`, e.g. `alice`, `Polly.Joanna`, `Google.en-US-Neural2-F`.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// `language`, e.g. `en-US`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// `loop`: how many times to say it (0 = until the call ends).
    pub fn loop_count(mut self, count: u32) -> Self {
        self.loop_count = Some(count);
        self
    }

    fn element(&self) -> Element<'_> {
        Element::new("Say")
            .attr("voice", self.voice.as_deref())
            .attr("language", self.language.as_deref())
            .attr_num("loop", self.loop_count)
            .text(&self.text)
    }
}

impl From<&str> for Say {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Say {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

// === impl Connect ===

impl Connect {
    /// `<Connect>` around `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            action: None,
            method: None,
            stream,
        }
    }

    /// `action`: URL requested when the stream ends, instead of running the next verb.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.action = Some(url.into());
        self
    }

    /// `method` for `action`.
    pub fn method(mut self, method: HttpMethod) -> Self {
        self.method = Some(method);
        self
    }

    fn element(&self) -> Result<Element<'_>, TwimlError> {
        Ok(Element::new("Connect")
            .attr("action", self.action.as_deref())
            .attr("method", self.method.map(HttpMethod::as_str))
            .child(self.stream.element()?))
    }
}

// === impl Stream ===

impl Stream {
    /// `<Stream url>`: `wss://…` or a relative path, with no query string (pass data with
    /// [`Stream::parameter`] instead).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            status_callback: None,
            status_callback_method: None,
            parameters: Vec::new(),
        }
    }

    /// `name`, unique per call.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `statusCallback`: receives `stream-started`, `stream-stopped`, `stream-error`.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// `statusCallbackMethod`.
    pub fn status_callback_method(mut self, method: HttpMethod) -> Self {
        self.status_callback_method = Some(method);
        self
    }

    /// Adds a `<Parameter name value />`; it arrives in `start.customParameters`. Name and
    /// value must total fewer than [`PARAMETER_MAX_CHARS`] characters.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    fn element(&self) -> Result<Element<'_>, TwimlError> {
        if self.url.contains('?') {
            return Err(TwimlError::InvalidStreamUrl {
                reason: "has a query string; pass data as <Parameter> instead",
            });
        }
        if self.url.contains("://") && !self.url.starts_with("wss://") {
            return Err(TwimlError::InvalidStreamUrl {
                reason: "is absolute but not wss://",
            });
        }
        let mut element = Element::new("Stream")
            .attr("url", Some(self.url.as_str()))
            .attr("name", self.name.as_deref())
            .attr("statusCallback", self.status_callback.as_deref())
            .attr(
                "statusCallbackMethod",
                self.status_callback_method.map(HttpMethod::as_str),
            );
        for (name, value) in &self.parameters {
            let chars = name.chars().count() + value.chars().count();
            if chars >= PARAMETER_MAX_CHARS {
                return Err(TwimlError::ParameterTooLong {
                    name: name.clone(),
                    chars,
                });
            }
            element = element.child(
                Element::new("Parameter")
                    .attr("name", Some(name.as_str()))
                    .attr("value", Some(value.as_str())),
            );
        }
        Ok(element)
    }
}

#[cfg(test)]
mod tests;
