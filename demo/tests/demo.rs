//! The demo, short: two calls (the second outbound and barging in), the campaign
//! alongside them and the fallback call, on a temporary data directory; the summary is
//! read back from the control plane. Then the same on MongoDB, against an external
//! control plane (no campaign), and the flags the binary refuses.

use std::process::Command;
use std::time::Duration;

use switchboard_demo::campaign::{Answer, MAX_ATTEMPTS, TARGETS};
use switchboard_demo::{run, AgentFile, CallKind, ControlPlane, DataLocation, Options, Summary};
use switchboard_proto::v1 as pb;

fn options(control_plane: ControlPlane, calls: usize) -> Options {
    Options {
        calls,
        control_plane,
        token: None,
        tls: Default::default(),
        agent: AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT).unwrap(),
        progress: false,
    }
}

/// What every run must show: each call ended, its direction as planned, the turns of
/// the answered calls stored, the fallback call ended as the agent's fallback says (or
/// `failed` when the control plane has no Twilio account to redirect the call with:
/// it refuses the fallback rather than record a redirect that never happened), and
/// relay-latency figures.
fn assert_ran(summary: &Summary, directions: &[pb::CallDirection], redirects: bool) {
    let shown = summary.to_string();
    assert_eq!(summary.calls.len(), directions.len(), "{shown}");
    assert_eq!(
        summary.finished_calls(),
        directions.len(),
        "every call ended: {shown}"
    );
    let stored: Vec<pb::CallDirection> = summary.calls.iter().map(|c| c.direction).collect();
    assert_eq!(stored, directions, "{shown}");
    let fallback_status = if redirects {
        AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT)
            .unwrap()
            .fallback_status()
    } else {
        pb::CallStatus::Failed
    };
    for call in summary
        .calls
        .iter()
        .filter(|c| c.kind != CallKind::AiUnavailable)
    {
        assert_eq!(call.status, pb::CallStatus::Completed, "{shown}");
        assert!(call.items >= 2, "the call's turns were stored: {shown}");
    }
    let fallback = summary.calls.last().unwrap();
    assert_eq!(fallback.kind, CallKind::AiUnavailable);
    assert_eq!(fallback.status, fallback_status, "{shown}");
    assert_eq!(fallback.end_reason, "ai_unavailable", "{shown}");

    let latency = summary
        .relay_latency
        .as_ref()
        .expect("relay latency was read");
    assert!(latency.frames > 0, "{shown}");
    assert!(
        shown.contains("relay latency:")
            && shown.contains("estimated from the sidecar's histogram buckets"),
        "{shown}"
    );
    assert!(shown.contains("direction"), "{shown}");
}

/// The campaign completed: the answering targets `done` in one attempt, the busy and the
/// unanswered one `failed` with their reason after both attempts; the summary's section
/// shows the counts and one line per target.
fn assert_campaign_ran(summary: &Summary) {
    let shown = summary.to_string();
    let campaign = summary.campaign.as_ref().expect("the campaign ran");
    assert_eq!(
        campaign.state,
        pb::CampaignState::Completed as i32,
        "{shown}"
    );
    let p = &campaign.progress;
    assert_eq!((p.total, p.done, p.failed), (4, 2, 2), "{shown}");
    assert_eq!(campaign.targets.len(), TARGETS.len(), "{shown}");
    for planned in TARGETS {
        let target = campaign.target(planned.phone).expect("every target listed");
        assert_eq!(target.name, planned.name);
        assert_eq!(target.variables["plan"], planned.plan);
        let code = target
            .last_error
            .as_ref()
            .map(|e| e.code.as_str())
            .unwrap_or_default();
        let (state, attempts, error) = match planned.answer {
            Answer::Talks => (pb::TargetState::Done, 1, ""),
            Answer::Busy => (pb::TargetState::Failed, MAX_ATTEMPTS, "call.busy"),
            Answer::NoAnswer => (pb::TargetState::Failed, MAX_ATTEMPTS, "call.no_answer"),
        };
        assert_eq!(
            (target.state, target.attempts, code),
            (state as i32, attempts, error),
            "{}: {shown}",
            planned.phone
        );
        let line = shown
            .lines()
            .find(|l| l.starts_with(planned.phone))
            .unwrap_or_else(|| panic!("a line for {}: {shown}", planned.phone));
        let words: Vec<&str> = line.split_whitespace().collect();
        let state_name = if state == pb::TargetState::Done {
            "done"
        } else {
            "failed"
        };
        let attempts = attempts.to_string();
        assert_eq!(
            words[..4],
            [planned.phone, planned.name, state_name, attempts.as_str()],
            "{line}"
        );
        assert!(error.is_empty() || line.contains(error), "{line}");
    }
    assert!(
        shown.contains(&format!(
            "== campaign {:?} ({}): completed after",
            campaign.name, campaign.id
        )),
        "{shown}"
    );
    assert!(shown.contains("targets: 4 (done 2, failed 2)"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_places_inbound_and_outbound_calls_and_summarizes_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let summary = run(
        options(ControlPlane::Embedded(data), 2),
        std::future::pending(),
    )
    .await
    .unwrap();
    let shown = summary.to_string();
    use pb::CallDirection::{Inbound, Outbound};
    assert_ran(&summary, &[Inbound, Outbound, Inbound], true);
    assert_campaign_ran(&summary);
    let kinds: Vec<CallKind> = summary.calls.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [CallKind::Plain, CallKind::BargeIn, CallKind::AiUnavailable]
    );
    assert_eq!(summary.calls[0].end_reason, "caller_hung_up", "{shown}");

    // The outbound call was dialled by the control plane, answered, and talked through:
    // its transcript is stored, and it is the barge-in call, handled on both sides.
    let outbound = &summary.calls[1];
    assert!(outbound.call_sid.starts_with("CA"), "{shown}");
    assert!(summary.barge_ins >= 1, "{shown}");
    assert!(outbound.clears >= 1, "{shown}");
    assert_eq!(
        summary.transcript_of.as_deref(),
        Some(outbound.call_id.as_str())
    );
    assert!(
        summary.transcript.iter().any(|l| l.role == "caller")
            && summary.transcript.iter().any(|l| l.role == "assistant"),
        "{shown}"
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
    assert!(
        matches!(&summary.data, DataLocation::Embedded(dir) if shown.contains(&dir.display().to_string())),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_stops_everything_when_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let interrupt = tokio::time::sleep(Duration::from_secs(3));
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        run(options(ControlPlane::Embedded(data.clone()), 2), interrupt),
    )
    .await
    .expect("the demo stops promptly");
    assert!(outcome.is_err(), "interrupted");
    // The store was closed: it opens again, with no campaign left to dial.
    use switchboard_control_plane::domain::CampaignState;
    use switchboard_control_plane::store::{EmbeddedStore, PageRequest, Store};
    let reopened = EmbeddedStore::open(&data);
    assert!(reopened.is_ok(), "{:?}", reopened.err());
    let campaigns = reopened
        .unwrap()
        .list_campaigns(None, &PageRequest::new(100, String::new()))
        .await
        .unwrap()
        .items;
    for campaign in campaigns {
        assert!(
            matches!(
                campaign.state,
                CampaignState::Canceled | CampaignState::Completed
            ),
            "{:?}",
            campaign.state
        );
    }
}

/// `uri` with its database (the path) replaced by `database`.
fn with_database(uri: &str, database: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("a mongodb URI");
    let (hosts, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let options = tail.split_once('?').map(|(_, o)| o).unwrap_or("");
    let options = if options.is_empty() {
        String::new()
    } else {
        format!("?{options}")
    };
    format!("{scheme}://{hosts}/{database}{options}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mongodb_the_demo_records_its_calls_there() {
    #[allow(clippy::disallowed_methods)] // the test reads its environment, as the harness does
    let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").unwrap_or_default();
    if uri.is_empty() {
        #[allow(clippy::disallowed_methods)]
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
        assert!(
            !in_ci,
            "MongoDB tests must run in CI: set SWITCHBOARD_TEST_MONGODB_URI"
        );
        eprintln!("note: SWITCHBOARD_TEST_MONGODB_URI is not set; skipping the demo on MongoDB");
        return;
    }
    let database = format!("sb_demo_{}", std::process::id());
    let uri = with_database(&uri, &database);
    let summary = run(options(ControlPlane::Mongo(uri), 2), std::future::pending())
        .await
        .unwrap();
    use pb::CallDirection::{Inbound, Outbound};
    assert_ran(&summary, &[Inbound, Outbound, Inbound], true);
    assert_campaign_ran(&summary);
    assert_eq!(summary.data, DataLocation::Mongo { database });
    assert!(
        !summary.to_string().contains("mongodb://"),
        "the URI may hold credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_external_control_plane_every_call_dials_in_with_the_token() {
    use switchboard_control_plane::config::{Config, Secret};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_test(dir.path().to_path_buf());
    config.api_token = Some(Secret::new("demo-test-token"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchboard_control_plane::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let without_token = run(
        options(ControlPlane::External(url.clone()), 2),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{without_token:#}").contains("--control-plane-token"),
        "{without_token:#}"
    );

    let summary = run(
        Options {
            token: Some("demo-test-token".into()),
            ..options(ControlPlane::External(url.clone()), 2)
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    use pb::CallDirection::Inbound;
    assert_ran(&summary, &[Inbound, Inbound, Inbound], false);
    assert_eq!(summary.data, DataLocation::External { url });
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.starts_with("outbound calls skipped")),
        "{summary}"
    );
    assert!(summary.campaign.is_none(), "{summary}");
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.starts_with("campaign skipped")),
        "{summary}"
    );
    assert!(!summary.to_string().contains("== campaign"), "{summary}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_control_plane_is_reached_over_mutual_tls_with_a_private_ca() {
    use switchboard_control_plane::config::{Config, ENV_TLS_CERT, ENV_TLS_CLIENT_CA, ENV_TLS_KEY};
    use switchboard_demo::ClientTls;
    use switchboard_sim::tls::TestCa;

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("demo test CA");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let (cert, key) = ca.issue_for_loopback().write(dir.path(), "cp").unwrap();
    let (client_cert, client_key) = ca.issue(&["demo"]).write(dir.path(), "demo").unwrap();
    let tls_vars = [
        (ENV_TLS_CERT, cert),
        (ENV_TLS_KEY, key),
        (ENV_TLS_CLIENT_CA, ca_file.clone()),
    ];
    let tls = Config::from_lookup(|name| {
        let (_, path) = tls_vars.iter().find(|(var, _)| *var == name)?;
        Some(path.display().to_string())
    })
    .unwrap()
    .tls;
    let mut config = Config::for_test(dir.path().join("data"));
    config.tls = tls;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchboard_control_plane::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let untrusted = run(
        options(ControlPlane::External(url.clone()), 1),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{untrusted:#}").contains("connect to the control plane"),
        "{untrusted:#}"
    );

    let summary = run(
        Options {
            tls: ClientTls {
                ca_file: Some(ca_file),
                client_cert: Some(client_cert),
                client_key: Some(client_key),
            },
            ..options(ControlPlane::External(url.clone()), 1)
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    use pb::CallDirection::Inbound;
    assert_ran(&summary, &[Inbound, Inbound], false);
    assert_eq!(summary.data, DataLocation::External { url });
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_API_TOKEN")
        .output()
        .expect("the binary runs")
}

#[test]
fn flags_that_exclude_each_other_are_refused_with_a_clear_message() {
    let refused = [
        (
            vec![
                "demo",
                "--control-plane",
                "http://127.0.0.1:1",
                "--mongodb",
                "mongodb://127.0.0.1:1",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "demo",
                "--data",
                "/tmp/x",
                "--control-plane",
                "http://127.0.0.1:1",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "demo",
                "--data",
                "/tmp/x",
                "--mongodb",
                "mongodb://127.0.0.1:1",
            ],
            "cannot be used with",
        ),
        (
            vec!["demo", "--mongodb", "postgres://127.0.0.1:1"],
            "must be a mongodb:// or mongodb+srv:// URI",
        ),
        (
            vec!["demo", "--control-plane", "grpc://cp.example.com"],
            "must be an http:// or https:// URL",
        ),
        (
            vec!["demo", "--control-plane-ca", "/tmp/ca.crt"],
            "--control-plane <URL>",
        ),
    ];
    for (args, message) in refused {
        let output = switchboard(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
