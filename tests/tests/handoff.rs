//! The model hands a call to humans: its built-in `transfer_to_human` tool goes up the
//! call stream, the control plane redirects the live call through Twilio's REST API to
//! the agent's handoff target, and the session ends `handed-off`. When the control plane
//! cannot (no target), it says so, and the model hears the failure as the tool's result.

mod failures_support;

use std::time::Duration;

use failures_support::{agent, agent_session_where, create_agent, openai_sim, realtime_url};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{FunctionCall, Reply, Script, Turn};
use switchboard_sim::twilio::document::DialTarget;
use switchboard_sim::twilio::{
    AudioSource, CallSpec, Caller, FakeTwilio, RestConfig, StreamEnd, TalkScript, Verb,
};
use switchboard_tests::{Harness, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_transfer_to_human_sends_the_live_call_to_the_agents_handoff_target() {
    const NUMBER: &str = "+14155550431";
    let script = Script {
        turns: vec![Turn {
            caller: "I want to talk to a person.".into(),
            reply: Some(Reply {
                text: "Of course, transferring you now.".into(),
                audio_ms: Some(600),
            }),
            function_call: Some(FunctionCall {
                name: "transfer_to_human".into(),
                arguments: serde_json::json!({ "reason": "caller asked for a person" }),
            }),
            after_call: None,
        }],
        ..Script::default()
    };
    let openai = openai_sim(script, Vec::new()).await;
    let fake = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rest_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(listener, std::future::pending()));
    let harness = Harness::start(
        StoreKind::from_env(),
        &realtime_url(&openai),
        Some(&rest_url),
    )
    .await;
    let mut settings = agent("Transfers on request", NUMBER);
    settings.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName("humans".into())),
    });
    let agent_id = create_agent(&harness, settings).await;

    let mut spec = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
        .with_script(
            TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_secs(8)),
        );
    spec.to = NUMBER.into();
    let caller = fake.place_inbound_call(spec);
    let record = tokio::time::timeout(Duration::from_secs(40), caller.finished())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the call did not end: {:?}\n{}",
                caller.record(),
                harness.logs()
            )
        });

    let stream = record.stream().expect("a media stream");
    assert_eq!(
        stream.end,
        Some(StreamEnd::Redirected),
        "{record:?}\n{}",
        harness.logs()
    );
    let dialled: Vec<_> = record
        .verbs
        .iter()
        .filter_map(|verb| match verb {
            Verb::Dial { targets, .. } => Some(targets.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        dialled,
        vec![vec![DialTarget::Conference("humans".into())]],
        "{record:?}"
    );

    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::HandedOff as i32
    })
    .await
    .unwrap_or_else(|| panic!("the session was not handed off\n{}", harness.logs()));
    assert_eq!(stored.end_reason, "caller asked for a person");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_the_control_plane_refuses_is_answered_and_the_model_hears_the_failure() {
    const NUMBER: &str = "+14155550432";
    const AFTER: &str = "I am sorry, I cannot transfer you right now. How else can I help?";
    let script = Script {
        turns: vec![Turn {
            caller: "I want to talk to a person.".into(),
            reply: Some(Reply {
                text: "Let me transfer you.".into(),
                audio_ms: Some(600),
            }),
            function_call: Some(FunctionCall {
                name: "transfer_to_human".into(),
                arguments: serde_json::json!({ "reason": "caller asked for a person" }),
            }),
            after_call: Some(Reply {
                text: AFTER.into(),
                audio_ms: Some(800),
            }),
        }],
        ..Script::default()
    };
    let openai = openai_sim(script, Vec::new()).await;
    let harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    // No handoff target anywhere: the control plane has nowhere to send the call.
    let agent_id = create_agent(&harness, agent("Cannot transfer", NUMBER)).await;

    let mut spec = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
        .with_script(
            TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_secs(9)),
        );
    spec.to = NUMBER.into();
    let caller = Caller::start(spec);
    let record = tokio::time::timeout(Duration::from_secs(40), caller.finished())
        .await
        .unwrap_or_else(|_| panic!("the call did not end\n{}", harness.logs()));

    // The caller stayed with the AI until it hung up.
    let stream = record.stream().expect("a media stream");
    assert_eq!(
        stream.end,
        Some(StreamEnd::CallerHungUp),
        "{record:?}\n{}",
        harness.logs()
    );

    // The model got the refusal as the transfer's result, and answered after it.
    let session = openai.records().last().expect("an openai session");
    let [(call_id, output)] = session.function_outputs.as_slice() else {
        panic!("one function output: {session:?}\n{}", harness.logs());
    };
    let output: serde_json::Value = serde_json::from_str(output).expect("json output");
    assert_eq!(output["status"], "failed", "{output}");
    assert!(
        output["error"]
            .as_str()
            .is_some_and(|e| e.contains("no handoff target")),
        "{output}"
    );
    assert!(
        session.responses_created.len() >= 2,
        "the model spoke after the result: {session:?}"
    );

    // Stored: completed by the caller, the refusal in the conversation, no handoff.
    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::Completed as i32
    })
    .await
    .unwrap_or_else(|| panic!("the session was not completed\n{}", harness.logs()));
    assert_eq!(stored.end_reason, "caller_hung_up");
    let kinds: Vec<i32> = stored.conversation.iter().map(|i| i.kind).collect();
    assert!(
        !kinds.contains(&(pb::ConversationItemKind::Handoff as i32)),
        "{stored:?}"
    );
    let result = stored
        .conversation
        .iter()
        .find(|i| i.kind == pb::ConversationItemKind::FunctionCallOutput as i32)
        .unwrap_or_else(|| panic!("no function output stored: {stored:?}"));
    let payload: serde_json::Value = serde_json::from_str(&result.payload_json).expect("json");
    assert_eq!(payload["call_id"], call_id.as_str());
    assert_eq!(payload["error"]["code"], "handoff.no_target", "{payload}");
    assert!(
        harness
            .sidecar
            .output()
            .contains("the control plane refused"),
        "{}",
        harness.logs()
    );
}
