//! Simulators of the two peers Switchboard sits between, so every flow can be tested
//! and load-tested on one machine with no account anywhere.
//!
//! - [`twilio`]: a Media Streams caller that places calls the way Twilio does (signed
//!   voice webhook, TwiML, signed WebSocket upgrade, µ-law at a real-time 20 ms
//!   cadence, playback with mark echoes, DTMF, hang-up), a fake of the REST endpoints
//!   the control plane calls, and a load mode.
//! - [`tls`]: a private certificate authority, rustls configurations and a
//!   `wss://` client, for TLS on every hop: `openai-sim` serves `wss://`
//!   (`SimConfig::tls`; `--tls-cert`/`--tls-key`, or `--tls --tls-ca-out FILE`),
//!   and the Twilio caller reaches `https://` webhooks and `wss://` streams trusting
//!   the public roots or one private CA (`twilio::TrustedCa`; `--ca-file FILE`).
//! - [`openai`]: a Realtime API server speaking the GA and beta dialects, with server
//!   VAD, transcripts, audio deltas, tool calls, truncation and fault injection.
//!
//! Both are built on the pure codecs of `switchboard-twilio` and
//! `switchboard-realtime`, which are pinned to recorded protocol samples, so a codec
//! bug cannot hide behind a simulator that shares it.

pub mod openai;
pub mod tls;
pub mod twilio;
