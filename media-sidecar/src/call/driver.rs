//! The async side of a call: owns the Twilio socket, the Realtime socket and the
//! control-plane stream, feeds what arrives to the [`CallCore`] and carries out the
//! actions it returns. Decisions live in the core; this file only moves bytes.
//!
//! Order of a call: Twilio's `start` (its token checked before anything else is
//! contacted) → `Hello` → `CallConfig` → the Realtime socket → the relay loop. The
//! loop `select!`s over the three peers and a tick, `biased` so that closes and
//! control messages are not starved by audio. Each call is its own task: a slow peer
//! here delays no other call.
//!
//! - **Writes have a deadline** ([`WRITE_TIMEOUT`]): a Twilio or Realtime socket that
//!   cannot take a frame within it is gone, and the core hears so as if it had closed
//!   (the call ends; the model's loss gets the fallback).
//! - **A broken control stream** is reopened (`Hello` with `resume`) after a back-off
//!   with full jitter (`call/backoff.rs`), while the audio goes on; meanwhile the core
//!   keeps everything it must say in its outbox, and sends it once the new `CallConfig`
//!   has arrived. A stream that lets its queue fill up counts as broken.
//! - **A drain that runs out of grace** raises the drain's cut signal
//!   (`drain.rs`, [`CutSignal`](crate::drain::CutSignal)), which the loop watches: the
//!   core hears it ([`CallCore::on_drained`]) and ends the call through the control
//!   plane — the agent's fallback, `sidecar_drained` — as for a model outage.
//! - **After the end**, the loop runs until the control plane has answered the final
//!   status, acknowledged the whole log, and Twilio has closed the socket: at
//!   [`END_GRACE`] it stops waiting for Twilio and forces the status out (ahead of
//!   items still unacknowledged, which it goes on sending), at [`SETTLE_GRACE`] it gives
//!   up on the control plane (what is still unanswered is logged). An answered status
//!   alone does not end the loop: the items behind it would be dropped with the call.
//!
//! The control stream's plumbing is in `driver/control_stream.rs`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures::future::BoxFuture;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::connect_request::Message as Up;
use switchboard_proto::v1::connect_response::Message as Down;
use switchboard_twilio::media_stream::{parse_inbound, InboundMessage};
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tracing::Instrument;

use super::{Actions, Backoff, CallCore, CallLimits};
use crate::config::CallTimings;
use crate::http::{MediaHandler, MediaSocket};
use crate::metrics::{CallOutcome, Direction};
use crate::realtime_client::{self, RealtimeSocket};
use crate::AppState;

mod control_stream;

use control_stream::{next_control, open_control, reconnect_due, ControlStream};

/// How long Twilio may take to send `start`, and the control plane `CallConfig`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the core is ticked (log batches, retries, timers, usage).
const TICK: Duration = Duration::from_millis(250);
/// Longest a write to the Twilio or the Realtime socket may take: one that cannot finish
/// in this long means the peer is gone.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After the call ended: how long Twilio may take to end the stream (after a fallback or
/// handoff redirect), and the log to be acknowledged before the final status is sent
/// anyway.
pub const END_GRACE: Duration = Duration::from_secs(15);
/// After the call ended: how long the driver keeps trying to deliver what it holds (the
/// log, the final status) to a control plane that is away — a restart, say.
pub const SETTLE_GRACE: Duration = Duration::from_secs(60);
/// The media handler that bridges calls: give it to `serve`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallDriver;

impl MediaHandler for CallDriver {
    fn handle(&self, media: MediaSocket) -> BoxFuture<'static, ()> {
        let span = tracing::info_span!("call", call_id = %media.call_id);
        Box::pin(
            async move {
                let state = media.state.clone();
                let outcome = run(media).await;
                state.metrics.call_finished(outcome);
            }
            .instrument(span),
        )
    }
}

type TwilioSink = SplitSink<WebSocket, Message>;
type OpenAiSink = SplitSink<RealtimeSocket, WsMessage>;

/// Wall-clock milliseconds that never go backwards: the epoch time at the start plus
/// a monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    epoch_ms: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            epoch_ms,
            start: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch_ms + u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Sends Twilio a close frame, within [`WRITE_TIMEOUT`]; false when it could not.
async fn close_twilio(sink: &mut TwilioSink, code: u16, reason: &str) -> bool {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    matches!(sent, Ok(Ok(())))
}

/// Reads Twilio's frames up to `start`; returns them (to feed the core in order).
async fn await_start(receiver: &mut SplitStream<WebSocket>) -> Result<Vec<String>, &'static str> {
    let mut frames = Vec::new();
    let read = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(message) = receiver.next().await {
            let Ok(Message::Text(text)) = message else {
                if matches!(message, Ok(Message::Close(_)) | Err(_)) {
                    return Err("the stream closed before start");
                }
                continue;
            };
            let is_start = matches!(parse_inbound(text.as_str()), Ok(InboundMessage::Start(_)));
            frames.push(text.to_string());
            if is_start {
                return Ok(());
            }
        }
        Err("the stream closed before start")
    })
    .await;
    match read {
        Ok(Ok(())) => Ok(frames),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err("no start within 10 s"),
    }
}

/// The core's limits with this sidecar's timings.
fn call_limits(timings: &CallTimings) -> CallLimits {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    CallLimits {
        twilio_idle_timeout_ms: ms(timings.twilio_idle_timeout),
        default_max_call_ms: timings.max_call_duration.map_or(0, ms),
        ..CallLimits::default()
    }
}

/// The whole call; returns how it went, for the metrics.
async fn run(media: MediaSocket) -> CallOutcome {
    let MediaSocket {
        socket,
        call_id,
        state,
        ..
    } = media;
    let clock = Clock::new();
    let (mut twilio_tx, mut twilio_rx) = socket.split();

    // 1. Twilio's start, and the token in it, before anything else is contacted.
    let frames = match await_start(&mut twilio_rx).await {
        Ok(frames) => frames,
        Err(reason) => {
            tracing::warn!(reason, "media stream refused");
            close_twilio(&mut twilio_tx, close_code::POLICY, reason).await;
            return CallOutcome::Refused;
        }
    };
    let Some(Ok(InboundMessage::Start(start))) = frames.last().map(|f| parse_inbound(f)) else {
        return CallOutcome::Failed;
    };
    let token = start
        .custom_parameters
        .get("token")
        .map(|t| t.as_ref())
        .unwrap_or_default();
    if let Err(e) = state.tokens.verify(token, &call_id, SystemTime::now()) {
        tracing::warn!(error = %e, "media stream refused: bad stream token");
        close_twilio(&mut twilio_tx, close_code::POLICY, "invalid stream token").await;
        return CallOutcome::Refused;
    }
    let hello = pb::ConnectRequest {
        message: Some(Up::Hello(pb::Hello {
            call_id: call_id.clone(),
            stream_sid: start.stream_sid.to_string(),
            call_sid: start.call_sid.to_string(),
            sidecar_id: state.config.sidecar_id.clone(),
            resume: false,
        })),
    };
    drop(start);

    // 2. The call's config from the control plane.
    let (control, config) = match open_control(&state, hello).await {
        Ok(opened) => opened,
        Err(status) => {
            tracing::warn!(code = ?status.code(), "media stream refused by the control plane: {}", status.message());
            state.metrics.control_plane_error("Connect", status.code());
            let reason = match status.code() {
                tonic::Code::NotFound => "unknown call",
                tonic::Code::FailedPrecondition => "call has ended",
                _ => "control plane unavailable",
            };
            let code = if status.code() == tonic::Code::Unavailable {
                close_code::ERROR
            } else {
                close_code::POLICY
            };
            close_twilio(&mut twilio_tx, code, reason).await;
            return CallOutcome::Refused;
        }
    };
    let agent = config.agent_settings.clone().unwrap_or_default();
    let target = realtime_client::params_for(&state.config.openai, &agent);
    let dialect = target
        .as_ref()
        .map(|params| params.dialect())
        .unwrap_or_default();
    let limits = call_limits(&state.config.calls);
    let mut core = CallCore::new(config, dialect, limits, clock.now_ms());
    let mut out = Actions::new();
    for frame in &frames {
        core.on_twilio_text(frame, clock.now_ms(), &mut out);
    }
    for skipped in core.skipped_tools() {
        tracing::warn!(?skipped, "tool left out of the session");
    }

    // 3. The Realtime API.
    let connect_started = Instant::now();
    let (mut openai_tx, mut openai_rx) =
        match async { state.realtime.connect(&target?).await }.await {
            Ok(socket) => {
                state
                    .metrics
                    .observe_openai_connect(connect_started.elapsed());
                let (tx, rx) = socket.split();
                (Some(tx), Some(rx))
            }
            Err(e) => {
                tracing::warn!(error = %e, "realtime api unavailable");
                core.on_openai_closed(&e.to_string(), clock.now_ms(), &mut out);
                (None, None)
            }
        };

    let mut call = Relay {
        state: &state,
        clock,
        twilio_tx,
        twilio_open: true,
        twilio_writable: true,
        openai_tx: openai_tx.take(),
        control: Some(control),
        control_down: None,
        backoff: Backoff::default(),
        rng: fastrand::Rng::new(),
        twilio_failed: None,
        openai_failed: None,
        control_stuck: false,
        ended_at: None,
        past_end_grace: false,
        counted: Default::default(),
        counted_rejects: Default::default(),
        counted_openai_rejects: Default::default(),
    };
    call.carry_out(&mut out).await;
    call.settle_failures(&mut core, &mut out).await;
    call.relay(&mut core, &mut out, &mut twilio_rx, &mut openai_rx)
        .await;
    call.report_frames(&core);
    match core.end_kind() {
        Some(
            super::EndKind::CallerHungUp | super::EndKind::HungUp | super::EndKind::MaxDuration,
        ) => CallOutcome::Completed,
        Some(super::EndKind::HandedOff) => CallOutcome::HandedOff,
        _ => CallOutcome::Failed,
    }
}

/// The relay loop's state.
struct Relay<'a> {
    state: &'a AppState,
    clock: Clock,
    twilio_tx: TwilioSink,
    /// Twilio's side is still read (false once it closed, or was given up on).
    twilio_open: bool,
    /// Frames may still be written to Twilio (false once a write failed).
    twilio_writable: bool,
    openai_tx: Option<OpenAiSink>,
    control: Option<ControlStream>,
    /// When the control stream broke, and when to try again.
    control_down: Option<Instant>,
    backoff: Backoff,
    rng: fastrand::Rng,
    /// Why a write failed during the last `carry_out`, for the core to hear next.
    twilio_failed: Option<String>,
    openai_failed: Option<String>,
    control_stuck: bool,
    ended_at: Option<Instant>,
    /// The end grace passed: Twilio is no longer waited for, the status was forced out.
    past_end_grace: bool,
    /// Already added to the metrics: (caller frames, assistant frames, barge-ins).
    counted: (u64, u64, u64),
    /// Rejected Twilio frames already added to the metrics.
    counted_rejects: super::RejectCounts,
    /// Rejected Realtime events already added to the metrics.
    counted_openai_rejects: super::RejectCounts,
}

impl Relay<'_> {
    async fn relay(
        &mut self,
        core: &mut CallCore,
        out: &mut Actions,
        twilio_rx: &mut SplitStream<WebSocket>,
        openai_rx: &mut Option<SplitStream<RealtimeSocket>>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Each input is stamped when it arrives, not when the loop began waiting for it:
        // the barge-in math subtracts these times (mark echo → `speech_started`), and a
        // stamp taken before an idle wait is early by that wait.
        let clock = self.clock;
        // Raised when the sidecar's drain grace runs out with this call still on (at once
        // if it already has); heard once. One future for the whole loop: nothing to set
        // up again per frame.
        let mut cut = self.state.drain.cut_signal();
        let drain_cut = cut.cut();
        tokio::pin!(drain_cut);
        let mut cut_heard = false;
        loop {
            out.clear();
            // When a peer's frame arrived, for the relay-latency histogram: from there
            // to the end of the writes it caused.
            let mut arrived = None;
            tokio::select! {
                biased;
                message = next_control(&mut self.control) => match message {
                    Ok(Some(message)) => {
                        log_answer(&message);
                        core.on_control(message, clock.now_ms(), out);
                    }
                    Ok(None) => self.lose_control(core, "the control plane ended the stream"),
                    Err(status) => {
                        let reason = format!("{:?}: {}", status.code(), status.message());
                        self.lose_control(core, &reason);
                    }
                },
                () = reconnect_due(self.control_down), if self.control.is_none() && self.control_down.is_some() => {
                    self.reconnect(core, out).await;
                }
                () = &mut drain_cut, if !cut_heard => {
                    cut_heard = true;
                    if !core.is_ended() {
                        tracing::warn!("drain grace elapsed: sending the call to its fallback");
                    }
                    core.on_drained(clock.now_ms(), out);
                }
                message = twilio_rx.next(), if self.twilio_open => match message {
                    Some(Ok(Message::Text(text))) => {
                        arrived = Some(Instant::now());
                        core.on_twilio_text(text.as_str(), clock.now_ms(), out);
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.state.metrics.frame_rejected(crate::metrics::RejectReason::Binary);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        self.twilio_open = false;
                        core.on_twilio_closed("twilio closed the media stream", clock.now_ms(), out);
                    }
                },
                message = next_openai(openai_rx) => match message {
                    Some(Ok(WsMessage::Text(text))) => {
                        arrived = Some(Instant::now());
                        core.on_openai_text(text.as_str(), clock.now_ms(), out);
                    }
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) | WsMessage::Binary(_))) => {}
                    Some(Ok(WsMessage::Close(frame))) => {
                        *openai_rx = None;
                        let detail = frame.map_or_else(|| "closed".to_owned(), |f| format!("closed ({}): {}", u16::from(f.code), f.reason));
                        core.on_openai_closed(&detail, clock.now_ms(), out);
                    }
                    Some(Err(e)) => {
                        *openai_rx = None;
                        core.on_openai_closed(&format!("socket error: {e}"), clock.now_ms(), out);
                    }
                    None => {
                        *openai_rx = None;
                        core.on_openai_closed("socket ended", clock.now_ms(), out);
                    }
                },
                _ = tick.tick() => {
                    core.on_tick(clock.now_ms(), out);
                    self.report_frames(core);
                }
            }
            let relays = !out.to_twilio.is_empty() || !out.to_openai.is_empty();
            self.carry_out(out).await;
            if let (Some(arrived), true) = (arrived, relays) {
                self.state.metrics.observe_relay_latency(arrived.elapsed());
            }
            self.settle_failures(core, out).await;
            if self.openai_tx.is_none() {
                *openai_rx = None;
            }
            if self.after_the_end(core, out).await {
                break;
            }
        }
        if let Some(mut openai) = self.openai_tx.take() {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, openai.close()).await;
        }
        if let Some(control) = self.control.take() {
            control.close().await;
        }
    }

    /// Once the call has ended: true when the loop may stop — the final status is
    /// answered and Twilio's socket is closed, or the settle grace ran out.
    async fn after_the_end(&mut self, core: &mut CallCore, out: &mut Actions) -> bool {
        let Some(ended_at) = self.ended_at else {
            return false;
        };
        // The status may have been forced out ahead of the log at the end grace: the
        // call is delivered once both are in.
        let delivered = core.is_settled() && core.outbox().unacknowledged() == 0;
        if !self.twilio_open && delivered {
            return true;
        }
        let waited = ended_at.elapsed();
        if waited >= END_GRACE && !self.past_end_grace {
            self.past_end_grace = true;
            if !core.is_settled() {
                tracing::warn!(
                    unacknowledged = core.outbox().unacknowledged(),
                    "log not acknowledged within the grace; sending the final status"
                );
                out.clear();
                core.finish(self.clock.now_ms(), out);
                self.carry_out(out).await;
            }
            if self.twilio_open {
                if self.twilio_writable {
                    close_twilio(&mut self.twilio_tx, close_code::NORMAL, "call ended").await;
                }
                self.twilio_open = false;
            }
            return delivered;
        }
        if waited >= SETTLE_GRACE {
            tracing::error!(
                unacknowledged = core.outbox().unacknowledged(),
                control_stream_up = self.control.is_some(),
                status_answered = core.is_settled(),
                "the control plane did not take the final status and the whole log within the grace; giving up"
            );
            return true;
        }
        false
    }

    /// Sends what the core asked for: Twilio frames with one flush, then OpenAI frames,
    /// then control messages. A write that fails or misses [`WRITE_TIMEOUT`] gives that
    /// peer up (the core hears of it in [`Relay::settle_failures`]).
    async fn carry_out(&mut self, out: &mut Actions) {
        if !out.to_twilio.is_empty() && self.twilio_writable {
            let twilio = &mut self.twilio_tx;
            let frames = &mut out.to_twilio;
            let written = tokio::time::timeout(WRITE_TIMEOUT, async move {
                for frame in frames.drain() {
                    twilio.feed(Message::Text(frame.into())).await?;
                }
                twilio.flush().await
            })
            .await;
            if let Some(detail) = write_failure(written) {
                self.give_up_twilio(format!("write to twilio failed: {detail}"));
            }
        }
        if let Some(openai) = self.openai_tx.as_mut() {
            if !out.to_openai.is_empty() {
                let frames = &mut out.to_openai;
                let written = tokio::time::timeout(WRITE_TIMEOUT, async move {
                    for frame in frames.drain() {
                        openai.feed(WsMessage::text(frame)).await?;
                    }
                    openai.flush().await
                })
                .await;
                if let Some(detail) = write_failure(written) {
                    self.openai_tx = None;
                    self.openai_failed =
                        Some(format!("write to the realtime api failed: {detail}"));
                }
            }
        }
        for error in out.openai_errors.drain(..) {
            tracing::warn!(kind = %error.kind, code = ?error.code, fatal = error.fatal, "realtime error: {}", error.message);
        }
        for refusal in out.refusals.drain(..) {
            tracing::warn!(request_id = %refusal.request_id, code = %refusal.error.code, "the control plane refused: {}", refusal.error.message);
        }
        if out.items_overflowed > 0 {
            tracing::error!(
                count = out.items_overflowed,
                "conversation items refused: the outbox is full"
            );
        }
        if let Some(end) = out.end.take() {
            tracing::info!(kind = ?end.kind, reason = %end.end_reason, "call ended");
            self.ended_at.get_or_insert_with(Instant::now);
            if let Some(mut openai) = self.openai_tx.take() {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, openai.close()).await;
            }
            if end.close_twilio() && !end.needs_fallback() {
                self.close_twilio("call ended").await;
            }
            if end.kind == super::EndKind::TwilioIdle {
                // Its peer is gone: nothing will come, not even an answer to the close.
                self.twilio_open = false;
            }
        }
        if out.close_twilio {
            tracing::warn!("the fallback cannot be played; hanging up");
            self.close_twilio("call ended").await;
        }
        self.send_control(out);
    }

    /// Queues the control messages on the stream; a full or closed queue means the
    /// stream is stuck or gone, and it is reopened (the core keeps what was not answered).
    fn send_control(&mut self, out: &mut Actions) {
        let Some(control) = &self.control else {
            // The core sends nothing while the stream is down.
            out.to_control.clear();
            return;
        };
        for message in out.to_control.drain(..) {
            match control.sender.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                    self.control_stuck = true;
                    break;
                }
            }
        }
        out.to_control.clear();
    }

    /// Tells the core about peers given up on during the last `carry_out`, and carries
    /// out what it makes of it (which may give up another peer).
    async fn settle_failures(&mut self, core: &mut CallCore, out: &mut Actions) {
        loop {
            let now_ms = self.clock.now_ms();
            out.clear();
            if let Some(detail) = self.twilio_failed.take() {
                core.on_twilio_closed(&detail, now_ms, out);
            } else if let Some(detail) = self.openai_failed.take() {
                core.on_openai_closed(&detail, now_ms, out);
            } else if std::mem::take(&mut self.control_stuck) {
                self.lose_control(core, "the control plane does not keep up with the call");
                return;
            } else {
                return;
            }
            self.carry_out(out).await;
        }
    }

    /// Closes the Twilio socket (within the write deadline) unless it is given up.
    async fn close_twilio(&mut self, reason: &str) {
        if self.twilio_writable
            && !close_twilio(&mut self.twilio_tx, close_code::NORMAL, reason).await
        {
            self.give_up_twilio("close of the twilio socket failed".to_owned());
        }
    }

    fn give_up_twilio(&mut self, detail: String) {
        tracing::warn!("{detail}");
        self.twilio_writable = false;
        self.twilio_open = false;
        self.twilio_failed = Some(detail);
    }

    /// The control stream broke: the core holds everything from now on, and the stream
    /// is reopened after a jittered back-off.
    fn lose_control(&mut self, core: &mut CallCore, reason: &str) {
        let Some(broken) = self.control.take() else {
            return;
        };
        // Reconnect elsewhere: this replica may be gone.
        broken.lease.broke();
        core.on_control_lost();
        let delay = self.backoff.next_delay(&mut self.rng);
        tracing::warn!(retry_in = ?delay, replica = broken.lease.replica_key(), "control stream broke: {reason}");
        self.control_down = Some(Instant::now() + delay);
    }

    async fn reconnect(&mut self, core: &mut CallCore, out: &mut Actions) {
        match open_control(self.state, core.hello(&self.state.config.sidecar_id)).await {
            Ok((control, config)) => {
                tracing::info!(
                    stored_through_seq = config.stored_through_seq,
                    replica = control.lease.replica_key(),
                    "control stream reopened"
                );
                self.control = Some(control);
                self.control_down = None;
                self.backoff.reset();
                core.on_control(
                    pb::ConnectResponse {
                        message: Some(Down::Config(config)),
                    },
                    self.clock.now_ms(),
                    out,
                );
            }
            Err(status) => {
                self.state
                    .metrics
                    .control_plane_error("Connect", status.code());
                let delay = self.backoff.next_delay(&mut self.rng);
                self.control_down = Some(Instant::now() + delay);
                tracing::debug!(code = ?status.code(), retry_in = ?delay, "control stream still down");
            }
        }
    }

    /// Adds the frames relayed, the Twilio frames and the Realtime events rejected since
    /// the last report to the metrics.
    fn report_frames(&mut self, core: &CallCore) {
        let counters = core.counters();
        let (caller, assistant, barge_ins) = (
            counters.caller_frames,
            counters.assistant_frames,
            counters.barge_ins,
        );
        self.state
            .metrics
            .frames_relayed(Direction::TwilioToOpenAi)
            .inc_by(caller - self.counted.0.min(caller));
        self.state
            .metrics
            .frames_relayed(Direction::OpenAiToTwilio)
            .inc_by(assistant - self.counted.1.min(assistant));
        for _ in self.counted.2.min(barge_ins)..barge_ins {
            self.state.metrics.barge_in();
        }
        self.counted = (caller, assistant, barge_ins);
        let metrics = &self.state.metrics;
        let rejected = counters.twilio_rejected;
        add_new(&rejected, &self.counted_rejects, |reason| {
            metrics.frames_rejected(reason)
        });
        self.counted_rejects = rejected;
        let rejected = counters.openai_rejected;
        add_new(&rejected, &self.counted_openai_rejects, |reason| {
            metrics.openai_events_rejected(reason)
        });
        self.counted_openai_rejects = rejected;
    }
}

/// Why a deadline-bound write failed, or `None` when it did not.
fn write_failure<E: std::fmt::Display>(
    written: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> Option<String> {
    match written {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("did not finish within {WRITE_TIMEOUT:?}")),
    }
}

/// Logs the control plane's answers to requests (refusals are logged with the call's
/// actions).
fn log_answer(message: &pb::ConnectResponse) {
    if let Some(Down::Answer(answer)) = &message.message {
        tracing::debug!(request_id = %answer.request_id, outcome = ?answer.outcome(), "request answered");
    }
}

/// Adds to the counters what `now` counts beyond `counted`, reason by reason.
fn add_new<'m>(
    now: &super::RejectCounts,
    counted: &super::RejectCounts,
    counter: impl Fn(crate::metrics::RejectReason) -> &'m prometheus_client::metrics::counter::Counter,
) {
    for (reason, count) in now.iter() {
        let new = count - counted.get(reason).min(count);
        if new > 0 {
            counter(reason.into()).inc_by(new);
        }
    }
}

async fn next_openai(
    openai: &mut Option<SplitStream<RealtimeSocket>>,
) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
    match openai {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}
