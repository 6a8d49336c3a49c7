//! The simulated caller against a tiny application on loopback that plays our side: it
//! checks the webhook and upgrade signatures, answers `<Connect><Stream>` with a
//! `<Parameter>`, and on the WebSocket sends audio, marks and `clear` per scenario. Every
//! check is on sequence numbers, byte counts and the simulator's own clock; wall time only
//! gets generous sanity bounds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use switchboard_sim::twilio::audio::tone;
use switchboard_sim::twilio::caller::{CallSpec, Caller, ControlError, TwimlSource};
use switchboard_sim::twilio::record::{
    CallEnd, CallRecord, StreamEnd, WARNING_BINARY_FRAME, WARNING_INVALID_MESSAGE,
};
use switchboard_sim::twilio::{run_load, AudioSource, LoadSpec, TalkScript, Verb};
use switchboard_twilio::media_stream::{encode_clear, encode_mark, encode_media};
use switchboard_twilio::{parse_inbound, InboundMessage, RequestValidator};

const ACCOUNT: &str = "AC0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const TOKEN: &str = "12345678901234567890123456789012";

/// What the application saw.
#[derive(Debug, Default)]
struct AppLog {
    webhooks: Vec<BTreeMap<String, String>>,
    rejected: usize,
    streams: Vec<StreamLog>,
}

#[derive(Debug, Default, Clone)]
struct StreamLog {
    custom_parameters: BTreeMap<String, String>,
    call_sid: String,
    /// `(sequenceNumber, chunk, timestamp)` of each media frame.
    frames: Vec<(u64, u64, u64)>,
    /// Every message's sequence number, in arrival order.
    sequence: Vec<u64>,
    marks: Vec<String>,
    dtmf: Vec<String>,
    /// Whether the marks flushed by our `clear` arrived back to back.
    flushed_together: Option<bool>,
    stopped: bool,
}

#[derive(Clone)]
struct App {
    base: String,
    log: Arc<Mutex<AppLog>>,
}

async fn start_app() -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let app = App {
        base,
        log: Arc::default(),
    };
    let router = Router::new()
        .route("/voice/{scenario}", post(voice))
        .route("/done", post(done))
        .route("/media/{scenario}", get(media))
        .with_state(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    app
}

/// The voice webhook: checks the signature over the exact URL and answers a stream.
async fn voice(
    State(app): State<App>,
    Path(scenario): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("http://{}/voice/{scenario}", app.base);
    if !signed(&headers, |v, sig| v.validate_form_body(&url, &body, sig)) {
        app.log.lock().expect("log").rejected += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    let params = switchboard_twilio::form_params(&body).into_iter().collect();
    app.log.lock().expect("log").webhooks.push(params);
    let action = if scenario == "action" {
        r#" action="/done""#
    } else {
        ""
    };
    let twiml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect{action}><Stream url="ws://{}/media/{scenario}"><Parameter name="token" value="t-123" /><Parameter name="callId" value="c1" /></Stream></Connect><Say>Goodbye.</Say></Response>"#,
        app.base
    );
    ([("content-type", "text/xml")], twiml).into_response()
}

/// `<Connect action>`: hang up.
async fn done(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let url = format!("http://{}/done", app.base);
    if !signed(&headers, |v, sig| v.validate_form_body(&url, &body, sig)) {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        [("content-type", "text/xml")],
        "<Response><Hangup/></Response>",
    )
        .into_response()
}

/// The Media Stream: the upgrade is signed over the URL as written in the TwiML.
async fn media(
    State(app): State<App>,
    Path(scenario): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let url = format!("ws://{}/media/{scenario}", app.base);
    if !signed(&headers, |v, sig| v.validate_url(&url, sig)) {
        app.log.lock().expect("log").rejected += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    upgrade.on_upgrade(move |socket| async move {
        let log = talk(&scenario, socket).await;
        app.log.lock().expect("log").streams.push(log);
    })
}

fn signed(
    headers: &HeaderMap,
    check: impl FnOnce(&RequestValidator, &str) -> Result<(), switchboard_twilio::SignatureError>,
) -> bool {
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    check(&RequestValidator::new(TOKEN), signature).is_ok()
}

/// Our side of the stream, per scenario.
async fn talk(scenario: &str, mut socket: WebSocket) -> StreamLog {
    let mut log = StreamLog::default();
    let mut stream_sid = String::new();
    let mut sent_clear = false;
    let mut after_clear: Vec<String> = Vec::new();
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else {
            continue;
        };
        let inbound = parse_inbound(&text).expect("twilio's frames parse");
        if let Some(n) = inbound.sequence_number() {
            log.sequence.push(n);
        }
        // Once the first flushed mark is back, the other eight must follow it directly.
        if sent_clear && log.flushed_together.is_none() {
            match &inbound {
                InboundMessage::Mark(mark) => after_clear.push(mark.name.to_string()),
                _ if !after_clear.is_empty() => log.flushed_together = Some(false),
                _ => {}
            }
            if after_clear.len() == 9 {
                log.flushed_together = Some(true);
            }
        }
        match inbound {
            InboundMessage::Start(start) => {
                stream_sid = start.stream_sid.to_string();
                log.custom_parameters = start.custom_parameters.clone();
                log.call_sid = start.call_sid.to_string();
                assert_eq!(start.tracks, ["inbound"]);
                assert_eq!(start.media_format.encoding, "audio/x-mulaw");
                assert_eq!(
                    (start.media_format.sample_rate, start.media_format.channels),
                    (8000, 1)
                );
                for frame in opening(scenario, &stream_sid) {
                    socket
                        .send(Message::Text(frame.into()))
                        .await
                        .expect("send");
                }
                if scenario == "bad" {
                    let binary = Message::Binary(vec![0xFF; 160].into());
                    socket.send(binary).await.expect("send");
                }
            }
            InboundMessage::Media(media) => {
                assert_eq!(media.payload.len(), 216, "20 ms frames");
                log.frames
                    .push((media.sequence_number, media.chunk, media.timestamp_ms));
            }
            InboundMessage::Mark(mark) => {
                log.marks.push(mark.name.to_string());
                if scenario == "clear" && mark.name == "c1" {
                    let mut clear = String::new();
                    encode_clear(&stream_sid, &mut clear);
                    socket
                        .send(Message::Text(clear.into()))
                        .await
                        .expect("send");
                    sent_clear = true;
                }
                let cleared = log.flushed_together.is_some();
                if (scenario == "clear" && cleared) || (scenario == "action" && mark.name == "a1") {
                    let _ = socket.send(Message::Close(None)).await;
                }
            }
            InboundMessage::Dtmf(dtmf) => {
                assert_eq!(dtmf.track, "inbound_track");
                log.dtmf.push(dtmf.digit.to_string());
            }
            InboundMessage::Stop(stop) => {
                assert_eq!(stop.call_sid, log.call_sid);
                log.stopped = true;
            }
            InboundMessage::Connected(_) | InboundMessage::Unknown { .. } => {}
        }
    }
    log
}

/// What our side sends right after `start`.
fn opening(scenario: &str, stream_sid: &str) -> Vec<String> {
    let frame = |ms: u64| -> String {
        let mut out = String::new();
        let bytes = tone(440, Duration::from_millis(ms));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes[..]);
        encode_media(stream_sid, &b64, &mut out);
        out
    };
    let mark = |name: &str| -> String {
        let mut out = String::new();
        encode_mark(stream_sid, name, &mut out);
        out
    };
    match scenario {
        // 500 ms of audio then m1, 200 ms more then m2.
        "marks" => {
            let mut frames: Vec<String> = (0..25).map(|_| frame(20)).collect();
            frames.push(mark("m1"));
            frames.extend((0..10).map(|_| frame(20)));
            frames.push(mark("m2"));
            frames
        }
        // 2 s of audio, a mark after every 200 ms.
        "clear" => (1..=10)
            .flat_map(|i| [frame(200), mark(&format!("c{i}"))])
            .collect(),
        "action" => vec![frame(40), mark("a1")],
        "bad" => vec![
            format!(
                r#"{{"event":"media","sequenceNumber":"1","streamSid":"{stream_sid}","media":{{"payload":"/w=="}}}}"#
            ),
            r#"{"event":"mark","streamSid":"MZwrong","mark":{"name":"x"}}"#.to_owned(),
            format!(r#"{{"event":"stop","streamSid":"{stream_sid}"}}"#),
        ],
        _ => Vec::new(),
    }
}

fn spec(app: &App, scenario: &str) -> CallSpec {
    CallSpec::inbound(
        format!("http://{}/voice/{scenario}", app.base),
        ACCOUNT,
        TOKEN,
    )
}

async fn finish(caller: &Caller) -> CallRecord {
    tokio::time::timeout(Duration::from_secs(30), caller.finished())
        .await
        .expect("the call ends in time")
}

async fn stream_log(app: &App) -> StreamLog {
    for _ in 0..500 {
        if let Some(log) = app.log.lock().expect("log").streams.first().cloned() {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the application never finished its stream");
}

#[tokio::test]
async fn media_flows_at_20_ms_and_marks_wait_for_their_audio() {
    let app = start_app().await;
    let script =
        TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(1500));
    let record = finish(&Caller::start(spec(&app, "marks").with_script(script))).await;

    let webhook = app.log.lock().expect("log").webhooks[0].clone();
    assert_eq!(webhook["CallStatus"], "ringing");
    assert_eq!(webhook["Direction"], "inbound");
    assert_eq!(webhook["CallSid"], record.call_sid);
    assert_eq!(webhook["ApiVersion"], "2010-04-01");

    let stream = record.stream().expect("a stream");
    assert_eq!(stream.custom_parameters["token"], "t-123");
    assert_eq!(stream.end, Some(StreamEnd::CallerHungUp));
    assert_eq!(record.end, Some(CallEnd::CallerHungUp));
    assert!(stream.warnings.is_empty(), "{:?}", stream.warnings);

    // 1500 ms of audio clock = 75 frames, numbered without gaps.
    let log = stream_log(&app).await;
    assert_eq!(log.custom_parameters["callId"], "c1");
    assert!(log.stopped, "stop was sent");
    assert_eq!(stream.sent.frames, 75);
    assert_eq!(log.frames.len(), 75);
    for (i, (_, chunk, timestamp)) in log.frames.iter().enumerate() {
        assert_eq!(*chunk, i as u64 + 1);
        assert_eq!(*timestamp, i as u64 * 20);
    }
    let expected: Vec<u64> = (1..=log.sequence.len() as u64).collect();
    assert_eq!(log.sequence, expected, "one sequence over all messages");
    let (first, last) = (
        stream.sent.first_at.expect("sent"),
        stream.sent.last_at.expect("sent"),
    );
    let spread = last - first;
    assert!(
        spread >= Duration::from_millis(1400) && spread < Duration::from_secs(20),
        "real-time pacing, not a burst: {spread:?}"
    );

    // Each mark came back only after the audio before it had been heard.
    assert_eq!(log.marks, ["m1", "m2"]);
    let marks = &stream.marks;
    assert_eq!(marks.len(), 2);
    for mark in marks {
        assert!(!mark.by_clear);
        assert!(
            mark.echoed_at >= mark.enqueued_at + mark.audio_ahead,
            "{mark:?}"
        );
    }
    assert_eq!(marks[0].heard_bytes, 4000, "500 ms heard before m1");
    assert_eq!(marks[1].heard_bytes, 5600, "700 ms heard before m2");
    let heard_from = stream.heard.spans[0].start;
    assert!(marks[0].echoed_at >= heard_from + Duration::from_millis(500));
    assert_eq!(stream.heard.total_bytes, 5600);
    let expected_audio: Vec<u8> = (0..35)
        .flat_map(|_| tone(440, Duration::from_millis(20)).to_vec())
        .collect();
    assert_eq!(
        stream.heard.concat(),
        expected_audio,
        "heard exactly what was sent"
    );
    assert_eq!(stream.received.media, 35);
}

#[tokio::test]
async fn clear_echoes_every_pending_mark_at_once_and_the_call_goes_on_to_the_next_verb() {
    let app = start_app().await;
    let record = finish(&Caller::start(spec(&app, "clear"))).await;

    let log = stream_log(&app).await;
    assert_eq!(
        log.flushed_together,
        Some(true),
        "marks c2..c10 came back together"
    );
    let names: Vec<String> = (1..=10).map(|i| format!("c{i}")).collect();
    assert_eq!(log.marks, names);

    let stream = record.stream().expect("a stream");
    assert!(!stream.marks[0].by_clear);
    let flushed = &stream.marks[1..];
    assert!(flushed.iter().all(|mark| mark.by_clear));
    let clear = &stream.clears[0];
    assert!(flushed.iter().all(|mark| mark.echoed_at == clear.at));
    assert_eq!(clear.flushed_marks, 9);
    assert_eq!(
        stream.heard.total_bytes + clear.dropped_bytes,
        16_000,
        "every byte was heard or dropped"
    );
    assert_eq!(stream.heard.total_bytes, stream.marks[1].heard_bytes);
    assert!(stream.heard.total_bytes >= 1600, "c1's 200 ms had played");

    // Our side closed the socket: Twilio runs the next verb, then hangs up.
    assert!(matches!(stream.end, Some(StreamEnd::AppClosed { .. })));
    assert!(matches!(record.verbs.last(), Some(Verb::Say { text, .. }) if text == "Goodbye."));
    assert_eq!(record.end, Some(CallEnd::NoMoreVerbs));
}

#[tokio::test]
async fn messages_twilio_would_warn_about_are_counted() {
    let app = start_app().await;
    let caller = Caller::start(spec(&app, "bad"));
    for _ in 0..500 {
        if caller.record().warning_count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    caller.hang_up().expect("live");
    let record = finish(&caller).await;
    let stream = record.stream().expect("a stream");
    let codes: Vec<u32> = stream.warnings.iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        [
            WARNING_INVALID_MESSAGE,
            WARNING_INVALID_MESSAGE,
            WARNING_INVALID_MESSAGE,
            WARNING_BINARY_FRAME
        ],
        "{:?}",
        stream.warnings
    );
    assert!(stream.warnings[0].detail.contains("sequenceNumber"));
    assert!(stream.warnings[1].detail.contains("streamSid"));
    assert!(stream.warnings[2].detail.contains("unknown event"));
    assert_eq!(
        stream.received.media, 1,
        "extra fields warn, the audio still plays"
    );
    assert_eq!(stream.received.marks, 0, "a wrong streamSid is ignored");
}

#[tokio::test]
async fn keys_pressed_are_sent_as_dtmf() {
    let app = start_app().await;
    let script = TalkScript::silent()
        .press_at(Duration::from_millis(100), '5')
        .press_at(Duration::from_millis(200), '#')
        .hang_up_after(Duration::from_millis(300));
    let record = finish(&Caller::start(spec(&app, "dtmf").with_script(script))).await;
    let log = stream_log(&app).await;
    assert_eq!(log.dtmf, ["5", "#"]);
    let sent: Vec<char> = record
        .stream()
        .expect("stream")
        .dtmf
        .iter()
        .map(|d| d.digit)
        .collect();
    assert_eq!(sent, ['5', '#']);
}

#[tokio::test]
async fn a_redirect_stops_the_stream_and_runs_the_new_twiml() {
    let app = start_app().await;
    let caller = Caller::start(spec(&app, "silent"));
    for _ in 0..500 {
        if caller.record().stream().is_some_and(|s| s.sent.frames > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let handoff = "<Response><Say>Connecting you.</Say><Hangup/></Response>";
    caller
        .redirect(TwimlSource::Inline(handoff.to_owned()))
        .expect("live");
    let record = finish(&caller).await;
    assert_eq!(
        record.stream().and_then(|s| s.end.clone()),
        Some(StreamEnd::Redirected)
    );
    assert!(stream_log(&app).await.stopped, "stop before the redirect");
    assert_eq!(record.documents.last().map(|d| d.origin), Some("update"));
    assert_eq!(record.end, Some(CallEnd::Hangup));
}

#[tokio::test]
async fn connect_action_is_fetched_when_the_application_closes_the_stream() {
    let app = start_app().await;
    let record = finish(&Caller::start(spec(&app, "action"))).await;
    let origins: Vec<&str> = record.documents.iter().map(|d| d.origin).collect();
    assert_eq!(origins, ["webhook", "action"]);
    assert_eq!(record.end, Some(CallEnd::Hangup));
    assert!(
        !record.verbs.iter().any(|v| matches!(v, Verb::Say { .. })),
        "action wins"
    );
}

#[tokio::test]
async fn a_wrong_auth_token_is_refused_by_the_application() {
    let app = start_app().await;
    let spec = CallSpec {
        auth_token: "not-the-token".to_owned(),
        ..spec(&app, "marks")
    };
    let caller = Caller::start(spec);
    let record = finish(&caller).await;
    assert!(matches!(
        record.end,
        Some(CallEnd::FetchFailed {
            status: Some(403),
            ..
        })
    ));
    assert!(matches!(caller.hang_up(), Err(ControlError::Ended(_))));
    assert!(record.streams.is_empty());
    assert_eq!(app.log.lock().expect("log").rejected, 1);
}

#[tokio::test]
async fn load_mode_runs_concurrent_calls_on_a_ramp() {
    let app = start_app().await;
    let template = spec(&app, "marks")
        .with_script(TalkScript::silent().hang_up_after(Duration::from_millis(400)));
    let report = run_load(LoadSpec {
        template,
        calls: 4,
        rate_per_sec: 20.0,
    })
    .await;
    assert_eq!(report.summary.calls, 4);
    assert_eq!(report.summary.connected, 4);
    assert_eq!(report.summary.failed, 0);
    for result in &report.results {
        assert_eq!(result.media_sent, 20, "400 ms of audio clock");
        assert_eq!(result.media_received, 35);
        assert_eq!(result.warnings, 0);
    }
    let sids: std::collections::HashSet<&str> =
        report.results.iter().map(|r| r.call_sid.as_str()).collect();
    assert_eq!(sids.len(), 4, "each call has its own sid");
}
