//! What the core asks the driver to do after one input: frames for Twilio and OpenAI,
//! messages for the control plane, errors to log, the end of the call.
//!
//! [`Actions`] is reused across inputs: the driver calls [`Actions::clear`], feeds one
//! input, carries the actions out, and repeats. [`Frames`] keeps the `String` buffers of
//! earlier frames, so relaying audio allocates nothing once a call has warmed up — as long
//! as the driver borrows the frames ([`Frames::iter`]) rather than taking them
//! ([`Frames::drain`], which moves them out and leaves empty slots to grow again).
//!
//! Each entry of `to_twilio` / `to_openai` is exactly one WebSocket text message, in send
//! order. A relayed delta yields two adjacent Twilio messages, `media` then its `mark`
//! (Twilio needs one JSON object per message): feed them all, then flush once
//! (each flush is a syscall, and syscalls are most of a relay's cost: docs/media-sidecar.md,
//! "What a call costs"). Read next: `core.rs`, which fills these.

use switchboard_proto::v1::{CallError, CallStatus, ConnectRequest, Fallback, HandoffTarget};

/// The output of one input to the core. See the module docs.
#[derive(Debug, Default)]
pub struct Actions {
    /// Text messages for the Twilio Media Stream socket, in order.
    pub to_twilio: Frames,
    /// Text messages for the OpenAI Realtime socket, in order.
    pub to_openai: Frames,
    /// Messages for the control plane's per-call stream, in order. Empty while the
    /// stream is down (`CallCore::on_control_lost`): what must be said waits in the
    /// outbox and comes here again once the stream is back.
    pub to_control: Vec<ConnectRequest>,
    /// `error` events from OpenAI, for the driver to log with the call id.
    pub openai_errors: Vec<RealtimeError>,
    /// Answers from the control plane that refused a request, for the driver to log.
    pub refusals: Vec<Refusal>,
    /// Conversation items refused by a full outbox during this input (also counted in
    /// `CallCounters::items_overflowed`): warn about them.
    pub items_overflowed: u32,
    /// The call is over (set once per call). See [`End`].
    pub end: Option<End>,
    /// Close the Twilio socket now, after the end: the control plane refused to redirect
    /// the call to its fallback, so nobody else will end it. Twilio then hangs up.
    pub close_twilio: bool,
}

/// A reusable list of text frames. See the module docs.
#[derive(Debug, Default)]
pub struct Frames {
    buffers: Vec<String>,
    len: usize,
}

/// A request the control plane refused (`RequestAnswer` with outcome refused).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The request's id (`transfer-1`, `fallback-1`, `status-1`).
    pub request_id: String,
    /// Why, as the control plane said it (`handoff.no_target`, `call.ended`, …).
    pub error: CallError,
}

/// An OpenAI `error` event, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeError {
    /// `error.type`, e.g. `invalid_request_error`.
    pub kind: String,
    /// `error.code`, e.g. `conversation_already_has_active_response`.
    pub code: Option<String>,
    /// `error.message`, as OpenAI wrote it.
    pub message: String,
    /// True when the core ended the call because of it.
    pub fatal: bool,
}

/// How a call ended, and what the driver does about it.
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    /// What ended it.
    pub kind: EndKind,
    /// The final status reported to the control plane.
    pub status: CallStatus,
    /// The stable end reason stored with the session, e.g. `caller_hung_up`.
    pub end_reason: String,
    /// Set when the call failed.
    pub error: Option<CallError>,
    /// The agent's fallback, for ends where the caller should hear it
    /// ([`End::needs_fallback`]).
    pub fallback: Option<Fallback>,
    /// Where the call goes, for handoffs.
    pub handoff_target: Option<HandoffTarget>,
}

/// What ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndKind {
    /// Twilio sent `stop`: the caller hung up (or the call was redirected elsewhere).
    CallerHungUp,
    /// The Twilio socket closed without `stop` (network, Twilio error), or a write to it
    /// did not finish in time.
    TwilioClosed,
    /// The Twilio socket sent nothing for `CallLimits::twilio_idle_timeout_ms`: it is
    /// dead without having closed.
    TwilioIdle,
    /// The control plane sent `Command::HangUp` (an operator hung up).
    HungUp,
    /// The call was handed to humans (`Command::HandOff`, `CallCore::hand_off`, or a
    /// Twilio `stop` while the model's transfer was in progress).
    HandedOff,
    /// The agent's `max_call_duration` (or the sidecar's default) passed, and the
    /// goodbye was said or its wait ran out.
    MaxDuration,
    /// The OpenAI socket was refused or dropped.
    OpenAiUnavailable,
    /// OpenAI reported a fatal error (`session_expired`, our `session.update` refused).
    OpenAiFailed,
    /// The sidecar is shutting down and its drain grace ran out with the call still on
    /// (`CallCore::on_drained`): the caller is sent to the agent's fallback.
    Drained,
}

// === impl EndKind ===

impl EndKind {
    /// True for the ends whose caller is sent to the agent's fallback: the model is gone
    /// ([`EndKind::OpenAiUnavailable`], [`EndKind::OpenAiFailed`]) or the sidecar drained
    /// the call ([`EndKind::Drained`]).
    pub fn needs_fallback(self) -> bool {
        matches!(
            self,
            EndKind::OpenAiUnavailable | EndKind::OpenAiFailed | EndKind::Drained
        )
    }
}

// === impl Actions ===

impl Actions {
    /// Empty actions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties everything for the next input, keeping the frame buffers.
    pub fn clear(&mut self) {
        self.to_twilio.clear();
        self.to_openai.clear();
        self.to_control.clear();
        self.openai_errors.clear();
        self.refusals.clear();
        self.items_overflowed = 0;
        self.end = None;
        self.close_twilio = false;
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.to_twilio.is_empty()
            && self.to_openai.is_empty()
            && self.to_control.is_empty()
            && self.openai_errors.is_empty()
            && self.refusals.is_empty()
            && self.items_overflowed == 0
            && self.end.is_none()
            && !self.close_twilio
    }
}

// === impl Frames ===

impl Frames {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `index`th frame.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.buffers[..self.len].get(index).map(String::as_str)
    }

    /// The frames, in send order, borrowed (the core keeps the buffers).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.buffers[..self.len].iter().map(String::as_str)
    }

    /// The frames, in send order, moved out (no copy; the core grows new buffers).
    pub fn drain(&mut self) -> impl ExactSizeIterator<Item = String> + '_ {
        let len = std::mem::take(&mut self.len);
        self.buffers[..len].iter_mut().map(std::mem::take)
    }

    /// Empties the list, keeping the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// A cleared buffer for the next frame.
    pub(crate) fn next_buffer(&mut self) -> &mut String {
        if self.len == self.buffers.len() {
            self.buffers.push(String::new());
        }
        let buffer = &mut self.buffers[self.len];
        buffer.clear();
        self.len += 1;
        buffer
    }
}

// === impl End ===

impl End {
    /// True when the driver should close the Twilio socket itself. Twilio then runs the
    /// TwiML after `<Connect>` (the fallback, if the webhook answered one) or hangs up.
    /// False when Twilio already stopped the stream, or will (a handoff redirects the live
    /// call, which ends the stream). An idle socket is closed too, though its peer will
    /// likely never answer.
    pub fn close_twilio(&self) -> bool {
        !matches!(
            self.kind,
            EndKind::CallerHungUp | EndKind::TwilioClosed | EndKind::HandedOff
        )
    }

    /// True when the caller should hear the agent's fallback (the model is gone, or the
    /// sidecar drained the call, while the caller is still on the line): the control
    /// plane redirects the call, so the driver leaves the Twilio socket to Twilio.
    pub fn needs_fallback(&self) -> bool {
        self.kind.needs_fallback()
    }
}
