//! The per-connection loop: reads client frames into the
//! [`SessionCore`], paces the active response's audio, fires faults, and
//! writes what the core produced with one flush per batch.
//!
//! Echo mode answers appends here, without the core: decode the frame with
//! the codec (the base64 stays borrowed), encode one audio delta carrying
//! the same payload, send it. Everything else still goes to the core.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use futures::{SinkExt as _, StreamExt as _};
use switchboard_realtime::server_event::AudioDelta;
use switchboard_realtime::{
    base64_decoded_len, parse_client_event, ClientEvent, Dialect, ServerEvent,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info_span, Instrument as _};

use super::handshake::ConnInfo;
use super::Shared;
use crate::openai::config::{AudioPace, Mode};
use crate::openai::faults::{Fault, Trigger};
use crate::openai::records::{Recorder, SessionRecord};
use crate::openai::session::{new_session_id, CoreParams, Outbox, SessionCore};

/// How a session ended (kept in [`SessionRecord::ended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    Dropped,
    Expired,
    Shutdown,
    SocketError,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client closed",
            Self::Dropped => "dropped",
            Self::Expired => "expired",
            Self::Shutdown => "shutdown",
            Self::SocketError => "socket error",
        }
    }
}

/// One accepted connection, over plain TCP or TLS: generic rather than an enum, so
/// the plain path (echo mode's relay benchmark) is compiled as before.
struct Connection<S> {
    ws: WebSocketStream<S>,
    dialect: Dialect,
    core: SessionCore,
    recorder: Recorder,
    echo: Option<Echo>,
    pace: AudioPace,
    out: Outbox,
    /// Frames encoded outside the core (echo deltas), sent after `out`.
    frames: Vec<String>,
    /// Faults not fired yet.
    faults: Vec<Fault>,
    started: Instant,
    events: u64,
    stalled: bool,
    next_step: Option<Instant>,
}

/// Ids of echo deltas.
struct Echo {
    response_id: String,
    item_id: String,
    seq: u64,
    event_id: String,
}

/// Runs one session to its end and records how it ended.
pub(super) async fn run<S>(
    ws: WebSocketStream<S>,
    shared: &Arc<Shared>,
    info: ConnInfo,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session_id = new_session_id();
    let mut record = SessionRecord::new(session_id.clone(), info.dialect, info.model.clone());
    record.path = info.path.clone();
    record.faults = info.faults.clone();
    let recorder = shared.records.open(record);
    let config = &shared.config;
    let core = SessionCore::new(CoreParams {
        session_id: session_id.clone(),
        dialect: info.dialect,
        model: info.model.clone(),
        script: Arc::clone(&config.script),
        recorder: recorder.clone(),
        tone_hz: config.tone_hz,
        chunk_ms: config.chunk_ms,
    });
    let echo = (config.mode == Mode::Echo).then(|| Echo {
        response_id: format!("resp_{session_id}"),
        item_id: format!("item_{session_id}"),
        seq: 0,
        event_id: String::new(),
    });
    let mut connection = Connection {
        ws,
        dialect: info.dialect,
        core,
        recorder: recorder.clone(),
        echo,
        pace: config.audio_pace,
        out: Vec::new(),
        frames: Vec::new(),
        faults: info
            .faults
            .iter()
            .copied()
            .filter(|f| f.trigger().is_some())
            .collect(),
        started: Instant::now(),
        events: 0,
        stalled: false,
        next_step: None,
    };
    let span =
        info_span!("openai_session", %session_id, dialect = %info.dialect, model = %info.model);
    let end = connection.serve(shutdown).instrument(span).await;
    debug!(%session_id, end = end.as_str(), "openai session ended");
    recorder.update(|r| r.ended = Some(end.as_str().to_owned()));
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn serve(&mut self, mut shutdown: watch::Receiver<bool>) -> End {
        self.core.start(&mut self.out);
        if self.flush().await.is_err() {
            return End::SocketError;
        }
        if let Some(end) = self.fire_due_faults().await {
            return end;
        }
        loop {
            let fault_at = self.next_fault_deadline();
            let step_at = self.next_step.filter(|_| !self.stalled);
            let far = || Instant::now() + std::time::Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    self.close(CloseCode::Away, "server shutting down").await;
                    return End::Shutdown;
                }
                _ = tokio::time::sleep_until(fault_at.unwrap_or_else(far)), if fault_at.is_some() => {}
                message = self.ws.next() => match message {
                    None => return End::ClientClosed,
                    Some(Ok(Message::Close(_))) => {
                        // Sends the close reply tungstenite queued.
                        let _ = self.ws.flush().await;
                        return End::ClientClosed;
                    }
                    Some(Err(err)) => {
                        debug!(error = %err, "read failed");
                        return End::SocketError;
                    }
                    Some(Ok(Message::Text(text))) => self.on_text(&text),
                    Some(Ok(Message::Binary(_))) => self.on_binary(),
                    Some(Ok(_)) => continue,
                },
                _ = tokio::time::sleep_until(step_at.unwrap_or_else(far)), if step_at.is_some() => {
                    self.step(step_at.unwrap_or_else(Instant::now));
                }
            }
            self.schedule_step();
            if self.flush().await.is_err() {
                return End::SocketError;
            }
            if let Some(end) = self.fire_due_faults().await {
                return end;
            }
        }
    }

    fn on_text(&mut self, text: &str) {
        self.events += 1;
        if self.stalled {
            self.recorder.update(|r| r.ignored_events += 1);
            return;
        }
        let Some(echo) = self.echo.as_mut() else {
            self.core.on_text(text, &mut self.out);
            return;
        };
        match parse_client_event(text, self.dialect) {
            Ok(ClientEvent::InputAudioBufferAppend { audio, .. }) => {
                let bytes = base64_decoded_len(&audio);
                self.recorder.update(|r| {
                    r.appends += 1;
                    r.audio_bytes_appended += bytes;
                });
                let frame = echo.delta(&audio, self.dialect);
                self.frames.push(frame);
            }
            Ok(event) => self.core.on_event(event, &mut self.out),
            Err(_) => self.core.on_text(text, &mut self.out),
        }
    }

    fn on_binary(&mut self) {
        self.events += 1;
        if self.stalled {
            self.recorder.update(|r| r.ignored_events += 1);
            return;
        }
        self.core.on_binary(&mut self.out);
    }

    /// Sends the next piece of the response and plans the one after.
    fn step(&mut self, due: Instant) {
        let Some(audio_ms) = self.core.step(&mut self.out) else {
            self.next_step = None;
            return;
        };
        self.next_step = self
            .core
            .response_active()
            .then(|| due + self.pace.delay(audio_ms));
    }

    fn schedule_step(&mut self) {
        if !self.core.response_active() {
            self.next_step = None;
        } else if self.next_step.is_none() {
            self.next_step = Some(Instant::now());
        }
    }

    fn next_fault_deadline(&self) -> Option<Instant> {
        self.faults
            .iter()
            .filter_map(|f| match f.trigger() {
                Some(Trigger::AfterMs(ms)) => {
                    Some(self.started + std::time::Duration::from_millis(ms))
                }
                _ => None,
            })
            .min()
    }

    /// Fires every fault whose trigger has passed; `Some` ends the session.
    async fn fire_due_faults(&mut self) -> Option<End> {
        let elapsed = self.started.elapsed().as_millis() as u64;
        let (due, later): (Vec<Fault>, Vec<Fault>) =
            self.faults.iter().partition(|f| match f.trigger() {
                Some(Trigger::Immediately) => true,
                Some(Trigger::AfterMs(ms)) => elapsed >= ms,
                Some(Trigger::AfterEvents(n)) => self.events >= n,
                None => false,
            });
        self.faults = later;
        for fault in due {
            debug!(%fault, "fault fired");
            self.recorder.update(|r| r.faults_fired.push(fault));
            match fault {
                Fault::Drop(_) => return Some(End::Dropped),
                Fault::Stall(_) => {
                    self.stalled = true;
                    self.out.clear();
                }
                Fault::RateLimit(_) => self.core.set_rate_limited(true),
                Fault::Expire(_) => {
                    self.core.expire(&mut self.out);
                    let _ = self.flush().await;
                    self.close(CloseCode::Away, "session expired").await;
                    return Some(End::Expired);
                }
                Fault::Refuse { .. } | Fault::Reset => {}
            }
        }
        None
    }

    /// Writes what the core produced: one feed per event, one flush.
    async fn flush(&mut self) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        if self.stalled {
            self.out.clear();
            self.frames.clear();
            return Ok(());
        }
        if self.out.is_empty() && self.frames.is_empty() {
            return Ok(());
        }
        for event in self.out.drain(..) {
            let text = event.encode(self.dialect);
            self.ws.feed(Message::text(text)).await?;
        }
        for text in self.frames.drain(..) {
            self.ws.feed(Message::text(text)).await?;
        }
        self.ws.flush().await
    }

    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}

impl Echo {
    /// One audio delta carrying `audio`, encoded for `dialect`.
    fn delta(&mut self, audio: &str, dialect: Dialect) -> String {
        self.seq += 1;
        self.event_id.clear();
        let _ = write!(self.event_id, "event_echo{}", self.seq);
        let delta = ServerEvent::ResponseOutputAudioDelta(AudioDelta {
            event_id: Cow::Borrowed(&self.event_id),
            response_id: Cow::Borrowed(&self.response_id),
            item_id: Cow::Borrowed(&self.item_id),
            output_index: 0,
            content_index: 0,
            delta: Cow::Borrowed(audio),
        });
        let mut text = String::with_capacity(audio.len() + 160);
        delta.encode_into(dialect, &mut text);
        text
    }
}
