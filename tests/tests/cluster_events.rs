//! Two control-plane replicas on one MongoDB-wire server and three sidecars, each given
//! both replicas' URLs and spreading its calls over them, as in production. Thirty
//! calls, overlapping in time, ten through each sidecar: a dashboard watching either
//! replica sees every call's status changes and items, in order per call, and both see
//! the same sequence; a watcher that reconnects to the other replica with its last
//! event id misses nothing and sees nothing twice, even when that replica restarted in
//! between; and a watcher whose client went away is dropped even when no event would
//! ever reach it.
//!
//! The test checks from the replicas' logs that the calls really were spread over both
//! (so each watcher saw events its own replica never published), and from the stored
//! sessions that they ran on all three sidecars. Measured with debug builds on a loaded
//! 2-core machine: about 16 s.

mod cluster_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{assert_in_order, assert_quiet, read_until, watch, Seen};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, TalkScript};
use switchboard_tests::{eventually, Cluster, ClusterOptions, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const NUMBER: &str = "+14155550123";
const REPLICAS: usize = 2;
const SIDECARS: usize = 3;
/// Calls placed through each sidecar.
const CALLS_PER_SIDECAR: usize = 10;
/// Between two calls placed: all thirty are placed within about 3 s, and each lasts 4 s.
const RAMP_STEP: Duration = Duration::from_millis(100);
/// Events the reconnecting watcher takes before it goes away.
const BEFORE_DISCONNECT: usize = 5;

fn agent() -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Cluster reception".into(),
        phone_numbers: vec![NUMBER.into()],
        voice: "marin".into(),
        instructions: "You answer the phone.".into(),
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
            caller: "Hello, is anyone there?".into(),
            reply: Some(Reply {
                text: "Yes, how can I help?".into(),
                audio_ms: Some(800),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_streams_every_call_and_a_watcher_resumes_on_another_replica() {
    let Some(uri) = switchboard_tests::test_mongodb_uri("the cluster events test") else {
        return;
    };
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let options = ClusterOptions {
        sidecars_reach_every_replica: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start_with(
        &uri,
        REPLICAS,
        SIDECARS,
        &switchboard_tests::realtime_url(&openai),
        options,
    )
    .await;
    let agent_id = cluster
        .agents(0)
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let of_agent = pb::WatchCallEventsRequest {
        agent_id: agent_id.clone(),
        ..Default::default()
    };
    let mut on_a = watch(&mut cluster.sessions(0), of_agent.clone())
        .await
        .unwrap();
    let mut on_b = watch(&mut cluster.sessions(1), of_agent.clone())
        .await
        .unwrap();
    let mut leaving_client = cluster.sessions_on_own_connection(0).await;
    let mut leaving = watch(&mut leaving_client, of_agent.clone()).await.unwrap();

    // Calls through every sidecar in turn, so through both replicas, overlapping.
    let talk =
        TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(4_000));
    let client = reqwest::Client::new();
    let mut callers = Vec::new();
    for _ in 0..CALLS_PER_SIDECAR {
        for sidecar in 0..cluster.sidecars.len() {
            let mut spec =
                CallSpec::inbound(cluster.voice_url(sidecar), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
                    .with_script(talk.clone());
            spec.to = NUMBER.into();
            spec.keep_audio = false;
            callers.push(Caller::start_with_client(spec, client.clone()));
            tokio::time::sleep(RAMP_STEP).await;
        }
    }

    // The leaving watcher takes a few events, then its client goes away.
    let mut before = Seen::default();
    read_until(
        &mut leaving,
        &mut before,
        |s| s.ids.len() >= BEFORE_DISCONNECT,
        &cluster,
    )
    .await;
    drop(leaving);
    drop(leaving_client);

    for caller in &callers {
        let record = tokio::time::timeout(Duration::from_secs(60), caller.finished())
            .await
            .unwrap_or_else(|_| panic!("a call did not end\n{}", cluster.logs()));
        assert!(
            record.stream().is_some(),
            "the call streamed: {record:?}\n{}",
            cluster.logs()
        );
    }

    // What the record says each call ended with: the watchers must see all of it.
    let mut expected: HashMap<String, (i32, u64)> = HashMap::new();
    let calls = callers.len();
    let mut sessions = cluster.sessions(1);
    let settled = eventually(Duration::from_secs(30), || {
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
            let all_final = list.call_sessions.len() == calls
                && list
                    .call_sessions
                    .iter()
                    .all(|s| s.status == pb::CallStatus::Completed as i32);
            all_final.then_some(list.call_sessions)
        }
    })
    .await
    .unwrap_or_else(|| panic!("the calls were not all completed\n{}", cluster.logs()));
    let mut sidecars_used = std::collections::HashSet::new();
    for session in settled {
        let full = sessions
            .get_call_session(pb::GetCallSessionRequest {
                id: session.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(full.last_seq >= 2, "both turns stored: {full:?}");
        sidecars_used.insert(full.sidecar_id.clone());
        expected.insert(full.id, (full.status, full.last_seq));
    }
    assert_eq!(sidecars_used.len(), SIDECARS, "calls ran on every sidecar");
    // Each replica served some of the calls, and none was served twice.
    let served_by_0 = cluster.calls_connected(0);
    let served_by_1 = cluster.calls_connected(1);
    let all: std::collections::HashSet<&String> = expected.keys().collect();
    assert!(
        !served_by_0.is_empty() && !served_by_1.is_empty() && served_by_0.is_disjoint(&served_by_1),
        "the calls were not spread over both replicas: {} on replica 0, {} on replica 1\n{}",
        served_by_0.len(),
        served_by_1.len(),
        cluster.logs()
    );
    assert_eq!(
        served_by_0
            .iter()
            .chain(&served_by_1)
            .collect::<std::collections::HashSet<_>>(),
        all,
        "every call connected to one of the replicas"
    );
    eprintln!(
        "{} calls on replica 0, {} on replica 1",
        served_by_0.len(),
        served_by_1.len()
    );

    // Both replicas' watchers see every call, in order, and the same sequence of events.
    let mut seen_a = Seen::default();
    let mut seen_b = Seen::default();
    read_until(&mut on_a, &mut seen_a, |s| s.has_all(&expected), &cluster).await;
    read_until(&mut on_b, &mut seen_b, |s| s.has_all(&expected), &cluster).await;
    assert_in_order(&seen_a, &expected, "watcher on replica 0");
    assert_in_order(&seen_b, &expected, "watcher on replica 1");
    assert_eq!(seen_a.ids, seen_b.ids, "one order for every replica");
    assert_quiet(&mut on_a).await;
    drop(on_b);

    // Replica 1 restarts: its window of recent events is gone, so the watcher that left
    // resumes there from the database, and gets exactly the rest.
    cluster.restart_replica(1).await;
    let last_seen = before.ids.last().expect("events before leaving").clone();
    let resume = pb::WatchCallEventsRequest {
        after_event_id: last_seen.clone(),
        ..of_agent.clone()
    };
    let mut resumed = watch(&mut cluster.sessions(1), resume.clone())
        .await
        .unwrap();
    let mut after = Seen::default();
    let remaining = seen_a.ids.len() - before.ids.len();
    read_until(
        &mut resumed,
        &mut after,
        |s| s.ids.len() >= remaining,
        &cluster,
    )
    .await;
    let joined: Vec<String> = before.ids.iter().chain(&after.ids).cloned().collect();
    assert_eq!(joined, seen_a.ids, "nothing lost, nothing twice");
    assert_quiet(&mut resumed).await;

    // On the replica that still holds the event in its window: the same rest.
    let mut from_window = watch(&mut cluster.sessions(0), resume).await.unwrap();
    let mut again = Seen::default();
    read_until(
        &mut from_window,
        &mut again,
        |s| s.ids.len() >= remaining,
        &cluster,
    )
    .await;
    assert_eq!(again.ids, after.ids);

    // A malformed id names the field.
    let bad = pb::WatchCallEventsRequest {
        after_event_id: "not-an-id!".into(),
        ..Default::default()
    };
    let status = watch(&mut cluster.sessions(0), bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("after_event_id: "),
        "{status:?}"
    );

    // A watcher of one finished call (no event will ever come for it) whose client goes
    // away leaves the gauge at once.
    let watching = cluster.event_watchers(1).await.expect("replica 1's gauge");
    let mut lone_client = cluster.sessions_on_own_connection(1).await;
    let one_call = pb::WatchCallEventsRequest {
        call_id: expected.keys().next().expect("a call").clone(),
        ..Default::default()
    };
    let lone = watch(&mut lone_client, one_call).await.unwrap();
    let counted = eventually(Duration::from_secs(10), || async {
        (cluster.event_watchers(1).await == Some(watching + 1)).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the watcher is counted");
    let gone_at = Instant::now();
    drop(lone);
    drop(lone_client);
    let gone = eventually(Duration::from_secs(10), || async {
        (cluster.event_watchers(1).await == Some(watching)).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "the watcher of a finished call stays counted after its client left\n{}",
        cluster.logs()
    );
    eprintln!(
        "the watcher left the gauge {:?} after its client went away",
        gone_at.elapsed()
    );
}
