//! SIGTERM with a call in progress: the sidecar stops being ready, answers a new call
//! with the fallback instead of a stream, lets the call in progress run to the caller's
//! own hang-up with its conversation stored and the session completed, and only then
//! exits, with status 0.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{OpenAiSim, Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{
    AudioSource, CallEnd, CallSpec, Caller, StreamEnd, TalkScript, Verb,
};
use switchboard_tests::{eventually, Harness, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const NUMBER: &str = "+14155550100";
const CALLER_SAYS: &str = "Hello, I'd like to check on my order.";
/// How much audio the call in progress sends before its caller hangs up.
const CALL_AUDIO_MS: u64 = 6_000;
const ASSISTANT_SAYS: &str = "Of course. What is the order number?";

fn agent() -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Reception".into(),
        phone_numbers: vec![NUMBER.into()],
        voice: "marin".into(),
        instructions: "You answer the phone for Acme.".into(),
        input_transcription: Some(pb::InputTranscription {
            model: "gpt-4o-transcribe".into(),
            language: "en".into(),
            prompt: String::new(),
        }),
        ..Default::default()
    }
}

fn script() -> Script {
    Script {
        turns: vec![Turn {
            caller: CALLER_SAYS.into(),
            reply: Some(Reply {
                text: ASSISTANT_SAYS.into(),
                audio_ms: Some(1_000),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_progress_finish_refuses_new_ones_and_exits_cleanly() {
    let openai = OpenAiSim::bind(
        "127.0.0.1:0",
        SimConfig {
            script: Arc::new(script()),
            ..SimConfig::for_test()
        },
    )
    .await
    .unwrap();
    let mut harness = Harness::start(
        StoreKind::from_env(),
        &format!("{}/v1/realtime", openai.base_url()),
        None,
    )
    .await;
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap()
        .into_inner();
    let ready = eventually(Duration::from_secs(10), || async {
        let (status, _) = harness.sidecar_admin_get("/readyz").await?;
        (status == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "the sidecar is ready\n{}", harness.logs());

    // A call that lasts until its caller hangs up, about 6 s in, once the drain has been
    // seen from outside (no race with a scripted hang-up on a slow machine).
    let talk = TalkScript::saying(AudioSource::hello_en());
    let spec =
        CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    let in_progress = Caller::start(spec);
    let records = openai.records();
    let streaming = eventually(Duration::from_secs(15), || {
        let records = records.clone();
        async move { records.last().filter(|s| s.appends > 0).map(|_| ()) }
    })
    .await;
    assert!(
        streaming.is_some(),
        "the call streams to openai: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );
    let counted = eventually(Duration::from_secs(10), || async {
        (harness.sidecar_active_calls().await? == 1).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the sidecar counts the call as active");

    // SIGTERM: the replica turns not-ready at once, for good.
    harness.sidecar.signal_terminate();
    let draining = eventually(Duration::from_secs(10), || async {
        let (status, body) = harness.sidecar_admin_get("/readyz").await?;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(
        draining.as_deref(),
        Some("draining\n"),
        "/readyz answers 503 while draining\n{}",
        harness.logs()
    );
    assert!(
        !in_progress.is_finished(),
        "the call in progress goes on after SIGTERM: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );
    assert_eq!(
        harness.sidecar_active_calls().await,
        Some(1),
        "the call in progress still counts while draining"
    );

    // A new call during the drain hears the fallback: no stream, a message, a hang-up.
    let late = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN);
    let late = tokio::time::timeout(Duration::from_secs(30), Caller::start(late).finished())
        .await
        .expect("the new call is answered");
    assert!(
        late.streams.is_empty(),
        "no stream for a new call during the drain: {late:?}"
    );
    assert!(
        late.verbs
            .iter()
            .any(|verb| matches!(verb, Verb::Say { text, .. } if !text.trim().is_empty())),
        "the new call hears the fallback message: {late:?}"
    );
    assert_eq!(late.end, Some(CallEnd::Hangup), "and is hung up: {late:?}");
    assert_eq!(
        openai.records().len(),
        1,
        "the refused call never reached openai"
    );
    assert!(
        !in_progress.is_finished(),
        "the call in progress is still going: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );

    // The call in progress goes on through the drain: the caller is answered, and the
    // call runs to about 6 s of audio.
    let talked = eventually(Duration::from_secs(30), || {
        let record = in_progress.record();
        let talked = record.stream().is_some_and(|stream| {
            stream.received.media > 0 && stream.sent.last_timestamp_ms >= CALL_AUDIO_MS
        });
        // A call cut short never gets there: stop waiting at once.
        let cut = record.is_finished();
        async move { (talked || cut).then_some(talked) }
    })
    .await;
    assert!(
        talked == Some(true) && !in_progress.is_finished(),
        "the call in progress goes on during the drain: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );

    // It ends when the caller hangs up, not before: nothing cut it.
    in_progress.hang_up().expect("the call is live");
    let record = tokio::time::timeout(Duration::from_secs(60), in_progress.finished())
        .await
        .unwrap_or_else(|_| panic!("the call did not end\n{}", harness.logs()));
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}"));
    assert_eq!(
        stream.end,
        Some(StreamEnd::CallerHungUp),
        "the stream ended by the caller's hang-up, not by the sidecar: {record:?}\n{}",
        harness.logs()
    );
    assert_eq!(record.end, Some(CallEnd::CallerHungUp));
    assert!(
        stream.received.media > 0,
        "the caller heard the assistant during the drain"
    );

    let closed = eventually(Duration::from_secs(15), || {
        let ended = openai.records().last().and_then(|s| s.ended);
        async move { ended }
    })
    .await;
    assert_eq!(
        closed.as_deref(),
        Some("client closed"),
        "the sidecar closed the realtime session itself"
    );

    // Its session: completed, with both turns stored in order.
    let sessions = harness.sessions();
    let agent_id = created.id.clone();
    let stored = eventually(Duration::from_secs(30), || {
        let mut sessions = sessions.clone();
        let agent_id = agent_id.clone();
        async move {
            let list = sessions
                .list_call_sessions(pb::ListCallSessionsRequest {
                    agent_id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            let id = list
                .call_sessions
                .iter()
                .find(|s| s.status == pb::CallStatus::Completed as i32)?
                .id
                .clone();
            let s = sessions
                .get_call_session(pb::GetCallSessionRequest { id })
                .await
                .ok()?
                .into_inner();
            (s.conversation.len() >= 2).then_some(s)
        }
    })
    .await;
    let Some(stored) = stored else {
        let list = sessions
            .clone()
            .list_call_sessions(pb::ListCallSessionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        panic!(
            "the drained call was not completed with its turns stored: {:?}\n{}",
            list.call_sessions,
            harness.logs()
        );
    };
    assert_eq!(stored.twilio_call_sid, record.call_sid);
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let user = stored
        .conversation
        .iter()
        .position(|i| i.role == pb::ConversationRole::User as i32 && i.text == CALLER_SAYS);
    let assistant = stored
        .conversation
        .iter()
        .position(|i| i.role == pb::ConversationRole::Assistant as i32 && i.text == ASSISTANT_SAYS);
    let (Some(user), Some(assistant)) = (user, assistant) else {
        panic!("turns missing: {:?}", stored.conversation)
    };
    assert!(user < assistant);

    // Then, and not before the call ended, the sidecar exits cleanly.
    let sidecar = &mut harness.sidecar;
    let exited = eventually(Duration::from_secs(30), || {
        let status = sidecar.exit_status();
        async move { status }
    })
    .await;
    let logs = harness.logs();
    let Some(status) = exited else {
        panic!("the sidecar did not exit after the drain\n{logs}");
    };
    assert!(
        status.success(),
        "the sidecar exits with 0 after draining: {status}\n{logs}"
    );
}
