//! The two simulators against each other through a minimal relay written here: the
//! Twilio caller places a call, the relay bridges its Media Stream to the OpenAI
//! simulator, and both simulators' records show that audio arrives in order at a
//! real-time pace, that marks come back only once their audio has played, and that
//! `clear` flushes the pending marks at once.
//!
//! The relay is deliberately the smallest correct one (no control plane, no
//! transcripts); the real one is the media sidecar. Every hop is TLS, as in
//! production: the caller reaches the relay's `https://` webhook and `wss://` stream,
//! and the relay reaches the OpenAI simulator on `wss://`, all trusting one private CA.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use futures::{SinkExt, StreamExt};
use switchboard_realtime::{
    encode_audio_append, parse_server_event, AudioFormat, ClientEvent, Dialect, ServerEvent,
    SessionConfig, TurnDetection,
};
use switchboard_sim::openai::{OpenAiSim, Reply, Script, SimConfig, Turn};
use switchboard_sim::tls::{self, connect_websocket, TestCa, WEBSOCKET_ALPN};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, TalkScript, TrustedCa};
use switchboard_twilio::media_stream::{
    encode_clear, encode_mark, encode_media, parse_inbound, InboundMessage,
};
use switchboard_twilio::twiml::{Response, Stream};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[path = "support/tls_app.rs"]
mod tls_app;

const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
const AUTH_TOKEN: &str = "relay-test-auth-token";

#[derive(Clone)]
struct Relay {
    /// `wss://…/v1/realtime?model=…` of the OpenAI simulator.
    openai_url: String,
    /// Trusts the CA of the OpenAI simulator's certificate.
    openai_tls: Arc<rustls::ClientConfig>,
    /// `wss://127.0.0.1:PORT/media`: Twilio's stream URL.
    stream_url: String,
}

async fn voice(State(relay): State<Arc<Relay>>) -> impl IntoResponse {
    let twiml = Response::new()
        .connect_stream(Stream::new(relay.stream_url.clone()).parameter("purpose", "relay-test"))
        .to_xml()
        .expect("valid TwiML");
    ([("content-type", "text/xml")], twiml)
}

async fn media(State(relay): State<Arc<Relay>>, upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(move |socket| bridge(socket, relay))
}

/// Twilio media → `input_audio_buffer.append`; audio deltas → Twilio media + mark;
/// the caller speaking over queued audio → Twilio `clear`.
async fn bridge(twilio: WebSocket, relay: Arc<Relay>) {
    let (openai, _) = connect_websocket(relay.openai_url.as_str(), &relay.openai_tls, None)
        .await
        .expect("openai-sim accepts over tls");
    let (mut to_openai, mut from_openai) = openai.split();
    let (mut to_twilio, mut from_twilio) = twilio.split();
    let session = SessionConfig {
        input_audio_format: Some(AudioFormat::Pcmu),
        output_audio_format: Some(AudioFormat::Pcmu),
        turn_detection: Some(TurnDetection::server_vad()),
        ..SessionConfig::default()
    };
    let update = ClientEvent::session_update(session).encode(Dialect::Ga);
    to_openai
        .send(WsMessage::text(update))
        .await
        .expect("session.update sent");

    let mut stream_sid = String::new();
    let mut marks_sent = 0_u64;
    let mut marks_pending = 0_u64;
    let mut buffer = String::new();
    loop {
        tokio::select! {
            message = from_twilio.next() => {
                let Some(Ok(AxumMessage::Text(text))) = message else { break };
                match parse_inbound(text.as_str()).expect("twilio frames parse") {
                    InboundMessage::Start(start) => stream_sid = start.stream_sid.to_string(),
                    InboundMessage::Media(media) => {
                        buffer.clear();
                        encode_audio_append(&media.payload, &mut buffer);
                        to_openai.send(WsMessage::text(buffer.as_str())).await.expect("append sent");
                    }
                    InboundMessage::Mark(_) => marks_pending = marks_pending.saturating_sub(1),
                    InboundMessage::Stop(_) => break,
                    _ => {}
                }
            }
            message = from_openai.next() => {
                let Some(Ok(WsMessage::Text(text))) = message else { break };
                match parse_server_event(text.as_str()).expect("openai events parse") {
                    ServerEvent::ResponseOutputAudioDelta(delta) => {
                        marks_sent += 1;
                        buffer.clear();
                        encode_media(&stream_sid, &delta.delta, &mut buffer);
                        to_twilio.send(AxumMessage::Text(buffer.as_str().into())).await.expect("media sent");
                        buffer.clear();
                        encode_mark(&stream_sid, &format!("chunk-{marks_sent}"), &mut buffer);
                        to_twilio.send(AxumMessage::Text(buffer.as_str().into())).await.expect("mark sent");
                        marks_pending += 1;
                    }
                    ServerEvent::InputAudioBufferSpeechStarted(_) if marks_pending > 0 => {
                        buffer.clear();
                        encode_clear(&stream_sid, &mut buffer);
                        to_twilio.send(AxumMessage::Text(buffer.as_str().into())).await.expect("clear sent");
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = to_openai.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_flows_in_order_at_real_time_marks_wait_for_playback_and_clear_flushes_them() {
    // The assistant answers the first turn with 4 s of audio, sent much faster than
    // real time, so marks queue up behind it; the caller talks over it at 4.5 s.
    let script = Script {
        turns: vec![Turn {
            caller: "hello".into(),
            reply: Some(Reply {
                text: "a long answer".into(),
                audio_ms: Some(4_000),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    };
    let ca = TestCa::new("relay test CA");
    let issued = ca.issue_for_loopback();
    let server_tls = tls::server_config(&issued.cert_pem, &issued.key_pem, WEBSOCKET_ALPN).unwrap();
    let openai = OpenAiSim::bind(
        "127.0.0.1:0",
        SimConfig {
            script: Arc::new(script),
            tls: Some(Arc::clone(&server_tls)),
            ..SimConfig::for_test()
        },
    )
    .await
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = Arc::new(Relay {
        openai_url: openai.url("gpt-realtime"),
        openai_tls: tls::client_config(&ca.ca_pem()).unwrap(),
        stream_url: format!("wss://{addr}/media"),
    });
    let app = Router::new()
        .route("/voice", post(voice))
        .route("/media", get(media))
        .with_state(relay);
    tls_app::serve_tls(listener, app, server_tls);

    let talk = TalkScript::saying(AudioSource::hello_en())
        .say_at(Duration::from_millis(4_500), AudioSource::hello_ja())
        .hang_up_after(Duration::from_millis(8_000));
    let trusted = TrustedCa::from_pem(&ca.ca_pem()).unwrap();
    let spec = CallSpec::inbound(format!("https://{addr}/voice"), ACCOUNT_SID, AUTH_TOKEN)
        .with_script(talk)
        .trusting(trusted);
    let record = Caller::start(spec).finished().await;
    let stream = record
        .stream()
        .expect("the call had a media stream")
        .clone();
    assert_eq!(
        stream.custom_parameters.get("purpose").map(String::as_str),
        Some("relay-test")
    );
    assert!(
        stream.warnings.is_empty(),
        "the relay sent what Twilio accepts: {:?}",
        stream.warnings
    );

    // Real-time pace: 20 ms frames for 8 s of audio clock, spread over about as much
    // wall time (bounds generous for a shared machine).
    let frames = stream.sent.frames;
    assert!((390..=410).contains(&frames), "{frames} frames for 8 s");
    let spread = stream.sent.last_at.unwrap() - stream.sent.first_at.unwrap();
    assert!(
        spread >= Duration::from_millis(7_000),
        "sent faster than real time: {spread:?}"
    );

    // In order and complete: the OpenAI side got every frame's audio. Wait until its
    // record has caught up with the last frames the relay forwarded.
    let mut session = openai.records().last().expect("an openai session");
    for _ in 0..100 {
        if session.audio_bytes_appended == frames * 160 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        session = openai.records().last().expect("an openai session");
    }
    assert_eq!(session.audio_bytes_appended, frames * 160);
    assert_eq!(session.appends, frames);
    assert!(
        !session.user_turns.is_empty(),
        "the caller's speech was detected"
    );
    assert!(!session.responses_created.is_empty());

    // Marks: echoed only once the audio queued before them has played...
    let played: Vec<_> = stream.marks.iter().filter(|m| !m.by_clear).collect();
    assert!(!played.is_empty(), "some of the answer was heard");
    for mark in &played {
        assert!(
            mark.echoed_at >= mark.enqueued_at + mark.audio_ahead,
            "{mark:?} echoed early"
        );
    }
    // ...and the caller talking over the answer flushed the rest at once.
    assert_eq!(stream.clears.len(), 1, "one barge-in");
    let flushed: Vec<_> = stream.marks.iter().filter(|m| m.by_clear).collect();
    assert!(!flushed.is_empty(), "the clear flushed pending marks");
    assert!(
        flushed.iter().all(|m| m.echoed_at == flushed[0].echoed_at),
        "flushed together"
    );
    // Only marks of the reply to the second turn, sent after the clear, may still be
    // queued when the caller hangs up.
    let number = |name: &str| name.trim_start_matches("chunk-").parse::<u64>().unwrap();
    let last_flushed = flushed.iter().map(|m| number(&m.name)).max().unwrap();
    assert!(
        stream
            .unechoed_marks
            .iter()
            .all(|name| number(name) > last_flushed),
        "{:?}",
        stream.unechoed_marks
    );
    let heard_before_clear = flushed[0].heard_bytes;
    assert!(
        heard_before_clear < stream.received.bytes,
        "the clear dropped audio that was never heard"
    );
}
