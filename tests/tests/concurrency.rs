//! A hundred simultaneous calls through the real services, each to its own agent, none
//! mixed up: every call reaches OpenAI (simulated) with its own agent's instructions and
//! voice, and every stored conversation holds exactly the items of its own Realtime
//! session, in order, and is completed.
//!
//! The OpenAI simulator answers every caller with the same script (it does not listen to
//! the words), so the transcripts cannot tell the calls apart. What can: the instructions
//! each Realtime session was given (distinct per agent), and the Realtime item ids, which
//! the simulator makes unique per session. The test ties each stored conversation to the
//! one Realtime session its caller items came from, and checks that session was set up
//! for the agent of the number that call dialled.
//!
//! 100 real-time calls on a ramp of 2 s. Each caller speaks, and hangs up once it has
//! received the whole answer, as a satisfied caller does; not at a fixed time, so that
//! a loaded machine, where call set-up takes seconds, makes the test slower, not red.
//! Measured with debug builds on a 2-core machine: about 6 s from the first call placed
//! to the last one ended, and 11 s for the whole test (100 agents created, services
//! started, every record checked).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, StreamEnd, TalkScript};
use switchboard_tests::{eventually, Harness, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const CALLS: usize = 100;
/// Calls start over this long (a ramp of 50 calls a second).
const RAMP: Duration = Duration::from_secs(2);
/// The answer's length: a caller hangs up once it has heard this much of it.
const ANSWER_MS: u64 = 600;
/// How long a caller waits for the whole answer before giving up (and failing the test).
const ANSWER_DEADLINE: Duration = Duration::from_secs(60);
const VOICES: [&str; 8] = [
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "marin",
];
const CALLER_SAYS: &str = "Hello, I'd like to check on my order.";
const ASSISTANT_SAYS: &str = "Of course. What is the order number?";
const FALLBACK_SAYS: &str = "Sorry, could you say that again?";

fn number(index: usize) -> String {
    format!("+1415556{index:04}")
}

fn instructions(index: usize) -> String {
    format!("You are agent {index:03} of the concurrency test. Speak only as agent {index:03}.")
}

fn voice(index: usize) -> &'static str {
    VOICES[index % VOICES.len()]
}

fn agent(index: usize) -> pb::AgentSettings {
    pb::AgentSettings {
        name: format!("Agent {index:03}"),
        phone_numbers: vec![number(index)],
        voice: voice(index).into(),
        instructions: instructions(index),
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
            caller: CALLER_SAYS.into(),
            reply: Some(Reply {
                text: ASSISTANT_SAYS.into(),
                audio_ms: Some(ANSWER_MS),
            }),
            function_call: None,
            after_call: None,
        }],
        fallback: Turn {
            caller: "Hmm.".into(),
            reply: Some(Reply {
                text: FALLBACK_SAYS.into(),
                audio_ms: Some(400),
            }),
            function_call: None,
            after_call: None,
        },
        ..Script::default()
    }
}

fn is_final(status: i32) -> bool {
    [
        pb::CallStatus::Completed,
        pb::CallStatus::Failed,
        pb::CallStatus::Busy,
        pb::CallStatus::NoAnswer,
        pb::CallStatus::Canceled,
        pb::CallStatus::HandedOff,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_simultaneous_calls_keep_their_own_agent_and_conversation() {
    let started = Instant::now();
    // The Realtime leg over wss://, as in production. On a loaded machine call set-up
    // takes seconds (the MongoDB test server is single-threaded); the callers wait for
    // their answers, so that shows in the time taken, not in the outcome.
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let harness = Harness::start(
        StoreKind::from_env(),
        &switchboard_tests::realtime_url(&openai),
        None,
    )
    .await;

    // 100 agents, each with its own number, instructions and voice.
    let mut agents = harness.agents();
    let mut agent_ids = Vec::with_capacity(CALLS);
    for index in 0..CALLS {
        let created = agents
            .create_agent_settings(pb::CreateAgentSettingsRequest {
                agent_settings: Some(agent(index)),
            })
            .await
            .unwrap()
            .into_inner();
        agent_ids.push(created.id);
    }
    assert_eq!(
        agent_ids.iter().collect::<HashSet<_>>().len(),
        CALLS,
        "every agent has its own id"
    );

    // 100 inbound calls on a ramp, each dialling its own agent's number.
    let client = reqwest::Client::new();
    let talk = TalkScript::saying(AudioSource::hello_en());
    let placing = Instant::now();
    let mut callers = Vec::with_capacity(CALLS);
    for index in 0..CALLS {
        let mut spec = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
            .with_script(talk.clone());
        spec.to = number(index);
        spec.from = format!("+1650555{index:04}");
        spec.keep_audio = false;
        callers.push(Caller::start_with_client(spec, client.clone()));
        tokio::time::sleep(RAMP / CALLS as u32).await;
    }
    // Not asserted (it depends on the machine's pace), printed below: how many calls
    // were live together once the last one was placed.
    let live_after_ramp = callers.iter().filter(|c| !c.is_finished()).count();
    // Each caller hangs up once it has heard the whole answer played out (8 bytes of
    // µ-law per ms), or at the deadline without it, which the checks below report.
    let answered = eventually(ANSWER_DEADLINE, || {
        for caller in callers.iter().filter(|c| !c.is_finished()) {
            let heard = caller.record().stream().map_or(0, |s| s.heard.total_bytes);
            if heard >= ANSWER_MS * 8 {
                let _ = caller.hang_up();
            }
        }
        let all = callers.iter().all(|c| c.is_finished());
        async move { all.then_some(()) }
    })
    .await;
    if answered.is_none() {
        for caller in &callers {
            let _ = caller.hang_up();
        }
    }
    let mut records = Vec::with_capacity(CALLS);
    for caller in &callers {
        let Ok(record) = tokio::time::timeout(Duration::from_secs(90), caller.finished()).await
        else {
            panic!(
                "call {} did not end: {:?}\n{}",
                caller.call_sid(),
                caller.record(),
                harness.logs()
            );
        };
        records.push(record);
    }
    let calls_took = placing.elapsed();

    // Twilio's side: every call streamed, heard the assistant, and ended by hanging up.
    for (index, record) in records.iter().enumerate() {
        let stream = record.stream().unwrap_or_else(|| {
            panic!(
                "call {index} got no media stream: {record:?}\n{}",
                harness.logs()
            )
        });
        assert!(
            record.errors.is_empty(),
            "call {index}: {:?}",
            record.errors
        );
        assert!(
            stream.warnings.is_empty(),
            "call {index}: the sidecar sent what Twilio accepts: {:?}",
            stream.warnings
        );
        assert!(
            stream.heard.total_bytes >= ANSWER_MS * 8,
            "call {index}: the caller heard the whole answer within {ANSWER_DEADLINE:?}: {:?}\n{record:?}\n{}",
            stream.heard.total_bytes,
            harness.logs()
        );
        assert_eq!(
            stream.end,
            Some(StreamEnd::CallerHungUp),
            "call {index}: the stream ran until the caller hung up"
        );
    }

    // The sidecar is back to idle, having counted every call as completed.
    let idle = eventually(Duration::from_secs(30), || async {
        let active = harness.sidecar_active_calls().await?;
        let completed = harness
            .sidecar_metric(r#"switchboard_sidecar_calls_total{outcome="completed"}"#)
            .await?;
        (active == 0 && completed == CALLS as f64).then_some(())
    })
    .await;
    assert!(
        idle.is_some(),
        "the sidecar counted {CALLS} completed calls and none active:\n{}",
        harness
            .sidecar_admin_get("/metrics")
            .await
            .map(|(_, m)| m)
            .unwrap_or_default()
    );

    // OpenAI's side: one session per call, each closed by the sidecar, each set up for
    // exactly one agent, every agent once (a bijection), with that agent's voice.
    let realtime = openai.records();
    let closed = eventually(Duration::from_secs(30), || {
        let sessions = realtime.sessions();
        let closed = sessions.len() == CALLS
            && sessions
                .iter()
                .all(|s| s.ended.as_deref() == Some("client closed"));
        async move { closed.then_some(sessions) }
    })
    .await;
    let Some(openai_sessions) = closed else {
        let ended: Vec<_> = realtime.sessions().into_iter().map(|s| s.ended).collect();
        panic!(
            "not one realtime session per call, each closed by the sidecar: {ended:?}\n{}",
            harness.logs()
        );
    };
    let by_instructions: HashMap<String, usize> = (0..CALLS)
        .map(|index| (instructions(index), index))
        .collect();
    let mut agent_of_openai_session = Vec::with_capacity(CALLS);
    for session in &openai_sessions {
        let config = &session.session_config;
        let given = config.instructions.as_deref().unwrap_or_default();
        let Some(&index) = by_instructions.get(given) else {
            panic!(
                "realtime session {} got instructions of no agent: {given:?}",
                session.session_id
            );
        };
        assert_eq!(
            config.voice.as_deref(),
            Some(voice(index)),
            "realtime session {} has agent {index}'s voice",
            session.session_id
        );
        assert!(
            !session.user_turns.is_empty(),
            "realtime session {} (agent {index}) heard its caller",
            session.session_id
        );
        agent_of_openai_session.push(index);
    }
    assert_eq!(
        agent_of_openai_session
            .iter()
            .collect::<BTreeSet<_>>()
            .len(),
        CALLS,
        "every agent's instructions reached exactly one realtime session"
    );
    // Which realtime session each caller item id came from.
    let mut session_of_user_item = HashMap::new();
    for (position, session) in openai_sessions.iter().enumerate() {
        for (item_id, _) in &session.user_turns {
            assert!(
                session_of_user_item
                    .insert(item_id.clone(), position)
                    .is_none(),
                "realtime item id {item_id} is unique"
            );
        }
    }

    // The control plane's side: every session final, then each one checked.
    let sessions = harness.sessions();
    let listed = eventually(Duration::from_secs(60), || {
        let mut sessions = sessions.clone();
        async move {
            let list = sessions
                .list_call_sessions(pb::ListCallSessionsRequest {
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .call_sessions;
            (list.len() == CALLS && list.iter().all(|s| is_final(s.status))).then_some(list)
        }
    })
    .await;
    let Some(listed) = listed else {
        let list = sessions
            .clone()
            .list_call_sessions(pb::ListCallSessionsRequest {
                page_size: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .call_sessions;
        let statuses: Vec<_> = list.iter().map(|s| (&s.to_number, s.status)).collect();
        panic!(
            "not every call reached a final state: {} sessions {statuses:?}\n{}",
            list.len(),
            harness.logs()
        );
    };
    let by_number: HashMap<String, usize> =
        (0..CALLS).map(|index| (number(index), index)).collect();
    let mut numbers_seen = HashSet::new();
    let mut provider_ids_seen = HashSet::new();
    let mut openai_sessions_claimed = HashSet::new();
    for listed in &listed {
        let stored = sessions
            .clone()
            .get_call_session(pb::GetCallSessionRequest {
                id: listed.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let Some(&index) = by_number.get(&stored.to_number) else {
            panic!("a session for a number nobody dialled: {stored:?}");
        };
        assert!(numbers_seen.insert(index), "one session per dialled number");
        assert_eq!(
            stored.status,
            pb::CallStatus::Completed as i32,
            "call {index} completed: {stored:?}\n{}",
            harness.logs()
        );
        assert_eq!(
            stored.agent_id, agent_ids[index],
            "call {index} went to the agent of the number it dialled"
        );
        assert_eq!(stored.twilio_call_sid, records[index].call_sid);

        // Its conversation: contiguous, both sides, and nobody else's items.
        let conversation = &stored.conversation;
        let seqs: Vec<u64> = conversation.iter().map(|i| i.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "call {index}: contiguous seqs"
        );
        let role = |item: &pb::ConversationItem, role: pb::ConversationRole| {
            item.role == role as i32 && item.kind == pb::ConversationItemKind::Message as i32
        };
        let user: Vec<&pb::ConversationItem> = conversation
            .iter()
            .filter(|i| role(i, pb::ConversationRole::User))
            .collect();
        let assistant: Vec<&pb::ConversationItem> = conversation
            .iter()
            .filter(|i| role(i, pb::ConversationRole::Assistant))
            .collect();
        assert!(
            !user.is_empty() && !assistant.is_empty(),
            "call {index} stored both sides: {conversation:?}"
        );
        assert_eq!(
            user.len() + assistant.len(),
            conversation.len(),
            "call {index}: only the two sides' messages: {conversation:?}"
        );
        for item in conversation {
            assert!(
                !item.provider_item_id.is_empty(),
                "call {index}: item {} has its realtime id",
                item.seq
            );
            assert!(
                provider_ids_seen.insert(item.provider_item_id.clone()),
                "call {index}: item {} ({}) is stored in one call only",
                item.seq,
                item.provider_item_id
            );
        }
        assert_eq!(
            user.first().map(|i| i.text.as_str()),
            Some(CALLER_SAYS),
            "call {index}"
        );
        assert_eq!(
            assistant.first().map(|i| i.text.as_str()),
            Some(ASSISTANT_SAYS),
            "call {index}"
        );

        // The realtime session those caller items came from is this agent's, and the
        // conversation holds all of it: its caller turns and its responses.
        let from: BTreeSet<usize> = user
            .iter()
            .map(|item| {
                *session_of_user_item
                    .get(&item.provider_item_id)
                    .unwrap_or_else(|| {
                        panic!(
                            "call {index}: caller item {} came from no realtime session",
                            item.provider_item_id
                        )
                    })
            })
            .collect();
        assert_eq!(
            from.len(),
            1,
            "call {index}: its caller items come from one realtime session"
        );
        let position = *from.first().unwrap();
        assert!(
            openai_sessions_claimed.insert(position),
            "realtime session {position} belongs to one call"
        );
        let source = &openai_sessions[position];
        assert_eq!(
            agent_of_openai_session[position], index,
            "call {index}'s realtime session was set up for agent {index}, not another"
        );
        let heard: Vec<&str> = source.user_turns.iter().map(|(_, t)| t.as_str()).collect();
        let stored_user: Vec<&str> = user.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(
            stored_user, heard,
            "call {index}: every caller turn of its realtime session, in order"
        );
        assert_eq!(
            conversation.len(),
            source.user_turns.len() + source.responses_created.len(),
            "call {index}: one item per caller turn and per response of its realtime session"
        );
    }
    assert_eq!(numbers_seen.len(), CALLS);
    eprintln!(
        "{CALLS} calls ({live_after_ramp} live at once after the ramp) took {calls_took:?} \
         from the first placed to the last ended; the whole test {:?}",
        started.elapsed()
    );
}
