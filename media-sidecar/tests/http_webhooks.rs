//! Twilio's webhooks against a sidecar on loopback and a fake control plane: signatures,
//! the TwiML of every route, the fallback answer, status callbacks, and the edge's
//! headers and limits.

use std::time::SystemTime;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::open_inbound_call_response::Route;
use switchboard_sim::twilio::document::{self, DialTarget, Verb};

#[path = "http_support/harness.rs"]
mod harness;

use harness::{
    closed_port_url, send, Answer, FakeControlPlane, HttpResponse, Sidecar, AUTH_TOKEN, VOICE_BODY,
};

const VOICE: &str = "/api/twilio/voice";
const FALLBACK: &str =
    "We are sorry, but we cannot take your call right now. Please try again later.";

fn verbs(response: &HttpResponse) -> Vec<Verb> {
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("text/xml"));
    document::parse(&response.body)
        .unwrap_or_else(|e| panic!("{e}: {}", response.body))
        .verbs
}

fn is_fallback(verbs: &[Verb]) -> bool {
    matches!(verbs, [Verb::Say { text, .. }, Verb::Hangup] if text == FALLBACK)
}

#[tokio::test]
async fn a_signed_voice_webhook_is_answered_with_a_stream_to_this_sidecar_and_a_valid_token() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |c| {
        c.control_plane.api_token = Some(switchboard_media_sidecar::config::Secret::new("tok"));
    })
    .await;

    let answer = sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await;

    let verbs = verbs(&answer);
    let [Verb::Connect {
        stream: Some(stream),
        ..
    }] = verbs.as_slice()
    else {
        panic!("not a <Connect><Stream>: {verbs:?}");
    };
    // An http public URL gets a path reference that Twilio resolves to ws://.
    assert_eq!(stream.url, "/api/twilio/media-stream/call-1");
    assert_eq!(
        stream.status_callback.as_deref(),
        Some(
            sidecar
                .url("/api/twilio/stream-status?callId=call-1")
                .as_str()
        )
    );
    let param = |name: &str| {
        stream
            .parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} parameter"))
    };
    assert_eq!(param("callId"), "call-1");
    let token = param("token");
    assert_eq!(
        sidecar
            .state
            .tokens
            .verify(&token, "call-1", SystemTime::now()),
        Ok(())
    );

    let opened = cp.fake.opened();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].to_number, "+14155550100");
    assert_eq!(opened[0].from_number, "+14155550199");
    assert_eq!(opened[0].call_sid, "CA00000000000000000000000000000001");
    assert_eq!(opened[0].sidecar_id, "sidecar-test");
    assert_eq!(cp.fake.authorization(), [Some("Bearer tok".to_owned())]);
}

#[tokio::test]
async fn an_https_public_url_gets_an_absolute_wss_stream_url() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |c| {
        c.public_url =
            switchboard_media_sidecar::config::PublicUrl::parse("https://sidecar.example.com")
                .unwrap();
    })
    .await;
    let signature = switchboard_twilio::RequestValidator::new(AUTH_TOKEN).compute(
        "https://sidecar.example.com/api/twilio/voice",
        &switchboard_twilio::form_params(VOICE_BODY.as_bytes()),
    );

    let answer = sidecar.post(VOICE, VOICE_BODY, Some(&signature)).await;

    let verbs = verbs(&answer);
    let Some(stream) = verbs.iter().find_map(|verb| match verb {
        Verb::Connect { stream, .. } => stream.clone(),
        _ => None,
    }) else {
        panic!("{verbs:?}");
    };
    assert_eq!(
        stream.url,
        "wss://sidecar.example.com/api/twilio/media-stream/call-1"
    );
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_nothing_reaches_the_control_plane() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |_| {}).await;

    let wrong_key = sidecar
        .post_signed(VOICE, VOICE_BODY, "another-token")
        .await;
    let tampered = {
        let signature = switchboard_twilio::RequestValidator::new(AUTH_TOKEN).compute(
            &sidecar.url(VOICE),
            &switchboard_twilio::form_params(VOICE_BODY.as_bytes()),
        );
        let body = VOICE_BODY.replace("To=%2B14155550100", "To=%2B14155550101");
        sidecar.post(VOICE, &body, Some(&signature)).await
    };
    let missing = sidecar.post(VOICE, VOICE_BODY, None).await;
    let other_query = {
        let signature = switchboard_twilio::RequestValidator::new(AUTH_TOKEN).compute(
            &sidecar.url(VOICE),
            &switchboard_twilio::form_params(VOICE_BODY.as_bytes()),
        );
        let path = format!("{VOICE}?callId=call-9");
        sidecar.post(&path, VOICE_BODY, Some(&signature)).await
    };

    for answer in [wrong_key, tampered, missing, other_query] {
        assert_eq!(answer.status, 403, "{answer:?}");
        assert!(!answer.body.contains("Response"));
    }
    assert!(cp.fake.opened().is_empty(), "nothing forwarded");
}

#[tokio::test]
async fn conference_dial_and_reject_routes_answer_their_twiml() {
    let cp = FakeControlPlane::start().await;
    let conference = Route::Conference(pb::ConferenceRoute {
        conference_name: "agents-1".into(),
        say: "Connecting you to an agent.".into(),
    });
    let dial = Route::Dial(pb::DialRoute {
        phone_number: "+14155550111".into(),
        say: String::new(),
    });
    let reject = Route::Reject(pb::RejectRoute {
        say: "Nobody is here.".into(),
    });
    cp.fake.answer("+14155550101", Answer::Route(conference));
    cp.fake.answer("+14155550102", Answer::Route(dial));
    cp.fake.answer("+14155550103", Answer::Route(reject));
    let sidecar = Sidecar::start(&cp.url, |_| {}).await;
    let call_to = |n: u8| VOICE_BODY.replace("To=%2B14155550100", &format!("To=%2B1415555010{n}"));

    let conference = verbs(&sidecar.post_signed(VOICE, &call_to(1), AUTH_TOKEN).await);
    let dial = verbs(&sidecar.post_signed(VOICE, &call_to(2), AUTH_TOKEN).await);
    let reject = verbs(&sidecar.post_signed(VOICE, &call_to(3), AUTH_TOKEN).await);

    assert!(
        matches!(conference.as_slice(), [Verb::Say { text, .. }, Verb::Dial { targets, .. }]
            if text == "Connecting you to an agent."
                && targets == &[DialTarget::Conference("agents-1".into())]),
        "{conference:?}"
    );
    assert!(
        matches!(dial.as_slice(), [Verb::Dial { targets, .. }]
            if targets == &[DialTarget::Number("+14155550111".into())]),
        "an empty say is left out: {dial:?}"
    );
    assert!(
        matches!(reject.as_slice(), [Verb::Say { text, .. }, Verb::Hangup] if text == "Nobody is here."),
        "{reject:?}"
    );
    assert_eq!(cp.fake.opened().len(), 3);
}

#[tokio::test]
async fn an_unreachable_control_plane_gets_the_fallback_answer() {
    let sidecar = Sidecar::start(&closed_port_url().await, |_| {}).await;

    let answer = verbs(&sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await);

    assert!(is_fallback(&answer), "{answer:?}");
    let metrics = sidecar.admin_get("/metrics").await.body;
    assert!(
        metrics.contains(
            r#"switchboard_sidecar_fallback_answers_total{reason="control_plane_unavailable"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn calls_spread_over_every_control_plane_replica_and_skip_one_that_is_gone() {
    let a = FakeControlPlane::start().await;
    let b = FakeControlPlane::start().await;
    let gone = closed_port_url().await;
    let sidecar = Sidecar::start(&a.url, |c| {
        c.control_plane.urls = vec![a.url.clone(), gone.clone(), b.url.clone()];
    })
    .await;

    for n in 0..8 {
        let answer = verbs(&sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await);
        assert!(!is_fallback(&answer), "call {n} answered by a live replica");
    }
    let (on_a, on_b) = (a.fake.opened().len(), b.fake.opened().len());
    assert_eq!(on_a + on_b, 8, "every call reached a live replica once");
    assert!(
        on_a >= 2 && on_b >= 2,
        "spread over both: {on_a} and {on_b}"
    );

    // One replica shuts down (it finishes what its open connection carries, then
    // refuses): no call gets the fallback, and the calls after it go to the other.
    let a_fake = a.fake.clone();
    drop(a);
    for n in 8..16 {
        let answer = verbs(&sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await);
        assert!(!is_fallback(&answer), "call {n} answered by a live replica");
    }
    let (on_a, on_b) = (a_fake.opened().len(), b.fake.opened().len());
    assert_eq!(on_a + on_b, 16, "every call reached a replica once");
    let last = sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await;
    assert!(!is_fallback(&verbs(&last)));
    assert_eq!(b.fake.opened().len(), on_b + 1, "the replica left took it");
}

#[tokio::test]
async fn a_failing_control_plane_or_an_unusable_route_gets_the_fallback_with_the_fallback_number() {
    let cp = FakeControlPlane::start().await;
    cp.fake
        .answer("+14155550100", Answer::Fail(tonic::Code::Internal));
    cp.fake.answer(
        "+14155550101",
        Answer::Route(Route::Dial(pb::DialRoute::default())),
    );
    let sidecar = Sidecar::start(&cp.url, |c| {
        c.fallback.number = Some("+14155550199".into());
    })
    .await;

    let failed = verbs(&sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await);
    let body = VOICE_BODY.replace("To=%2B14155550100", "To=%2B14155550101");
    let unusable = verbs(&sidecar.post_signed(VOICE, &body, AUTH_TOKEN).await);

    for answer in [failed, unusable] {
        assert!(
            matches!(answer.as_slice(), [Verb::Say { text, .. }, Verb::Dial { targets, .. }]
                if text == FALLBACK && targets == &[DialTarget::Number("+14155550199".into())]),
            "{answer:?}"
        );
    }
    let metrics = sidecar.admin_get("/metrics").await.body;
    assert!(
        metrics.contains(r#"reason="invalid_route"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"switchboard_sidecar_control_plane_errors_total{rpc="open_inbound_call",code="INTERNAL"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_full_or_draining_sidecar_answers_the_fallback_without_asking_the_control_plane() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |c| c.max_calls = 1).await;

    let call = sidecar.state.drain.track();
    let full = verbs(&sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await);
    drop(call);
    sidecar.state.drain.begin_drain();
    let draining = verbs(&sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await);

    assert!(is_fallback(&full), "{full:?}");
    assert!(is_fallback(&draining), "{draining:?}");
    assert!(cp.fake.opened().is_empty());
    let metrics = sidecar.admin_get("/metrics").await.body;
    for reason in ["at_capacity", "draining"] {
        let line = format!(r#"switchboard_sidecar_fallback_answers_total{{reason="{reason}"}} 1"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_call_we_placed_goes_through_open_inbound_call_with_its_call_id_in_the_url() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |_| {}).await;
    let body = VOICE_BODY
        .replace("Direction=inbound", "Direction=outbound-api")
        .replace("CallStatus=ringing", "CallStatus=in-progress");

    let answer = sidecar
        .post_signed(&format!("{VOICE}?callId=call-1"), &body, AUTH_TOKEN)
        .await;

    assert!(matches!(verbs(&answer).as_slice(), [Verb::Connect { .. }]));
    assert_eq!(cp.fake.opened().len(), 1);
    assert_eq!(
        cp.fake.opened()[0].call_id,
        "call-1",
        "the placed call's session is named"
    );
}

#[tokio::test]
async fn call_status_callbacks_are_forwarded_and_answered_204() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |_| {}).await;
    let body = VOICE_BODY.replace("CallStatus=ringing", "CallStatus=completed")
        + "&CallbackSource=call-progress-events&SequenceNumber=3&CallDuration=42\
           &SipResponseCode=200&ErrorCode=31920&ErrorMessage=handshake+failed";

    let answer = sidecar
        .post_signed("/api/twilio/status?callId=call-7", &body, AUTH_TOKEN)
        .await;
    let unsigned = sidecar.post("/api/twilio/status", &body, None).await;

    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(unsigned.status, 403);
    let statuses = cp.fake.statuses();
    assert_eq!(statuses.len(), 1, "only the signed one is forwarded");
    let status = &statuses[0];
    assert_eq!(status.call_id, "call-7");
    assert_eq!(status.call_sid, "CA00000000000000000000000000000001");
    assert_eq!(status.call_status, "completed");
    assert_eq!(status.sequence_number, 3);
    assert_eq!(status.call_duration_seconds, 42);
    assert_eq!(status.sip_response_code, "200");
    assert_eq!(status.error_code, "31920");
    assert_eq!(status.error_message, "handshake failed");
}

#[tokio::test]
async fn a_status_callback_is_answered_204_even_when_the_control_plane_is_down() {
    let sidecar = Sidecar::start(&closed_port_url().await, |_| {}).await;
    let body = VOICE_BODY.replace("CallStatus=ringing", "CallStatus=busy");

    let answer = sidecar
        .post_signed("/api/twilio/status", &body, AUTH_TOKEN)
        .await;

    assert_eq!(answer.status, 204);
}

#[tokio::test]
async fn stream_status_callbacks_are_checked_forwarded_and_answered_204() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |_| {}).await;
    let body = "AccountSid=AC00000000000000000000000000000001&CallSid=CA1&StreamSid=MZ1\
                &StreamEvent=stream-error&StreamError=handshake+failed&StreamName=ai\
                &Timestamp=2025-01-01T00%3A00%3A00Z";
    let path = "/api/twilio/stream-status?callId=call-1";

    let signed = sidecar.post_signed(path, body, AUTH_TOKEN).await;
    let forged = sidecar.post_signed(path, body, "forged").await;
    let unreadable = sidecar.post_signed(path, "StreamEvent=x", AUTH_TOKEN).await;

    assert_eq!(signed.status, 204);
    assert_eq!(forged.status, 403);
    assert_eq!(unreadable.status, 400);
    let forwarded = cp.fake.statuses();
    assert_eq!(
        forwarded.len(),
        1,
        "only the signed, readable one: {forwarded:?}"
    );
    let report = &forwarded[0];
    assert_eq!(report.call_id, "call-1");
    assert_eq!(report.call_sid, "CA1");
    assert_eq!(report.stream_sid, "MZ1");
    assert_eq!(report.stream_event, "stream-error");
    assert_eq!(report.stream_error, "handshake failed");
    assert!(report.call_status.is_empty());

    // Answered 204 also when the control plane cannot be reached.
    let alone = Sidecar::start(&closed_port_url().await, |_| {}).await;
    assert_eq!(alone.post_signed(path, body, AUTH_TOKEN).await.status, 204);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let sidecar = Sidecar::start(&closed_port_url().await, |_| {}).await;
    let oversized = "x".repeat(body_limit() + 1);

    let answers = [
        sidecar.post_signed(VOICE, VOICE_BODY, AUTH_TOKEN).await,
        sidecar.post(VOICE, VOICE_BODY, Some("forged")).await,
        send(sidecar.http, "GET", "/nowhere", &[], b"").await,
        send(sidecar.http, "GET", VOICE, &[], b"").await,
        sidecar.post(VOICE, &oversized, None).await,
        sidecar.admin_get("/healthz").await,
        sidecar.admin_get("/nowhere").await,
    ];

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 403, 404, 405, 413, 200, 404]);
    for answer in &answers {
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            (
                "strict-transport-security",
                "max-age=15552000; includeSubDomains",
            ),
            (
                "content-security-policy",
                "default-src 'none'; frame-ancestors 'none'",
            ),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            ("x-dns-prefetch-control", "off"),
            ("x-permitted-cross-domain-policies", "none"),
        ] {
            assert_eq!(answer.header(name), Some(value), "{name} on {answer:?}");
        }
        assert_eq!(answer.header("x-powered-by"), None);
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_before_any_check() {
    let cp = FakeControlPlane::start().await;
    let sidecar = Sidecar::start(&cp.url, |_| {}).await;
    let body = format!("{VOICE_BODY}&Padding={}", "x".repeat(body_limit()));

    let answer = sidecar.post_signed(VOICE, &body, AUTH_TOKEN).await;

    assert_eq!(answer.status, 413);
    assert!(cp.fake.opened().is_empty());
}

fn body_limit() -> usize {
    switchboard_media_sidecar::http::WEBHOOK_BODY_LIMIT
}
