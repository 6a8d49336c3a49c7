//! A Twilio Media Stream that goes silent without closing (a vanished peer, a half-open
//! connection) ends the call within the sidecar's idle timeout: the session is recorded
//! `failed` with `twilio_idle`, and its Realtime session is closed rather than kept open
//! for as long as the call could last.

mod failures_support;

use std::time::{Duration, SystemTime};

use failures_support::{
    agent, create_agent, create_session, openai_sim, realtime_url, session_where, stream_token,
    MediaClient,
};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::Script;
use switchboard_tests::{eventually, Harness, HarnessOptions, StoreKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_socket_that_goes_silent_ends_the_call_and_its_realtime_session() {
    const NUMBER: &str = "+14155550341";
    let openai = openai_sim(Script::default(), Vec::new()).await;
    let options = HarnessOptions {
        sidecar_env: vec![("SWITCHBOARD_TWILIO_IDLE_TIMEOUT", "2s".to_owned())],
        ..HarnessOptions::default()
    };
    let harness = Harness::start_with(StoreKind::from_env(), &realtime_url(&openai), options).await;
    let agent_id = create_agent(&harness, agent("Quiet line", NUMBER)).await;
    let session = create_session(&harness, &agent_id, NUMBER).await;

    let mut media = MediaClient::connect(&harness, &session.id).await;
    media
        .start(&stream_token(&session.id, SystemTime::now()), &session.id)
        .await;
    media.send_media(25).await;
    // The Realtime session is up and hearing the caller.
    let appended = eventually(Duration::from_secs(15), || async {
        openai.records().last().filter(|s| s.appends > 0)
    })
    .await;
    assert!(
        appended.is_some(),
        "no audio reached openai\n{}",
        harness.logs()
    );

    // Then nothing more: the socket stays open but silent. The sidecar closes it.
    let (close, _) = media.closed().await;
    let (code, reason) = close.unwrap_or_else(|| {
        panic!(
            "the sidecar did not close the silent socket\n{}",
            harness.logs()
        )
    });
    assert_eq!((code, reason.as_str()), (1000, "call ended"));

    let stored = session_where(&harness, &session.id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::Failed as i32
    })
    .await
    .unwrap_or_else(|| panic!("the session did not fail\n{}", harness.logs()));
    assert_eq!(stored.end_reason, "twilio_idle", "{stored:?}");
    assert_eq!(
        stored.error.as_ref().map(|e| e.code.as_str()),
        Some("twilio.idle"),
        "{stored:?}"
    );

    // Its Realtime session was closed by the sidecar, not left to run.
    let ended = eventually(Duration::from_secs(10), || async {
        openai.records().last()?.ended
    })
    .await;
    assert_eq!(
        ended.as_deref(),
        Some("client closed"),
        "{:?}\n{}",
        openai.records().last(),
        harness.logs()
    );
    assert_eq!(openai.records().len(), 1);
}
