//! What the edge promises when a call cannot go the normal way (docs/media-sidecar.md,
//! "Promises kept under faults"): media sockets for unknown or ended calls and bad tokens
//! are refused before OpenAI is contacted, a missing agent never crashes anything, a
//! control plane that is down at call start still leaves the caller a fallback, and bad
//! Twilio frames and unusable Realtime events are counted and skipped while the call goes
//! on.
//!
//! Mid-call faults (OpenAI refusing or dropping, the control plane restarting) are in
//! `failures_midcall.rs`.

mod failures_support;

use std::time::{Duration, SystemTime};

use failures_support::{
    agent, all_sessions, assert_counted_by_reason, create_agent, create_session, inbound,
    openai_sim, policy, realtime_url, session_where, sidecar_metric, stream_token, MediaClient,
    CONTROL_PLANE_APOLOGY,
};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, Turn};
use switchboard_sim::twilio::document::DialTarget;
use switchboard_sim::twilio::{AudioSource, CallEnd, Caller, TalkScript, Verb};
use switchboard_tests::{eventually, Harness, HarnessOptions, StoreKind};

fn say_texts(verbs: &[Verb]) -> Vec<&str> {
    verbs
        .iter()
        .filter_map(|verb| match verb {
            Verb::Say { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_ended_call_ids_are_closed_with_a_policy_error_before_openai() {
    const NUMBER: &str = "+14155550301";
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    let agent_id = create_agent(&harness, agent("Ended", NUMBER)).await;

    // A call id no session has, with a token this deployment signed for it: only the
    // control plane can tell it is unknown.
    let unknown = uuid::Uuid::now_v7().simple().to_string();
    let mut media = MediaClient::connect(&harness, &unknown).await;
    media
        .start(&stream_token(&unknown, SystemTime::now()), &unknown)
        .await;
    let (close, sent) = media.closed().await;
    assert_eq!(
        close,
        Some((policy(), "unknown call".to_owned())),
        "{}",
        harness.logs()
    );
    assert!(sent.is_empty(), "nothing but the close was sent: {sent:?}");
    let lookup = harness
        .sessions()
        .get_call_session(pb::GetCallSessionRequest {
            id: unknown.clone(),
        })
        .await;
    assert_eq!(
        lookup.map(|_| ()).unwrap_err().code(),
        tonic::Code::NotFound,
        "nothing was stored for the unknown call"
    );

    // A call that has ended (canceled before it connected).
    let session = create_session(&harness, &agent_id, NUMBER).await;
    let ended = harness
        .sessions()
        .update_call_status(pb::UpdateCallStatusRequest {
            id: session.id.clone(),
            status: pb::CallStatus::Canceled.into(),
            end_reason: "canceled_by_test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let before = session_where(&harness, &ended.id, Duration::from_secs(5), |_| true)
        .await
        .expect("the ended session is readable");
    let mut media = MediaClient::connect(&harness, &ended.id).await;
    media
        .start(&stream_token(&ended.id, SystemTime::now()), &ended.id)
        .await;
    let (close, sent) = media.closed().await;
    assert_eq!(
        close,
        Some((policy(), "call has ended".to_owned())),
        "{}",
        harness.logs()
    );
    assert!(sent.is_empty(), "nothing but the close was sent: {sent:?}");
    let after = session_where(&harness, &ended.id, Duration::from_secs(5), |_| true)
        .await
        .expect("the ended session is readable");
    assert_eq!(after, before, "the ended session was left as it was");

    // OpenAI was never contacted, and only the ended session exists.
    assert!(
        openai.records().is_empty() && openai.records().rejections().is_empty(),
        "openai was contacted: {:?}",
        openai.records().sessions()
    );
    let sessions = all_sessions(&harness).await;
    assert_eq!(
        sessions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [ended.id.as_str()]
    );

    // Both refusals were counted and logged.
    let refused = eventually(Duration::from_secs(5), || async {
        sidecar_metric(
            &harness,
            r#"switchboard_sidecar_calls_total{outcome="refused"}"#,
        )
        .await
        .filter(|n| *n == 2)
    })
    .await;
    assert_eq!(refused, Some(2), "refused calls counted");
    let log = harness.sidecar.output();
    assert_eq!(
        log.matches("media stream refused by the control plane")
            .count(),
        2,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_expired_stream_tokens_close_the_socket_and_store_nothing() {
    const NUMBER: &str = "+14155550302";
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    let agent_id = create_agent(&harness, agent("Tokens", NUMBER)).await;
    let call = create_session(&harness, &agent_id, NUMBER).await;
    let other = create_session(&harness, &agent_id, NUMBER).await;
    let before = session_where(&harness, &call.id, Duration::from_secs(5), |_| true)
        .await
        .expect("the session is readable");

    let an_hour_ago = SystemTime::now() - Duration::from_secs(3_600);
    let cases = [
        ("no token", String::new()),
        ("not a token", "not-a-token".to_owned()),
        (
            "forged",
            "v1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("another call's", stream_token(&other.id, SystemTime::now())),
        ("expired", stream_token(&call.id, an_hour_ago)),
    ];
    for (case, token) in &cases {
        let mut media = MediaClient::connect(&harness, &call.id).await;
        media.start(token, &call.id).await;
        let (close, sent) = media.closed().await;
        assert_eq!(
            close,
            Some((policy(), "invalid stream token".to_owned())),
            "{case} token\n{}",
            harness.logs()
        );
        assert!(sent.is_empty(), "{case}: nothing but the close: {sent:?}");
    }

    // Nothing was stored: no stream attached, no status change, no conversation; and
    // OpenAI never heard of the call.
    let after = session_where(&harness, &call.id, Duration::from_secs(5), |_| true)
        .await
        .expect("the session is readable");
    assert_eq!(after, before, "the session was left as it was");
    assert_eq!(after.status, pb::CallStatus::Queued as i32);
    assert!(after.twilio_stream_sid.is_empty() && after.conversation.is_empty());
    assert!(
        openai.records().is_empty() && openai.records().rejections().is_empty(),
        "openai was contacted: {:?}",
        openai.records().sessions()
    );
    assert_eq!(
        all_sessions(&harness).await.len(),
        2,
        "no session was added"
    );
    let refused = eventually(Duration::from_secs(5), || async {
        sidecar_metric(
            &harness,
            r#"switchboard_sidecar_calls_total{outcome="refused"}"#,
        )
        .await
        .filter(|n| *n == cases.len() as u64)
    })
    .await;
    assert_eq!(refused, Some(cases.len() as u64), "refused calls counted");
    let log = harness.sidecar.output();
    assert_eq!(
        log.matches("media stream refused: bad stream token")
            .count(),
        cases.len(),
        "{log}"
    );
    assert!(
        !log.contains("v1.9999999999"),
        "tokens are never logged: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_without_an_agent_is_answered_by_the_default_agent() {
    const NUMBER: &str = "+14155550303";
    let script = Script {
        turns: vec![Turn {
            caller: "Is anyone there?".into(),
            reply: Some(Reply {
                text: "Yes, the front desk here.".into(),
                audio_ms: Some(1_000),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    };
    let openai = openai_sim(script, Vec::new()).await;
    let mut harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    // The default agent owns no number; the control plane learns its id from the
    // environment, so it is restarted (same store) once the agent exists.
    let mut front_desk = agent("Front desk", NUMBER);
    front_desk.phone_numbers.clear();
    front_desk.instructions = "You are the front desk for every unassigned number.".into();
    let default_id = create_agent(&harness, front_desk).await;
    harness
        .control_plane_env
        .push(("SWITCHBOARD_DEFAULT_AGENT_ID", default_id.clone()));
    harness.restart_control_plane();

    let talk =
        TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(6_000));
    let record = Caller::start(inbound(&harness, NUMBER, talk))
        .finished()
        .await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    assert!(
        stream.received.media > 0,
        "the caller heard the default agent\n{}",
        harness.logs()
    );
    assert_eq!(record.end, Some(CallEnd::CallerHungUp));

    let session = openai.records().last().expect("an openai session");
    assert_eq!(
        session.session_config.instructions.as_deref(),
        Some("You are the front desk for every unassigned number.")
    );
    let stored = agent_session(&harness, &default_id).await;
    assert_eq!(stored.twilio_call_sid, record.call_sid);
    assert_eq!(stored.to_number, NUMBER);
    let texts: Vec<&str> = stored
        .conversation
        .iter()
        .map(|i| i.text.as_str())
        .collect();
    assert_eq!(
        texts,
        ["Is anyone there?", "Yes, the front desk here."],
        "{stored:?}"
    );
}

/// The only session of `agent_id` once it has completed with two items.
async fn agent_session(harness: &Harness, agent_id: &str) -> pb::CallSession {
    let found =
        failures_support::agent_session_where(harness, agent_id, Duration::from_secs(20), |s| {
            s.status == pb::CallStatus::Completed as i32 && s.conversation.len() >= 2
        })
        .await;
    found.unwrap_or_else(|| {
        panic!(
            "no completed session for agent {agent_id}\n{}",
            harness.logs()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_default_agent_the_caller_hears_the_apology_and_the_session_fails() {
    const NUMBER: &str = "+14155550304";
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let mut harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    // An agent exists, but not for this number.
    create_agent(&harness, agent("Elsewhere", "+14155550314")).await;

    let talk = TalkScript::silent().hang_up_after(Duration::from_millis(3_000));
    let record = Caller::start(inbound(&harness, NUMBER, talk))
        .finished()
        .await;
    assert_eq!(
        say_texts(&record.verbs),
        [CONTROL_PLANE_APOLOGY],
        "{record:?}"
    );
    assert!(
        matches!(record.verbs.last(), Some(Verb::Hangup)),
        "{record:?}"
    );
    assert_eq!(record.end, Some(CallEnd::Hangup));
    assert!(record.streams.is_empty(), "no media stream: {record:?}");
    assert!(openai.records().is_empty(), "openai was not contacted");

    let sessions = all_sessions(&harness).await;
    let [session] = sessions.as_slice() else {
        panic!("one session expected: {sessions:?}");
    };
    assert_eq!(session.status, pb::CallStatus::Failed as i32);
    assert_eq!(session.end_reason, "no_agent");
    assert_eq!(session.twilio_call_sid, record.call_sid);
    assert!(session.agent_id.is_empty());
    assert_eq!(
        session.error.as_ref().map(|e| e.code.as_str()),
        Some("agent.not_found")
    );

    // Nothing crashed: both services still run and still answer.
    assert!(
        harness.control_plane.exit_status().is_none(),
        "{}",
        harness.logs()
    );
    assert!(
        harness.sidecar.exit_status().is_none(),
        "{}",
        harness.logs()
    );
    assert_eq!(
        harness.sidecar_admin_get("/readyz").await.map(|(s, _)| s),
        Some(200)
    );
    assert_eq!(all_sessions(&harness).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_control_plane_down_the_sidecar_answers_with_its_own_fallback_number() {
    const NUMBER: &str = "+14155550305";
    const FRONT_DESK: &str = "+14155550399";
    const MESSAGE: &str = "Our systems are resting. Connecting you to the front desk.";
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let options = HarnessOptions {
        sidecar_env: vec![
            ("SWITCHBOARD_FALLBACK_NUMBER", FRONT_DESK.to_owned()),
            ("SWITCHBOARD_FALLBACK_MESSAGE", MESSAGE.to_owned()),
        ],
        ..HarnessOptions::default()
    };
    let mut harness =
        Harness::start_with(StoreKind::from_env(), &realtime_url(&openai), options).await;
    create_agent(&harness, agent("Unreachable", NUMBER)).await;
    harness.kill_control_plane();

    let record = Caller::start(inbound(&harness, NUMBER, TalkScript::silent()))
        .finished()
        .await;
    assert_eq!(say_texts(&record.verbs), [MESSAGE], "{record:?}");
    let dialled = record.verbs.iter().find_map(|verb| match verb {
        Verb::Dial { targets, .. } => Some(targets.clone()),
        _ => None,
    });
    assert_eq!(
        dialled,
        Some(vec![DialTarget::Number(FRONT_DESK.to_owned())]),
        "{record:?}"
    );
    assert_eq!(record.end, Some(CallEnd::Dialed));
    assert!(record.streams.is_empty() && openai.records().is_empty());
    assert_fallback_counted(&harness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_control_plane_down_the_sidecar_apologises_and_hangs_up() {
    const NUMBER: &str = "+14155550306";
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let mut harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    create_agent(&harness, agent("Unreachable", NUMBER)).await;
    harness.kill_control_plane();

    let record = Caller::start(inbound(&harness, NUMBER, TalkScript::silent()))
        .finished()
        .await;
    assert_eq!(
        say_texts(&record.verbs),
        [switchboard_media_sidecar::config::DEFAULT_FALLBACK_MESSAGE],
        "{record:?}"
    );
    assert!(
        matches!(record.verbs.last(), Some(Verb::Hangup)),
        "{record:?}"
    );
    assert_eq!(record.end, Some(CallEnd::Hangup));
    assert!(record.streams.is_empty() && openai.records().is_empty());
    assert_fallback_counted(&harness).await;
}

/// The sidecar counted one fallback answer for an unreachable control plane and runs on.
async fn assert_fallback_counted(harness: &Harness) {
    let counted = eventually(Duration::from_secs(5), || async {
        sidecar_metric(
            harness,
            r#"switchboard_sidecar_fallback_answers_total{reason="control_plane_unavailable"}"#,
        )
        .await
        .filter(|n| *n == 1)
    })
    .await;
    assert_eq!(counted, Some(1), "{}", harness.logs());
    assert_eq!(
        harness.sidecar_admin_get("/healthz").await.map(|(s, _)| s),
        Some(200),
        "{}",
        harness.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_out_of_order_frames_are_counted_and_skipped() {
    const NUMBER: &str = "+14155550307";
    const BEFORE: u64 = 25;
    const AFTER: u64 = 25;
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    let agent_id = create_agent(&harness, agent("Frames", NUMBER)).await;
    let call = create_session(&harness, &agent_id, NUMBER).await;
    let token = stream_token(&call.id, SystemTime::now());

    let mut media = MediaClient::connect(&harness, &call.id).await;
    media
        .send_text(
            serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
                .to_string(),
        )
        .await;
    // Out of order: audio before `start`.
    let early = media.media_frame();
    media.send_text(early).await;
    let start = media.start_frame(&token, &call.id);
    media.send_text(start.clone()).await;
    media.send_media(BEFORE).await;

    // Malformed: not JSON, and a media frame without its payload.
    media.send_text("this is not json {".to_owned()).await;
    let stream_sid = media.stream_sid.clone();
    media
        .send_text(
            serde_json::json!({
                "event": "media", "sequenceNumber": "900", "streamSid": stream_sid,
                "media": {"track": "inbound", "chunk": "900", "timestamp": "18000"}
            })
            .to_string(),
        )
        .await;
    // An event Twilio does not send.
    media
        .send_text(serde_json::json!({"event": "hangup", "streamSid": stream_sid}).to_string())
        .await;
    // Oversized: a media frame over the 64 KiB a Twilio frame can never reach.
    media
        .send_text(
            serde_json::json!({
                "event": "media", "sequenceNumber": "901", "streamSid": stream_sid,
                "media": {"track": "inbound", "chunk": "901", "timestamp": "18020",
                          "payload": "/".repeat(70 * 1024)}
            })
            .to_string(),
        )
        .await;
    // Binary instead of text.
    media.send_binary(vec![0xFF; 160]).await;
    // Out of order: a second `start`, and audio of another stream.
    media.send_text(start).await;
    media
        .send_text(
            serde_json::json!({
                "event": "media", "sequenceNumber": "902", "streamSid": "MZforeign",
                "media": {"track": "inbound", "chunk": "902", "timestamp": "18040",
                          "payload": failures_support::silence_payload()}
            })
            .to_string(),
        )
        .await;

    // The call goes on: more audio, then the caller hangs up.
    media.send_media(AFTER).await;
    media.stop().await;

    let stored = session_where(&harness, &call.id, Duration::from_secs(15), |s| {
        pb::CallStatus::try_from(s.status).is_ok_and(|status| {
            !matches!(
                status,
                pb::CallStatus::Queued | pb::CallStatus::Ringing | pb::CallStatus::InProgress
            )
        })
    })
    .await
    .unwrap_or_else(|| panic!("the call did not end\n{}", harness.logs()));
    assert_eq!(
        (stored.status, stored.end_reason.as_str()),
        (pb::CallStatus::Completed as i32, "caller_hung_up"),
        "{stored:?}\n{}",
        harness.logs()
    );
    assert_eq!(stored.twilio_stream_sid, media.stream_sid);

    // Every valid frame of this stream reached OpenAI, and nothing else did.
    let appended = eventually(Duration::from_secs(5), || async {
        let session = openai.records().last()?;
        (session.appends == BEFORE + AFTER).then_some(session.appends)
    })
    .await;
    assert_eq!(
        appended,
        Some(BEFORE + AFTER),
        "appends: {:?}\n{}",
        openai.records().last().map(|s| s.appends),
        harness.logs()
    );
    assert_eq!(openai.records().len(), 1);

    // Each rejected frame is counted under its reason.
    let expected = [
        ("malformed", 2),
        ("oversized", 1),
        ("binary", 1),
        ("unknown_event", 1),
        ("unexpected", 3),
    ];
    assert_counted_by_reason(
        &harness,
        "switchboard_sidecar_frames_rejected_total",
        &expected,
    )
    .await;
}

/// A Realtime endpoint that opens every session with two events the sidecar cannot use
/// — a frame that is not JSON and an event type it does not know — then reads whatever
/// comes. Returns its `ws://…/v1/realtime` URL.
async fn realtime_with_unusable_events() -> String {
    use futures::SinkExt as _;
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let unusable = [
                    "{ this is not json".to_owned(),
                    serde_json::json!({"type": "brand.new_event", "event_id": "event_1"})
                        .to_string(),
                ];
                for text in unusable {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    format!("ws://{addr}/v1/realtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_events_the_sidecar_cannot_use_are_counted_and_skipped() {
    const NUMBER: &str = "+14155550308";
    let openai_url = realtime_with_unusable_events().await;
    let harness = Harness::start(StoreKind::from_env(), &openai_url, None).await;
    let agent_id = create_agent(&harness, agent("Unusable events", NUMBER)).await;
    let call = create_session(&harness, &agent_id, NUMBER).await;
    let token = stream_token(&call.id, SystemTime::now());

    let mut media = MediaClient::connect(&harness, &call.id).await;
    media.start(&token, &call.id).await;
    media.send_media(25).await;
    media.stop().await;

    // The call still ends as the caller ended it.
    let stored = session_where(&harness, &call.id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::Completed as i32
    })
    .await
    .unwrap_or_else(|| panic!("the call did not complete\n{}", harness.logs()));
    assert_eq!(stored.end_reason, "caller_hung_up", "{stored:?}");

    let expected = [("malformed", 1), ("unknown_event", 1), ("oversized", 0)];
    assert_counted_by_reason(
        &harness,
        "switchboard_sidecar_openai_events_rejected_total",
        &expected,
    )
    .await;
}
