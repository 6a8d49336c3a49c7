//! The demo, short: two calls (one barging in) and the fallback call, on a temporary
//! data directory; the summary is read back from the control plane.

use switchboard_demo::{run, AgentFile, CallKind, Options};
use switchboard_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_places_its_calls_and_summarizes_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT).unwrap();
    let fallback_status = agent.fallback_status();
    let options = Options {
        calls: 2,
        data_dir: dir.path().join("data"),
        agent,
        progress: false,
    };
    let summary = run(options, std::future::pending()).await.unwrap();
    let shown = summary.to_string();

    assert_eq!(summary.calls.len(), 3, "{shown}");
    assert_eq!(summary.finished_calls(), 3, "every call ended: {shown}");
    let kinds: Vec<CallKind> = summary.calls.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [CallKind::Plain, CallKind::BargeIn, CallKind::AiUnavailable]
    );
    for call in &summary.calls[..2] {
        assert_eq!(call.status, pb::CallStatus::Completed, "{shown}");
        assert_eq!(call.end_reason, "caller_hung_up", "{shown}");
        assert!(call.items >= 2, "the call's turns were stored: {shown}");
    }
    let fallback = &summary.calls[2];
    assert_eq!(fallback.status, fallback_status, "{shown}");
    assert_eq!(fallback.end_reason, "ai_unavailable", "{shown}");

    // The barge-in was handled on both sides, and the transcript shown is that call's.
    assert!(summary.barge_ins >= 1, "{shown}");
    assert!(summary.calls[1].clears >= 1, "{shown}");
    assert_eq!(
        summary.transcript_of.as_deref(),
        Some(summary.calls[1].call_id.as_str())
    );
    assert!(
        summary
            .transcript
            .iter()
            .any(|l| l.note.starts_with("interrupted at")),
        "{shown}"
    );
    assert_eq!(
        summary.items_stored,
        summary.calls.iter().map(|c| c.items).sum::<usize>()
    );
    assert!(shown.contains(&summary.data_dir.display().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_stops_everything_when_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        calls: 2,
        data_dir: dir.path().join("data"),
        agent: AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT).unwrap(),
        progress: false,
    };
    let interrupt = tokio::time::sleep(std::time::Duration::from_secs(3));
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), run(options, interrupt))
        .await
        .expect("the demo stops promptly");
    assert!(outcome.is_err(), "interrupted");
    // The store was closed: it opens again.
    let reopened = switchboard_control_plane::store::EmbeddedStore::open(&dir.path().join("data"));
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}
