//! Twilio's wire formats, as Switchboard speaks them: Media Streams messages, TwiML,
//! `X-Twilio-Signature`, webhook bodies and the REST shapes the control plane uses.
//!
//! The crate is pure: bytes or `&str` in, a value or a typed error out. It opens no socket,
//! reads no clock and spawns nothing, so the sidecar, the control plane and the Twilio
//! simulator can share it, and every codec is pinned to real samples in `tests/fixtures/`
//! (`tests/fixtures/README.md` says where each comes from). No input makes it panic: `tests/no_panic.rs`
//! and the targets in `fuzz/` check that.
//!
//! # Layout
//!
//! - [`media_stream`]: the WebSocket messages of a bidirectional `<Connect><Stream>`: parse
//!   Twilio's `connected`/`start`/`media`/`mark`/`dtmf`/`stop` without copying the payload,
//!   write our `media`/`mark`/`clear` without a JSON DOM; µ-law duration arithmetic. The hot
//!   path; start here.
//! - [`twiml`]: builders for the `<Response>` documents we answer with, written as
//!   twilio-python writes them.
//! - [`signature`]: `X-Twilio-Signature` for form, GET, WebSocket-upgrade and JSON requests.
//! - [`webhooks`]: the voice webhook and the call, AMD, stream and conference status
//!   callbacks; `form_params`, the body reader signatures use.
//! - [`rest`]: create/update call, conference participants, and the JSON resources and
//!   error body Twilio answers with.
//! - [`vocabulary`]: the enums the others share (`CallStatus`, `AnsweredBy`, …), each with a
//!   fallback variant so a value Twilio adds tomorrow is data, not an error.
//!
//! The other protocol crate, `switchboard-realtime`, does the same for OpenAI's side.

pub mod media_stream;
pub mod rest;
pub mod signature;
pub mod twiml;
pub mod vocabulary;
pub mod webhooks;

pub use media_stream::{
    encode_clear, encode_mark, encode_media, parse_inbound, parse_outbound, payload_duration_ms,
    InboundMessage, OutboundMessage, ParseError,
};
pub use signature::{RequestValidator, SignatureError};
pub use twiml::{Response, TwimlError};
pub use vocabulary::{
    AnsweredBy, Beep, CallDirection, CallProgressEvent, CallStatus, ConferenceCallbackEvent,
    ConferenceEvent, ConferenceStatus, HttpMethod, MachineDetection, ParticipantStatus,
    StreamEvent,
};
pub use webhooks::{form_params, WebhookError};
