//! A sidecar killed (`kill -9`: an OOM kill, a lost node) in the middle of its calls, in
//! a cluster of two control-plane replicas and three sidecars on one MongoDB-wire
//! server, with the control planes' Twilio account pointed at the Twilio simulator:
//!
//! - every session the dead sidecar held becomes final — `failed`, end reason
//!   `sidecar_lost`, error `sidecar.lost` saying what Twilio said of the call — within
//!   the orphan timeout (set short here), without anyone reporting it: the control
//!   planes' lease sweeper finds them;
//! - the calls of the other sidecars go on untouched to their callers' hang-ups and end
//!   `completed`, however many orphan timeouts they outlast: their open streams keep
//!   their leases.
//!
//! The kill closes the dead sidecar's sockets, so the simulated Twilio sees its media
//! streams end and ends those calls (nothing follows `<Connect>` in their TwiML); asked
//! by the sweeper, it says `completed`, which the error records.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_sim::openai::{Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, FakeTwilio, RestConfig, TalkScript};
use switchboard_tests::{
    eventually, Authorized, Cluster, ClusterOptions, ACCOUNT_SID, TWILIO_AUTH_TOKEN,
};

const NUMBER: &str = "+14155550180";
const REPLICAS: usize = 2;
const SIDECARS: usize = 3;
/// Calls placed through each sidecar.
const CALLS_PER_SIDECAR: usize = 2;
/// Short, so the test is quick; the surviving calls outlast it several times.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(4);
/// The sidecar that is killed.
const DOOMED: usize = 0;
const ANSWER_MS: u64 = 600;

fn agent() -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Sidecar lost".into(),
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
                audio_ms: Some(ANSWER_MS),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    }
}

/// The agent's sessions, read through `sessions`; `None` when the read fails.
async fn of_agent(
    sessions: &mut CallSessionServiceClient<Authorized>,
    agent_id: &str,
) -> Option<Vec<pb::CallSession>> {
    let request = pb::ListCallSessionsRequest {
        agent_id: agent_id.to_owned(),
        ..Default::default()
    };
    let listed = sessions.list_call_sessions(request).await.ok()?;
    Some(listed.into_inner().call_sessions)
}

/// Bytes of the assistant's audio the caller has heard so far (8 per ms).
fn heard(caller: &Caller) -> u64 {
    caller.record().stream().map_or(0, |s| s.heard.total_bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_mid_call_leaves_no_session_open() {
    let Some(uri) = switchboard_tests::test_mongodb_uri("the sidecar kill test") else {
        return;
    };
    let twilio = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the twilio simulator");
    let twilio_url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(twilio.clone().serve(listener, std::future::pending()));
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let options = ClusterOptions {
        sidecars_reach_every_replica: true,
        control_plane_env: vec![
            (
                "SWITCHBOARD_ORPHAN_TIMEOUT",
                format!("{}s", ORPHAN_TIMEOUT.as_secs()),
            ),
            ("SWITCHBOARD_TWILIO_API_URL", twilio_url),
        ],
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
        .agents(1)
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap_or_else(|status| panic!("create the agent: {status:?}\n{}", cluster.logs()))
        .into_inner()
        .id;

    // Callers talk, hear the answer, and stay on the line until hung up.
    let talk = TalkScript::saying(AudioSource::hello_en());
    let mut callers = Vec::new();
    for index in 0..SIDECARS * CALLS_PER_SIDECAR {
        let sidecar = index % SIDECARS;
        let mut spec =
            CallSpec::inbound(cluster.voice_url(sidecar), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
                .with_script(talk.clone());
        spec.to = NUMBER.into();
        spec.from = format!("+1650555{index:04}");
        spec.keep_audio = false;
        callers.push((sidecar, twilio.place_inbound_call(spec)));
    }
    let answered = eventually(Duration::from_secs(90), || {
        let all = callers
            .iter()
            .all(|(_, caller)| heard(caller) >= ANSWER_MS * 8);
        async move { all.then_some(()) }
    })
    .await;
    assert!(
        answered.is_some(),
        "every caller hears the answer before the kill: {:?}\n{}",
        callers.iter().map(|(_, c)| c.record()).collect::<Vec<_>>(),
        cluster.logs()
    );

    cluster.kill_sidecar(DOOMED);

    // The dead sidecar's calls end in the record with nobody reporting them.
    let sessions = cluster.sessions(0);
    let doomed_id = format!("sidecar-e2e-{DOOMED}");
    let lost = eventually(ORPHAN_TIMEOUT * 10, || {
        let (mut sessions, doomed_id, agent_id) =
            (sessions.clone(), doomed_id.clone(), agent_id.clone());
        async move {
            let all = of_agent(&mut sessions, &agent_id).await?;
            let held: Vec<_> = all
                .into_iter()
                .filter(|s| s.sidecar_id == doomed_id)
                .collect();
            (held.len() == CALLS_PER_SIDECAR && held.iter().all(|s| s.ended_at.is_some()))
                .then_some(held)
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the dead sidecar's sessions did not end\n{}",
            cluster.logs()
        )
    });
    for session in &lost {
        assert_eq!(
            (session.status, session.end_reason.as_str()),
            (pb::CallStatus::Failed as i32, "sidecar_lost"),
            "{session:?}\n{}",
            cluster.logs()
        );
        let error = session.error.as_ref().expect("the sweep says why");
        assert_eq!(error.code, "sidecar.lost", "{error:?}");
        assert!(
            error.message.contains("completed"),
            "twilio was asked: {error:?}"
        );
    }

    // The other calls outlast several orphan timeouts and end the normal way.
    tokio::time::sleep(ORPHAN_TIMEOUT * 2).await;
    for (sidecar, caller) in callers.iter().filter(|(s, _)| *s != DOOMED) {
        assert!(
            !caller.is_finished(),
            "a call of sidecar {sidecar} ended: {:?}\n{}",
            caller.record(),
            cluster.logs()
        );
        let _ = caller.hang_up();
    }
    for (_, caller) in callers.iter().filter(|(s, _)| *s != DOOMED) {
        tokio::time::timeout(Duration::from_secs(30), caller.finished())
            .await
            .unwrap_or_else(|_| panic!("a call did not end\n{}", cluster.logs()));
    }
    let all = eventually(Duration::from_secs(60), || {
        let (mut sessions, agent_id) = (sessions.clone(), agent_id.clone());
        async move {
            let all = of_agent(&mut sessions, &agent_id).await?;
            (all.len() == SIDECARS * CALLS_PER_SIDECAR && all.iter().all(|s| s.ended_at.is_some()))
                .then_some(all)
        }
    })
    .await
    .unwrap_or_else(|| panic!("not every session ended\n{}", cluster.logs()));
    for session in all.iter().filter(|s| s.sidecar_id != doomed_id) {
        assert_eq!(
            (session.status, session.end_reason.as_str()),
            (pb::CallStatus::Completed as i32, "caller_hung_up"),
            "{session:?}\n{}",
            cluster.logs()
        );
    }
}
