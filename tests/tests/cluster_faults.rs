//! Faults of a cluster in the middle of its calls: two control-plane replicas on one
//! MongoDB-wire server, three sidecars each given both replicas' URLs, six calls spread
//! over all of them.
//!
//! - **A replica is killed (`kill -9`) between two turns of every call.** The calls it
//!   served move to the other replica; every caller hears both answers on the one
//!   stream it had; every conversation is stored whole, each item once (seqs 1..n), and
//!   is exactly what the OpenAI simulator heard and said; a dashboard's watcher on the
//!   killed replica that reconnects to the other with its last event id sees the same
//!   events, in the same order, as a watcher that was on the other replica all along.
//! - **The database is killed (`kill -9`) for 20 s and started again on the same
//!   data.** The calls go on throughout — turns are taken and answered while it is
//!   down — and once it is back every conversation is stored whole, each item once,
//!   and every session ends completed — although the control planes' orphan timeout
//!   is set far shorter than the outage, so every call's lease lapses while nobody can
//!   renew it: the sweeper waits for the database to be back for a whole timeout, by
//!   which time the leases are renewed, and ends nothing. The test runs a SecantusDB of its own, storing
//!   on disk with commits synced (see [`SecantusServer`]); SecantusDB reopens its data
//!   intact after a `kill -9`, which its own tests and this one's checks rely on.
//!
//! The OpenAI simulator does not tell calls apart by their words; the Realtime item ids
//! do (unique per session), so each stored conversation is tied to the one Realtime
//! session its caller items came from and compared with it.
//!
//! Measured with debug builds on a loaded 2-core machine: about 22 s for the replica
//! kill, about 40 s for each database outage (20 s of it the outage), 62 s for the three
//! together.
//!
//! The replica is killed at a quiet moment (after every call's first turn is stored and
//! seen by a watcher of that replica, before the second): a replica that crashes
//! between storing a record and publishing its event loses that event (docs/
//! control-plane.md, "What can be lost"), which is not what this test is about.

mod cluster_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{assert_in_order, assert_quiet, read_until, read_until_broken, watch, Seen};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{OpenAiSim, Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{
    AudioSource, CallEnd, CallRecord, CallSpec, Caller, StreamEnd, TalkScript,
};
use switchboard_tests::{
    eventually, Cluster, ClusterOptions, SecantusServer, ACCOUNT_SID, TWILIO_AUTH_TOKEN,
};

const NUMBER: &str = "+14155550170";
const REPLICAS: usize = 2;
const SIDECARS: usize = 3;
/// Calls in each test, placed through the sidecars in turn.
const CALLS: usize = 6;
/// Between two calls placed.
const RAMP_STEP: Duration = Duration::from_millis(200);
/// The length of every answer's audio.
const ANSWER_MS: u64 = 800;
/// The scripted answers; a turn past them is answered with [`FALLBACK_ANSWER`].
const ANSWERS: [&str; 2] = ["First answer.", "Second answer."];
const FALLBACK_ANSWER: &str = "Go on.";
/// How long the database is down.
const OUTAGE: Duration = Duration::from_secs(20);
/// The control planes' orphan timeout in the outage tests: its leases (¾ of it) lapse
/// several times over while the database is down.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(5);
/// When, into the outage, the callers of one sidecar hang up: well before it ends, so
/// their sidecar gives up waiting for the log before the database is back (`END_GRACE`,
/// 15 s) and must still deliver it afterwards.
const HANG_UP_INTO_OUTAGE: Duration = Duration::from_secs(2);

fn agent() -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Cluster faults".into(),
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

fn reply(text: &str) -> Option<Reply> {
    Some(Reply {
        text: text.into(),
        audio_ms: Some(ANSWER_MS),
    })
}

/// The two scripted turns, then "Go on." for every turn after them.
fn script() -> Script {
    let turn = |caller: &str, answer: &str| Turn {
        caller: caller.into(),
        reply: reply(answer),
        function_call: None,
        after_call: None,
    };
    Script {
        turns: vec![
            turn("First question.", ANSWERS[0]),
            turn("Second question.", ANSWERS[1]),
        ],
        fallback: turn("More.", FALLBACK_ANSWER),
        ..Script::default()
    }
}

/// The answer the simulator gives to the `index`th response of a session.
fn answer(index: usize) -> &'static str {
    ANSWERS.get(index).copied().unwrap_or(FALLBACK_ANSWER)
}

async fn start_cluster(
    mongodb_uri: &str,
    openai: &OpenAiSim,
    control_plane_env: Vec<(&'static str, String)>,
) -> Cluster {
    let options = ClusterOptions {
        sidecars_reach_every_replica: true,
        control_plane_env,
        ..ClusterOptions::default()
    };
    Cluster::start_with(
        mongodb_uri,
        REPLICAS,
        SIDECARS,
        &switchboard_tests::realtime_url(openai),
        options,
    )
    .await
}

async fn create_agent(cluster: &Cluster, replica: usize) -> String {
    cluster
        .agents(replica)
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap_or_else(|status| panic!("create the agent: {status:?}\n{}", cluster.logs()))
        .into_inner()
        .id
}

/// [`CALLS`] inbound calls to [`NUMBER`], through the sidecars in turn.
async fn place_calls(cluster: &Cluster, talk: &TalkScript) -> Vec<Caller> {
    let client = reqwest::Client::new();
    let mut callers = Vec::with_capacity(CALLS);
    for index in 0..CALLS {
        let sidecar = index % cluster.sidecars.len();
        let mut spec =
            CallSpec::inbound(cluster.voice_url(sidecar), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
                .with_script(talk.clone());
        spec.to = NUMBER.into();
        spec.from = format!("+1650555{index:04}");
        spec.keep_audio = false;
        callers.push(Caller::start_with_client(spec, client.clone()));
        tokio::time::sleep(RAMP_STEP).await;
    }
    callers
}

/// Bytes of the assistant's audio the caller has heard so far (8 per ms).
fn heard(caller: &Caller) -> u64 {
    caller.record().stream().map_or(0, |s| s.heard.total_bytes)
}

/// Hangs up every caller once `done` says so of it, within a generous wait; fails with
/// `logs` otherwise. Returns the records.
async fn hang_up_when(
    callers: &[Caller],
    done: impl Fn(&Caller) -> bool,
    what: &str,
    logs: impl Fn() -> String,
) -> Vec<CallRecord> {
    let all_done = eventually(Duration::from_secs(90), || {
        for caller in callers.iter().filter(|c| !c.is_finished()) {
            if done(caller) {
                let _ = caller.hang_up();
            }
        }
        let all = callers.iter().all(|c| c.is_finished());
        async move { all.then_some(()) }
    })
    .await;
    if all_done.is_none() {
        let records: Vec<_> = callers.iter().map(Caller::record).collect();
        for caller in callers {
            let _ = caller.hang_up();
        }
        panic!("not every call got to {what}: {records:?}\n{}", logs());
    }
    let mut records = Vec::with_capacity(callers.len());
    for caller in callers {
        match tokio::time::timeout(Duration::from_secs(30), caller.finished()).await {
            Ok(record) => records.push(record),
            Err(_) => panic!("a call did not end: {:?}\n{}", caller.record(), logs()),
        }
    }
    records
}

/// The call streamed once, the whole call, and the caller hung up.
fn assert_whole_call(record: &CallRecord, logs: impl Fn() -> String) {
    assert_eq!(record.streams.len(), 1, "{record:?}\n{}", logs());
    let stream = record.stream().expect("a stream");
    assert_eq!(stream.end, Some(StreamEnd::CallerHungUp), "{record:?}");
    assert_eq!(record.end, Some(CallEnd::CallerHungUp), "{record:?}");
    assert!(stream.warnings.is_empty(), "{:?}", stream.warnings);
}

/// Waits until the agent has [`CALLS`] sessions, read through `replica` with their
/// conversations, and `done` holds of each.
async fn sessions_where(
    cluster: &Cluster,
    replica: usize,
    agent_id: &str,
    patience: Duration,
    done: impl Fn(&pb::CallSession) -> bool,
) -> Option<Vec<pb::CallSession>> {
    let sessions = cluster.sessions(replica);
    eventually(patience, || {
        let mut sessions = sessions.clone();
        let agent_id = agent_id.to_owned();
        let done = &done;
        async move {
            let list = sessions
                .list_call_sessions(pb::ListCallSessionsRequest {
                    agent_id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            if list.call_sessions.len() != CALLS {
                return None;
            }
            let mut full = Vec::with_capacity(CALLS);
            for session in list.call_sessions {
                let request = pb::GetCallSessionRequest { id: session.id };
                let session = sessions.get_call_session(request).await.ok()?.into_inner();
                if !done(&session) {
                    return None;
                }
                full.push(session);
            }
            Some(full)
        }
    })
    .await
}

/// Every call ended completed by its caller, and its conversation is exactly its
/// Realtime session's: each caller turn and each answer once, in seq order 1..n, nothing
/// else. Every Realtime session belongs to one stored call.
fn assert_conversations(stored: &[pb::CallSession], openai: &OpenAiSim, logs: impl Fn() -> String) {
    let realtime = openai.records().sessions();
    assert_eq!(
        realtime.len(),
        CALLS,
        "one Realtime session per call: {realtime:?}\n{}",
        logs()
    );
    let mut matched = HashSet::new();
    for session in stored {
        assert_eq!(
            session.status,
            pb::CallStatus::Completed as i32,
            "{session:?}"
        );
        assert_eq!(session.end_reason, "caller_hung_up", "{session:?}");
        let seqs: Vec<u64> = session.conversation.iter().map(|i| i.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "every item once, in order: {session:?}\n{}",
            logs()
        );
        assert_eq!(session.last_seq, seqs.len() as u64, "{session:?}");
        let by_role = |role: pb::ConversationRole| -> Vec<(&str, &str)> {
            session
                .conversation
                .iter()
                .filter(|item| item.role == role as i32)
                .map(|item| (item.provider_item_id.as_str(), item.text.as_str()))
                .collect()
        };
        let users = by_role(pb::ConversationRole::User);
        let first = users.first().map(|(id, _)| *id).unwrap_or_default();
        let (index, source) = realtime
            .iter()
            .enumerate()
            .find(|(_, r)| r.user_turns.iter().any(|(id, _)| id == first))
            .unwrap_or_else(|| panic!("no Realtime session heard {first:?}: {session:?}"));
        assert!(matched.insert(index), "two calls from one Realtime session");
        let heard: Vec<(&str, &str)> = source
            .user_turns
            .iter()
            .map(|(id, text)| (id.as_str(), text.as_str()))
            .collect();
        assert_eq!(
            users,
            heard,
            "every caller turn once: {session:?}\n{}",
            logs()
        );
        let answers: Vec<&str> = by_role(pb::ConversationRole::Assistant)
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        let said: Vec<&str> = (0..source.responses_created.len()).map(answer).collect();
        assert_eq!(answers, said, "every answer once: {session:?}\n{}", logs());
        assert_eq!(
            session.conversation.len(),
            users.len() + answers.len(),
            "nothing else was stored: {session:?}"
        );
    }
}

/// How many times the sidecars reopened a call's control stream.
fn streams_reopened(cluster: &Cluster) -> usize {
    cluster
        .sidecars
        .iter()
        .map(|s| {
            s.process
                .output()
                .matches("control stream reopened")
                .count()
        })
        .sum()
}

/// Every process's log, the database's included.
fn outage_logs(cluster: &Cluster, database: &SecantusServer) -> String {
    format!("{}--- secantus ---\n{}", cluster.logs(), database.output())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_call_hands_its_calls_and_watchers_to_the_other() {
    /// When the caller asks the second question, on the call's audio clock: well after
    /// the first turn is stored, so the kill falls between the two.
    const SECOND_TURN: Duration = Duration::from_secs(12);
    let Some(uri) = switchboard_tests::test_mongodb_uri("the replica kill test") else {
        return;
    };
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let mut cluster = start_cluster(&uri, &openai, Vec::new()).await;
    let agent_id = create_agent(&cluster, 1).await;
    let of_agent = pb::WatchCallEventsRequest {
        agent_id: agent_id.clone(),
        ..Default::default()
    };
    // A dashboard on each replica; the one on replica 0 has a connection of its own,
    // which the kill breaks.
    let doomed_client = cluster.sessions_on_own_connection(0).await;
    let mut doomed = watch(&mut doomed_client.clone(), of_agent.clone())
        .await
        .unwrap();
    let mut steady = watch(&mut cluster.sessions(1), of_agent.clone())
        .await
        .unwrap();

    let talk =
        TalkScript::saying(AudioSource::hello_en()).say_at(SECOND_TURN, AudioSource::hello_en());
    let callers = place_calls(&cluster, &talk).await;

    // Before: every call's first turn is stored, and replica 0's watcher has seen it.
    let mut on_doomed = Seen::default();
    read_until(
        &mut doomed,
        &mut on_doomed,
        |s| s.calls_with_items(2) == CALLS,
        &cluster,
    )
    .await;
    let realtime = openai.records().sessions();
    assert!(
        realtime.len() == CALLS && realtime.iter().all(|r| r.user_turns.len() == 1),
        "every call is between its turns when the replica is killed: {realtime:?}\n{}",
        cluster.logs()
    );
    let on_killed = cluster.calls_connected(0);
    assert!(
        !on_killed.is_empty() && on_killed.len() < CALLS,
        "both replicas serve calls: {on_killed:?} on replica 0\n{}",
        cluster.logs()
    );
    let heard_before: Vec<u64> = callers.iter().map(heard).collect();

    cluster.kill_replica(0);

    // The watcher on the killed replica breaks, and resumes on replica 1 after the last
    // event it had.
    let broke = read_until_broken(&mut doomed, &mut on_doomed, &cluster).await;
    drop(doomed_client);
    eprintln!("the watcher on the killed replica ended with {broke:?}");
    let resume = pb::WatchCallEventsRequest {
        after_event_id: on_doomed.last_id().expect("events before the kill").clone(),
        ..of_agent.clone()
    };
    let mut resumed = watch(&mut cluster.sessions(1), resume)
        .await
        .unwrap_or_else(|status| panic!("resume on replica 1: {status:?}\n{}", cluster.logs()));

    // During: the second question is asked and answered on every call; each caller
    // hangs up once it has heard both answers.
    let both_answers = 2 * ANSWER_MS * 8;
    let records = hang_up_when(
        &callers,
        |caller| heard(caller) >= both_answers,
        "hear both answers",
        || cluster.logs(),
    )
    .await;
    for (record, before) in records.iter().zip(&heard_before) {
        assert_whole_call(record, || cluster.logs());
        let after = record.stream().expect("a stream").heard.total_bytes;
        assert!(
            after >= both_answers && after > *before,
            "the caller heard the second answer after the kill ({before} bytes before, \
             {after} in all): {record:?}\n{}",
            cluster.logs()
        );
    }

    // The records, read through the surviving replica: whole, each item once.
    let stored = sessions_where(&cluster, 1, &agent_id, Duration::from_secs(60), |s| {
        s.status == pb::CallStatus::Completed as i32 && s.conversation.len() >= 4
    })
    .await
    .unwrap_or_else(|| panic!("the calls were not all completed\n{}", cluster.logs()));
    assert_conversations(&stored, &openai, || cluster.logs());

    // The killed replica's calls moved to the other, each once.
    let on_survivor = cluster.calls_connected(1);
    assert!(
        on_killed.is_subset(&on_survivor),
        "the killed replica's calls {on_killed:?} did not all move to replica 1 \
         ({on_survivor:?})\n{}",
        cluster.logs()
    );
    assert_eq!(
        streams_reopened(&cluster),
        on_killed.len(),
        "each call of the killed replica reopened its stream once\n{}",
        cluster.logs()
    );

    // Both watchers saw every call whole, in order, and the same sequence of events:
    // the resumed one missed nothing and saw nothing twice.
    let expected: HashMap<String, (i32, u64)> = stored
        .iter()
        .map(|s| (s.id.clone(), (s.status, s.last_seq)))
        .collect();
    let mut on_steady = Seen::default();
    read_until(
        &mut steady,
        &mut on_steady,
        |s| s.has_all(&expected),
        &cluster,
    )
    .await;
    read_until(
        &mut resumed,
        &mut on_doomed,
        |s| s.has_all(&expected),
        &cluster,
    )
    .await;
    assert_in_order(&on_steady, &expected, "watcher on replica 1");
    assert_in_order(&on_doomed, &expected, "watcher resumed from replica 0");
    assert_eq!(
        on_doomed.ids, on_steady.ids,
        "the resumed watcher saw what the steady one saw, once, in its order"
    );
    assert_quiet(&mut steady).await;
    assert_quiet(&mut resumed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_for_twenty_seconds_mid_call_drops_no_call_and_loses_no_item() {
    database_outage("").await;
}

/// The same outage with a driver that gives up on the server within a second, so the
/// control plane's writes fail while it is down, rather than wait for it: the calls'
/// items and final statuses are refused and must be sent again until they land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_down_mid_call_loses_nothing_when_its_writes_fail_meanwhile() {
    database_outage("/?serverSelectionTimeoutMS=1000").await;
}

/// Six calls, the database killed for [`OUTAGE`] in the middle of them; `uri_options`
/// are appended to the database's URI.
async fn database_outage(uri_options: &str) {
    /// The caller says something every this long, from the start to well past the
    /// outage; the test hangs up once a turn after the outage is answered.
    const EVERY: Duration = Duration::from_secs(6);
    const UTTERANCES: u32 = 20;
    let Some(mut database) = SecantusServer::start("the database outage test") else {
        return;
    };
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let uri = format!("{}{uri_options}", database.uri());
    // Leases far shorter than the outage: every call's lapses while nobody can renew
    // it, and the sweeper must not end them once the database is back.
    let orphan_timeout = (
        "SWITCHBOARD_ORPHAN_TIMEOUT",
        format!("{}s", ORPHAN_TIMEOUT.as_secs()),
    );
    let cluster = start_cluster(&uri, &openai, vec![orphan_timeout]).await;
    let agent_id = create_agent(&cluster, 0).await;
    let of_agent = pb::WatchCallEventsRequest {
        agent_id: agent_id.clone(),
        ..Default::default()
    };
    let mut watcher = watch(&mut cluster.sessions(1), of_agent).await.unwrap();

    let talk = (1..UTTERANCES).fold(TalkScript::saying(AudioSource::hello_en()), |talk, i| {
        talk.say_at(EVERY * i, AudioSource::hello_en())
    });
    let callers = place_calls(&cluster, &talk).await;

    // Before: every call's first turn is stored.
    sessions_where(&cluster, 0, &agent_id, Duration::from_secs(60), |s| {
        s.conversation.len() >= 2
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the first turns were not stored\n{}",
            outage_logs(&cluster, &database)
        )
    });

    // During: the database is gone for 20 s; the calls go on, turns answered.
    let turns = |openai: &OpenAiSim| -> Vec<usize> {
        openai
            .records()
            .sessions()
            .iter()
            .map(|r| r.responses_created.len())
            .collect()
    };
    database.kill();
    let answered_before = turns(&openai);
    // Some callers hang up while it is down: their calls must end right all the same.
    tokio::time::sleep(HANG_UP_INTO_OUTAGE).await;
    let (leaving, staying): (Vec<_>, Vec<_>) = callers
        .iter()
        .enumerate()
        .partition(|(index, _)| index % SIDECARS == SIDECARS - 1);
    for (_, caller) in &leaving {
        let _ = caller.hang_up();
    }
    tokio::time::sleep(OUTAGE - HANG_UP_INTO_OUTAGE).await;
    let answered_during = turns(&openai);
    let realtime = openai.records().sessions();
    assert!(
        leaving.iter().all(|(_, c)| c.is_finished())
            && staying.iter().all(|(_, c)| !c.is_finished()),
        "only the calls hung up ended while the database was down: {:?}\n{}",
        callers.iter().map(Caller::record).collect::<Vec<_>>(),
        outage_logs(&cluster, &database)
    );
    let live: Vec<usize> = (0..realtime.len())
        .filter(|i| realtime[*i].ended.is_none())
        .collect();
    assert!(
        live.len() == staying.len()
            && live
                .iter()
                .all(|i| answered_during[*i] > answered_before[*i]),
        "every call still on took a turn while the database was down ({answered_before:?} \
         answers before, {answered_during:?} after; {} Realtime sessions still open)\n{}",
        live.len(),
        outage_logs(&cluster, &database)
    );

    // After: the database is back on the same data; each caller hangs up once a turn
    // taken after that is answered.
    database.start_again();
    let logs = || outage_logs(&cluster, &database);
    let after_restart = turns(&openai);
    let answered_after = |caller: &Caller| {
        let Some(stream) = caller.record().stream().cloned() else {
            return false;
        };
        // The Realtime session of this call: the one whose answers it has heard. The
        // simulator cannot be asked by call; counting answers heard is enough here.
        let answers_heard = stream.heard.total_bytes / (ANSWER_MS * 8);
        let most_before = after_restart.iter().copied().max().unwrap_or(0) as u64;
        answers_heard > most_before
    };
    let records = hang_up_when(&callers, answered_after, "an answer after the outage", logs).await;
    for record in &records {
        assert_whole_call(record, logs);
    }

    let stored = sessions_where(&cluster, 1, &agent_id, Duration::from_secs(90), |s| {
        s.status == pb::CallStatus::Completed as i32
    })
    .await
    .unwrap_or_else(|| panic!("the calls were not all completed\n{}", logs()));
    assert_conversations(&stored, &openai, logs);

    // The dashboard watching through the outage saw every call whole, in order, once.
    let expected: HashMap<String, (i32, u64)> = stored
        .iter()
        .map(|s| (s.id.clone(), (s.status, s.last_seq)))
        .collect();
    let mut seen = Seen::default();
    read_until(&mut watcher, &mut seen, |s| s.has_all(&expected), &cluster).await;
    assert_in_order(&seen, &expected, "watcher through the outage");
    assert_quiet(&mut watcher).await;
}
