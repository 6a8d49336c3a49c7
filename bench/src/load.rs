//! The load side: N callers, each the Twilio half of one call made lean enough that one
//! core carries hundreds of them.
//!
//! A caller does what Twilio does to the sidecar — the signed voice webhook, the TwiML,
//! the signed Media Stream upgrade, `connected` and `start` with the TwiML's parameters,
//! then one 20 ms µ-law `media` frame every 20 ms of real time, and a `mark` echo for
//! every `mark` the application sends (at once, not after playout: the harness measures
//! the relay, not Twilio's queue) — and nothing else: no playout model, no recording.
//!
//! Every frame carries its identity in the audio ([`FrameId`]): the call's index, the
//! frame's sequence and the instant it was written. The relay passes the payload through
//! untouched and the Realtime simulator in echo mode answers each append with a delta of
//! the same payload, so when the frame comes back as Twilio `media` the caller knows which
//! call it was sent on (misrouted if not this one), whether it was already seen
//! (duplicated), and its round trip.
//!
//! Frames are spread over the 20 ms period (call *i* sends at phase `i × 20 ms / N`) as
//! independent phones would be, and keep a real-time cadence: a tick missed by a busy
//! load core is sent late, not skipped (`MissedTickBehavior::Burst`), like Twilio's media
//! clock.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use switchboard_sim::twilio::{document, webhook};
use switchboard_twilio::media_stream::{
    parse_outbound, Connected, InboundMessage, Mark, Media, MediaFormat, OutboundMessage, Start,
    Stop,
};
use switchboard_twilio::signature::RequestValidator;
use switchboard_twilio::vocabulary::{CallDirection, CallStatus, HttpMethod};
use switchboard_twilio::webhooks::form_params;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Who calls: one number for every simulated caller.
const CALLER: &str = "+14155550199";

/// One frame of audio: 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// µ-law bytes in one frame.
const FRAME_BYTES: usize = 160;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What identifies a frame, written into the first bytes of its audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameId {
    /// The call's index in the run.
    pub call: u32,
    /// The frame's sequence in its call, from 0.
    pub seq: u32,
    /// When it was written, in µs since the run's clock origin.
    pub sent_us: u64,
}

impl FrameId {
    const MAGIC: [u8; 4] = *b"SBRB";
    const LEN: usize = 20;

    /// A frame of µ-law silence carrying this id.
    pub fn frame(self) -> [u8; FRAME_BYTES] {
        let mut frame = [0xFF; FRAME_BYTES];
        frame[..4].copy_from_slice(&Self::MAGIC);
        frame[4..8].copy_from_slice(&self.call.to_le_bytes());
        frame[8..12].copy_from_slice(&self.seq.to_le_bytes());
        frame[12..20].copy_from_slice(&self.sent_us.to_le_bytes());
        frame
    }

    /// The id in `audio`, if it carries one.
    pub fn read(audio: &[u8]) -> Option<FrameId> {
        if audio.len() < Self::LEN || audio[..4] != Self::MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes(audio[at..at + 4].try_into().unwrap_or([0; 4]));
        Some(FrameId {
            call: u32_at(4),
            seq: u32_at(8),
            sent_us: u64::from_le_bytes(audio[12..20].try_into().unwrap_or([0; 8])),
        })
    }
}

/// Where the calls go and when the steady window is.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The sidecar's voice webhook (the stream URL comes from its TwiML); `None` for the
    /// floor, whose echo server is dialled at `stream_url` directly.
    pub voice_url: Option<String>,
    /// The Media Stream URL when there is no webhook.
    pub stream_url: String,
    /// Account and token Twilio signs with.
    pub account_sid: String,
    pub auth_token: String,
    /// The number called (the agent's).
    pub to: String,
    /// How many calls, for the phase spread.
    pub calls: usize,
    /// The run's clock origin; frame ids count µs from it.
    pub origin: Instant,
    /// Frames are sent from `cadence_start` (call phases add to it).
    pub cadence_start: Instant,
    /// The steady window: frames written inside it are measured.
    pub window_start: Instant,
    pub window_end: Instant,
    /// Frames stop at `window_end`; the call waits this long for the last echoes.
    pub linger: Duration,
}

impl Plan {
    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64
    }
}

/// What one call saw.
#[derive(Debug, Clone, Default)]
pub struct CallOutcome {
    /// Set when the call never started streaming.
    pub setup_error: Option<String>,
    /// Set when the socket failed or closed before the end.
    pub stream_error: Option<String>,
    /// Frames written inside the steady window.
    pub sent_in_window: u64,
    /// Of those, received back (once).
    pub received_in_window: u64,
    /// Round trips of the window's frames, µs.
    pub rtt_us: Vec<u32>,
    /// Frames received a second time.
    pub duplicated: u64,
    /// Frames that came back on another call's stream.
    pub misrouted: u64,
    /// Media that carried no frame id (not ours).
    pub foreign: u64,
    /// `mark`s echoed.
    pub marks: u64,
    /// `clear`s received (a relay in echo mode has no reason to send any).
    pub clears: u64,
    /// Frames written in all.
    pub sent: u64,
}

/// Runs call `index` to the end of the plan.
pub async fn run_call(index: u32, plan: &Plan, client: reqwest::Client) -> CallOutcome {
    let mut outcome = CallOutcome::default();
    let validator = RequestValidator::new(&plan.auth_token);
    let call_sid = format!("CA{:032x}", 0xbe0c_0000_0000_u64 + u64::from(index));
    let (url, parameters) = match &plan.voice_url {
        Some(voice_url) => match stream_of(&client, &validator, voice_url, &call_sid, plan).await {
            Ok(stream) => stream,
            Err(error) => {
                outcome.setup_error = Some(error);
                return outcome;
            }
        },
        None => (plan.stream_url.clone(), Vec::new()),
    };
    let mut socket = match connect(&validator, &url).await {
        Ok(socket) => socket,
        Err(error) => {
            outcome.setup_error = Some(error);
            return outcome;
        }
    };
    let stream_sid = format!("MZ{:032x}", 0x5eed_0000_0000_u64 + u64::from(index));
    let mut call = Call {
        index,
        plan,
        stream_sid,
        call_sid,
        sequence_number: 0,
        seen: Vec::new(),
        payload: String::with_capacity(224),
        decoded: Vec::with_capacity(FRAME_BYTES + 8),
        outcome,
    };
    if let Err(error) = call.open(&mut socket, parameters).await {
        call.outcome.setup_error = Some(error);
        return call.outcome;
    }
    if let Err(error) = call.pump(&mut socket).await {
        call.outcome.stream_error = Some(error);
    }
    call.stop(&mut socket).await;
    call.outcome
}

/// POSTs the voice webhook as Twilio does for a ringing inbound call and reads
/// `<Connect><Stream>` from the answer: the socket URL and its parameters.
async fn stream_of(
    client: &reqwest::Client,
    validator: &RequestValidator,
    voice_url: &str,
    call_sid: &str,
    plan: &Plan,
) -> Result<(String, Vec<(String, String)>), String> {
    let webhook = webhook::voice_webhook(
        call_sid,
        &plan.account_sid,
        CALLER,
        &plan.to,
        CallStatus::Ringing,
        CallDirection::Inbound,
    );
    let params = form_params(webhook.to_form_body().as_bytes());
    let timeout = Duration::from_secs(30);
    let answer = webhook::send_signed(
        client,
        validator,
        voice_url,
        HttpMethod::Post,
        &params,
        timeout,
    )
    .await
    .map_err(|e| format!("voice webhook: {e}"))?;
    if !(200..300).contains(&answer.status) {
        return Err(format!(
            "voice webhook answered {}: {}",
            answer.status, answer.body
        ));
    }
    let twiml = document::parse(&answer.body).map_err(|e| format!("TwiML: {e}"))?;
    let stream = twiml
        .stream()
        .ok_or_else(|| format!("TwiML has no <Connect><Stream>: {}", answer.body))?;
    let url = webhook::stream_socket_url(&stream.url, Some(voice_url))
        .ok_or_else(|| format!("stream url {:?} cannot be resolved", stream.url))?;
    Ok((url, stream.parameters.clone()))
}

async fn connect(validator: &RequestValidator, url: &str) -> Result<Socket, String> {
    let plain = match url.strip_prefix("wss://") {
        Some(rest) => format!("ws://{rest}"),
        None => url.to_owned(),
    };
    let mut request = plain
        .into_client_request()
        .map_err(|e| format!("stream url {url}: {e}"))?;
    let signature = validator.compute::<&str, &str>(url, &[]);
    let header = HeaderValue::from_str(&signature).map_err(|e| e.to_string())?;
    request.headers_mut().insert("x-twilio-signature", header);
    // Small read buffers: tungstenite zero-fills its read buffer on reads, and the 128 KiB
    // default shows up as a large `memset` in a relay's profile.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(Duration::from_secs(30), connecting).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(format!("stream {url}: {e}")),
        Err(_) => Err(format!("stream {url}: connect timed out")),
    }
}

struct Call<'a> {
    index: u32,
    plan: &'a Plan,
    stream_sid: String,
    call_sid: String,
    sequence_number: u64,
    /// Which frame sequences came back, one bit each.
    seen: Vec<u64>,
    payload: String,
    decoded: Vec<u8>,
    outcome: CallOutcome,
}

impl Call<'_> {
    async fn open(
        &mut self,
        socket: &mut Socket,
        parameters: Vec<(String, String)>,
    ) -> Result<(), String> {
        let connected = InboundMessage::Connected(Connected {
            protocol: Cow::Borrowed("Call"),
            version: Cow::Borrowed("1.0.0"),
        });
        feed(socket, &connected).await?;
        self.sequence_number += 1;
        let start = InboundMessage::Start(Start {
            sequence_number: self.sequence_number,
            stream_sid: Cow::Borrowed(&self.stream_sid),
            account_sid: Cow::Borrowed(&self.plan.account_sid),
            call_sid: Cow::Borrowed(&self.call_sid),
            tracks: vec![Cow::Borrowed("inbound")],
            custom_parameters: parameters.into_iter().collect(),
            media_format: MediaFormat {
                encoding: Cow::Borrowed("audio/x-mulaw"),
                sample_rate: 8000,
                channels: 1,
            },
        });
        feed(socket, &start).await?;
        socket.flush().await.map_err(|e| e.to_string())
    }

    /// Sends frames at the call's phase until the window ends, echoing marks and
    /// checking what comes back; then waits `linger` for the last echoes.
    async fn pump(&mut self, socket: &mut Socket) -> Result<(), String> {
        let plan = self.plan;
        let phase = FRAME.mul_f64(f64::from(self.index) / plan.calls.max(1) as f64);
        let mut first = plan.cadence_start + phase;
        let now = Instant::now();
        while first < now {
            first += FRAME;
        }
        let mut ticker = tokio::time::interval_at(first, FRAME);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let linger_end = plan.window_end + plan.linger;
        let mut sending = true;
        loop {
            tokio::select! {
                _ = ticker.tick(), if sending => {
                    let now = Instant::now();
                    if now >= plan.window_end {
                        sending = false;
                        continue;
                    }
                    self.send_frame(socket, now).await?;
                }
                () = tokio::time::sleep_until(linger_end), if !sending => return Ok(()),
                message = socket.next() => {
                    self.receive(socket, message).await?;
                    // Whatever else has already arrived, then one flush for all echoes.
                    while let Some(message) = socket.next().now_or_never() {
                        self.receive(socket, message).await?;
                    }
                    socket.flush().await.map_err(|e| e.to_string())?;
                }
            }
        }
    }

    async fn send_frame(&mut self, socket: &mut Socket, now: Instant) -> Result<(), String> {
        let plan = self.plan;
        let seq = self.outcome.sent as u32;
        let id = FrameId {
            call: self.index,
            seq,
            sent_us: plan.us(now),
        };
        self.payload.clear();
        base64::engine::general_purpose::STANDARD.encode_string(id.frame(), &mut self.payload);
        self.sequence_number += 1;
        let chunk = u64::from(seq) + 1;
        let media = InboundMessage::Media(Media {
            sequence_number: self.sequence_number,
            stream_sid: Cow::Borrowed(&self.stream_sid),
            track: Cow::Borrowed("inbound"),
            chunk,
            timestamp_ms: u64::from(seq) * FRAME.as_millis() as u64,
            payload: Cow::Borrowed(&self.payload),
        });
        feed(socket, &media).await?;
        socket.flush().await.map_err(|e| e.to_string())?;
        self.outcome.sent += 1;
        if now >= plan.window_start {
            self.outcome.sent_in_window += 1;
        }
        Ok(())
    }

    async fn receive(
        &mut self,
        socket: &mut Socket,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), String> {
        let text = match message {
            None => return Err("the application closed the stream".into()),
            Some(Err(e)) => return Err(format!("stream failed: {e}")),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("the application closed the stream: {frame:?}"))
            }
            Some(Ok(_)) => return Ok(()),
        };
        let received = Instant::now();
        match parse_outbound(&text) {
            Ok(OutboundMessage::Media { payload, .. }) => self.on_media(&payload, received),
            Ok(OutboundMessage::Mark { name, .. }) => {
                self.sequence_number += 1;
                let echo = InboundMessage::Mark(Mark {
                    sequence_number: self.sequence_number,
                    stream_sid: Cow::Borrowed(&self.stream_sid),
                    name,
                });
                feed(socket, &echo).await?;
                self.outcome.marks += 1;
            }
            Ok(OutboundMessage::Clear { .. }) => self.outcome.clears += 1,
            Ok(OutboundMessage::Unknown { .. }) | Err(_) => self.outcome.foreign += 1,
        }
        Ok(())
    }

    fn on_media(&mut self, payload: &str, received: Instant) {
        self.decoded.clear();
        let id = base64::engine::general_purpose::STANDARD
            .decode_vec(payload, &mut self.decoded)
            .ok()
            .and_then(|()| FrameId::read(&self.decoded));
        let Some(id) = id else {
            self.outcome.foreign += 1;
            return;
        };
        if id.call != self.index {
            self.outcome.misrouted += 1;
            return;
        }
        let (word, bit) = (id.seq as usize / 64, id.seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.outcome.duplicated += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        let plan = self.plan;
        let (start, end) = (plan.us(plan.window_start), plan.us(plan.window_end));
        if (start..end).contains(&id.sent_us) {
            self.outcome.received_in_window += 1;
            let rtt = plan.us(received).saturating_sub(id.sent_us);
            self.outcome
                .rtt_us
                .push(rtt.min(u64::from(u32::MAX)) as u32);
        }
    }

    async fn stop(&mut self, socket: &mut Socket) {
        self.sequence_number += 1;
        let stop = InboundMessage::Stop(Stop {
            sequence_number: self.sequence_number,
            stream_sid: Cow::Borrowed(&self.stream_sid),
            account_sid: Cow::Borrowed(&self.plan.account_sid),
            call_sid: Cow::Borrowed(&self.call_sid),
        });
        let _ = feed(socket, &stop).await;
        let _ = socket.flush().await;
        let _ = socket.close(None).await;
        // Bounded wait for the close handshake.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}

/// Queues `message` on `socket` (written at the next flush).
async fn feed(socket: &mut Socket, message: &InboundMessage<'_>) -> Result<(), String> {
    let mut text = String::with_capacity(400);
    message.encode(&mut text);
    socket
        .feed(Message::text(text))
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ids_survive_the_audio() {
        let id = FrameId {
            call: 799,
            seq: 1_234,
            sent_us: 98_765_432_101,
        };
        let frame = id.frame();
        assert_eq!(FrameId::read(&frame), Some(id));
        assert!(
            frame[20..].iter().all(|&b| b == 0xFF),
            "the rest is silence"
        );
        assert_eq!(FrameId::read(&[0xFF; 160]), None, "silence carries no id");
        assert_eq!(FrameId::read(&frame[..19]), None, "too short");
    }
}
