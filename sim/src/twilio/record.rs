//! What a simulated call did and saw, for tests to assert on and for `twilio-sim call` to
//! print as JSON: the TwiML it fetched, the verbs it ran, and per Media Stream the media it
//! sent, what came back, what the caller heard, the marks it echoed, the warnings Twilio
//! would have raised, and how it ended.
//!
//! Call times are measured from the call's start (the first webhook request); stream times
//! from the stream's start (the WebSocket handshake completing). Both are the simulator's
//! own monotonic clock, so comparisons between them are exact; nothing here is wall time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::document::Verb;
use super::playback::{ClearRecord, HeardAudio, MarkEcho};

/// Warning code: a binary frame from the application (Twilio 31950).
pub const WARNING_BINARY_FRAME: u32 = 31950;

/// Warning code: a malformed message, unknown `event`, missing or extra field, or wrong
/// `streamSid` (Twilio 31951).
pub const WARNING_INVALID_MESSAGE: u32 = 31951;

/// Warning code: more than ~10 minutes of audio queued; the excess is discarded (31931).
pub const WARNING_QUEUE_FULL: u32 = 31931;

/// Everything one simulated call did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallRecord {
    /// `CallSid` (`CA…`).
    pub call_sid: String,
    /// `From`.
    pub from: String,
    /// `To`.
    pub to: String,
    /// `Direction` of the webhooks: `inbound` or `outbound-api`.
    pub direction: String,
    /// Every TwiML document fetched or given, in order.
    pub documents: Vec<TwimlFetch>,
    /// Every verb the call ran, in order.
    pub verbs: Vec<Verb>,
    /// Every Media Stream the call opened, in order.
    pub streams: Vec<StreamRecord>,
    /// Errors on the way (fetch failures, unparsable TwiML, failed handshakes), as messages.
    pub errors: Vec<String>,
    /// How the call ended; `None` while it is live.
    pub end: Option<CallEnd>,
    /// How long the call lasted (so far, while live).
    #[serde(serialize_with = "as_ms")]
    pub duration: Duration,
}

/// A TwiML document the call ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TwimlFetch {
    /// Why it was fetched: `webhook`, `action`, `redirect`, `update` or `inline`.
    pub origin: &'static str,
    /// Where from (none for inline TwiML).
    pub url: Option<String>,
    /// The HTTP status of the fetch.
    pub status: Option<u16>,
    /// The document as received.
    pub twiml: String,
}

/// One Media Stream: what went each way and what the caller heard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamRecord {
    /// `streamSid` (`MZ…`).
    pub stream_sid: String,
    /// The `<Stream url>` as written (what the upgrade's signature covers).
    pub url: String,
    /// `start.customParameters`: the `<Parameter>`s.
    pub custom_parameters: BTreeMap<String, String>,
    /// When the stream started (call time).
    #[serde(serialize_with = "as_ms")]
    pub started_at: Duration,
    /// The caller's audio sent to the application.
    pub sent: SentMedia,
    /// What the application sent.
    pub received: ReceivedMedia,
    /// What the caller actually heard.
    pub heard: HeardAudio,
    /// Every mark echoed, in order.
    pub marks: Vec<MarkEcho>,
    /// Every `clear`.
    pub clears: Vec<ClearRecord>,
    /// Warnings Twilio would have raised about the application's messages.
    pub warnings: Vec<Warning>,
    /// Key presses sent.
    pub dtmf: Vec<DtmfSent>,
    /// Bytes still queued, never heard, when the stream ended.
    pub unplayed_bytes: u64,
    /// Marks still waiting for their audio, never echoed, when the stream ended.
    pub unechoed_marks: Vec<String>,
    /// How the stream ended; `None` while it is live.
    pub end: Option<StreamEnd>,
}

/// The caller's side of the media.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SentMedia {
    /// `media` messages sent (the last `media.chunk`).
    pub frames: u64,
    /// The last `sequenceNumber` sent, over all message types.
    pub last_sequence_number: u64,
    /// The last `media.timestamp` sent, in ms.
    pub last_timestamp_ms: u64,
    /// When the first frame was sent (stream time).
    #[serde(serialize_with = "as_ms_opt")]
    pub first_at: Option<Duration>,
    /// When the last frame was sent (stream time).
    #[serde(serialize_with = "as_ms_opt")]
    pub last_at: Option<Duration>,
}

/// What the application sent on the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceivedMedia {
    /// `media` messages accepted.
    pub media: u64,
    /// µ-law bytes in them.
    pub bytes: u64,
    /// `mark` messages accepted.
    pub marks: u64,
    /// `clear` messages accepted.
    pub clears: u64,
}

/// A warning Twilio would have raised (and reported once per stream in its debugger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Twilio's code: [`WARNING_BINARY_FRAME`], [`WARNING_INVALID_MESSAGE`] or
    /// [`WARNING_QUEUE_FULL`].
    pub code: u32,
    /// When (stream time).
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    /// What was wrong; never the payload.
    pub detail: String,
}

/// A key press sent as a `dtmf` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtmfSent {
    /// The digit.
    pub digit: char,
    /// When (stream time).
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
}

/// How a Media Stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamEnd {
    /// The caller hung up (script or handle): `stop` sent, socket closed.
    CallerHungUp,
    /// The call was ended through the REST API (`Status=completed`): `stop` sent.
    HungUpByApi,
    /// The call was redirected to new TwiML: `stop` sent, socket closed.
    Redirected,
    /// The application closed the socket (or it dropped); Twilio runs the next verb.
    AppClosed {
        /// The close code, if a close frame was received.
        code: Option<u16>,
    },
    /// The handshake failed or the socket broke.
    Failed {
        /// What happened.
        error: String,
    },
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallEnd {
    /// The caller hung up (script or handle).
    CallerHungUp,
    /// Ended through the REST API (`Status=completed`) or the handle's `complete`.
    HungUpByApi,
    /// A `<Hangup/>` (or `<Reject/>`) ran.
    Hangup,
    /// The TwiML ran out of verbs, so Twilio hung up.
    NoMoreVerbs,
    /// A `<Dial>` ran; its far leg is not simulated.
    Dialed,
    /// Fetching TwiML failed (Twilio error 11200).
    FetchFailed {
        /// The URL.
        url: String,
        /// The HTTP status, if there was a response.
        status: Option<u16>,
    },
    /// A document was not TwiML (Twilio error 12100).
    InvalidTwiml,
    /// More than the simulator's limit of documents in one call (a redirect loop).
    TooManyDocuments,
}

/// Serializes a duration as fractional milliseconds.
pub(crate) fn as_ms<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

/// Serializes an optional duration as fractional milliseconds or null.
pub(crate) fn as_ms_opt<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => as_ms(duration, serializer),
        None => serializer.serialize_none(),
    }
}

// === impl CallRecord ===

impl CallRecord {
    /// The first Media Stream, if the call opened one.
    pub fn stream(&self) -> Option<&StreamRecord> {
        self.streams.first()
    }

    /// Warnings over all streams.
    pub fn warning_count(&self) -> usize {
        self.streams
            .iter()
            .map(|stream| stream.warnings.len())
            .sum()
    }

    /// Whether the call has ended.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }
}
