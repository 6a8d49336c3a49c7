//! The async side of a call: owns the Twilio socket, the Realtime socket and the
//! control-plane stream, feeds what arrives to the [`CallCore`] and carries out the
//! actions it returns. Decisions live in the core; this file only moves bytes.
//!
//! Order of a call: Twilio's `start` (its token checked before anything else is
//! contacted) → `Hello` → `CallConfig` → the Realtime socket → the relay loop. The
//! loop `select!`s over the three peers and a tick, `biased` so that closes and
//! control messages are not starved by audio. A broken control-plane stream is
//! reopened with backoff while the audio goes on; the core's outbox re-sends what was
//! not stored. Each call is its own task: a slow peer here delays no other call.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures::future::BoxFuture;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::connect_request::Message as Up;
use switchboard_proto::v1::connect_response::Message as Down;
use switchboard_twilio::media_stream::{parse_inbound, InboundMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tonic::Streaming;
use tracing::Instrument;

use super::{Actions, CallCore, CallLimits};
use crate::control::ControlLease;
use crate::http::{MediaHandler, MediaSocket};
use crate::metrics::{CallOutcome, Direction};
use crate::realtime_client::{self, RealtimeSocket};
use crate::AppState;

/// How long Twilio may take to send `start`, and the control plane `CallConfig`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the core is ticked (log batches, retries, max duration, usage).
const TICK: Duration = Duration::from_millis(250);
/// After the call ended: how long the log may take to be acknowledged and, after a
/// fallback or handoff redirect, Twilio to end the stream.
const END_GRACE: Duration = Duration::from_secs(15);
/// Depth of the outgoing control-plane queue of one call.
const CONTROL_QUEUE: usize = 256;
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

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

async fn close_twilio(sink: &mut TwilioSink, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

/// The control-plane stream of one call, open on one replica.
struct ControlStream {
    sender: mpsc::Sender<pb::ConnectRequest>,
    inbound: Streaming<pb::ConnectResponse>,
    lease: ControlLease,
}

impl ControlStream {
    /// Ends the stream the way a finished call does: no more requests, then whatever
    /// the control plane still answers, so the last messages are delivered, not reset.
    async fn close(self) {
        let ControlStream {
            sender,
            mut inbound,
            lease,
        } = self;
        drop(sender);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        drop(lease);
    }
}

/// Opens the call's stream on a live replica: `Hello`, then the first answer, which must
/// be its config.
async fn open_control(
    state: &AppState,
    hello: pb::ConnectRequest,
) -> Result<(ControlStream, pb::CallConfig), tonic::Status> {
    let opened = tokio::time::timeout(START_TIMEOUT, async {
        let mut stream = state.control.connect(hello, CONTROL_QUEUE).await?;
        let first = match stream.inbound.message().await {
            Ok(first) => first,
            Err(status) => {
                stream.lease.broke();
                return Err(status);
            }
        };
        Ok::<_, tonic::Status>((stream, first))
    })
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("the control plane did not answer hello"))??;
    match opened {
        (
            stream,
            Some(pb::ConnectResponse {
                message: Some(Down::Config(config)),
            }),
        ) => Ok((
            ControlStream {
                sender: stream.sender,
                inbound: stream.inbound,
                lease: stream.lease,
            },
            config,
        )),
        _ => Err(tonic::Status::internal(
            "the control plane answered hello without a call config",
        )),
    }
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
    let mut core = CallCore::new(config, dialect, CallLimits::default(), clock.now_ms());
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
        openai_tx: openai_tx.take(),
        control: Some(control),
        control_down: None,
        backoff: RECONNECT_MIN,
        ended_at: None,
        fallback_sent: false,
        counted: Default::default(),
        counted_rejects: Default::default(),
        counted_openai_rejects: Default::default(),
    };
    call.carry_out(&mut out).await;
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
    openai_tx: Option<OpenAiSink>,
    control: Option<ControlStream>,
    /// When the control stream broke, and when to try again.
    control_down: Option<Instant>,
    backoff: Duration,
    ended_at: Option<Instant>,
    fallback_sent: bool,
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
        let mut twilio_open = true;
        // Each input is stamped when it arrives, not when the loop began waiting for it:
        // the barge-in math subtracts these times (mark echo → `speech_started`), and a
        // stamp taken before an idle wait is early by that wait.
        let clock = self.clock;
        loop {
            out.clear();
            // When a peer's frame arrived, for the relay-latency histogram: from there
            // to the end of the writes it caused.
            let mut arrived = None;
            tokio::select! {
                biased;
                message = next_control(&mut self.control) => match message {
                    Ok(Some(message)) => core.on_control(message, clock.now_ms(), out),
                    Ok(None) | Err(_) => {
                        let replica = self.control.take().map(|control| {
                            // Reconnect elsewhere: this replica may be gone.
                            control.lease.broke();
                            control.lease.replica_key().to_owned()
                        });
                        if let Err(status) = &message {
                            tracing::warn!(code = ?status.code(), ?replica, "control stream broke: {}", status.message());
                        }
                        self.control_down = Some(Instant::now() + self.backoff);
                    }
                },
                () = reconnect_due(self.control_down), if self.control.is_none() && self.control_down.is_some() => {
                    self.reconnect(core, out).await;
                }
                message = twilio_rx.next(), if twilio_open => match message {
                    Some(Ok(Message::Text(text))) => {
                        arrived = Some(Instant::now());
                        core.on_twilio_text(text.as_str(), clock.now_ms(), out);
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.state.metrics.frame_rejected(crate::metrics::RejectReason::Binary);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        twilio_open = false;
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
            if let Some(ended_at) = self.ended_at {
                if !twilio_open && core.is_settled() {
                    break;
                }
                let waited = ended_at.elapsed();
                if waited >= END_GRACE {
                    if !core.is_settled() {
                        tracing::warn!(
                            unacknowledged = core.outbox().unacknowledged(),
                            "log not acknowledged within the grace; sending the final status"
                        );
                        out.clear();
                        core.finish(out);
                        self.carry_out(out).await;
                    }
                    close_twilio(&mut self.twilio_tx, close_code::NORMAL, "call ended").await;
                    break;
                }
            }
        }
        if let Some(mut openai) = self.openai_tx.take() {
            let _ = openai.close().await;
        }
        if let Some(control) = self.control.take() {
            control.close().await;
        }
    }

    /// Sends what the core asked for: Twilio frames with one flush, then OpenAI frames,
    /// then control messages.
    async fn carry_out(&mut self, out: &mut Actions) {
        if !out.to_twilio.is_empty() {
            for frame in out.to_twilio.drain() {
                if self
                    .twilio_tx
                    .feed(Message::Text(frame.into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = self.twilio_tx.flush().await;
        }
        if let Some(openai) = self.openai_tx.as_mut() {
            if !out.to_openai.is_empty() {
                for frame in out.to_openai.drain() {
                    if openai.feed(WsMessage::text(frame)).await.is_err() {
                        break;
                    }
                }
                let _ = openai.flush().await;
            }
        }
        for error in out.openai_errors.drain(..) {
            tracing::warn!(kind = %error.kind, code = ?error.code, fatal = error.fatal, "realtime error: {}", error.message);
        }
        if out.items_overflowed > 0 {
            tracing::error!(
                count = out.items_overflowed,
                "conversation items refused: the outbox is full"
            );
        }
        if let Some(handoff) = out.handoff.take() {
            // The control plane redirects the live call to humans (Twilio REST); the
            // stream then stops and the call ends handed off.
            tracing::info!(reason = %handoff.reason, "the model asked for a human");
            out.to_control.push(pb::ConnectRequest {
                message: Some(Up::Transfer(pb::TransferRequest {
                    target: handoff.target,
                    reason: handoff.reason,
                })),
            });
        }
        let end = out.end.take();
        if let Some(end) = &end {
            tracing::info!(kind = ?end.kind, reason = %end.end_reason, "call ended");
            self.ended_at.get_or_insert_with(Instant::now);
            if let Some(mut openai) = self.openai_tx.take() {
                let _ = openai.close().await;
            }
            if end.needs_fallback() && !self.fallback_sent {
                self.fallback_sent = true;
                out.to_control.insert(
                    0,
                    pb::ConnectRequest {
                        message: Some(Up::Fallback(pb::FallbackRequest {
                            error: end.error.clone(),
                        })),
                    },
                );
            }
            if end.close_twilio() && !end.needs_fallback() {
                close_twilio(&mut self.twilio_tx, close_code::NORMAL, "call ended").await;
            }
        }
        if let Some(control) = &self.control {
            for message in out.to_control.drain(..) {
                // A full queue means the control plane is not keeping up; the outbox
                // keeps unacknowledged items, so a dropped batch is re-sent.
                if control.sender.try_send(message).is_err() {
                    tracing::debug!("control queue full; message left to the outbox");
                }
            }
        } else {
            out.to_control.clear();
        }
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
                self.backoff = RECONNECT_MIN;
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
                self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
                self.control_down = Some(Instant::now() + self.backoff);
                tracing::debug!(code = ?status.code(), retry_in = ?self.backoff, "control stream still down");
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

async fn next_control(
    control: &mut Option<ControlStream>,
) -> Result<Option<pb::ConnectResponse>, tonic::Status> {
    match control {
        Some(control) => control.inbound.message().await,
        None => std::future::pending().await,
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

async fn reconnect_due(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
