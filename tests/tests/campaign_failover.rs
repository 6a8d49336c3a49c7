//! A campaign on two control-plane replicas sharing one MongoDB-wire server, its calls
//! answered through two sidecars and the Realtime simulator, with the replica that
//! dispatches killed (`kill -9`) in the middle:
//!
//! - the other replica takes the dispatcher's lease over and finishes the campaign;
//! - every target ends in a final state, and no number is dialled twice (as the
//!   Twilio simulator counted the creations);
//! - an answered call is an ordinary AI call of the campaign's agent (its media
//!   stream ran through a sidecar), carrying the campaign's and the target's
//!   variables.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Script, SimConfig};
use switchboard_sim::twilio::{FakeTwilio, Outcomes, RestConfig, TalkScript};
use switchboard_tests::{eventually, Cluster, ClusterOptions, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const TARGETS: usize = 30;
const CPS: f64 = 3.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_surviving_replica_finishes_a_campaign_with_no_target_dialled_twice() {
    let Some(uri) = switchboard_tests::test_mongodb_uri("the campaign failover test") else {
        return;
    };
    // Callees answer, and hang up after a second and a half.
    let mut rest = RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN);
    rest.outcomes =
        Outcomes::answer_all(TalkScript::silent().hang_up_after(Duration::from_millis(1500)));
    rest.keep_audio = false;
    let twilio = FakeTwilio::new(rest);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the twilio simulator");
    let twilio_url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(twilio.clone().serve(listener, std::future::pending()));
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(Script::default()),
        ..SimConfig::for_test()
    })
    .await;
    // Both replicas place calls through the first sidecar's webhooks.
    let sidecar_url = "http://sidecar.invalid/api/twilio/voice".to_owned();
    let options = ClusterOptions {
        sidecars_reach_every_replica: true,
        control_plane_env: vec![
            ("SWITCHBOARD_ORPHAN_TIMEOUT", "5s".to_owned()),
            ("SWITCHBOARD_TWILIO_API_URL", twilio_url),
            ("SWITCHBOARD_TWILIO_MAX_CPS", "5".to_owned()),
            ("SWITCHBOARD_VOICE_WEBHOOK_URL", sidecar_url.clone()),
        ],
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start_with(
        &uri,
        2,
        2,
        &switchboard_tests::realtime_url(&openai),
        options,
    )
    .await;
    // The webhook URL is only known once the sidecars are up: restart the replicas
    // with it.
    let voice = cluster.voice_url(0);
    let status = voice.replace("/voice", "/status");
    for replica in &mut cluster.replicas {
        replica.set_env("SWITCHBOARD_VOICE_WEBHOOK_URL", &voice);
        replica.set_env("SWITCHBOARD_STATUS_WEBHOOK_URL", &status);
    }
    cluster.restart_replica(0).await;
    cluster.restart_replica(1).await;

    let agent = pb::AgentSettings {
        name: "Renewals".into(),
        voice: "marin".into(),
        instructions: "You call {{name}} about the {{plan}} plan, ref {{ref}}.".into(),
        ..Default::default()
    };
    // The restarted replicas' connections come back on first use.
    let agents = cluster.agents(0);
    let agent_id = eventually(Duration::from_secs(30), || {
        let (mut agents, agent) = (agents.clone(), agent.clone());
        async move {
            let request = pb::CreateAgentSettingsRequest {
                agent_settings: Some(agent),
            };
            match agents.create_agent_settings(request).await {
                Ok(created) => Some(created.into_inner().id),
                Err(status) => {
                    eprintln!("create the agent: {status:?}");
                    None
                }
            }
        }
    })
    .await
    .unwrap_or_else(|| panic!("create the agent\n{}", cluster.logs()));
    let _ = cluster
        .campaigns(1)
        .get_campaign(pb::GetCampaignRequest::default())
        .await;
    let phones: Vec<String> = (0..TARGETS).map(|i| format!("+1555070{i:04}")).collect();
    let targets = phones
        .iter()
        .enumerate()
        .map(|(i, phone)| pb::CampaignTarget {
            phone: phone.clone(),
            name: format!("Customer {i}"),
            variables: [("ref".to_owned(), format!("R-{i}"))].into_iter().collect(),
            ..Default::default()
        })
        .collect();
    let campaign = cluster
        .campaigns(1)
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(pb::Campaign {
                name: "Failover".into(),
                agent_id: agent_id.clone(),
                from_numbers: vec!["+14155550100".into()],
                pacing: Some(pb::Pacing {
                    calls_per_second: CPS,
                    max_concurrent_calls: 10,
                }),
                variables: [("plan".to_owned(), "gold".to_owned())]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            targets,
        })
        .await
        .unwrap_or_else(|status| panic!("create the campaign: {status:?}\n{}", cluster.logs()))
        .into_inner();

    let created = |twilio: &FakeTwilio| {
        twilio
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Calls.json") && r.status == 201)
            .filter_map(|r| {
                r.params
                    .iter()
                    .find(|(k, _)| k == "To")
                    .map(|(_, v)| v.clone())
            })
            .collect::<Vec<String>>()
    };
    // A third of the way in, kill the replica that dispatches.
    let third = eventually(Duration::from_secs(60), || {
        let n = created(&twilio).len();
        async move { (n >= TARGETS / 3).then_some(n) }
    })
    .await;
    assert!(
        third.is_some(),
        "the campaign never got going\n{}",
        cluster.logs()
    );
    let holder = (0..2)
        .find(|r| {
            let log = cluster.replicas[*r].process.output();
            let took = log.rfind("this replica dispatches campaigns now");
            took.is_some() && took > log.rfind("this replica no longer dispatches")
        })
        .expect("one replica holds the dispatcher lease");
    cluster.kill_replica(holder);
    let survivor = 1 - holder;

    let mut campaigns = cluster.campaigns(survivor);
    let finished = eventually(Duration::from_secs(120), || {
        let mut campaigns = campaigns.clone();
        let id = campaign.id.clone();
        async move {
            let c = campaigns
                .get_campaign(pb::GetCampaignRequest { id })
                .await
                .ok()?
                .into_inner();
            (c.state == pb::CampaignState::Completed as i32).then_some(c)
        }
    })
    .await
    .unwrap_or_else(|| panic!("the campaign did not complete\n{}", cluster.logs()));
    let progress = finished.progress.expect("progress");
    assert_eq!(progress.total, TARGETS as u64);

    let mut dialled: BTreeMap<String, usize> = BTreeMap::new();
    for to in created(&twilio) {
        *dialled.entry(to).or_default() += 1;
    }
    let twice: Vec<_> = dialled.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "dialled twice: {twice:?}");
    let listed = campaigns
        .list_campaign_targets(pb::ListCampaignTargetsRequest {
            campaign_id: campaign.id.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list the targets")
        .into_inner()
        .targets;
    assert_eq!(listed.len(), TARGETS);
    for target in &listed {
        let state = pb::TargetState::try_from(target.state).expect("a known state");
        match state {
            pb::TargetState::Done => {
                assert_eq!(dialled.get(&target.phone), Some(&1), "{target:?}");
            }
            // A placement cut short by the kill may end failed, with the reason.
            pb::TargetState::Failed => assert!(target.last_error.is_some(), "{target:?}"),
            other => panic!("target left {other:?}: {target:?}\n{}", cluster.logs()),
        }
    }
    let done = listed
        .iter()
        .filter(|t| t.state == pb::TargetState::Done as i32)
        .count();
    assert!(
        done >= TARGETS - 2,
        "{done} of {TARGETS} done\n{}",
        cluster.logs()
    );

    // An answered call was an AI call with the target's variables.
    let answered = listed
        .iter()
        .find(|t| t.state == pb::TargetState::Done as i32)
        .expect("a done target");
    let session = cluster
        .sessions(survivor)
        .get_call_session(pb::GetCallSessionRequest {
            id: answered.last_call_id.clone(),
        })
        .await
        .expect("the call's session")
        .into_inner();
    assert_eq!(session.campaign_id, campaign.id);
    assert_eq!(session.campaign_target_id, answered.id);
    assert_eq!(session.agent_id, agent_id);
    assert_eq!(session.status, pb::CallStatus::Completed as i32);
    assert!(!session.twilio_stream_sid.is_empty(), "{session:?}");
    assert_eq!(
        session.variables.get("ref"),
        answered.variables.get("ref"),
        "{session:?}"
    );
    assert_eq!(
        session.variables.get("plan").map(String::as_str),
        Some("gold")
    );
}
