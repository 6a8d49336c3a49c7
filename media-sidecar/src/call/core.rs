//! [`CallCore`]: the sans-I/O state machine of one call.
//!
//! Inputs are methods — a Twilio text frame ([`CallCore::on_twilio_text`]), an OpenAI
//! event ([`CallCore::on_openai_text`]), a control-plane message
//! ([`CallCore::on_control`]), a tick ([`CallCore::on_tick`]), a closed socket, the
//! sidecar's drain running out of grace ([`CallCore::on_drained`]) — and
//! each fills a caller-provided [`Actions`]. The core decides everything a call decides:
//! relaying audio both ways with the base64 untouched, barge-in from echoed marks, the
//! conversation log and its acks, tool calls, the greeting, usage, handoff, and how the
//! call ends. The per-peer handling lives in `core/twilio.rs`, `core/openai.rs` and
//! `core/control.rs`; tool calls and the model's transfer in `core/tools.rs`; time-based
//! ends (a quiet Twilio socket, the longest call and its goodbye) in `core/timers.rs`;
//! the items it logs in `core/log.rs`.
//!
//! What it is not: it owns no socket, spawns nothing, reads no clock and logs nothing.
//! `now_ms` is wall-clock milliseconds since the Unix epoch (it stamps conversation
//! items) from a clock that does not go backwards during the call — e.g. the epoch time
//! at call start plus a monotonic `Instant`'s elapsed time. The driver (`driver.rs`) owns
//! the sockets and carries the actions out.
//!
//! Lifecycle: build the core from the call's `CallConfig` once the control plane sent it
//! (feed it the Twilio `start` frame and any frames that arrived meanwhile, in order;
//! caller audio is buffered until the OpenAI session is configured). The call ends once:
//! [`Actions::end`] says how. After that the core only finishes the log: the final
//! `StatusUpdate` is held until every item is acknowledged (and a fallback answered), so
//! a control-plane restart during the goodbye loses nothing; [`CallCore::is_settled`]
//! says when the control plane has answered it and the driver may close the stream, and
//! [`CallCore::finish`] forces the status out when the grace period runs out.
//!
//! The control stream may break at any time: the driver says so
//! ([`CallCore::on_control_lost`]) and everything the core must say — items, tool calls,
//! the model's transfer, the fallback, the final status — waits in the [`Outbox`] until
//! the stream is back and its `CallConfig` arrived; then it goes, in order, carrying the
//! ids the control plane de-duplicates on.

use switchboard_proto::v1::{
    connect_request::Message as Out, fallback, AgentSettings, CallConfig, CallError, CallStatus,
    ConnectRequest, ConversationItem, FallbackRequest, HandoffTarget, Hello, StatusUpdate, Usage,
    UsageReport,
};
use switchboard_realtime::{Dialect, Playback};

use super::actions::{Actions, End, EndKind};
use super::counters::CallCounters;
use super::outbox::{Outbox, OutboxLimits, RequestKind};
use super::session_config::{session_config, SkippedTool};

mod control;
mod log;
mod openai;
mod timers;
mod tools;
mod twilio;

pub use timers::DEFAULT_GOODBYE;

/// Longest free text (a reason, an error message) the core puts in a request: keeps
/// the requests that are always kept small.
const MAX_REQUEST_TEXT: usize = 1_024;

/// The end reason of a call the sidecar's drain ended ([`CallCore::on_drained`]).
pub const DRAINED_END_REASON: &str = "sidecar_drained";
/// The error code recorded with it.
pub const DRAINED_ERROR_CODE: &str = "sidecar.drained";

#[cfg(test)]
mod tests;

/// Limits and timings of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// The conversation outbox's limits.
    pub outbox: OutboxLimits,
    /// Caller frames kept while the OpenAI session is not configured yet (oldest dropped
    /// and counted beyond it). 500 frames are 10 s of Twilio's 20 ms frames: as long as
    /// the control plane may take to send the call's config, so what the caller says
    /// while the call is being set up (a busy control plane, a slow Realtime handshake)
    /// reaches the model instead of being cut. Kept only until the session is
    /// configured.
    pub pre_session_frames: usize,
    /// Most payload bytes kept in that buffer (oldest dropped and counted beyond it):
    /// 500 frames of Twilio's 216 base64 characters fit; oversized payloads do not pile up.
    pub pre_session_bytes: usize,
    /// Least time between two `UsageReport`s, in ms (the last one is always sent).
    pub usage_interval_ms: u64,
    /// How long a tool call (or the model's transfer) may go unanswered before the model
    /// is told it failed, in ms. A safety net: the control plane enforces each tool's own
    /// deadline (≤ 60 s).
    pub tool_timeout_ms: u64,
    /// Silence on the Twilio socket after which the call ends `twilio_idle`, in ms; 0:
    /// never. Twilio sends a frame every 20 ms while a call lasts.
    pub twilio_idle_timeout_ms: u64,
    /// The longest call when the agent sets no `max_call_duration`, in ms; 0: no limit.
    pub default_max_call_ms: u64,
    /// How long the goodbye said at the longest call may take before the call is hung up
    /// anyway, in ms.
    pub goodbye_wait_ms: u64,
}

/// The state machine of one call. See the module docs.
#[derive(Debug)]
pub struct CallCore {
    call_id: String,
    dialect: Dialect,
    agent: AgentSettings,
    limits: CallLimits,
    skipped_tools: Vec<SkippedTool>,
    stream: twilio::StreamState,
    realtime: openai::RealtimeState,
    playback: Playback,
    tools: tools::ToolCalls,
    outbox: Outbox,
    usage: UsageMeter,
    /// Set while the model's `transfer_to_human` is being carried out.
    handoff_requested: bool,
    /// The model's transfer waiting for the control plane's answer.
    transfer: Option<tools::PendingTransfer>,
    /// Whether the control plane answers requests (`CallConfig.answers_requests`); an
    /// older one does not, and a request then counts as done once sent.
    answers_requests: bool,
    /// Numbers the requests of this call (`transfer-1`, `status-2`, …).
    requests_made: u64,
    timers: timers::Timers,
    ended: Option<Ended>,
    counters: CallCounters,
    /// Reused for mark names on the audio path.
    scratch: String,
}

/// How the call is to end; built by the input that ends it.
#[derive(Debug)]
struct Ending {
    kind: EndKind,
    end_reason: String,
    error: Option<CallError>,
    /// Where a handoff goes, when the input named it (else the agent's target).
    handoff_target: Option<HandoffTarget>,
}

#[derive(Debug)]
struct Ended {
    kind: EndKind,
    /// The final status, with its request id.
    status: StatusUpdate,
    /// Queued in the outbox (after the log drained and any fallback was answered).
    status_queued: bool,
    /// The control plane answered it: the call is settled.
    status_answered: bool,
}

/// Cumulative usage of the call and when it was last reported.
#[derive(Debug, Default)]
struct UsageMeter {
    tokens: Usage,
    caller_bytes: u64,
    assistant_bytes: u64,
    dirty: bool,
    last_sent_at: Option<u64>,
}

// === impl CallLimits ===

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            outbox: OutboxLimits::default(),
            pre_session_frames: 500,
            pre_session_bytes: 128 * 1024,
            usage_interval_ms: 5_000,
            tool_timeout_ms: 75_000,
            twilio_idle_timeout_ms: 15_000,
            default_max_call_ms: 4 * 60 * 60 * 1_000,
            goodbye_wait_ms: 10_000,
        }
    }
}

// === impl CallCore ===

impl CallCore {
    /// The core of the call described by `config` (the control plane's reply to `Hello`),
    /// speaking `dialect` to OpenAI, starting at `now_ms`. Log items are numbered after
    /// `config.stored_through_seq`; the Twilio stream is the session's until `start` says
    /// otherwise.
    pub fn new(config: CallConfig, dialect: Dialect, limits: CallLimits, now_ms: u64) -> Self {
        let session = config.session.unwrap_or_default();
        let agent = config.agent_settings.unwrap_or_default();
        let plan = session_config(&agent, dialect);
        Self {
            call_id: session.id,
            dialect,
            limits,
            skipped_tools: plan.skipped_tools,
            stream: twilio::StreamState::new(session.twilio_stream_sid, session.twilio_call_sid),
            realtime: openai::RealtimeState::new(plan.config),
            playback: Playback::new(),
            tools: tools::ToolCalls::default(),
            outbox: Outbox::new(config.stored_through_seq, limits.outbox),
            usage: UsageMeter::default(),
            handoff_requested: false,
            transfer: None,
            answers_requests: config.answers_requests,
            requests_made: 0,
            timers: timers::Timers::new(now_ms),
            ended: None,
            counters: CallCounters::default(),
            scratch: String::with_capacity(64),
            agent,
        }
    }

    /// The call's id (the session id).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The dialect spoken to OpenAI.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The agent's settings, as the control plane sent them.
    pub fn agent(&self) -> &AgentSettings {
        &self.agent
    }

    /// Agent tools left out of the session (bad schema, reserved name): log them once.
    pub fn skipped_tools(&self) -> &[SkippedTool] {
        &self.skipped_tools
    }

    /// The counters of this call, for metrics.
    pub fn counters(&self) -> &CallCounters {
        &self.counters
    }

    /// The conversation outbox (sequence numbers, unacknowledged items).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// A `Hello` for reopening the control stream of this call (`resume`: the call may
    /// have ended meanwhile), with what the core knows of the Twilio stream.
    pub fn hello(&self, sidecar_id: &str) -> ConnectRequest {
        ConnectRequest {
            message: Some(Out::Hello(Hello {
                call_id: self.call_id.clone(),
                stream_sid: self.stream.stream_sid.clone(),
                call_sid: self.stream.call_sid.clone(),
                sidecar_id: sidecar_id.to_owned(),
                resume: true,
            })),
        }
    }

    /// True once the call has ended (the `End` was in an earlier `Actions`).
    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    /// How the call ended, once it has.
    pub fn end_kind(&self) -> Option<EndKind> {
        self.ended.as_ref().map(|e| e.kind)
    }

    /// True once the call has ended and the control plane answered its final status
    /// (sent after every log item was acknowledged, or forced by [`CallCore::finish`]):
    /// the driver may close the control stream.
    pub fn is_settled(&self) -> bool {
        self.ended.as_ref().is_some_and(|e| e.status_answered)
    }

    /// Time passes: retries refused log batches and requests, ends a call whose Twilio
    /// socket went quiet, says the goodbye and ends the call at its longest
    /// (`core/timers.rs`), answers tool calls that never got a result, and sends usage
    /// held back by the usage interval. Call it every few hundred ms.
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Actions) {
        if self.ended.is_none() {
            self.check_timers(now_ms, out);
        }
        if self.ended.is_none() {
            self.expire_tool_calls(now_ms, out);
            if self.usage.dirty && self.usage_due(now_ms) {
                self.send_usage(now_ms, out);
            }
        }
        self.flush_control(now_ms, out);
    }

    /// Ends the call now (an operator): status completed with `reason` (default
    /// `hung_up`). Nothing happens if the call has already ended.
    pub fn hang_up(&mut self, reason: &str, now_ms: u64, out: &mut Actions) {
        let reason = if reason.is_empty() { "hung_up" } else { reason };
        self.end_call(Ending::new(EndKind::HungUp, reason), now_ms, out);
    }

    /// The sidecar is shutting down and its drain grace ran out with this call still on:
    /// the call ends [`EndKind::Drained`] (`sidecar_drained`, error `sidecar.drained`)
    /// the way a model outage ends it — a fallback item is logged, a `FallbackRequest`
    /// carrying the end reason asks the control plane to redirect the live call to the
    /// agent's fallback, the Realtime socket is closed, and the final status (`failed`,
    /// or `handed-off` when the fallback transfers) waits for the answer. A refused
    /// fallback hangs up (`Actions::close_twilio`). Nothing happens if the call has
    /// already ended.
    pub fn on_drained(&mut self, now_ms: u64, out: &mut Actions) {
        let ending = Ending::failed(
            EndKind::Drained,
            DRAINED_END_REASON,
            DRAINED_ERROR_CODE.to_owned(),
            "the media sidecar shut down and its drain grace ran out with the call still on"
                .to_owned(),
        );
        self.end_call(ending, now_ms, out);
    }

    /// The grace period for settling is over: queues the final status even though some
    /// log items are unacknowledged (they stay counted in the outbox) or a fallback is
    /// unanswered. No-op before the end.
    pub fn finish(&mut self, now_ms: u64, out: &mut Actions) {
        self.queue_status();
        self.flush_control(now_ms, out);
    }

    // --- shared by the per-peer modules ---

    /// Queues a conversation item and sends what the batching policy says is due.
    fn log(&mut self, item: ConversationItem, now_ms: u64, out: &mut Actions) {
        match self.outbox.push(item) {
            Ok(_) => self.counters.items_logged += 1,
            Err(_) => {
                self.counters.items_overflowed += 1;
                out.items_overflowed += 1;
            }
        }
        self.flush_control(now_ms, out);
    }

    /// Sends due log batches and requests and, once the call has ended, the log is
    /// drained and no fallback waits for its answer, the final status. Nothing goes while
    /// the control stream is down.
    fn flush_control(&mut self, now_ms: u64, out: &mut Actions) {
        while let Some(batch) = self.outbox.next_batch(now_ms) {
            out.to_control.push(ConnectRequest {
                message: Some(Out::Items(batch)),
            });
        }
        if self.outbox.is_drained() && !self.outbox.has_request(RequestKind::Fallback) {
            self.queue_status();
        }
        let first_request = out.to_control.len();
        while let Some(request) = self.outbox.next_request(now_ms) {
            out.to_control.push(request);
        }
        if !self.answers_requests && out.to_control.len() > first_request {
            self.assume_answered(first_request, now_ms, out);
        }
    }

    /// Queues the final status once the call has ended (at most once).
    fn queue_status(&mut self) {
        let Some(ended) = self.ended.as_mut().filter(|e| !e.status_queued) else {
            return;
        };
        ended.status_queued = true;
        let request = ConnectRequest {
            message: Some(Out::Status(ended.status.clone())),
        };
        let id = ended.status.request_id.clone();
        // The status is always kept: only tool calls can find the outbox full.
        let _ = self.outbox.push_request(RequestKind::Status, &id, request);
    }

    /// The id of this call's next request of `kind` (`transfer-1`, `fallback-2`, …).
    fn next_request_id(&mut self, kind: &str) -> String {
        self.requests_made += 1;
        format!("{kind}-{}", self.requests_made)
    }

    /// Ends the call once: logs what is held, reports the last usage, emits the `End`
    /// and holds the final status until the log is drained.
    fn end_call(&mut self, ending: Ending, now_ms: u64, out: &mut Actions) {
        if self.ended.is_some() {
            return;
        }
        self.release_held_transcripts(now_ms, out);
        let fallback = self.agent.fallback.clone().unwrap_or_default();
        // The model is gone (or about to be: a drain closes its socket with the call).
        let to_fallback = ending.kind.needs_fallback();
        let transfer = to_fallback
            && fallback.action() == fallback::Action::Transfer
            && self.agent.handoff_target.is_some();
        let status = match ending.kind {
            EndKind::HandedOff => CallStatus::HandedOff,
            _ if transfer => CallStatus::HandedOff,
            EndKind::OpenAiUnavailable
            | EndKind::OpenAiFailed
            | EndKind::Drained
            | EndKind::TwilioClosed
            | EndKind::TwilioIdle => CallStatus::Failed,
            EndKind::CallerHungUp | EndKind::HungUp | EndKind::MaxDuration => CallStatus::Completed,
        };
        if ending.kind == EndKind::HandedOff && self.transfer.is_some() {
            // Twilio ended the stream for the redirect before the answer came.
            self.log_model_handoff(now_ms, out);
        }
        // Nobody waits for these any more: the model is gone (or goes with the end).
        self.transfer = None;
        self.tools.clear();
        self.outbox.drop_requests(RequestKind::Transfer);
        self.outbox.drop_requests(RequestKind::ToolCall);
        if let (true, Some(error)) = (to_fallback, &ending.error) {
            self.log(
                log::fallback(&ending.end_reason, error, now_ms),
                now_ms,
                out,
            );
            let request_id = self.next_request_id("fallback");
            let request = ConnectRequest {
                message: Some(Out::Fallback(FallbackRequest {
                    error: Some(capped_error(error)),
                    request_id: request_id.clone(),
                    // Empty for a model outage: the control plane records `ai_unavailable`.
                    end_reason: if ending.kind == EndKind::Drained {
                        ending.end_reason.clone()
                    } else {
                        String::new()
                    },
                })),
            };
            // Always kept: at most one per call.
            let _ = self
                .outbox
                .push_request(RequestKind::Fallback, &request_id, request);
        }
        self.send_usage(now_ms, out);
        let handoff_target = if status == CallStatus::HandedOff {
            ending
                .handoff_target
                .or_else(|| self.agent.handoff_target.clone())
        } else {
            None
        };
        out.end = Some(End {
            kind: ending.kind,
            status,
            end_reason: ending.end_reason.clone(),
            error: ending.error.clone(),
            fallback: to_fallback.then_some(fallback),
            handoff_target,
        });
        let request_id = self.next_request_id("status");
        self.ended = Some(Ended {
            kind: ending.kind,
            status: StatusUpdate {
                status: status.into(),
                end_reason: ending.end_reason,
                error: ending.error.as_ref().map(capped_error),
                request_id,
            },
            status_queued: false,
            status_answered: false,
        });
        self.flush_control(now_ms, out);
    }

    fn usage_due(&self, now_ms: u64) -> bool {
        self.usage
            .last_sent_at
            .is_none_or(|at| now_ms >= at.saturating_add(self.limits.usage_interval_ms))
    }

    /// Sends the cumulative usage so far (tokens and relayed audio); while the control
    /// stream is down, marks it due for when it is back.
    fn send_usage(&mut self, now_ms: u64, out: &mut Actions) {
        let usage = Usage {
            caller_audio_ms: self.usage.caller_bytes / 8,
            assistant_audio_ms: self.usage.assistant_bytes / 8,
            ..self.usage.tokens
        };
        if usage == Usage::default() {
            return;
        }
        if !self.outbox.link_up() {
            self.usage.dirty = true;
            return;
        }
        self.usage.dirty = false;
        self.usage.last_sent_at = Some(now_ms);
        out.to_control.push(ConnectRequest {
            message: Some(Out::Usage(UsageReport { usage: Some(usage) })),
        });
    }
}

// === impl Ending ===

impl Ending {
    fn new(kind: EndKind, end_reason: &str) -> Self {
        Self {
            kind,
            end_reason: end_reason.to_owned(),
            error: None,
            handoff_target: None,
        }
    }

    fn failed(kind: EndKind, end_reason: &str, code: String, message: String) -> Self {
        Self {
            error: Some(CallError { code, message }),
            ..Self::new(kind, end_reason)
        }
    }
}

/// `error` with its message cut to [`MAX_REQUEST_TEXT`] bytes.
fn capped_error(error: &CallError) -> CallError {
    CallError {
        code: error.code.clone(),
        message: capped(&error.message).to_owned(),
    }
}

/// `text` cut to at most [`MAX_REQUEST_TEXT`] bytes, on a character boundary.
fn capped(text: &str) -> &str {
    if text.len() <= MAX_REQUEST_TEXT {
        return text;
    }
    let mut end = MAX_REQUEST_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
