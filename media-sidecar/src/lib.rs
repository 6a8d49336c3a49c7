//! Switchboard's media sidecar: the real-time edge between Twilio and the OpenAI
//! Realtime API.
//!
//! Layout: `call` is the per-call model — `call::core` a sans-I/O bridge that turns
//! Twilio messages, OpenAI events and control-plane messages into actions, with its
//! outbox of everything the call must tell the control plane; `config` reads the
//! environment once; `token` signs per-call stream tokens; `http` serves Twilio's
//! webhooks, the media WebSocket and the admin endpoints; `metrics` names every metric
//! once; `drain` tracks active calls and readiness; `control` is the control-plane
//! client and `realtime_client` opens the Realtime socket of a call; `call::driver`
//! joins them for each call.

pub mod call;
pub mod config;
pub mod control;
pub mod drain;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod realtime_client;
pub mod tls;
pub mod token;

pub use http::{
    serve, serve_with_state, AppState, Listeners, MediaHandler, MediaSocket, ServeError,
};
