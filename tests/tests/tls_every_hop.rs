//! The whole stack with TLS on every hop, as a production deployment without a mesh
//! runs it: Twilio → sidecar over HTTPS and WSS terminated by the sidecar itself,
//! sidecar → control plane over mutual TLS, sidecar → Realtime over WSS. Every
//! certificate comes from one private CA that each party trusts only because it was
//! told to (a CA file, or the simulated Twilio's trusted CA).

use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, StreamEnd, TalkScript, TrustedCa};
use switchboard_tests::{
    openai_sim, realtime_url, test_ca, ControlPlaneTls, Harness, HarnessOptions, StoreKind,
    ACCOUNT_SID, TWILIO_AUTH_TOKEN,
};

const NUMBER: &str = "+14155550551";

fn script() -> Script {
    Script {
        turns: vec![Turn {
            caller: "Hello, is this Acme?".into(),
            reply: Some(Reply {
                text: "Yes, this is Acme, over TLS all the way.".into(),
                audio_ms: Some(1_200),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_runs_with_tls_on_every_hop() {
    let openai = openai_sim(SimConfig {
        script: std::sync::Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let options = HarnessOptions {
        sidecar_tls: true,
        ..HarnessOptions::default()
    }
    .control_plane_tls(ControlPlaneTls::mutual(test_ca()));
    let harness = Harness::start_with(StoreKind::from_env(), &realtime_url(&openai), options).await;
    assert!(harness.control_plane_url.starts_with("https://"));
    assert!(harness.voice_url().starts_with("https://"));
    assert!(openai.base_url().starts_with("wss://"));
    let agent_id = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(pb::AgentSettings {
                name: "TLS everywhere".into(),
                phone_numbers: vec![NUMBER.into()],
                voice: "marin".into(),
                instructions: "You answer for Acme.".into(),
                input_transcription: Some(pb::InputTranscription {
                    model: "gpt-4o-transcribe".into(),
                    language: "en".into(),
                    prompt: String::new(),
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("the agent is created over mutual TLS")
        .into_inner()
        .id;

    let trusted = TrustedCa::from_pem(&test_ca().ca_pem()).expect("the test CA");
    let talk = TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_secs(7));
    let mut spec = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
        .with_script(talk)
        .trusting(trusted);
    spec.to = NUMBER.into();
    let record = tokio::time::timeout(Duration::from_secs(40), Caller::start(spec).finished())
        .await
        .unwrap_or_else(|_| panic!("the call did not end\n{}", harness.logs()));

    // Twilio's side: the signed webhook over https, the stream over wss, both to the
    // sidecar's own TLS port, and the assistant heard.
    assert!(
        record.errors.is_empty(),
        "{:?}\n{}",
        record.errors,
        harness.logs()
    );
    let webhook = record.documents.first().expect("the webhook's TwiML");
    assert_eq!(webhook.status, Some(200), "{webhook:?}");
    assert!(
        webhook
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://localhost:")),
        "{webhook:?}"
    );
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    assert!(stream.url.starts_with("wss://localhost:"), "{}", stream.url);
    assert!(stream.warnings.is_empty(), "{:?}", stream.warnings);
    assert!(
        stream.received.media > 0,
        "the caller heard the assistant\n{}",
        harness.logs()
    );
    assert_eq!(stream.end, Some(StreamEnd::CallerHungUp));

    // The Realtime leg: one session, over wss.
    let session = openai.records().last().expect("an openai session");
    assert_eq!(
        session.session_config.instructions.as_deref(),
        Some("You answer for Acme.")
    );

    // The record, through the mutual-TLS gRPC hop both ways.
    let stored = harness
        .agent_session_where(&agent_id, Duration::from_secs(15), |s| {
            s.status == pb::CallStatus::Completed as i32 && s.conversation.len() >= 2
        })
        .await
        .unwrap_or_else(|| panic!("the call was not stored completed\n{}", harness.logs()));
    let texts: Vec<&str> = stored
        .conversation
        .iter()
        .map(|i| i.text.as_str())
        .collect();
    assert!(
        texts.contains(&"Yes, this is Acme, over TLS all the way."),
        "{texts:?}"
    );
    let log = harness.sidecar.output();
    assert!(log.contains("twilio port serves tls"), "{log}");
}
