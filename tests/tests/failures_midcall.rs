//! Faults in the middle of a call (docs/media-sidecar.md, "Promises kept under
//! faults"): OpenAI refusing or dropping the socket sends the live call to the agent's
//! fallback through Twilio's REST API, and a control plane killed and restarted during a
//! call loses and duplicates no conversation item while the audio goes on — also when
//! the call ends while it is down: the final status waits in the sidecar.
//!
//! Refusals at the edge are in `failures.rs`.

mod failures_support;

use std::time::Duration;

use failures_support::{
    agent, agent_session_where, create_agent, fake_twilio, inbound, openai_sim, realtime_url,
    verbs_after_stream, CONTROL_PLANE_APOLOGY,
};
use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Fault, Reply, Script, Trigger, Turn};
use switchboard_sim::twilio::document::DialTarget;
use switchboard_sim::twilio::{
    AudioSource, CallEnd, CallRecord, Caller, FakeTwilio, StreamEnd, TalkScript, Verb,
};
use switchboard_tests::{eventually, Harness, StoreKind, ACCOUNT_SID};

/// Waits (bounded) for a simulated call to end.
async fn finished(caller: &Caller, harness: &Harness) -> CallRecord {
    match tokio::time::timeout(Duration::from_secs(40), caller.finished()).await {
        Ok(record) => record,
        Err(_) => panic!(
            "the call did not end: {:?}\n{}",
            caller.record(),
            harness.logs()
        ),
    }
}

/// The `Twiml` of the fake's one redirect of `call_sid`.
fn redirect_twiml(fake: &FakeTwilio, call_sid: &str) -> String {
    let path = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json");
    let updates: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .collect();
    let [update] = updates.as_slice() else {
        panic!("one update of {call_sid} expected: {:?}", fake.requests());
    };
    assert!(update.authorized && update.status == 200, "{update:?}");
    update
        .params
        .iter()
        .find(|(key, _)| key == "Twiml")
        .map(|(_, twiml)| twiml.clone())
        .unwrap_or_else(|| panic!("no Twiml in {update:?}"))
}

/// Checks the record of a call the control plane redirected to `twiml`.
fn assert_redirected(record: &CallRecord, twiml: &str) {
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no stream: {record:?}"));
    assert_eq!(stream.end, Some(StreamEnd::Redirected), "{record:?}");
    let last = record.documents.last().expect("documents");
    assert_eq!((last.origin, last.twiml.as_str()), ("update", twiml));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_openai_refuses_the_live_call_is_transferred_to_the_agents_fallback() {
    const NUMBER: &str = "+14155550321";
    const MESSAGE: &str = "Our assistant is unavailable. A colleague will take your call.";
    let openai = openai_sim(Script::default(), vec![Fault::Refuse { status: 503 }]).await;
    let (fake, rest_url) = fake_twilio().await;
    let harness = Harness::start(
        StoreKind::from_env(),
        &realtime_url(&openai),
        Some(&rest_url),
    )
    .await;
    let mut settings = agent("Transfers", NUMBER);
    settings.fallback = Some(pb::Fallback {
        message: MESSAGE.into(),
        action: pb::fallback::Action::Transfer.into(),
    });
    settings.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName(
            "support-room".into(),
        )),
    });
    let agent_id = create_agent(&harness, settings).await;

    let caller = fake.place_inbound_call(inbound(
        &harness,
        NUMBER,
        TalkScript::saying(AudioSource::hello_en()),
    ));
    let record = finished(&caller, &harness).await;

    // The control plane redirected the live call: Say, then the conference.
    let twiml = redirect_twiml(&fake, &record.call_sid);
    assert_redirected(&record, &twiml);
    assert_eq!(
        verbs_after_stream(&record),
        [
            Verb::Say {
                text: MESSAGE.into(),
                voice: None,
                language: None
            },
            Verb::Dial {
                action: None,
                timeout_secs: None,
                caller_id: None,
                targets: vec![DialTarget::Conference("support-room".into())],
            }
        ],
        "{twiml}"
    );
    assert_eq!(record.end, Some(CallEnd::Dialed));

    // OpenAI refused the one connection; nothing else reached it.
    assert!(openai.records().is_empty());
    let rejections = openai.records().rejections();
    assert_eq!(
        rejections.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503]
    );

    // The session: handed off, why, and the fallback in the conversation.
    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::HandedOff as i32 && !s.conversation.is_empty()
    })
    .await
    .unwrap_or_else(|| panic!("the session was not handed off\n{}", harness.logs()));
    assert_ended_for_ai_unavailable(&stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_openai_drops_mid_call_the_caller_hears_the_apology_and_is_hung_up() {
    const NUMBER: &str = "+14155550322";
    let script = Script {
        turns: vec![Turn {
            caller: "Hello, is this Acme?".into(),
            reply: Some(Reply {
                text: "Yes, this is Acme.".into(),
                audio_ms: Some(800),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    };
    let openai = openai_sim(script, vec![Fault::Drop(Trigger::AfterMs(2_000))]).await;
    let (fake, rest_url) = fake_twilio().await;
    let harness = Harness::start(
        StoreKind::from_env(),
        &realtime_url(&openai),
        Some(&rest_url),
    )
    .await;
    let mut settings = agent("Hangs up", NUMBER);
    settings.fallback = Some(pb::Fallback {
        message: String::new(),
        action: pb::fallback::Action::HangUp.into(),
    });
    let agent_id = create_agent(&harness, settings).await;

    let caller = fake.place_inbound_call(inbound(
        &harness,
        NUMBER,
        TalkScript::saying(AudioSource::hello_en()),
    ));
    let record = finished(&caller, &harness).await;

    let twiml = redirect_twiml(&fake, &record.call_sid);
    assert_redirected(&record, &twiml);
    assert_eq!(
        verbs_after_stream(&record),
        [
            Verb::Say {
                text: CONTROL_PLANE_APOLOGY.into(),
                voice: None,
                language: None
            },
            Verb::Hangup
        ],
        "{twiml}"
    );
    assert_eq!(record.end, Some(CallEnd::Hangup));

    // The socket was open and then dropped by the fault.
    let session = openai.records().last().expect("an openai session");
    assert_eq!(session.faults_fired, [Fault::Drop(Trigger::AfterMs(2_000))]);
    assert_eq!(openai.records().len(), 1, "no second session");

    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.status == pb::CallStatus::Failed as i32 && !s.conversation.is_empty()
    })
    .await
    .unwrap_or_else(|| panic!("the session did not fail\n{}", harness.logs()));
    assert_ended_for_ai_unavailable(&stored);
}

/// The session ended for `ai_unavailable` with `openai.unavailable`, and its last item is
/// the fallback note.
fn assert_ended_for_ai_unavailable(stored: &pb::CallSession) {
    assert_eq!(stored.end_reason, "ai_unavailable", "{stored:?}");
    assert_eq!(
        stored.error.as_ref().map(|e| e.code.as_str()),
        Some("openai.unavailable"),
        "{stored:?}"
    );
    let last = stored.conversation.last().expect("items");
    assert_eq!(
        (last.role, last.kind, last.text.as_str()),
        (
            pb::ConversationRole::System as i32,
            pb::ConversationItemKind::Note as i32,
            "fallback: openai_unavailable"
        ),
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_mid_call_loses_and_duplicates_no_item_and_the_audio_goes_on() {
    const NUMBER: &str = "+14155550323";
    const HANG_UP: Duration = Duration::from_millis(21_000);
    let script = questions_and_answers(&[
        ("First question.", "First answer."),
        ("Second question.", "Second answer."),
        ("Third question.", "Third answer."),
    ]);
    let openai = openai_sim(script, Vec::new()).await;
    let mut harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    let agent_id = create_agent(&harness, agent("Restarts", NUMBER)).await;

    let talk = TalkScript::saying(AudioSource::hello_en())
        .say_at(Duration::from_millis(7_000), AudioSource::hello_en())
        .say_at(Duration::from_millis(14_000), AudioSource::hello_en())
        .hang_up_after(HANG_UP);
    let caller = Caller::start(inbound(&harness, NUMBER, talk));

    // Before: the first turn is stored.
    let first = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.conversation.len() >= 2
    })
    .await
    .unwrap_or_else(|| panic!("the first turn was not stored\n{}", harness.logs()));

    // During: the control plane is gone while the second turn is spoken and answered.
    harness.kill_control_plane();
    let heard_before_outage = received_media(&caller);
    let second_answered = eventually(Duration::from_secs(20), || async {
        let session = openai.records().last()?;
        let heard = received_media(&caller);
        (session.user_turns.len() >= 2
            && session.responses_created.len() >= 2
            && heard > heard_before_outage)
            .then_some(heard)
    })
    .await;
    let heard_during_outage = second_answered.unwrap_or_else(|| {
        panic!(
            "no second turn while the control plane was down: {:?}\n{}",
            openai.records().last(),
            harness.logs()
        )
    });
    assert!(
        !caller.is_finished(),
        "the call goes on without the control plane"
    );

    // After: the same control plane comes back (same store, same port).
    harness.start_control_plane();
    let record = finished(&caller, &harness).await;

    // The audio went on throughout, on the one stream, until the caller hung up.
    assert_eq!(record.streams.len(), 1, "{record:?}");
    let stream = record.stream().expect("a stream");
    assert_eq!(stream.end, Some(StreamEnd::CallerHungUp), "{record:?}");
    assert_eq!(record.end, Some(CallEnd::CallerHungUp));
    assert!(stream.warnings.is_empty(), "{:?}", stream.warnings);
    assert!(
        stream.received.media > heard_during_outage,
        "the caller heard the assistant after the restart\n{}",
        harness.logs()
    );
    let sessions = openai.records().sessions();
    let [session] = sessions.as_slice() else {
        panic!("one openai session expected: {sessions:?}");
    };
    assert_eq!(
        session.appends, stream.sent.frames,
        "every caller frame reached openai"
    );

    // Every item exactly once, in seq order, no gaps: the sim's turns and replies.
    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(20), |s| {
        s.status == pb::CallStatus::Completed as i32
            && s.conversation.len() >= 2 * session.user_turns.len()
    })
    .await
    .unwrap_or_else(|| panic!("the call was not completed\n{}", harness.logs()));
    assert_eq!(stored.id, first.id);
    assert_eq!(stored.end_reason, "caller_hung_up");
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{stored:?}"
    );
    assert_eq!(stored.last_seq, seqs.len() as u64);
    let by_role = |role: pb::ConversationRole| -> Vec<(&str, &str)> {
        stored
            .conversation
            .iter()
            .filter(|item| item.role == role as i32)
            .map(|item| (item.provider_item_id.as_str(), item.text.as_str()))
            .collect()
    };
    let heard: Vec<(&str, &str)> = session
        .user_turns
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    assert_eq!(by_role(pb::ConversationRole::User), heard, "{stored:?}");
    assert!(session.user_turns.len() >= 3, "{session:?}");
    let answers: Vec<&str> = by_role(pb::ConversationRole::Assistant)
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    let replies = ["First answer.", "Second answer.", "Third answer."];
    assert_eq!(
        answers,
        replies[..session.responses_created.len().min(3)],
        "{stored:?}"
    );
    assert_eq!(
        stored.conversation.len(),
        heard.len() + answers.len(),
        "nothing else was stored: {stored:?}"
    );
    let restarts = harness
        .sidecar
        .output()
        .matches("control stream reopened")
        .count();
    assert_eq!(restarts, 1, "{}", harness.logs());
}

/// µ-law `media` messages the caller has received so far.
fn received_media(caller: &Caller) -> u64 {
    caller.record().stream().map_or(0, |s| s.received.media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ends_while_the_control_plane_is_down_is_recorded_whole_once_it_is_back() {
    const NUMBER: &str = "+14155550324";
    let script = questions_and_answers(&[
        ("First question.", "First answer."),
        ("Second question.", "Second answer."),
    ]);
    let openai = openai_sim(script, Vec::new()).await;
    let mut harness = Harness::start(StoreKind::from_env(), &realtime_url(&openai), None).await;
    let agent_id = create_agent(&harness, agent("Ends while down", NUMBER)).await;

    let talk = TalkScript::saying(AudioSource::hello_en())
        .say_at(Duration::from_millis(6_000), AudioSource::hello_en())
        .hang_up_after(Duration::from_millis(11_000));
    let caller = Caller::start(inbound(&harness, NUMBER, talk));
    let first = agent_session_where(&harness, &agent_id, Duration::from_secs(15), |s| {
        s.conversation.len() >= 2
    })
    .await
    .unwrap_or_else(|| panic!("the first turn was not stored\n{}", harness.logs()));

    // The control plane dies; the second turn and the hang-up happen without it.
    harness.kill_control_plane();
    let record = finished(&caller, &harness).await;
    assert_eq!(record.end, Some(CallEnd::CallerHungUp), "{record:?}");
    let session = openai.records().last().expect("an openai session");
    assert!(session.user_turns.len() >= 2, "{session:?}");
    // The sidecar holds the call until what it must say is delivered.
    let holding = eventually(Duration::from_secs(10), || async {
        let active = harness.sidecar_active_calls().await?;
        let ended = openai.records().last()?.ended.is_some();
        (active == 1 && ended).then_some(())
    })
    .await;
    assert!(
        holding.is_some(),
        "the call should wait for the control plane, its openai session closed\n{}",
        harness.logs()
    );

    // Back (same store, same port): the resumed stream delivers the rest, once.
    harness.start_control_plane();
    let stored = agent_session_where(&harness, &agent_id, Duration::from_secs(30), |s| {
        s.status == pb::CallStatus::Completed as i32
    })
    .await
    .unwrap_or_else(|| panic!("the final status was not stored\n{}", harness.logs()));
    assert_eq!(stored.id, first.id);
    assert_eq!(stored.end_reason, "caller_hung_up");
    let session = openai.records().last().expect("an openai session");
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "{stored:?}"
    );
    let users: Vec<(&str, &str)> = stored
        .conversation
        .iter()
        .filter(|i| i.role == pb::ConversationRole::User as i32)
        .map(|i| (i.provider_item_id.as_str(), i.text.as_str()))
        .collect();
    let heard: Vec<(&str, &str)> = session
        .user_turns
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    assert_eq!(users, heard, "every caller turn once: {stored:?}");
    let answers: Vec<&str> = stored
        .conversation
        .iter()
        .filter(|i| i.role == pb::ConversationRole::Assistant as i32)
        .map(|i| i.text.as_str())
        .collect();
    let replies = ["First answer.", "Second answer."];
    assert_eq!(
        answers,
        replies[..session.responses_created.len().min(2)],
        "{stored:?}"
    );
    assert_eq!(stored.conversation.len(), users.len() + answers.len());

    // The sidecar let the call go once the control plane had answered.
    let settled = eventually(Duration::from_secs(15), || async {
        let done = harness
            .sidecar_metric(r#"switchboard_sidecar_calls_total{outcome="completed"}"#)
            .await?;
        let active = harness.sidecar_active_calls().await?;
        (done == 1.0 && active == 0).then_some(())
    })
    .await;
    assert!(settled.is_some(), "{}", harness.logs());
    let reopened = harness
        .sidecar
        .output()
        .matches("control stream reopened")
        .count();
    assert_eq!(reopened, 1, "{}", harness.logs());
}

/// A script of caller turns, each answered with 800 ms of audio.
fn questions_and_answers(turns: &[(&str, &str)]) -> Script {
    Script {
        turns: turns
            .iter()
            .map(|(caller, answer)| Turn {
                caller: (*caller).into(),
                reply: Some(Reply {
                    text: (*answer).into(),
                    audio_ms: Some(800),
                }),
                function_call: None,
                after_call: None,
            })
            .collect(),
        ..Script::default()
    }
}
