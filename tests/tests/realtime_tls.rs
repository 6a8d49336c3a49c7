//! The Realtime leg as production runs it: over TLS to an endpoint whose certificate a
//! private CA signed. Every e2e test already runs its `openai-sim` on `wss://`
//! (`switchboard_tests::openai_sim`), trusted through `SWITCHBOARD_OPENAI_CA_FILE`; the
//! barge-in test is the whole call (webhook, stream, session, barge-in, stored
//! transcript) over it. This file holds what only TLS can show: a sidecar that does
//! not trust the CA fails cleanly and says why, and the sidecar built on its own —
//! `cargo build -p switchboard-media-sidecar`, with none of the features other crates
//! of the workspace would lend it — speaks TLS.

mod failures_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use failures_support::{
    agent, agent_session_where, create_agent, fake_twilio, inbound, openai_sim, verbs_after_stream,
    CONTROL_PLANE_APOLOGY,
};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, Turn};
use switchboard_sim::twilio::{AudioSource, CallEnd, Caller, StreamEnd, TalkScript, Verb};
use switchboard_tests::{realtime_url, Harness, HarnessOptions, StoreKind};

fn script() -> Script {
    Script {
        turns: vec![Turn {
            caller: "Hello, is this Acme?".into(),
            reply: Some(Reply {
                text: "Yes, this is Acme. How can I help?".into(),
                audio_ms: Some(1_200),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    }
}

fn talk(hang_up_after: Duration) -> TalkScript {
    TalkScript::saying(AudioSource::hello_en()).hang_up_after(hang_up_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_private_ca_the_caller_hears_the_fallback_and_the_log_names_the_certificate_problem(
) {
    const NUMBER: &str = "+14155550441";
    let openai = openai_sim(script(), Vec::new()).await;
    assert!(
        openai.base_url().starts_with("wss://"),
        "{}",
        openai.base_url()
    );
    let (fake, rest_url) = fake_twilio().await;
    let harness = Harness::start_with(
        StoreKind::from_env(),
        &realtime_url(&openai),
        HarnessOptions {
            twilio_api_url: Some(rest_url),
            openai_ca_untrusted: true,
            ..HarnessOptions::default()
        },
    )
    .await;
    let agent_id = create_agent(&harness, agent("No CA", NUMBER)).await;

    let caller = fake.place_inbound_call(inbound(&harness, NUMBER, talk(Duration::from_secs(20))));
    let record = tokio::time::timeout(Duration::from_secs(40), caller.finished())
        .await
        .unwrap_or_else(|_| panic!("the call did not end\n{}", harness.logs()));

    // The caller heard the apology and was hung up, through a redirect of the live call.
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no stream: {record:?}"));
    assert_eq!(stream.end, Some(StreamEnd::Redirected), "{record:?}");
    assert_eq!(
        verbs_after_stream(&record),
        [
            Verb::Say {
                text: CONTROL_PLANE_APOLOGY.into(),
                voice: None,
                language: None
            },
            Verb::Hangup
        ]
    );
    assert_eq!(record.end, Some(CallEnd::Hangup));

    // No session reached the simulator: the handshake failed, on both sides.
    assert!(openai.records().is_empty());
    let rejections = openai.records().rejections();
    assert!(
        rejections
            .iter()
            .any(|r| r.reason.starts_with("tls handshake failed")),
        "{rejections:?}"
    );
    let log = harness.sidecar.output();
    let line = log
        .lines()
        .find(|line| line.contains("realtime api unavailable"))
        .unwrap_or_else(|| panic!("no log line for the failed connection:\n{log}"));
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(line.contains("SWITCHBOARD_OPENAI_CA_FILE"), "{line}");
    assert!(
        !log.contains("e2e-openai-key"),
        "the key stays out of the log"
    );

    // The record says why the call ended.
    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::Failed as i32
    })
    .await
    .unwrap_or_else(|| panic!("the session did not fail\n{}", harness.logs()));
    assert_eq!(stored.end_reason, "ai_unavailable", "{stored:?}");
}

/// Builds `media-sidecar` on its own into a target directory of its own, so that no
/// feature another workspace crate enables (reqwest's TLS, the simulators' rustls) is
/// lent to it, and returns the executable.
fn build_sidecar_alone() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let target = root.join("target").join("sidecar-alone");
    let output = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "--locked",
            "-p",
            "switchboard-media-sidecar",
            "--bin",
            "media-sidecar",
        ])
        .arg("--target-dir")
        .arg(&target)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build -p switchboard-media-sidecar failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = target.join("debug").join("media-sidecar");
    assert!(binary.exists(), "{} is missing", binary.display());
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_built_alone_carries_a_call_over_wss() {
    const NUMBER: &str = "+14155550442";
    let sidecar = tokio::task::spawn_blocking(build_sidecar_alone)
        .await
        .expect("the build task");
    let openai = openai_sim(script(), Vec::new()).await;
    let harness = Harness::start_with(
        StoreKind::from_env(),
        &realtime_url(&openai),
        HarnessOptions {
            sidecar_binary: Some(sidecar),
            ..HarnessOptions::default()
        },
    )
    .await;
    let agent_id = create_agent(&harness, agent("Built alone", NUMBER)).await;

    let record = Caller::start(inbound(&harness, NUMBER, talk(Duration::from_secs(6))))
        .finished()
        .await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no stream: {record:?}\n{}", harness.logs()));
    assert!(
        stream.received.media > 0,
        "the caller heard the assistant over the TLS leg\n{}",
        harness.logs()
    );
    assert_eq!(openai.records().len(), 1, "one session over wss");
    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::Completed as i32 && s.conversation.len() >= 2
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the call was not completed with its turns\n{}",
            harness.logs()
        )
    });
    assert_eq!(stored.end_reason, "caller_hung_up", "{stored:?}");
}
