//! The Twilio simulator: everything Twilio does to Switchboard, on loopback, with no account.
//!
//! - A **caller** ([`caller`]) places a call the way Twilio does: it POSTs the signed voice
//!   webhook, reads the TwiML ([`document`]), opens the signed Media Stream WebSocket of
//!   `<Connect><Stream>`, sends `connected`, `start` and µ-law `media` at a real-time 20 ms
//!   cadence from a [`TalkScript`], plays back what it receives at real time ([`playback`]:
//!   marks are echoed only once the audio before them has played, all at once on `clear`),
//!   presses DTMF, hangs up with `stop`, and follows `<Connect action>`, `<Redirect>` and the
//!   verbs after a closed stream. Everything it saw and did lands in a [`CallRecord`]
//!   ([`record`]).
//! - A **fake REST API** ([`rest`]) of the endpoints the control plane calls: create and
//!   update calls, conference participants, Basic auth, form bodies in and Twilio's JSON
//!   out. Created calls ring, are answered or not per number ([`OutcomeScript`]), send signed
//!   status callbacks, and run a simulated caller once answered.
//! - A **load mode** ([`load`]): N concurrent callers on a ramp, with per-call results.
//! - The **signed requests** Twilio makes to an application, and how it resolves TwiML
//!   references ([`webhook`]), for other Twilio-side drivers (the relay benchmark's).
//! - **TLS** ([`trust`]): `https://` and `wss://` are always TLS, verified against the
//!   URL's host; the public roots are trusted, as by real Twilio, unless a call (or the
//!   REST fake, or the binary's `--ca-file`) names a [`TrustedCa`] to trust instead.
//!
//! What it is not: a codec. Every Twilio message, signature, webhook body and REST shape
//! comes from `switchboard-twilio`, which is pinned to recorded samples; the simulator only
//! adds what a codec cannot know (time, order, state). The one thing it reads itself is
//! TwiML ([`document`]), because the codec crate only writes it.
//!
//! Start with [`playback`] (the pure model of Twilio's playout queue), then
//! [`caller`]; the other simulator, `crate::openai`, plays the Realtime API.

pub mod audio;
pub mod caller;
pub mod cli;
pub mod document;
pub mod load;
pub mod playback;
pub mod record;
pub mod rest;
pub mod script;
pub mod sid;
pub mod trust;
pub mod webhook;

pub use audio::{AudioError, AudioSource};
pub use caller::{CallSpec, Caller, ControlError, TwimlSource};
pub use document::{Document, DocumentError, Verb};
pub use load::{run_load, CallResult, LoadReport, LoadSpec, LoadSummary};
pub use playback::{MarkEcho, Playback};
pub use record::{CallEnd, CallRecord, StreamEnd, StreamRecord, Warning};
pub use rest::{CreatedCall, FakeTwilio, Outcome, OutcomeScript, Outcomes, RestConfig};
pub use script::{DtmfPress, TalkScript, Utterance};
pub use trust::TrustedCa;
