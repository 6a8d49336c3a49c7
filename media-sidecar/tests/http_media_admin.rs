//! The Media Stream upgrade and the admin listener, on loopback: signatures on the
//! upgrade, the media handler hook (with a simulated Twilio call end to end), the
//! placeholder handler, readiness through a drain, and metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::StreamExt;
use switchboard_media_sidecar::http::{MediaHandler, MediaSocket, UpgradeSignature};
use switchboard_sim::twilio::{CallSpec, Caller, StreamEnd, TalkScript};
use switchboard_twilio::{parse_inbound, InboundMessage, RequestValidator};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

#[path = "http_support/harness.rs"]
mod harness;

use harness::{closed_port_url, eventually, FakeControlPlane, Sidecar, AUTH_TOKEN};

/// What a test handler saw of one call.
#[derive(Debug)]
struct Seen {
    call_id: String,
    signature: UpgradeSignature,
    token_verified: Option<Result<(), switchboard_media_sidecar::token::TokenError>>,
    active_calls: usize,
}

/// A handler that reads frames up to `start`, checks its token, reports, and closes.
fn recording_handler() -> (Arc<dyn MediaHandler>, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |mut media: MediaSocket| -> BoxFuture<'static, ()> {
        let tx = tx.clone();
        Box::pin(async move {
            let mut token_verified = None;
            while let Some(Ok(message)) = media.socket.recv().await {
                let axum::extract::ws::Message::Text(text) = message else {
                    continue;
                };
                if let Ok(InboundMessage::Start(start)) = parse_inbound(text.as_str()) {
                    let token = start.custom_parameters.get("token").cloned();
                    token_verified = Some(media.state.tokens.verify(
                        &token.unwrap_or_default(),
                        &media.call_id,
                        SystemTime::now(),
                    ));
                    break;
                }
            }
            let _ = tx.send(Seen {
                call_id: media.call_id.clone(),
                signature: media.signature,
                token_verified,
                active_calls: media.state.drain.active(),
            });
            let _ = media
                .socket
                .send(axum::extract::ws::Message::Close(None))
                .await;
        })
    };
    (Arc::new(handler), rx)
}

fn ws_request(
    sidecar: &Sidecar,
    path: &str,
    signature: Option<&str>,
) -> tungstenite::handshake::client::Request {
    let mut request = format!("ws://{}{path}", sidecar.http)
        .into_client_request()
        .unwrap();
    if let Some(signature) = signature {
        request
            .headers_mut()
            .insert("x-twilio-signature", signature.parse().unwrap());
    }
    request
}

fn refused_with(result: Result<impl std::fmt::Debug, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an http refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_simulated_twilio_call_reaches_the_media_handler_with_a_token_that_verifies() {
    let cp = FakeControlPlane::start().await;
    let (handler, mut seen) = recording_handler();
    let sidecar = Sidecar::start_with_handler(&cp.url, |_| {}, handler).await;
    let spec = CallSpec::inbound(
        sidecar.url("/api/twilio/voice"),
        "AC00000000000000000000000000000001",
        AUTH_TOKEN,
    )
    .with_script(TalkScript::silent().hang_up_after(Duration::from_secs(10)));

    let record = Caller::start(spec).finished().await;

    let seen = seen.recv().await.expect("the handler ran");
    assert_eq!(seen.call_id, "call-1");
    assert_eq!(
        seen.signature,
        UpgradeSignature::Valid,
        "the sim signs the upgrade"
    );
    assert_eq!(seen.token_verified, Some(Ok(())));
    assert_eq!(
        seen.active_calls, 1,
        "the call counts while its handler runs"
    );
    let stream = &record.streams[0];
    assert_eq!(stream.custom_parameters["callId"], "call-1");
    assert!(
        matches!(stream.end, Some(StreamEnd::AppClosed { .. })),
        "{record:?}"
    );
    eventually("the call is no longer active", || {
        sidecar.state.drain.active() == 0
    })
    .await;
}

#[tokio::test]
async fn an_upgrade_with_a_bad_signature_is_refused_403_and_no_handler_runs() {
    let (handler, mut seen) = recording_handler();
    let sidecar = Sidecar::start_with_handler(&closed_port_url().await, |_| {}, handler).await;
    let path = "/api/twilio/media-stream/call-1";
    // Signed over the http URL instead of the ws one, and with another key.
    let http_signed =
        RequestValidator::new(AUTH_TOKEN).compute::<&str, &str>(&sidecar.url(path), &[]);
    let ws_url = format!("ws://{}{path}", sidecar.http);
    let wrong_key = RequestValidator::new("other").compute::<&str, &str>(&ws_url, &[]);

    for signature in [http_signed.as_str(), wrong_key.as_str(), "forged"] {
        let refused =
            tokio_tungstenite::connect_async(ws_request(&sidecar, path, Some(signature))).await;
        assert_eq!(refused_with(refused), 403, "{signature}");
    }
    assert!(seen.try_recv().is_err(), "no handler ran");
    assert_eq!(sidecar.state.drain.active(), 0);
}

#[tokio::test]
async fn an_upgrade_without_a_signature_is_left_to_the_stream_token() {
    let (handler, mut seen) = recording_handler();
    let sidecar = Sidecar::start_with_handler(&closed_port_url().await, |_| {}, handler).await;

    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
        &sidecar,
        "/api/twilio/media-stream/c-2",
        None,
    ))
    .await
    .unwrap();
    socket.close(None).await.unwrap();

    let seen = seen.recv().await.unwrap();
    assert_eq!(seen.call_id, "c-2");
    assert_eq!(seen.signature, UpgradeSignature::Absent);
    assert_eq!(seen.token_verified, None, "no start frame was sent");
}

#[tokio::test]
async fn malformed_call_ids_and_draining_sidecars_refuse_the_upgrade() {
    let sidecar = Sidecar::start(&closed_port_url().await, |_| {}).await;

    let malformed = tokio_tungstenite::connect_async(ws_request(
        &sidecar,
        "/api/twilio/media-stream/a.b",
        None,
    ))
    .await;
    sidecar.state.drain.begin_drain();
    let draining = tokio_tungstenite::connect_async(ws_request(
        &sidecar,
        "/api/twilio/media-stream/c-1",
        None,
    ))
    .await;

    assert_eq!(refused_with(malformed), 400);
    assert_eq!(refused_with(draining), 503);
}

#[tokio::test]
async fn the_placeholder_handler_closes_the_stream_with_1011() {
    let sidecar = Sidecar::start(&closed_port_url().await, |_| {}).await;

    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request(
        &sidecar,
        "/api/twilio/media-stream/c-1",
        None,
    ))
    .await
    .unwrap();

    let close = loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1011);
    assert_eq!(close.reason.as_str(), "media bridge unavailable");
    // Reading on sends our close reply, which lets the handler finish.
    while socket.next().await.is_some() {}
    eventually("the call is over", || sidecar.state.drain.active() == 0).await;
    let metrics = sidecar.admin_get("/metrics").await.body;
    assert!(
        metrics.contains(r#"switchboard_sidecar_calls_total{outcome="failed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn readyz_flips_on_drain_and_serve_returns_when_the_cut_calls_end() {
    let sidecar = Sidecar::start(&closed_port_url().await, |c| {
        c.drain_grace = Duration::from_secs(2);
    })
    .await;
    assert_eq!(sidecar.admin_get("/readyz").await.status, 200);
    assert_eq!(sidecar.admin_get("/healthz").await.status, 200);
    let state = sidecar.state.clone();
    let admin = sidecar.admin;
    // A call that runs until the drain cuts it, then ends.
    let call = state.drain.track();
    let mut cut = state.drain.cut_signal();
    let held = tokio::spawn(async move {
        cut.cut().await;
        drop(call);
    });

    let stopping = tokio::spawn(sidecar.stop());
    eventually("the drain began", || state.drain.is_draining()).await;
    let readyz = harness::send(admin, "GET", "/readyz", &[], b"").await;
    let report = stopping.await.unwrap();

    assert_eq!((readyz.status, readyz.body.as_str()), (503, "draining\n"));
    assert_eq!(
        (report.cut, report.unsettled),
        (1, 0),
        "the held call outlived the grace, heard the cut and ended"
    );
    held.await.unwrap();
}

#[tokio::test]
async fn a_sidecar_without_calls_stops_at_once() {
    let sidecar = Sidecar::start(&closed_port_url().await, |c| {
        c.drain_grace = Duration::from_secs(600);
    })
    .await;

    let report = tokio::time::timeout(Duration::from_secs(20), sidecar.stop())
        .await
        .expect("no call to wait for");

    assert_eq!(report.cut, 0);
}

#[tokio::test]
async fn metrics_are_served_as_openmetrics_text() {
    let sidecar = Sidecar::start(&closed_port_url().await, |_| {}).await;
    let _call = sidecar.state.drain.track();
    sidecar
        .post("/api/twilio/voice", "x=1", Some("forged"))
        .await;

    let metrics = sidecar.admin_get("/metrics").await;

    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/openmetrics-text")));
    for line in [
        "switchboard_sidecar_active_calls 1",
        r#"switchboard_sidecar_webhook_requests_total{route="voice",status="403"} 1"#,
        "# TYPE switchboard_sidecar_relay_latency_seconds histogram",
        "# EOF",
    ] {
        assert!(metrics.body.contains(line), "{line} in {}", metrics.body);
    }
}
