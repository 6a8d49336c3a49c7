//! The model hands a call to humans: its built-in `transfer_to_human` tool goes up the
//! call stream, the control plane redirects the live call through Twilio's REST API to
//! the agent's handoff target, and the session ends `handed-off`.

mod failures_support;

use std::time::Duration;

use failures_support::{agent, agent_session_where, create_agent, openai_sim, realtime_url};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{FunctionCall, Reply, Script, Turn};
use switchboard_sim::twilio::document::DialTarget;
use switchboard_sim::twilio::{
    AudioSource, CallSpec, FakeTwilio, RestConfig, StreamEnd, TalkScript, Verb,
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
