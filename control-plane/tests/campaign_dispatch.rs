//! The campaign dispatcher against the simulator's fake of Twilio's REST API (a real
//! HTTP server that records when each call was created and answers each number as
//! told), with a stand-in for the sidecar's webhooks that forwards Twilio's status
//! callbacks to the control plane, as the sidecar does.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

#[allow(unused_imports)]
use support::*;
use switchboard_sim::twilio::{FakeTwilio, Outcome, OutcomeScript, Outcomes, RestConfig};

const ACCOUNT_SID: &str = "AC0000000000000000000000000000c0d1";
const AUTH_TOKEN: &str = "twilio-token";
/// Long enough for the slowest campaign below.
const PATIENCE: Duration = Duration::from_secs(120);

/// The fake on `127.0.0.1:0`; its base URL.
async fn serve_fake(fake: &FakeTwilio) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(listener, std::future::pending()));
    url
}

/// The sidecar's webhooks as far as a dialled call needs them: the voice webhook hangs
/// up at once (the callee answered: the call is done), the status webhook forwards
/// each callback with `ReportTwilioStatus` to the control plane at `grpc`. Its voice
/// webhook URL.
async fn serve_webhooks(grpc: Grpc) -> String {
    use axum::extract::{Query, State};
    async fn voice() -> &'static str {
        "<Response><Hangup/></Response>"
    }
    async fn status(
        State(grpc): State<Grpc>,
        Query(query): Query<HashMap<String, String>>,
        body: String,
    ) -> axum::http::StatusCode {
        let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
        let Some(grpc) = grpc.get().cloned() else {
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        };
        let field = |k: &str| form.get(k).cloned().unwrap_or_default();
        let request = pb::ReportTwilioStatusRequest {
            call_id: query.get("callId").cloned().unwrap_or_default(),
            call_sid: field("CallSid"),
            call_status: field("CallStatus"),
            sequence_number: field("SequenceNumber").parse().unwrap_or(0),
            error_code: field("ErrorCode"),
            error_message: field("ErrorMessage"),
            ..Default::default()
        };
        match CallChannelServiceClient::new(grpc)
            .report_twilio_status(request)
            .await
        {
            Ok(_) => axum::http::StatusCode::NO_CONTENT,
            Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    let app = axum::Router::new()
        .route("/api/twilio/voice", axum::routing::post(voice))
        .route("/api/twilio/status", axum::routing::post(status))
        .with_state(grpc);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/twilio/voice", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The control plane's channel, once it is up.
type Grpc = Arc<std::sync::OnceLock<Channel>>;

/// A control plane dialling through `fake`, with `max_cps` as the account's limit.
struct Dialling {
    server: TestServer,
    fake: FakeTwilio,
    agent_id: String,
}

async fn dialling(outcomes: Outcomes, max_cps: usize) -> Dialling {
    let mut config = RestConfig::new(ACCOUNT_SID, AUTH_TOKEN);
    config.outcomes = outcomes;
    config.keep_audio = false;
    let fake = FakeTwilio::new(config);
    let twilio_url = serve_fake(&fake).await;
    // The webhooks need the server's channel, the server needs their URL.
    let grpc = Grpc::default();
    let voice_url = reqwest::Url::parse(&serve_webhooks(grpc.clone()).await).unwrap();
    let server = TestServer::start_with(move |c| {
        c.twilio.account_sid = Some(ACCOUNT_SID.into());
        c.twilio.auth_token = Some(Secret::new(AUTH_TOKEN.to_owned()));
        c.twilio.api_url = twilio_url;
        c.twilio.max_cps = max_cps;
        let mut status_url = voice_url.clone();
        status_url.set_path("/api/twilio/status");
        c.webhooks.voice_url = Some(voice_url);
        c.webhooks.status_url = Some(status_url);
    })
    .await;
    let _ = grpc.set(server.channel.clone());
    let agent = create_agent(&server, agent("Campaigner", &unique_number())).await;
    Dialling {
        server,
        fake,
        agent_id: agent.id,
    }
}

fn campaign(agent_id: &str, cps: f64, max_concurrent: u32) -> pb::Campaign {
    pb::Campaign {
        name: "Renewals".into(),
        agent_id: agent_id.into(),
        from_numbers: vec!["+14155550100".into(), "+14155550101".into()],
        pacing: Some(pb::Pacing {
            calls_per_second: cps,
            max_concurrent_calls: max_concurrent,
        }),
        variables: HashMap::from([("plan".to_owned(), "gold".to_owned())]),
        ..Default::default()
    }
}

fn target(phone: &str, name: &str) -> pb::CampaignTarget {
    pb::CampaignTarget {
        phone: phone.into(),
        name: name.into(),
        variables: HashMap::from([("customer_ref".to_owned(), format!("ref-{phone}"))]),
        ..Default::default()
    }
}

/// Numbers `+1555<base><i>`, `n` of them.
fn numbers(base: u32, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1555{base:03}{i:04}")).collect()
}

impl Dialling {
    async fn create(&self, c: pb::Campaign, targets: Vec<pb::CampaignTarget>) -> pb::Campaign {
        self.server
            .campaigns()
            .create_campaign(pb::CreateCampaignRequest {
                campaign: Some(c),
                targets,
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn get(&self, id: &str) -> pb::Campaign {
        self.server
            .campaigns()
            .get_campaign(pb::GetCampaignRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits for the campaign to reach `state`; fails after [`PATIENCE`].
    async fn wait_for(&self, id: &str, state: pb::CampaignState) -> pb::Campaign {
        let started = Instant::now();
        loop {
            let c = self.get(id).await;
            if c.state == state as i32 {
                return c;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "campaign never {state:?}: {:?}",
                c.progress
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn targets(&self, id: &str) -> Vec<pb::CampaignTarget> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .server
                .campaigns()
                .list_campaign_targets(pb::ListCampaignTargetsRequest {
                    campaign_id: id.into(),
                    page_size: 1000,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            all.extend(page.targets);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
    }

    /// When each call to one of `numbers` was created, as the fake recorded it (ms).
    fn creations(&self, numbers: &[String]) -> Vec<(String, u64)> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Calls.json") && r.status == 201)
            .filter_map(|r| {
                let to = r.params.iter().find(|(k, _)| k == "To")?.1.clone();
                numbers.contains(&to).then_some((to, r.at_unix_ms))
            })
            .collect()
    }
}

/// The most creations in any one-second window `[t, t + 1 s)`.
fn most_in_any_second(times: &[u64]) -> usize {
    times
        .iter()
        .map(|t| times.iter().filter(|u| **u >= *t && **u < t + 1000).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_campaign_never_exceeds_its_rate_and_calls_every_target_once() {
    let d = dialling(Outcomes::default(), 5).await;
    let phones = numbers(1, 200);
    let targets = phones.iter().map(|p| target(p, "Ann")).collect();
    let c = d.create(campaign(&d.agent_id, 5.0, 20), targets).await;
    let done = d.wait_for(&c.id, pb::CampaignState::Completed).await;
    let progress = done.progress.unwrap();
    assert_eq!((progress.total, progress.done), (200, 200), "{progress:?}");

    let creations = d.creations(&phones);
    assert_eq!(creations.len(), 200, "every target dialled exactly once");
    let mut called: Vec<&String> = creations.iter().map(|(to, _)| to).collect();
    called.sort();
    called.dedup();
    assert_eq!(called.len(), 200);
    let times: Vec<u64> = creations.iter().map(|(_, at)| *at).collect();
    assert!(
        most_in_any_second(&times) <= 5,
        "{} creations in one second",
        most_in_any_second(&times)
    );
    // Caller ids are used round-robin.
    let from: Vec<String> = d
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Calls.json"))
        .filter_map(|r| {
            r.params
                .iter()
                .find(|(k, _)| k == "From")
                .map(|(_, v)| v.clone())
        })
        .collect();
    let first = from.iter().filter(|f| *f == "+14155550100").count();
    assert!(
        (99..=101).contains(&first),
        "{first} of {} from the first number",
        from.len()
    );

    // Each answered call is a session of the campaign and target, with the target's
    // variables over the campaign's.
    let targets = d.targets(&c.id).await;
    let t = &targets[0];
    assert_eq!(t.state, pb::TargetState::Done as i32);
    assert_eq!(t.attempts, 1);
    let session = d
        .server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest {
            id: t.last_call_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.campaign_id, c.id);
    assert_eq!(session.campaign_target_id, t.id);
    assert_eq!(session.status, pb::CallStatus::Completed as i32);
    assert_eq!(
        session.variables.get("plan").map(String::as_str),
        Some("gold")
    );
    assert_eq!(
        session.variables.get("customer_ref"),
        Some(&format!("ref-{}", t.phone))
    );
    assert_eq!(session.customer.unwrap().name, "Ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_cap_holds_a_slot_from_dialing_to_the_final_status() {
    // Every call rings 600 ms, then is not answered: slots stay busy a while.
    let ringing = OutcomeScript {
        ring: Duration::from_millis(600),
        outcome: Outcome::NoAnswer,
    };
    let phones = numbers(2, 24);
    let outcomes = phones.iter().fold(Outcomes::default(), |o, p| {
        o.number(p.clone(), ringing.clone())
    });
    let d = dialling(outcomes, 20).await;
    let targets = phones.iter().map(|p| target(p, "Bo")).collect();
    let c = d.create(campaign(&d.agent_id, 20.0, 3), targets).await;
    let mut most = 0;
    let started = Instant::now();
    loop {
        let c = d.get(&c.id).await;
        let p = c.progress.unwrap();
        most = most.max(p.dialing + p.in_call);
        if c.state == pb::CampaignState::Completed as i32 {
            assert_eq!(p.failed, 24, "{p:?}");
            break;
        }
        assert!(started.elapsed() < PATIENCE, "{p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(most <= 3, "{most} calls at once over a cap of 3");
    assert_eq!(most, 3, "the cap was reached");
    let targets = d.targets(&c.id).await;
    assert!(targets
        .iter()
        .all(|t| t.last_error.as_ref().unwrap().code == "call.no_answer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_policy_and_every_target_ends_with_its_reason() {
    let busy = "+15550300001".to_owned();
    let no_answer = "+15550300002".to_owned();
    let invalid = "+15550300003".to_owned();
    let listed = "+15550300004".to_owned();
    let answers = "+15550300005".to_owned();
    let outcomes = Outcomes::default()
        .number(busy.clone(), OutcomeScript::after_ring(Outcome::Busy))
        .number(
            no_answer.clone(),
            OutcomeScript::after_ring(Outcome::NoAnswer),
        )
        .number(
            invalid.clone(),
            OutcomeScript::after_ring(Outcome::Reject {
                status: 400,
                code: 21211,
                message: "The 'To' number is not a valid phone number.".into(),
            }),
        );
    let d = dialling(outcomes, 5).await;
    d.server
        .campaigns()
        .add_do_not_call(pb::AddDoNotCallRequest {
            phones: vec![listed.clone()],
            reason: "asked not to be called".into(),
        })
        .await
        .unwrap();
    // Twilio throttles the first creation: that attempt is placed again, not spent.
    d.fake.fail_next_creates(1, 429);
    let mut c = campaign(&d.agent_id, 5.0, 5);
    c.retry = Some(pb::RetryPolicy {
        max_attempts: 3,
        retry_on: vec![pb::CallStatus::Busy as i32],
        backoff: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
    });
    let all = [&busy, &no_answer, &invalid, &listed, &answers];
    let targets = all.iter().map(|p| target(p, "Cy")).collect();
    let c = d.create(c, targets).await;
    d.wait_for(&c.id, pb::CampaignState::Completed).await;

    let by_phone: BTreeMap<String, pb::CampaignTarget> = d
        .targets(&c.id)
        .await
        .into_iter()
        .map(|t| (t.phone.clone(), t))
        .collect();
    let ended = |phone: &str| {
        let t = &by_phone[phone];
        (
            pb::TargetState::try_from(t.state).unwrap(),
            t.attempts,
            t.last_error
                .as_ref()
                .map(|e| e.code.clone())
                .unwrap_or_default(),
        )
    };
    assert_eq!(
        ended(&busy),
        (pb::TargetState::Failed, 3, "call.busy".into())
    );
    assert_eq!(
        ended(&no_answer),
        (pb::TargetState::Failed, 1, "call.no_answer".into())
    );
    assert_eq!(
        ended(&invalid),
        (pb::TargetState::Failed, 1, "twilio.21211".into())
    );
    assert_eq!(
        ended(&listed),
        (pb::TargetState::Skipped, 0, "campaign.do_not_call".into())
    );
    assert_eq!(ended(&answers).0, pb::TargetState::Done);
    assert!(by_phone[&listed]
        .last_error
        .as_ref()
        .unwrap()
        .message
        .contains("asked not to be called"));

    let phones: Vec<String> = all.iter().map(|p| (*p).clone()).collect();
    let creations = d.creations(&phones);
    let count = |p: &str| creations.iter().filter(|(to, _)| to == p).count();
    assert_eq!(count(&busy), 3);
    assert_eq!(count(&no_answer), 1);
    assert_eq!(count(&answers), 1);
    assert_eq!(count(&listed), 0, "a listed number is never dialled");
    // The busy retries waited their backoff.
    let busy_times: Vec<u64> = creations
        .iter()
        .filter(|(to, _)| *to == busy)
        .map(|(_, at)| *at)
        .collect();
    for pair in busy_times.windows(2) {
        assert!(pair[1] - pair[0] >= 1000, "{busy_times:?}");
    }
    // The throttled creation was answered 429 and repeated: one more request than calls.
    let refused = d
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/Calls.json") && r.status == 429)
        .count();
    assert_eq!(refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_a_rate_change_and_cancel_take_effect_while_running() {
    let d = dialling(Outcomes::default(), 10).await;
    let phones = numbers(4, 200);
    let targets = phones.iter().map(|p| target(p, "Di")).collect();
    let c = d.create(campaign(&d.agent_id, 2.0, 10), targets).await;
    let campaigns = d.server.campaigns();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Pause: nothing is created from a second after.
    let paused = campaigns
        .clone()
        .pause_campaign(pb::PauseCampaignRequest { id: c.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, pb::CampaignState::Paused as i32);
    let paused_at = now_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = d
        .creations(&phones)
        .into_iter()
        .filter(|(_, at)| *at > paused_at + 1000)
        .count();
    assert_eq!(late, 0, "calls created more than a second after the pause");
    let before_resume = d.creations(&phones).len();
    assert!(before_resume >= 3, "{before_resume} calls before the pause");

    // Resume at 2/s, then raise the pace to 8/s: the count grows faster.
    campaigns
        .clone()
        .resume_campaign(pb::ResumeCampaignRequest { id: c.id.clone() })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut faster = campaign(&d.agent_id, 8.0, 10);
    faster.id = c.id.clone();
    campaigns
        .clone()
        .update_campaign(pb::UpdateCampaignRequest {
            campaign: Some(faster),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["pacing".into()],
            }),
        })
        .await
        .unwrap();
    let changed_at = now_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_change: Vec<u64> = d
        .creations(&phones)
        .into_iter()
        .map(|(_, at)| at)
        .filter(|at| *at > changed_at + 500)
        .collect();
    // 2.5 s at 8/s is 20; at the old 2/s it would be 5.
    assert!(
        after_change.len() >= 12,
        "{} calls after the rate change",
        after_change.len()
    );
    assert!(most_in_any_second(&after_change) <= 8);

    // Cancel: nothing new, the waiting targets end canceled.
    let canceled = campaigns
        .clone()
        .cancel_campaign(pb::CancelCampaignRequest { id: c.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(canceled.state, pb::CampaignState::Canceled as i32);
    let canceled_at = now_ms();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let created = d.creations(&phones);
    assert_eq!(
        created
            .iter()
            .filter(|(_, at)| *at > canceled_at + 1000)
            .count(),
        0
    );
    let progress = d.get(&c.id).await.progress.unwrap();
    assert_eq!(progress.pending + progress.retry_wait, 0, "{progress:?}");
    assert_eq!(
        progress.canceled + progress.done + progress.dialing + progress.in_call,
        200,
        "{progress:?}"
    );
    assert!(progress.canceled > 100, "{progress:?}");
    assert_eq!(created.len() as u64, 200 - progress.canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_holds_dialing_until_it_opens_in_each_targets_zone() {
    use chrono::Timelike;
    let d = dialling(Outcomes::default(), 5).await;
    // The window opens at the next minute in UTC and lasts an hour; a target in
    // UTC+14 (Kiribati) is fourteen hours away from it.
    let now = chrono::Utc::now();
    let next_minute = now.hour() * 60 + now.minute() + 1;
    if next_minute + 60 > 24 * 60 {
        // Too close to midnight UTC for this window to be one span; nothing to test.
        return;
    }
    let mut c = campaign(&d.agent_id, 5.0, 5);
    c.window = Some(pb::CallWindow {
        time_zone: "Etc/UTC".into(),
        start_minute: next_minute,
        end_minute: next_minute + 60,
        weekdays: vec![],
    });
    let here = "+15550500001".to_owned();
    let far = "+15550500002".to_owned();
    let mut far_target = target(&far, "Ed");
    far_target.time_zone = "Pacific/Kiritimati".into();
    let c = d.create(c, vec![target(&here, "Ed"), far_target]).await;
    let opens_ms = (now.timestamp() / 60 + 1) as u64 * 60_000;

    let started = Instant::now();
    let created = loop {
        let created = d.creations(&[here.clone(), far.clone()]);
        if !created.is_empty() {
            break created;
        }
        assert!(started.elapsed() < Duration::from_secs(75), "never dialled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].0, here);
    assert!(
        created[0].1 >= opens_ms,
        "dialled {} ms early",
        opens_ms - created[0].1
    );
    // The far target waits for its own morning: pending, due at the opening there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let targets = d.targets(&c.id).await;
    let far_now = targets.iter().find(|t| t.phone == far).unwrap();
    assert_eq!(far_now.state, pb::TargetState::Pending as i32);
    let due = far_now.next_attempt_at.as_ref().unwrap().seconds;
    assert!(due > now.timestamp() + 3600, "due at {due}");
    assert_eq!(d.creations(&[far]).len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_campaign_streams_progress_until_the_campaign_completes() {
    let d = dialling(Outcomes::default(), 10).await;
    let phones = numbers(6, 10);
    let targets = phones.iter().map(|p| target(p, "Flo")).collect();
    let c = d.create(campaign(&d.agent_id, 10.0, 10), targets).await;
    let mut stream = d
        .server
        .campaigns()
        .watch_campaign(pb::WatchCampaignRequest {
            id: c.id.clone(),
            interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 100_000_000,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(update) = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a watch update")
        .unwrap()
    {
        seen.push(update);
    }
    let last = seen.last().unwrap();
    assert_eq!(last.state, pb::CampaignState::Completed as i32);
    assert_eq!(last.progress.unwrap().done, 10);
    assert!(seen.len() >= 3, "{} updates", seen.len());
    let unknown = d
        .server
        .campaigns()
        .watch_campaign(pb::WatchCampaignRequest {
            id: "nope".into(),
            interval: None,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}
