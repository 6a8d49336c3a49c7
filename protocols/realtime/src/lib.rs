//! OpenAI / Azure OpenAI Realtime API wire formats for Switchboard, in both
//! dialects (GA and the retired beta that Azure preview api-versions speak).
//!
//! Pure codecs: `&str` in, typed value or [`ParseError`] out; typed value in,
//! JSON text out. No sockets, clocks or tasks. Unknown event types decode to
//! an `Unknown` variant that callers count and skip; malformed frames are an
//! error for that frame, never a panic. The base64 audio stays an opaque
//! string, borrowed from the frame on the way in and passed through on the
//! way out.
//!
//! ```
//! use switchboard_realtime::{parse_server_event, ClientEvent, Dialect, ServerEvent};
//!
//! let frame = r#"{"type":"response.audio.delta","event_id":"e1","response_id":"r1",
//!     "item_id":"i1","output_index":0,"content_index":0,"delta":"/w=="}"#;
//! let ServerEvent::ResponseOutputAudioDelta(delta) = parse_server_event(frame)? else {
//!     unreachable!("a beta audio delta decodes to the GA variant");
//! };
//! assert_eq!(delta.delta, "/w==");
//!
//! let truncate = ClientEvent::truncate("i1", 240).encode(Dialect::Ga);
//! assert!(truncate.contains(r#""audio_end_ms":240"#));
//! # Ok::<(), switchboard_realtime::ParseError>(())
//! ```
//!
//! # Layout
//!
//! - [`dialect`]: [`Dialect`] and the beta ⇄ GA name maps.
//! - [`client_event`]: [`ClientEvent`] (what the sidecar sends) with
//!   `encode`, [`encode_audio_append`] for the hot path, and
//!   [`parse_client_event`] (what the simulator reads).
//! - [`server_event`]: [`ServerEvent`], one GA-named enum decoded from either
//!   dialect by [`parse_server_event`], and encoded per dialect for the
//!   simulator.
//! - [`item`] / [`response`]: conversation items, the Response object, usage.
//! - [`session`]: [`SessionConfig`] → the `session.update` session object of
//!   each dialect, and back.
//! - [`connection`]: [`ConnectParams`] → WebSocket URL, headers, dialect
//!   (OpenAI, OpenAI beta, Azure GA and preview).
//! - [`barge_in`]: [`Playback`], the mark-based "what did the caller hear"
//!   tracker behind `conversation.item.truncate`.
//! - [`ParseError`]: the one decode error.
#![warn(missing_docs)]

pub mod barge_in;
pub mod client_event;
pub mod connection;
pub mod dialect;
mod error;
pub mod item;
pub mod response;
pub mod server_event;
pub mod session;
mod wire;

pub use barge_in::{
    base64_decoded_len, mulaw_duration_ms, Interruption, MarkEcho, MarkName, Playback,
};
pub use client_event::{encode_audio_append, parse_client_event, ClientEvent, ResponseParams};
pub use connection::{Auth, ConnectParams, ConnectionError, Headers, Provider, Secret};
pub use dialect::Dialect;
pub use error::ParseError;
pub use item::{ContentPart, ContentType, Item, ItemStatus, ItemType, Role};
pub use response::{Response, ResponseStatus, Usage};
pub use server_event::{parse_server_event, ServerEvent};
pub use session::{
    AudioFormat, InputTranscription, MaxOutputTokens, NoiseReduction, OutputModality,
    SessionConfig, Tool, TurnDetection, TurnDetectionMode,
};
