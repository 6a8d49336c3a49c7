//! One Media Stream, Twilio's side: the signed upgrade, `connected` and `start`, the
//! caller's µ-law every 20 ms of real time, playback of what the application sends, DTMF,
//! and `stop` on hang-up, redirect or REST hang-up.
//!
//! Pacing: frame *n* is due at `start + n × 20 ms` on a `tokio::time::interval` with
//! [`MissedTickBehavior::Burst`], chosen deliberately: if the task is held up (a loaded
//! machine), the frames it missed go out at once when it runs again, so the number of frames
//! sent keeps matching the wall clock and `media.timestamp` (the audio clock) never drifts
//! from real time, which is what Twilio's media clock does after a network stall. `Delay`
//! would let the stream fall behind real time for good.
//!
//! `wss://` URLs are opened over TLS trusting the call's [`TrustedCa`](crate::twilio::TrustedCa)
//! (or the public roots), verified against the URL's host; the upgrade is signed over
//! the URL exactly as Twilio signs it, `wss://` included.
//!
//! One task owns the socket: it `select!`s over handle commands, the frame ticker, the
//! next mark coming due in the playout queue, and the application's messages, and writes
//! with `feed` + one `flush` per wake-up.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use switchboard_twilio::media_stream::{
    self as wire, Connected, InboundMessage, MediaFormat, Start, Stop,
};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::flow::CallCtx;
use super::inbox;
use super::{lock, merge_playback, Command, TwimlSource};
use crate::tls::{connect_websocket, ClientStream};
use crate::twilio::audio::bytes_duration;
use crate::twilio::document::StreamNoun;
use crate::twilio::playback::{MarkEcho, Playback};
use crate::twilio::record::{
    CallEnd, DtmfSent, StreamEnd, StreamRecord, Warning, WARNING_BINARY_FRAME,
};
use crate::twilio::script::duration_bytes;
use crate::twilio::sid;
use crate::twilio::trust;
use crate::twilio::webhook::stream_socket_url;

/// One inbound frame: 20 ms.
const FRAME: Duration = Duration::from_millis(20);

/// µ-law bytes in one frame.
const FRAME_BYTES: usize = 160;

/// How long to wait for the close handshake after `stop`.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How a stream ended, for the flow to act on.
pub(super) enum StreamOutcome {
    /// The call is over.
    Ended(CallEnd),
    /// Run this TwiML next.
    Redirected(TwimlSource),
    /// The application closed the socket (or it failed): run `action` or the next verb.
    Closed,
}

type Socket = WebSocketStream<ClientStream>;

/// The per-stream counters of Twilio's side.
struct Session {
    stream_sid: String,
    started: Instant,
    /// Audio-clock byte at which this stream's first frame starts.
    script_offset: u64,
    sequence_number: u64,
    chunk: u64,
    next_dtmf: usize,
    frame: [u8; FRAME_BYTES],
    payload: String,
    scratch: Vec<u8>,
    outgoing: usize,
}

/// Runs one `<Connect><Stream>` to its end.
pub(super) async fn run(ctx: &mut CallCtx, noun: &StreamNoun, base: Option<&str>) -> StreamOutcome {
    let Some(url) = stream_socket_url(&noun.url, base) else {
        let error = format!("stream url {:?} cannot be resolved", noun.url);
        lock(&ctx.state).record.errors.push(error);
        return StreamOutcome::Closed;
    };
    let mut socket = match connect(ctx, &url).await {
        Ok(socket) => socket,
        Err(error) => {
            let mut state = lock(&ctx.state);
            state.record.errors.push(error.clone());
            let started_at = state.started.elapsed();
            state.record.streams.push(StreamRecord {
                url,
                started_at,
                end: Some(StreamEnd::Failed { error }),
                ..StreamRecord::default()
            });
            return StreamOutcome::Closed;
        }
    };
    let started = Instant::now();
    let origin = *ctx.audio_origin.get_or_insert(started);
    let mut session = Session {
        stream_sid: sid::stream_sid(),
        started,
        script_offset: frame_aligned(duration_bytes(started - origin)),
        sequence_number: 0,
        chunk: 0,
        next_dtmf: 0,
        frame: [0; FRAME_BYTES],
        payload: String::with_capacity(216),
        scratch: Vec::with_capacity(FRAME_BYTES),
        outgoing: 0,
    };
    {
        let mut state = lock(&ctx.state);
        let started_at = state.started.elapsed();
        state.record.streams.push(StreamRecord {
            stream_sid: session.stream_sid.clone(),
            url: url.clone(),
            custom_parameters: noun.parameters.iter().cloned().collect(),
            started_at,
            ..StreamRecord::default()
        });
        state.playback = Some(Playback::new(ctx.spec.keep_audio));
    }
    tracing::debug!(stream_sid = %session.stream_sid, %url, "media stream open");
    let (outcome, end) = match session.open(ctx, &mut socket, noun).await {
        Ok(()) => session.pump(ctx, &mut socket).await,
        Err(error) => (StreamOutcome::Closed, StreamEnd::Failed { error }),
    };
    session.finish(ctx, end);
    outcome
}

async fn connect(ctx: &CallCtx, url: &str) -> Result<Socket, String> {
    let signature = ctx.validator.compute::<&str, &str>(url, &[]);
    let mut request = url
        .into_client_request()
        .map_err(|err| format!("stream url {url}: {err}"))?;
    let header = HeaderValue::from_str(&signature).map_err(|err| err.to_string())?;
    request.headers_mut().insert("x-twilio-signature", header);
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let tls = trust::websocket_tls(ctx.spec.trusted_ca.as_ref());
    let connecting = connect_websocket(request, &tls, Some(config));
    match tokio::time::timeout(ctx.spec.http_timeout, connecting).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        // 31920: the handshake was not answered with 101; 31902: refused; the error says
        // which step (tcp, tls, upgrade) failed.
        Ok(Err(err)) => Err(format!("stream {url}: {err}")),
        Err(_) => Err(format!("stream {url}: connect timed out (31901)")),
    }
}

// === impl Session ===

impl Session {
    /// Sends `connected` and `start`.
    async fn open(
        &mut self,
        ctx: &CallCtx,
        socket: &mut Socket,
        noun: &StreamNoun,
    ) -> Result<(), String> {
        let connected = InboundMessage::Connected(Connected {
            protocol: Cow::Borrowed("Call"),
            version: Cow::Borrowed("1.0.0"),
        });
        self.feed(socket, &connected).await?;
        self.sequence_number += 1;
        let start = InboundMessage::Start(Start {
            sequence_number: self.sequence_number,
            stream_sid: Cow::Borrowed(&self.stream_sid),
            account_sid: Cow::Borrowed(&ctx.spec.account_sid),
            call_sid: Cow::Borrowed(&ctx.spec.call_sid),
            tracks: vec![Cow::Borrowed("inbound")],
            custom_parameters: noun.parameters.iter().cloned().collect(),
            media_format: MediaFormat {
                encoding: Cow::Borrowed("audio/x-mulaw"),
                sample_rate: 8000,
                channels: 1,
            },
        });
        let start = start.encode_to_string();
        self.feed_text(socket, start).await?;
        self.flush(socket).await
    }

    /// The stream's main loop.
    async fn pump(&mut self, ctx: &mut CallCtx, socket: &mut Socket) -> (StreamOutcome, StreamEnd) {
        let start = tokio::time::Instant::from_std(self.started);
        let mut ticker = tokio::time::interval_at(start, FRAME);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut commands_open = true;
        loop {
            let due = lock(&ctx.state)
                .playback
                .as_ref()
                .and_then(Playback::next_due);
            let deadline = start + due.unwrap_or(Duration::from_secs(86_400));
            let step = tokio::select! {
                biased;
                command = ctx.commands.recv(), if commands_open => match command {
                    Some(command) => Step::Command(command),
                    None => {
                        commands_open = false;
                        Step::Continue
                    }
                },
                _ = ticker.tick() => self.tick(ctx, socket).await,
                () = tokio::time::sleep_until(deadline), if due.is_some() => {
                    self.play_out(ctx, socket, |_, _| {}).await
                }
                message = socket.next() => self.receive(ctx, socket, message).await,
            };
            let flushed = self.flush(socket).await;
            match (step, flushed) {
                (Step::Continue, Ok(())) => {}
                (Step::Continue, Err(error)) | (Step::Failed(error), _) => {
                    return (StreamOutcome::Closed, StreamEnd::Failed { error })
                }
                (Step::AppClosed(code), _) => {
                    drain(socket).await;
                    return (StreamOutcome::Closed, StreamEnd::AppClosed { code });
                }
                (Step::Command(command), _) => {
                    self.stop(ctx, socket).await;
                    return ended_by(command);
                }
            }
        }
    }

    /// One frame of caller audio (and any key press due), or the script's hang-up.
    async fn tick(&mut self, ctx: &CallCtx, socket: &mut Socket) -> Step {
        let clock_bytes = self.script_offset + self.chunk * FRAME_BYTES as u64;
        let clock = bytes_duration(clock_bytes);
        if ctx.timeline.hangs_up_by(clock) {
            return Step::Command(Command::HangUp { by_api: false });
        }
        let now = self.started.elapsed();
        for press in ctx.timeline.dtmf_due(clock, &mut self.next_dtmf) {
            self.sequence_number += 1;
            let digit = press.digit.to_string();
            let dtmf = InboundMessage::Dtmf(wire::Dtmf {
                sequence_number: self.sequence_number,
                stream_sid: Cow::Borrowed(&self.stream_sid),
                track: Cow::Borrowed("inbound_track"),
                digit: Cow::Borrowed(&digit),
            });
            let text = dtmf.encode_to_string();
            if let Err(error) = self.feed_text(socket, text).await {
                return Step::Failed(error);
            }
            if let Some(stream) = lock(&ctx.state).record.streams.last_mut() {
                stream.dtmf.push(DtmfSent {
                    digit: press.digit,
                    at: now,
                });
            }
        }
        ctx.timeline.fill(clock_bytes, &mut self.frame);
        self.payload.clear();
        base64::engine::general_purpose::STANDARD.encode_string(self.frame, &mut self.payload);
        self.chunk += 1;
        self.sequence_number += 1;
        let media = InboundMessage::Media(wire::Media {
            sequence_number: self.sequence_number,
            stream_sid: Cow::Borrowed(&self.stream_sid),
            track: Cow::Borrowed("inbound"),
            chunk: self.chunk,
            timestamp_ms: (self.chunk - 1) * FRAME.as_millis() as u64,
            payload: Cow::Borrowed(&self.payload),
        });
        let text = media.encode_to_string();
        if let Err(error) = self.feed_text(socket, text).await {
            return Step::Failed(error);
        }
        let (chunk, sequence_number) = (self.chunk, self.sequence_number);
        self.play_out(ctx, socket, |stream, now| {
            let sent = &mut stream.sent;
            sent.frames = chunk;
            sent.last_sequence_number = sequence_number;
            sent.last_timestamp_ms = (chunk - 1) * FRAME.as_millis() as u64;
            sent.first_at.get_or_insert(now);
            sent.last_at = Some(now);
        })
        .await
    }

    /// Plays the queue up to now, applies `update` to the stream record, and echoes the
    /// marks that came due.
    async fn play_out(
        &mut self,
        ctx: &CallCtx,
        socket: &mut Socket,
        update: impl FnOnce(&mut StreamRecord, Duration),
    ) -> Step {
        let now = self.started.elapsed();
        let echoes = {
            let mut state = lock(&ctx.state);
            if let Some(stream) = state.record.streams.last_mut() {
                update(stream, now);
            }
            match state.playback.as_mut() {
                Some(playback) => {
                    playback.advance(now);
                    playback.take_ready()
                }
                None => Vec::new(),
            }
        };
        self.echo(socket, echoes).await
    }

    /// Handles one message from the application.
    async fn receive(
        &mut self,
        ctx: &CallCtx,
        socket: &mut Socket,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Step {
        let now = self.started.elapsed();
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                warn(ctx, WARNING_BINARY_FRAME, now, "binary frame".to_owned());
                return Step::Continue;
            }
            Some(Ok(Message::Close(frame))) => {
                return Step::AppClosed(frame.map(|frame| u16::from(frame.code)))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                return Step::Continue
            }
            Some(Err(err)) => return Step::Failed(format!("stream socket failed: {err}")),
            None => return Step::AppClosed(None),
        };
        let checked = inbox::check(&text, &self.stream_sid);
        let echoes = {
            let mut state = lock(&ctx.state);
            let state = &mut *state;
            let (Some(stream), Some(playback)) =
                (state.record.streams.last_mut(), state.playback.as_mut())
            else {
                return Step::Continue;
            };
            inbox::apply(checked, now, stream, playback, &mut self.scratch);
            playback.take_ready()
        };
        self.echo(socket, echoes).await
    }

    /// Sends `mark` echoes.
    async fn echo(&mut self, socket: &mut Socket, echoes: Vec<MarkEcho>) -> Step {
        for echo in echoes {
            self.sequence_number += 1;
            let mark = InboundMessage::Mark(wire::Mark {
                sequence_number: self.sequence_number,
                stream_sid: Cow::Borrowed(&self.stream_sid),
                name: Cow::Borrowed(&echo.name),
            });
            let text = mark.encode_to_string();
            if let Err(error) = self.feed_text(socket, text).await {
                return Step::Failed(error);
            }
        }
        Step::Continue
    }

    /// Sends `stop`, closes the socket and waits briefly for the close handshake.
    async fn stop(&mut self, ctx: &CallCtx, socket: &mut Socket) {
        self.sequence_number += 1;
        let stop = InboundMessage::Stop(Stop {
            sequence_number: self.sequence_number,
            stream_sid: Cow::Borrowed(&self.stream_sid),
            account_sid: Cow::Borrowed(&ctx.spec.account_sid),
            call_sid: Cow::Borrowed(&ctx.spec.call_sid),
        });
        let text = stop.encode_to_string();
        if self.feed_text(socket, text).await.is_err() {
            return;
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if socket.send(Message::Close(Some(close))).await.is_ok() {
            drain(socket).await;
        }
    }

    /// Moves the playout queue's results into the record and marks the stream ended. The
    /// queue is not played further: what it played by the last wake-up (at most one frame
    /// ago) is what the caller heard, and no echo can be sent any more.
    fn finish(&mut self, ctx: &CallCtx, end: StreamEnd) {
        tracing::debug!(stream_sid = %self.stream_sid, ?end, "media stream ended");
        let mut state = lock(&ctx.state);
        let state = &mut *state;
        let playback = state.playback.take();
        let Some(stream) = state.record.streams.last_mut() else {
            return;
        };
        if let Some(playback) = playback {
            merge_playback(&playback, stream);
        }
        stream.sent.last_sequence_number = self.sequence_number;
        stream.end = Some(end);
    }

    async fn feed(
        &mut self,
        socket: &mut Socket,
        message: &InboundMessage<'_>,
    ) -> Result<(), String> {
        self.feed_text(socket, message.encode_to_string()).await
    }

    async fn feed_text(&mut self, socket: &mut Socket, text: String) -> Result<(), String> {
        self.outgoing += 1;
        socket
            .feed(Message::text(text))
            .await
            .map_err(|err| format!("stream socket failed: {err}"))
    }

    async fn flush(&mut self, socket: &mut Socket) -> Result<(), String> {
        if self.outgoing == 0 {
            return Ok(());
        }
        self.outgoing = 0;
        socket
            .flush()
            .await
            .map_err(|err| format!("stream socket failed: {err}"))
    }
}

/// What one wake-up of the loop asks for.
enum Step {
    Continue,
    /// A handle's command, or the script's hang-up.
    Command(Command),
    AppClosed(Option<u16>),
    Failed(String),
}

/// Encoding helper: the codec appends to a buffer; a WebSocket message owns its text.
trait EncodeToString {
    fn encode_to_string(&self) -> String;
}

impl EncodeToString for InboundMessage<'_> {
    fn encode_to_string(&self) -> String {
        let mut out = String::with_capacity(320);
        self.encode(&mut out);
        out
    }
}

/// How the stream and the call end after `stop` for `command`.
fn ended_by(command: Command) -> (StreamOutcome, StreamEnd) {
    match command {
        Command::HangUp { by_api: true } => (
            StreamOutcome::Ended(CallEnd::HungUpByApi),
            StreamEnd::HungUpByApi,
        ),
        Command::HangUp { by_api: false } => (
            StreamOutcome::Ended(CallEnd::CallerHungUp),
            StreamEnd::CallerHungUp,
        ),
        Command::Redirect(source) => (StreamOutcome::Redirected(source), StreamEnd::Redirected),
    }
}

fn warn(ctx: &CallCtx, code: u32, at: Duration, detail: String) {
    if let Some(stream) = lock(&ctx.state).record.streams.last_mut() {
        stream.warnings.push(Warning { code, at, detail });
    }
}

/// Reads until the peer finishes the close handshake (or a short grace passes).
async fn drain(socket: &mut Socket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

fn frame_aligned(bytes: u64) -> u64 {
    bytes - bytes % FRAME_BYTES as u64
}
