//! The simulated Twilio over real TLS: a call to an `https://` voice webhook whose
//! TwiML opens a `wss://` Media Stream (absolute, or relative to the webhook), served
//! by a small TLS application that checks Twilio's signatures over the `https://` and
//! `wss://` URLs; the REST fake's status callbacks and answered calls over `https://`
//! and `wss://`; and calls that do not trust the application's CA, which must fail at
//! the TLS handshake and say so.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use switchboard_sim::tls::{self, TestCa, WEBSOCKET_ALPN};
use switchboard_sim::twilio::caller::{CallSpec, Caller, TwimlSource};
use switchboard_sim::twilio::record::{CallEnd, CallRecord, StreamEnd};
use switchboard_sim::twilio::{FakeTwilio, RestConfig, TrustedCa};
use switchboard_twilio::{form_params, parse_inbound, InboundMessage, RequestValidator};

#[path = "support/tls_app.rs"]
mod tls_app;

const ACCOUNT: &str = "AC0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const TOKEN: &str = "12345678901234567890123456789012";

/// Media frames the application reads before it closes the stream.
const FRAMES: u64 = 10;

#[derive(Debug, Default)]
struct AppLog {
    webhooks: usize,
    rejected: usize,
    /// Media frames read, per stream.
    streams: Vec<u64>,
    /// `(CallStatus, signature valid)` per status callback.
    callbacks: Vec<(String, bool)>,
}

#[derive(Clone)]
struct App {
    /// `127.0.0.1:PORT`.
    base: String,
    log: Arc<Mutex<AppLog>>,
}

async fn start_app(ca: &TestCa) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let app = App {
        base,
        log: Arc::default(),
    };
    let router = Router::new()
        .route("/voice/{kind}", post(voice))
        .route("/media", get(media))
        .route("/status", post(status))
        .with_state(app.clone());
    let issued = ca.issue_for_loopback();
    let server = tls::server_config(&issued.cert_pem, &issued.key_pem, WEBSOCKET_ALPN)
        .expect("a server config");
    tls_app::serve_tls(listener, router, server);
    app
}

/// The voice webhook, signed over its `https://` URL; answers a stream whose URL is
/// absolute (`wss://…`) or relative to the webhook.
async fn voice(
    State(app): State<App>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("https://{}/voice/{kind}", app.base);
    if !signed(&headers, |v, sig| v.validate_form_body(&url, &body, sig)) {
        app.log.lock().expect("log").rejected += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    app.log.lock().expect("log").webhooks += 1;
    let stream = match kind.as_str() {
        "absolute" => format!("wss://{}/media", app.base),
        _ => "/media".to_owned(),
    };
    let twiml = format!(r#"<Response><Connect><Stream url="{stream}" /></Connect></Response>"#);
    ([("content-type", "text/xml")], twiml).into_response()
}

/// The Media Stream: Twilio signs the upgrade over the `wss://` URL.
async fn media(State(app): State<App>, headers: HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let url = format!("wss://{}/media", app.base);
    if !signed(&headers, |v, sig| v.validate_url(&url, sig)) {
        app.log.lock().expect("log").rejected += 1;
        return StatusCode::FORBIDDEN.into_response();
    }
    upgrade.on_upgrade(move |socket| async move {
        let frames = listen(socket).await;
        app.log.lock().expect("log").streams.push(frames);
    })
}

/// A status callback, signed over its `https://` URL.
async fn status(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let url = format!("https://{}/status", app.base);
    let valid = signed(&headers, |v, sig| v.validate_form_body(&url, &body, sig));
    let status = form_params(&body)
        .into_iter()
        .find(|(name, _)| name == "CallStatus")
        .map(|(_, value)| value)
        .unwrap_or_default();
    app.log.lock().expect("log").callbacks.push((status, valid));
    StatusCode::NO_CONTENT
}

/// Reads [`FRAMES`] media frames, then closes the stream.
async fn listen(mut socket: WebSocket) -> u64 {
    let mut frames = 0;
    while let Some(Ok(Message::Text(text))) = socket.recv().await {
        if let Ok(InboundMessage::Media(_)) = parse_inbound(text.as_str()) {
            frames += 1;
            if frames == FRAMES {
                break;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    frames
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

async fn finish(spec: CallSpec) -> CallRecord {
    let caller = Caller::start(spec);
    tokio::time::timeout(Duration::from_secs(30), caller.finished())
        .await
        .expect("the call ends in time")
}

#[tokio::test]
async fn calls_reach_an_https_webhook_and_a_wss_stream_trusting_the_ca() {
    let ca = TestCa::new("twilio tls test CA");
    let app = start_app(&ca).await;
    let trusted = TrustedCa::from_pem(&ca.ca_pem()).expect("a trusted CA");
    for kind in ["absolute", "relative"] {
        let webhook = format!("https://{}/voice/{kind}", app.base);
        let spec = CallSpec::inbound(webhook, ACCOUNT, TOKEN).trusting(trusted.clone());
        let record = finish(spec).await;
        assert!(record.errors.is_empty(), "{kind}: {:?}", record.errors);
        assert_eq!(record.end, Some(CallEnd::NoMoreVerbs), "{kind}");
        let stream = record.stream().expect("a media stream");
        assert_eq!(stream.url, format!("wss://{}/media", app.base), "{kind}");
        assert!(
            matches!(stream.end, Some(StreamEnd::AppClosed { .. })),
            "{kind}: {:?}",
            stream.end
        );
        assert!(stream.sent.frames >= FRAMES, "{kind}");
    }
    let log = app.log.lock().expect("log");
    assert_eq!(log.rejected, 0, "every signature checked out");
    assert_eq!(log.webhooks, 2);
    assert_eq!(log.streams, [FRAMES, FRAMES]);
}

#[tokio::test]
async fn a_call_that_does_not_trust_the_ca_fails_at_the_tls_handshake() {
    let ca = TestCa::new("the application's CA");
    let app = start_app(&ca).await;

    // The public roots (the default) do not know a private CA: no webhook arrives.
    let webhook = format!("https://{}/voice/absolute", app.base);
    let record = finish(CallSpec::inbound(webhook.clone(), ACCOUNT, TOKEN)).await;
    assert_eq!(
        record.end,
        Some(CallEnd::FetchFailed {
            url: webhook,
            status: None
        })
    );
    assert!(
        record.errors.iter().any(|e| e.contains("certificate")),
        "the error names the certificate: {:?}",
        record.errors
    );

    // A stream trusting another CA fails before any HTTP, and says it was TLS.
    let stranger = TrustedCa::from_pem(&TestCa::new("another CA").ca_pem()).expect("a CA");
    let twiml = format!(
        r#"<Response><Connect><Stream url="wss://{}/media" /></Connect></Response>"#,
        app.base
    );
    let spec = CallSpec {
        twiml: TwimlSource::Inline(twiml),
        ..CallSpec::inbound("unused", ACCOUNT, TOKEN).trusting(stranger)
    };
    let record = finish(spec).await;
    let stream = record.stream().expect("a stream attempt");
    match &stream.end {
        Some(StreamEnd::Failed { error }) => assert!(
            error.contains("tls handshake with 127.0.0.1 failed"),
            "{error}"
        ),
        other => panic!("expected a failed stream, got {other:?}"),
    }

    let log = app.log.lock().expect("log");
    assert_eq!(log.webhooks, 0);
    assert_eq!(log.rejected, 0, "nothing reached the http layer");
    assert!(log.streams.is_empty());
}

#[tokio::test]
async fn the_rest_fake_reaches_https_callbacks_and_streams_trusting_its_ca() {
    let ca = TestCa::new("rest tls test CA");
    let app = start_app(&ca).await;
    let fake = FakeTwilio::new(RestConfig {
        trusted_ca: Some(TrustedCa::from_pem(&ca.ca_pem()).expect("a trusted CA")),
        ..RestConfig::new(ACCOUNT, TOKEN)
    });
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!(
        "http://{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json",
        api_listener.local_addr().expect("addr")
    );
    tokio::spawn(fake.clone().serve(api_listener, std::future::pending()));

    let voice = format!("https://{}/voice/absolute", app.base);
    let callback = format!("https://{}/status", app.base);
    let form = [
        ("To", "+14155550100"),
        ("From", "+14155550199"),
        ("Url", voice.as_str()),
        ("StatusCallback", callback.as_str()),
    ];
    let created = reqwest::Client::new()
        .post(&api)
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&form)
        .send()
        .await
        .expect("the fake answers");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);

    // The answered call streams until the application closes, then the call completes
    // and its one callback (no events asked for) arrives, signed over https.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.log.lock().expect("log").callbacks.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status callback arrived: {:?}",
            fake.callbacks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = app.log.lock().expect("log");
    assert_eq!(log.callbacks, [("completed".to_owned(), true)]);
    assert_eq!(log.webhooks, 1);
    assert_eq!(log.streams, [FRAMES]);
    assert_eq!(log.rejected, 0);
}
