//! The OpenAI Realtime simulator: a WebSocket server that speaks the GA and
//! beta dialects of the Realtime API well enough for the media sidecar not
//! to tell the difference, with no account anywhere.
//!
//! What it does, per connection: `session.created`, `session.updated` after
//! each valid `session.update` (the full effective config), `error` events
//! like the real API for malformed or out-of-order client events, server VAD
//! on the energy of the appended audio (`speech_started` / `speech_stopped`
//! / `committed`, audio time from the byte count, never the wall clock), the
//! caller's transcript from a [`Script`], responses whose audio deltas (a
//! tone) are sent faster than real time with transcript deltas, `.done`
//! events and `response.done` with usage, scripted function calls,
//! `conversation.item.truncate` (including the "already shorter" error) and
//! `response.cancel`. Faults ([`Fault`]) refuse, drop, stall, rate-limit or
//! expire a session. [`Mode::Echo`] answers each append with one audio delta
//! carrying the same payload, for relay benchmarks. As on the real API, the
//! model is the one the URL chose: a `session.update` naming another is
//! refused with an `error` (`param: session.model`) and not applied.
//!
//! Transport: plain `ws://` by default; `wss://` when [`SimConfig::tls`]
//! holds a server configuration (built with [`crate::tls::server_config`];
//! the `openai-sim` binary's `--tls-cert`/`--tls-key`, or `--tls` with
//! `--tls-ca-out` for a certificate from a fresh private CA: see [`cli`]). Clients that
//! fail the TLS handshake are listed in [`Records::rejections`].
//!
//! What it is not: a model. It does not listen to the words; every caller
//! turn is the script's next turn.
//!
//! # Layout
//!
//! - [`server`]: [`OpenAiSim`], the listener, the handshake (paths, auth,
//!   dialect) and the per-connection driver.
//! - [`session`]: [`SessionCore`], the sans-I/O state machine of one session
//!   (client events in, server events out), where the protocol rules live.
//! - [`vad`] and [`audio`]: energy VAD over G.711 / PCM, and the tone the
//!   assistant speaks.
//! - [`script`]: what the caller says and the assistant answers.
//! - [`faults`]: fault specs and how a connection picks them.
//! - [`records`]: what happened per session, for tests to assert on.
//! - [`config`]: [`SimConfig`], the settings shared by every session.
//! - [`cli`]: the `openai-sim` binary's flags, TLS ones included.
//!
//! Read [`session`] next; the codecs it uses live in `switchboard-realtime`.

pub mod audio;
pub mod cli;
pub mod config;
pub mod faults;
pub mod records;
pub mod script;
pub mod server;
pub mod session;
pub mod vad;

pub use config::{AudioPace, Mode, SimConfig};
pub use faults::{Fault, FaultSpecError, Trigger};
pub use records::{Records, Rejection, SentError, SessionRecord, Truncation};
pub use script::{FunctionCall, Reply, Script, ScriptError, Turn};
pub use server::OpenAiSim;
pub use session::SessionCore;
