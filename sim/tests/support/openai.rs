//! Shared helpers of the `openai_*` tests: a plain tokio-tungstenite client
//! that reads raw JSON (not through the codec the simulator itself uses),
//! speech-like µ-law, and session updates of both dialects. Included with
//! `#[path]`; on its own it is an empty test target.
#![allow(dead_code)]

use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use switchboard_sim::openai::audio::{linear_to_ulaw, ulaw_to_linear};
use switchboard_sim::openai::{OpenAiSim, SimConfig};
use switchboard_sim::tls::{connect_websocket, ClientStream, ConnectError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const PATIENCE: Duration = Duration::from_secs(10);
pub(crate) const KEY: &str = "sk-sim-test";

/// A client over plain TCP (`connect`) or over TLS opened by the simulator's own
/// `tls::connect_websocket` (`connect_tls`).
pub(crate) struct Client<S = MaybeTlsStream<TcpStream>> {
    pub(crate) ws: WebSocketStream<S>,
}

impl Client<ClientStream> {
    /// Connects to a `wss://` URL trusting what `tls` trusts.
    pub(crate) async fn connect_tls(
        url: &str,
        headers: &[(&'static str, &str)],
        tls: &std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Self, ConnectError> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("header value"));
        }
        let (ws, _) = connect_websocket(request, tls, None).await?;
        Ok(Client { ws })
    }
}

impl Client {
    pub(crate) async fn connect(
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Client, WsError> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("header value"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client { ws })
    }

    pub(crate) async fn ga(sim: &OpenAiSim) -> Client {
        let bearer = format!("Bearer {KEY}");
        Client::connect(&sim.url("gpt-realtime"), &[("Authorization", &bearer)])
            .await
            .expect("ga connects")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub(crate) async fn send(&mut self, event: Value) {
        self.send_text(event.to_string()).await;
    }

    pub(crate) async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next server event, with bounded patience.
    pub(crate) async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("an event within the patience")
                .expect("socket open")
                .expect("no socket error");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).expect("server events are json");
            }
        }
    }

    /// Every event up to and including the first of type `last`.
    pub(crate) async fn until(&mut self, last: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = event["type"] == last;
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Appends µ-law in 20 ms frames, as Twilio sends it.
    pub(crate) async fn speak(&mut self, ulaw: &[u8]) {
        for frame in ulaw.chunks(160) {
            let audio = base64::engine::general_purpose::STANDARD.encode(frame);
            self.send(json!({"type": "input_audio_buffer.append", "audio": audio}))
                .await;
        }
    }
}

pub(crate) fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

pub(crate) async fn sim(config: SimConfig) -> OpenAiSim {
    let config = SimConfig {
        api_key: Some(switchboard_realtime::Secret::new(KEY)),
        ..config
    };
    OpenAiSim::bind("127.0.0.1:0", config).await.expect("binds")
}

/// Speech-like µ-law: a 220 Hz voice with a 4 Hz syllable envelope.
pub(crate) fn speech(ms: u32) -> Vec<u8> {
    (0..ms * 8)
        .map(|n| {
            let t = f64::from(n) / 8_000.0;
            let envelope = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            let voice = (2.0 * std::f64::consts::PI * 220.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
            linear_to_ulaw((5_000.0 * envelope * voice) as i16)
        })
        .collect()
}

pub(crate) fn silence(ms: u32) -> Vec<u8> {
    vec![0xFF; (ms * 8) as usize]
}

pub(crate) fn ga_update() -> Value {
    json!({"type": "session.update", "event_id": "evt_update", "session": {
        "type": "realtime", "model": "gpt-realtime", "instructions": "You are Ava.",
        "output_modalities": ["audio"],
        "audio": {
            "input": {"format": {"type": "audio/pcmu"},
                      "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                      "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                         "prefix_padding_ms": 300, "silence_duration_ms": 500,
                                         "create_response": true, "interrupt_response": true}},
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "tools": [{"type": "function", "name": "lookup_order", "description": "Find an order",
                   "parameters": {"type": "object", "properties": {"order_number": {"type": "string"}}}}],
        "tool_choice": "auto"}})
}

pub(crate) fn beta_update() -> Value {
    json!({"type": "session.update", "session": {
        "instructions": "You are Ava.", "modalities": ["text", "audio"], "voice": "alloy",
        "input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw",
        "input_audio_transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 400},
        "temperature": 0.8}})
}

/// Total ms of µ-law in the audio deltas of `events`, and their mean RMS.
pub(crate) fn audio_of(events: &[Value], delta_type: &str) -> (u64, f64) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes: Vec<u8> = events
        .iter()
        .filter(|e| e["type"] == delta_type)
        .flat_map(|e| {
            b64.decode(e["delta"].as_str().unwrap_or_default())
                .expect("base64")
        })
        .collect();
    let sum: f64 = bytes
        .iter()
        .map(|&b| f64::from(ulaw_to_linear(b)).powi(2))
        .sum();
    let rms = (sum / bytes.len().max(1) as f64).sqrt();
    (bytes.len() as u64 / 8, rms)
}

/// Polls `check` until it gives a value, with bounded patience.
pub(crate) async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within the patience"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
