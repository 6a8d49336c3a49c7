//! Shared by `failures.rs`, `failures_midcall.rs`, `handoff.rs`, `quiet_twilio.rs` and
//! `realtime_tls.rs`: agents, inbound calls, the fake Twilio REST API, simulators, and a
//! Media Stream client that speaks Twilio's side of the socket frame by frame, so a test
//! can send what the Twilio simulator never would (a forged token, garbage between media).

#![allow(dead_code)] // each test file uses its own part

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use switchboard_media_sidecar::token::TokenSigner;
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Fault, OpenAiSim, Script, SimConfig};
use switchboard_sim::twilio::{CallRecord, CallSpec, FakeTwilio, RestConfig, TalkScript, Verb};
use switchboard_tests::{eventually, Harness, ACCOUNT_SID, STREAM_TOKEN_SECRET, TWILIO_AUTH_TOKEN};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Said by the control plane when an agent has no fallback message of its own.
pub(crate) const CONTROL_PLANE_APOLOGY: &str =
    "We are sorry, but we cannot take your call right now. Please try again later.";

/// An inbound call from the Twilio simulator to `number`.
pub(crate) fn inbound(harness: &Harness, number: &str, talk: TalkScript) -> CallSpec {
    let mut spec =
        CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    spec.to = number.into();
    spec
}

/// The fake Twilio REST API, served on loopback; returns it and its base URL.
pub(crate) async fn fake_twilio() -> (FakeTwilio, String) {
    let fake = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the fake twilio");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(fake.clone().serve(listener, std::future::pending()));
    (fake, url)
}

/// The verbs the call ran after its media stream: what a redirect made it do.
pub(crate) fn verbs_after_stream(record: &CallRecord) -> Vec<Verb> {
    let connect = record
        .verbs
        .iter()
        .position(|verb| matches!(verb, Verb::Connect { .. }))
        .unwrap_or_else(|| panic!("no <Connect>: {record:?}"));
    record.verbs[connect + 1..].to_vec()
}

/// 20 ms of µ-law silence (160 × 0xFF), base64: what a quiet line sends.
pub(crate) fn silence_payload() -> String {
    format!("{}/w==", "/".repeat(212))
}

/// An OpenAI simulator with `script` and `faults` on every connection.
pub(crate) async fn openai_sim(script: Script, faults: Vec<Fault>) -> OpenAiSim {
    switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script),
        faults,
        ..SimConfig::for_test()
    })
    .await
}

/// The Realtime URL of `sim` as the sidecar is configured with it.
pub(crate) fn realtime_url(sim: &OpenAiSim) -> String {
    format!("{}/v1/realtime", sim.base_url())
}

/// A realtime agent answering `number`, with transcription on.
pub(crate) fn agent(name: &str, number: &str) -> pb::AgentSettings {
    pb::AgentSettings {
        name: name.into(),
        phone_numbers: vec![number.into()],
        voice: "marin".into(),
        instructions: format!("You are {name}."),
        input_transcription: Some(pb::InputTranscription {
            model: "gpt-4o-transcribe".into(),
            language: "en".into(),
            prompt: String::new(),
        }),
        ..Default::default()
    }
}

/// Stores `settings`; returns the new agent's id.
pub(crate) async fn create_agent(harness: &Harness, settings: pb::AgentSettings) -> String {
    harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(settings),
        })
        .await
        .expect("the agent is created")
        .into_inner()
        .id
}

/// Every session the control plane knows (each test has a control plane of its own).
pub(crate) async fn all_sessions(harness: &Harness) -> Vec<pb::CallSession> {
    harness
        .sessions()
        .list_call_sessions(pb::ListCallSessionsRequest::default())
        .await
        .expect("sessions are listed")
        .into_inner()
        .call_sessions
}

/// Waits for the session `id` (with its conversation) to satisfy `done`.
pub(crate) async fn session_where(
    harness: &Harness,
    id: &str,
    patience: Duration,
    done: impl Fn(&pb::CallSession) -> bool,
) -> Option<pb::CallSession> {
    let sessions = harness.sessions();
    eventually(patience, || {
        let mut sessions = sessions.clone();
        let id = id.to_owned();
        let done = &done;
        async move {
            let session = sessions
                .get_call_session(pb::GetCallSessionRequest { id })
                .await
                .ok()?
                .into_inner();
            done(&session).then_some(session)
        }
    })
    .await
}

/// Waits for the only session of `agent_id` to satisfy `done`.
pub(crate) async fn agent_session_where(
    harness: &Harness,
    agent_id: &str,
    patience: Duration,
    done: impl Fn(&pb::CallSession) -> bool,
) -> Option<pb::CallSession> {
    harness.agent_session_where(agent_id, patience, done).await
}

/// A session the control plane created for `agent_id` (outbound, queued: live).
pub(crate) async fn create_session(harness: &Harness, agent_id: &str, to: &str) -> pb::CallSession {
    harness
        .sessions()
        .create_call_session(pb::CreateCallSessionRequest {
            agent_id: agent_id.to_owned(),
            from_number: "+14155550199".into(),
            to_number: to.into(),
            ..Default::default()
        })
        .await
        .expect("the session is created")
        .into_inner()
}

/// A stream token signed with the harness's secret for `call_id`, issued at `issued_at`
/// and valid for five minutes.
pub(crate) fn stream_token(call_id: &str, issued_at: SystemTime) -> String {
    TokenSigner::new(STREAM_TOKEN_SECRET, Duration::from_secs(300)).issue(call_id, issued_at)
}

/// Twilio's side of one Media Stream, driven frame by frame.
pub(crate) struct MediaClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub(crate) stream_sid: String,
    pub(crate) call_sid: String,
    sequence: u64,
    chunk: u64,
}

impl MediaClient {
    /// Opens the media socket for `call_id`, unsigned (the stream token authenticates).
    pub(crate) async fn connect(harness: &Harness, call_id: &str) -> MediaClient {
        let url = format!(
            "ws://{}/api/twilio/media-stream/{call_id}",
            harness.sidecar_http
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the media socket upgrades");
        let unique = uuid::Uuid::now_v7().simple().to_string();
        MediaClient {
            socket,
            stream_sid: format!("MZ{unique}"),
            call_sid: format!("CA{unique}"),
            sequence: 0,
            chunk: 0,
        }
    }

    /// Sends one text frame as is.
    pub(crate) async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("the media socket takes the frame");
    }

    /// Sends one binary frame.
    pub(crate) async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(Message::binary(bytes))
            .await
            .expect("the media socket takes the frame");
    }

    /// `connected`, then `start` carrying `token` and `call_id` as custom parameters.
    pub(crate) async fn start(&mut self, token: &str, call_id: &str) {
        self.send_text(
            json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string(),
        )
        .await;
        let start = self.start_frame(token, call_id);
        self.send_text(start).await;
    }

    /// The `start` frame (the next sequence number).
    pub(crate) fn start_frame(&mut self, token: &str, call_id: &str) -> String {
        self.sequence += 1;
        json!({
            "event": "start",
            "sequenceNumber": self.sequence.to_string(),
            "streamSid": self.stream_sid,
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": {"token": token, "callId": call_id},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
            }
        })
        .to_string()
    }

    /// The next 20 ms `media` frame of silence.
    pub(crate) fn media_frame(&mut self) -> String {
        self.sequence += 1;
        self.chunk += 1;
        json!({
            "event": "media",
            "sequenceNumber": self.sequence.to_string(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": self.chunk.to_string(),
                "timestamp": ((self.chunk - 1) * 20).to_string(),
                "payload": silence_payload()
            }
        })
        .to_string()
    }

    /// Sends `frames` frames of silence at Twilio's 20 ms cadence.
    pub(crate) async fn send_media(&mut self, frames: u64) {
        for _ in 0..frames {
            let frame = self.media_frame();
            self.send_text(frame).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `stop`, then the close handshake, as Twilio ends a stream.
    pub(crate) async fn stop(&mut self) {
        self.sequence += 1;
        let stop = json!({
            "event": "stop",
            "sequenceNumber": self.sequence.to_string(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid}
        });
        self.send_text(stop.to_string()).await;
        let _ = self.socket.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }

    /// Reads until the sidecar closes the socket; returns the close code and reason
    /// (`None` if it ended without a close frame or did not end within 15 s), and the
    /// text frames that came before.
    pub(crate) async fn closed(&mut self) -> (Option<(u16, String)>, Vec<String>) {
        let mut texts = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(message) = self.socket.next().await {
                match message {
                    Ok(Message::Close(frame)) => {
                        return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    }
                    Ok(Message::Text(text)) => texts.push(text.to_string()),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        })
        .await;
        (read.ok().flatten(), texts)
    }
}

/// The WebSocket close code for a policy violation (1008).
pub(crate) fn policy() -> u16 {
    u16::from(CloseCode::Policy)
}

/// The value of one counter sample (`name{labels}` exactly as exported) in the
/// sidecar's `/metrics`, or `None` when the sidecar does not answer or has no such sample.
pub(crate) async fn sidecar_metric(harness: &Harness, sample: &str) -> Option<u64> {
    harness.sidecar_metric(sample).await.map(|v| v as u64)
}

/// Waits (bounded) until counter `metric` reads `expected` under each `reason` label;
/// panics with the exported metrics and the logs otherwise.
pub(crate) async fn assert_counted_by_reason(
    harness: &Harness,
    metric: &str,
    expected: &[(&str, u64)],
) {
    let counted = eventually(Duration::from_secs(5), || async {
        let mut counts = Vec::new();
        for &(reason, _) in expected {
            let sample = format!(r#"{metric}{{reason="{reason}"}}"#);
            counts.push((reason, sidecar_metric(harness, &sample).await?));
        }
        (counts == expected).then_some(counts)
    })
    .await;
    if counted.is_none() {
        let metrics = harness.sidecar_admin_get("/metrics").await;
        panic!(
            "{metric} not counted as {expected:?}:\n{}\n{}",
            metrics.map(|(_, text)| text).unwrap_or_default(),
            harness.logs()
        );
    }
}
