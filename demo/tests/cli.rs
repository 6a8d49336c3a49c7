//! The operator commands, run as the built binary against a control plane in this
//! process on a temporary embedded store: a campaign created from a CSV file with bad
//! lines (each reported by line, the rest stored with their variables), read back,
//! listed, paused, resumed, re-paced, canceled and watched to its summary; the
//! do-not-call list; the bearer token. Nothing dials there: the campaign starts
//! tomorrow, and its targets stay `pending`. One campaign is dialled to completion: on the
//! demo's services (a control plane whose Twilio account is the simulator's fake REST
//! API, the sidecar that answers the calls and forwards Twilio's status callbacks).

use std::collections::HashMap;
use std::process::Output;

use switchboard_control_plane::config::{Config, Secret};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// A control plane on `127.0.0.1:0` for one test.
struct Plane {
    url: String,
    channel: Channel,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Plane {
    async fn start(token: Option<&str>) -> Plane {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_test(dir.path().join("data"));
        config.twilio.max_cps = 10;
        config.api_token = token.map(Secret::new);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            switchboard_control_plane::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let channel = Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        Plane {
            url,
            channel,
            stop,
            task,
            dir,
        }
    }

    fn campaigns(&self) -> CampaignServiceClient<Channel> {
        CampaignServiceClient::new(self.channel.clone())
    }

    /// The sample agent, created through the API.
    async fn agent(&self) -> pb::AgentSettings {
        let agent = switchboard_demo::AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT)
            .unwrap()
            .to_proto();
        AgentSettingsServiceClient::new(self.channel.clone())
            .create_agent_settings(pb::CreateAgentSettingsRequest {
                agent_settings: Some(agent),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Writes `text` to a file in the test's directory.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Runs the binary with `args` against this control plane (no token unless given).
    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[]).await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        run_at(&self.url, args, env).await
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Runs the binary with `args` against the control plane at `url`.
async fn run_at(url: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(args)
        .env("SWITCHBOARD_CONTROL_PLANE", url)
        .env_remove("SWITCHBOARD_API_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Run::from(output, args)
}

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output, args: &[&str]) -> Run {
        let run = Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        };
        eprintln!(
            "$ switchboard {}\n-> {:?}\n{}{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, Some(code), "{}\n{}", self.stdout, self.stderr);
        self
    }
}

/// The value of the `name  value` line of a summary.
fn value_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            let (first, rest) = line.trim_start().split_once(' ')?;
            (first == name).then(|| rest.trim())
        })
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{text}"))
}

/// Five good lines; a bad phone on line 4 and none on line 6. A quoted name holds a
/// comma, an empty cell leaves the variable to the campaign.
const TARGETS: &str = "\u{feff}phone,name,key,plan,due\n\
+14155550101,Ada,a-1,gold,2026-12-01\n\
+14155550102,\"Lovelace, Bob\",a-2,silver,\n\
+1-555,Cy,a-3,gold,2026-12-03\n\
+14155550104,Di,a-4,bronze,2026-12-04\n\
,Ed,a-5,gold,2026-12-05\n\
+14155550106,Flo,a-6,gold,2026-12-06\n\
+14155550107,Gus,a-7,silver,2026-12-07\n";

async fn targets(plane: &Plane, id: &str) -> Vec<pb::CampaignTarget> {
    plane
        .campaigns()
        .list_campaign_targets(pb::ListCampaignTargetsRequest {
            campaign_id: id.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .targets
}

async fn campaign(plane: &Plane, id: &str) -> pb::Campaign {
    plane
        .campaigns()
        .get_campaign(pb::GetCampaignRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_created_from_csv_steered_and_watched_to_its_summary() {
    let plane = Plane::start(None).await;
    let agent = plane.agent().await;
    let csv = plane.file("renewals.csv", TARGETS);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    #[rustfmt::skip]
    let created = plane
        .run(&[
            "campaign", "create", "--agent", &agent.id,
            "--from", "+14155550100", "--from", "+14155550111",
            "--cps", "2", "--max-concurrent", "20", "--csv", &csv, "--name", "Renewals",
            "--max-attempts", "3", "--retry-on", "busy,no-answer", "--backoff", "60s",
            "--window", "09:00-18:00", "--time-zone", "Asia/Tokyo", "--weekdays", "1-5",
            "--start-at", &tomorrow, "--var", "greeting=hello", "--var", "plan=basic",
        ])
        .await
        .expect(2);
    // Each refused line by number, with the field the control plane named; the rest in.
    assert!(
        created
            .stderr
            .contains(r#"line 4: targets[2].phone: "+1-555" is not E.164"#),
        "{}",
        created.stderr
    );
    assert!(created.stderr.contains("line 6: phone is empty"));
    let refused: Vec<&str> = created
        .stderr
        .lines()
        .filter(|l| l.starts_with("line "))
        .collect();
    assert_eq!(refused.len(), 2, "{}", created.stderr);

    assert_eq!(value_of(&created.stdout, "accepted"), "5");
    assert_eq!(value_of(&created.stdout, "duplicates"), "0");
    assert_eq!(value_of(&created.stdout, "invalid"), "2");
    let id = value_of(&created.stdout, "campaign").to_owned();
    assert!(
        created
            .stderr
            .contains("2 lines refused; the campaign holds the others")
            && created.stderr.contains(&format!(
                "switchboard campaign add-targets {id} --csv {csv}"
            )),
        "{}",
        created.stderr
    );

    let stored = campaign(&plane, &id).await;
    assert_eq!(stored.name, "Renewals");
    assert_eq!(stored.agent_id, agent.id);
    assert_eq!(stored.from_numbers, ["+14155550100", "+14155550111"]);
    assert_eq!(stored.state, pb::CampaignState::Scheduled as i32);
    let pacing = stored.pacing.unwrap();
    assert_eq!(
        (pacing.calls_per_second, pacing.max_concurrent_calls),
        (2.0, 20)
    );
    let window = stored.window.clone().unwrap();
    assert_eq!(
        (
            window.time_zone.as_str(),
            window.start_minute,
            window.end_minute
        ),
        ("Asia/Tokyo", 540, 1080)
    );
    assert_eq!(window.weekdays, [1, 2, 3, 4, 5]);
    let retry = stored.retry.clone().unwrap();
    assert_eq!(retry.max_attempts, 3);
    assert_eq!(
        retry.retry_on,
        [pb::CallStatus::Busy as i32, pb::CallStatus::NoAnswer as i32]
    );
    assert_eq!(retry.backoff.unwrap().seconds, 60);
    assert_eq!(stored.variables["greeting"], "hello");
    assert_eq!(stored.progress.unwrap().total, 5);

    let held = targets(&plane, &id).await;
    let by_key: HashMap<&str, &pb::CampaignTarget> =
        held.iter().map(|t| (t.target_key.as_str(), t)).collect();
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["a-1", "a-2", "a-4", "a-6", "a-7"]);
    assert_eq!(by_key["a-1"].phone, "+14155550101");
    assert_eq!(
        by_key["a-1"].variables,
        HashMap::from([
            ("plan".to_owned(), "gold".to_owned()),
            ("due".to_owned(), "2026-12-01".to_owned()),
        ])
    );
    assert_eq!(by_key["a-2"].name, "Lovelace, Bob");
    assert_eq!(
        by_key["a-2"].variables,
        HashMap::from([("plan".to_owned(), "silver".to_owned())])
    );

    // The same lines again are duplicates (still refused: 4 and 6); new ones go in.
    let more = plane.file(
        "more.csv",
        "phone,key\n+14155550108,a-8\n+14155550101,a-1\n",
    );
    let added = plane
        .run(&["campaign", "add-targets", &id, "--csv", &more])
        .await
        .expect(0);
    assert_eq!(value_of(&added.stdout, "accepted"), "1");
    assert_eq!(value_of(&added.stdout, "duplicates"), "1");
    assert_eq!(value_of(&added.stdout, "campaign"), id);
    let again = plane
        .run(&["campaign", "add-targets", &id, "--csv", &csv])
        .await
        .expect(2);
    assert_eq!(value_of(&again.stdout, "duplicates"), "5");
    assert!(again.stderr.contains("line 4:") && again.stderr.contains("line 6:"));

    let listed = plane.run(&["campaign", "list"]).await.expect(0);
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(
        row.contains("scheduled") && row.contains("Renewals"),
        "{row}"
    );
    let running = plane
        .run(&["campaign", "list", "--state", "running"])
        .await
        .expect(0);
    assert!(!running.stdout.contains(&id), "{}", running.stdout);

    let got = plane.run(&["campaign", "get", &id]).await.expect(0);
    for expected in [
        "Renewals",
        "2 calls/s, at most 20 at once",
        "09:00-18:00 Asia/Tokyo, weekdays 1,2,3,4,5",
        "3 attempts, again on busy, no-answer after 1m",
        "0 of 6 targets finished",
        "greeting=hello; plan=basic",
    ] {
        assert!(
            got.stdout.contains(expected),
            "{expected:?} in\n{}",
            got.stdout
        );
    }
    assert_eq!(value_of(&got.stdout, "pending"), "6");

    let table = plane.run(&["campaign", "targets", &id]).await.expect(0);
    assert_eq!(table.stdout.lines().count(), 1 + 6, "{}", table.stdout);
    assert!(table.stdout.starts_with("KEY "));
    let ada = table
        .stdout
        .lines()
        .find(|l| l.starts_with("a-1 "))
        .unwrap();
    assert!(
        ada.contains("+14155550101")
            && ada.contains("pending")
            && ada.contains("due=2026-12-01; plan=gold"),
        "{ada}"
    );
    let failed = plane
        .run(&["campaign", "targets", &id, "--state", "failed"])
        .await
        .expect(0);
    assert_eq!(failed.stdout.lines().count(), 1, "{}", failed.stdout);

    // Pacing: the named field changes, the other keeps its value.
    let updated = plane
        .run(&["campaign", "update", &id, "--cps", "3"])
        .await
        .expect(0);
    assert!(updated.stdout.contains("3 calls/s, at most 20 at once"));
    let pacing = campaign(&plane, &id).await.pacing.unwrap();
    assert_eq!(
        (pacing.calls_per_second, pacing.max_concurrent_calls),
        (3.0, 20)
    );
    let zero = plane
        .run(&["campaign", "update", &id, "--cps", "0"])
        .await
        .expect(1);
    assert!(
        zero.stderr.contains("pacing.calls_per_second"),
        "{}",
        zero.stderr
    );
    let too_fast = plane
        .run(&["campaign", "update", &id, "--cps", "50"])
        .await
        .expect(1);
    assert!(
        too_fast.stderr.contains("INVALID_ARGUMENT")
            && too_fast.stderr.contains("campaign.pacing.calls_per_second"),
        "{}",
        too_fast.stderr
    );
    assert_eq!(
        campaign(&plane, &id).await.pacing.unwrap().calls_per_second,
        3.0
    );

    let paused = plane.run(&["campaign", "pause", &id]).await.expect(0);
    assert_eq!(paused.stdout.trim(), format!("campaign {id}: paused"));
    let resumed = plane.run(&["campaign", "resume", &id]).await.expect(0);
    assert_eq!(resumed.stdout.trim(), format!("campaign {id}: scheduled"));
    let canceled = plane.run(&["campaign", "cancel", &id]).await.expect(0);
    assert_eq!(canceled.stdout.trim(), format!("campaign {id}: canceled"));
    let refused = plane.run(&["campaign", "pause", &id]).await.expect(1);
    assert!(
        refused
            .stderr
            .contains(&format!("pause campaign {id}: FAILED_PRECONDITION:"))
            && refused.stderr.contains("cannot pause a canceled campaign"),
        "{}",
        refused.stderr
    );

    // Over: watch prints where it stands once (no control codes in a pipe), then the
    // summary, and exits.
    let watched = plane
        .run(&["campaign", "watch", &id, "--interval", "100ms"])
        .await
        .expect(0);
    assert!(!watched.stdout.contains('\x1b'), "{:?}", watched.stdout);
    assert!(
        watched
            .stdout
            .contains(&format!("campaign {id} (\"Renewals\") canceled")),
        "{}",
        watched.stdout
    );
    assert_eq!(value_of(&watched.stdout, "total"), "6");
    assert_eq!(value_of(&watched.stdout, "canceled"), "6");
    assert!(watched.stdout.contains("no target failed or was skipped"));
    assert_eq!(
        watched
            .stdout
            .lines()
            .filter(|l| l.contains(" finished; "))
            .count(),
        1,
        "{}",
        watched.stdout
    );
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused_before_anything_is_stored() {
    let plane = Plane::start(None).await;
    let agent = plane.agent().await;
    let csv = plane.file("t.csv", "phone\n+14155550101\n");
    let base = [
        "campaign",
        "create",
        "--agent",
        &agent.id,
        "--from",
        "+14155550100",
    ];
    let zero = plane
        .run(&[&base[..], &["--csv", &csv, "--cps", "0"]].concat())
        .await
        .expect(1);
    assert!(
        zero.stderr.contains("pacing.calls_per_second"),
        "{}",
        zero.stderr
    );
    let headless = plane.file("h.csv", "name,plan\nAda,gold\n");
    let no_phone = plane
        .run(&[&base[..], &["--csv", &headless]].concat())
        .await
        .expect(1);
    assert!(
        no_phone.stderr.contains("no `phone` column"),
        "{}",
        no_phone.stderr
    );
    let missing = plane
        .run(&[&base[..], &["--csv", "/nonexistent/targets.csv"]].concat())
        .await
        .expect(1);
    assert!(missing.stderr.contains("/nonexistent/targets.csv"));
    // The control plane names a bad field of the campaign.
    let bad_zone = plane
        .run(
            &[
                &base[..],
                &[
                    "--csv",
                    &csv,
                    "--window",
                    "09:00-18:00",
                    "--time-zone",
                    "Mars/Olympus",
                ],
            ]
            .concat(),
        )
        .await
        .expect(1);
    assert!(
        bad_zone.stderr.contains("campaign.window.time_zone"),
        "{}",
        bad_zone.stderr
    );
    let none = plane
        .campaigns()
        .list_campaigns(pb::ListCampaignsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(none.campaigns.is_empty(), "{:?}", none.campaigns);

    // A file of good lines only: exit 0.
    let good = plane
        .run(&[&base[..], &["--csv", &csv]].concat())
        .await
        .expect(0);
    assert_eq!(value_of(&good.stdout, "accepted"), "1");
    assert!(good.stderr.is_empty(), "{}", good.stderr);
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_do_not_call_list_is_added_to_checked_listed_and_removed_from() {
    let plane = Plane::start(None).await;
    let added = plane
        .run(&[
            "dnc",
            "add",
            "+14155550199",
            "+1 415 555 0198",
            "--reason",
            "asked",
        ])
        .await
        .expect(0);
    assert_eq!(
        added.stdout.trim(),
        "added 2 of 2 numbers to the do-not-call list"
    );
    let checked = plane
        .run(&["dnc", "check", "+14155550199", "+14155550197"])
        .await
        .expect(0);
    let row = |text: &str, phone: &str| {
        text.lines()
            .find(|l| l.starts_with(phone))
            .unwrap_or_else(|| panic!("{phone} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(row(&checked.stdout, "+14155550199").starts_with("+14155550199 yes "));
    assert!(row(&checked.stdout, "+14155550199").ends_with(" asked"));
    assert_eq!(row(&checked.stdout, "+14155550197"), "+14155550197 no - -");
    let listed = plane.run(&["dnc", "list"]).await.expect(0);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    assert!(row(&listed.stdout, "+14155550198").ends_with(" asked"));
    let removed = plane
        .run(&["dnc", "remove", "+14155550199"])
        .await
        .expect(0);
    assert_eq!(
        removed.stdout.trim(),
        "removed 1 of 1 numbers from the do-not-call list"
    );
    let checked = plane.run(&["dnc", "check", "+14155550199"]).await.expect(0);
    assert!(row(&checked.stdout, "+14155550199").starts_with("+14155550199 no"));
    let bad = plane.run(&["dnc", "add", "12345"]).await.expect(1);
    assert!(
        bad.stderr.contains("INVALID_ARGUMENT") && bad.stderr.contains("phones[0]"),
        "{}",
        bad.stderr
    );
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_sent_as_bearer_metadata_and_its_absence_explained() {
    let plane = Plane::start(Some("cli-test-token")).await;
    let refused = plane.run(&["campaign", "list"]).await.expect(1);
    assert!(
        refused.stderr.contains("UNAUTHENTICATED") && refused.stderr.contains("--token"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("cli-test-token"));
    plane
        .run(&["campaign", "list", "--token", "cli-test-token"])
        .await
        .expect(0);
    plane
        .run_with(
            &["dnc", "list"],
            &[("SWITCHBOARD_API_TOKEN", "cli-test-token")],
        )
        .await
        .expect(0);
    // The options go before the subcommand too.
    plane
        .run(&["campaign", "--token", "cli-test-token", "list"])
        .await
        .expect(0);
    let mut client = plane.campaigns();
    let mut request = tonic::Request::new(pb::ListCampaignsRequest::default());
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer cli-test-token"),
    );
    client.list_campaigns(request).await.unwrap();
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_control_plane_is_reported_with_its_url() {
    let plane = Plane::start(None).await;
    let unreachable = plane
        .run(&["campaign", "list", "--control-plane", "http://127.0.0.1:1"])
        .await
        .expect(1);
    assert!(
        unreachable
            .stderr
            .contains("connect to the control plane at http://127.0.0.1:1"),
        "{}",
        unreachable.stderr
    );
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_in_requests_of_ten_thousand_with_lines_still_told_apart() {
    let plane = Plane::start(None).await;
    let agent = plane.agent().await;
    // 10,005 targets; line 10,004 (the third target of the second request) is bad.
    let mut text = String::from("phone,n\n");
    for i in 0..10_005u32 {
        if i == 10_002 {
            text.push_str("+1-555,bad\n");
        } else {
            text.push_str(&format!("+1415{i:07},{i}\n"));
        }
    }
    let csv = plane.file("large.csv", &text);
    #[rustfmt::skip]
    let created = plane
        .run(&["campaign", "create", "--agent", &agent.id, "--from", "+14155550100", "--csv", &csv])
        .await
        .expect(2);
    assert!(
        created
            .stderr
            .contains(r#"line 10004: targets[2].phone: "+1-555" is not E.164"#),
        "{}",
        created.stderr
    );
    assert_eq!(value_of(&created.stdout, "accepted"), "10004");
    let id = value_of(&created.stdout, "campaign");
    assert_eq!(campaign(&plane, id).await.progress.unwrap().total, 10_004);
    plane.stop().await;
}

/// Six good lines and, on line 6, a bad phone. Bo's line is busy and Cy's does not
/// answer; the others answer, stay silent and hang up.
const DIALLED: &str = "phone,name,plan\n\
+14155556001,Ada,gold\n\
+14155556002,Bo,silver\n\
+14155556003,Cy,gold\n\
+14155556004,Di,bronze\n\
+1-555,Ed,gold\n\
+14155556005,Flo,gold\n\
+14155556006,Gus,silver\n";
const BUSY: &str = "+14155556002";
const NO_ANSWER: &str = "+14155556003";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_from_csv_is_dialled_through_twilio_and_watched_to_completion() {
    use std::time::Duration;
    use switchboard_demo::services::{Services, Setup};
    use switchboard_sim::twilio::{Outcome, OutcomeScript, Outcomes, TalkScript};

    let dir = tempfile::tempdir().unwrap();
    let outcomes = Outcomes::answer_all(TalkScript::silent().hang_up_after(Duration::from_secs(1)))
        .number(BUSY, OutcomeScript::after_ring(Outcome::Busy))
        .number(NO_ANSWER, OutcomeScript::after_ring(Outcome::NoAnswer));
    let services = Services::start(&Setup {
        control_plane: switchboard_demo::ControlPlane::Embedded(dir.path().join("data")),
        token: None,
        tls: Default::default(),
        outcomes,
    })
    .await
    .unwrap();
    let url = format!("http://{}", services.control_plane_addr);
    let agent = switchboard_demo::AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT)
        .unwrap()
        .to_proto();
    let agent = AgentSettingsServiceClient::new(services.channel.clone())
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent),
        })
        .await
        .unwrap()
        .into_inner();
    let csv = dir.path().join("dialled.csv");
    std::fs::write(&csv, DIALLED).unwrap();
    // `create` stores the campaign, then its targets: a campaign running with no target
    // yet could be completed in between. It starts a few seconds on, once they are in.
    let start_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    #[rustfmt::skip]
    let created = run_at(&url, &[
        "campaign", "create", "--agent", &agent.id, "--from", "+14155550100",
        "--cps", "5", "--max-concurrent", "5", "--csv", &csv.display().to_string(),
        "--name", "Dialled", "--max-attempts", "2", "--retry-on", "busy", "--backoff", "1s",
        "--start-at", &start_at, "--watch",
    ], &[])
    .await
    .expect(2);

    // The bad line is reported by number; the others were dialled.
    let refused: Vec<&str> = created
        .stderr
        .lines()
        .filter(|l| l.starts_with("line "))
        .collect();
    assert_eq!(refused.len(), 1, "{}", created.stderr);
    assert!(
        refused[0].starts_with(r#"line 6: targets[4].phone: "+1-555" is not E.164"#),
        "{}",
        created.stderr
    );
    assert_eq!(value_of(&created.stdout, "accepted"), "6");
    assert_eq!(value_of(&created.stdout, "invalid"), "1");
    let id = value_of(&created.stdout, "campaign").to_owned();

    // The watch ends with the summary: completed, the count of each state, then the
    // failed targets with their attempts and reasons, and nothing after them.
    let heading = format!("campaign {id} (\"Dialled\") completed: 4 of 6 targets done");
    let (progress, summary) = created
        .stdout
        .split_once(&heading)
        .unwrap_or_else(|| panic!("{heading:?} in\n{}", created.stdout));
    assert!(
        progress.lines().any(|l| l.contains(" running: ")),
        "{progress}"
    );
    for (state, count) in [
        ("done", "4"),
        ("failed", "2"),
        ("pending", "0"),
        ("skipped", "0"),
        ("total", "6"),
    ] {
        assert_eq!(value_of(summary, state), count, "{state} in\n{summary}");
    }
    // After the phone: NAME, STATE, ATTEMPTS, LAST ERROR (`code: message`), VARIABLES.
    let rows: Vec<Vec<&str>> = summary
        .lines()
        .skip_while(|l| !l.starts_with("failed and skipped targets:"))
        .skip(2)
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let phone = words.iter().rposition(|w| w.starts_with('+')).unwrap();
            let mut row = words[phone..phone + 5].to_vec();
            row[4] = row[4].trim_end_matches(':');
            row
        })
        .collect();
    assert_eq!(
        rows,
        [
            [BUSY, "Bo", "failed", "2", "call.busy"],
            [NO_ANSWER, "Cy", "failed", "1", "call.no_answer"],
        ],
        "{summary}"
    );

    // As stored: completed, the answered targets done in one call each.
    let mut campaigns = CampaignServiceClient::new(services.channel.clone());
    let stored = campaigns
        .get_campaign(pb::GetCampaignRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.state, pb::CampaignState::Completed as i32);
    let done = campaigns
        .list_campaign_targets(pb::ListCampaignTargetsRequest {
            campaign_id: id,
            state: pb::TargetState::Done as i32,
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .targets;
    let mut phones: Vec<(&str, u32)> = done
        .iter()
        .map(|t| (t.phone.as_str(), t.attempts))
        .collect();
    phones.sort_unstable();
    assert_eq!(
        phones,
        [
            ("+14155556001", 1),
            ("+14155556004", 1),
            ("+14155556005", 1),
            ("+14155556006", 1),
        ]
    );
    services.stop().await;
}
