//! The per-call model: everything one live call decides, without doing any I/O.
//!
//! A call bridges three peers — Twilio's Media Stream socket, the OpenAI Realtime socket
//! and the control plane's per-call gRPC stream. [`CallCore`] is the state machine of one
//! call: it takes what a peer sent (a Twilio text frame, an OpenAI event, a
//! `ConnectResponse`, a tick) and fills an [`Actions`] with what to send where, what to
//! log and whether the call is over. It owns the barge-in decision (with
//! [`switchboard_realtime::Playback`]), the conversation log and its acknowledgements
//! ([`Outbox`]), tool calls, usage and the fallback when the model drops or the sidecar's
//! drain runs out of grace. It has no sockets, no
//! tokio and no clock: time comes in as `now_ms`.
//!
//! What it is not: the loop that owns the sockets. That is `call/driver.rs`, which
//! `select!`s over the three peers, feeds the core and carries out the actions.
//!
//! Layout, in reading order:
//! - `core.rs` — [`CallCore`], its inputs and the end of a call; `core/` holds the
//!   handling of each peer (`twilio.rs`, `openai.rs`, `control.rs`), tool calls
//!   (`tools.rs`) and the conversation items it writes (`log.rs`).
//! - `actions.rs` — [`Actions`], the reusable output of every input, and [`End`].
//! - `counters.rs` — [`CallCounters`] for metrics: frames relayed, rejected by reason.
//! - `outbox.rs` — [`Outbox`]: per-call sequence numbers, batches, ack/nack, resend, and
//!   the requests (tool calls, transfer, fallback, final status) kept until answered.
//! - `backoff.rs` — [`Backoff`]: when to reopen a broken control stream (full jitter).
//! - `session_config.rs` — `AgentSettings` → `session.update` settings.

mod actions;
pub mod backoff;
mod core;
mod counters;
pub mod driver;
pub mod outbox;
pub mod session_config;

pub use self::actions::{Actions, End, EndKind, Frames, RealtimeError, Refusal};
pub use self::backoff::Backoff;
pub use self::core::{
    CallCore, CallLimits, DEFAULT_GOODBYE, DRAINED_END_REASON, DRAINED_ERROR_CODE,
};
pub use self::counters::{CallCounters, RejectCounts, RejectReason};
pub use self::driver::CallDriver;
pub use self::outbox::{Outbox, OutboxFull, OutboxLimits, RequestKind};
pub use self::session_config::{session_config, SessionPlan, SkippedTool, TRANSFER_TO_HUMAN};
