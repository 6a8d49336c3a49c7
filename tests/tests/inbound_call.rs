//! A whole inbound call through the real services: Twilio (simulated) dials a number,
//! the sidecar answers with a stream, the agent's session reaches OpenAI (simulated),
//! both sides speak, and the record holds every turn in order.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{AudioSource, CallSpec, Caller, TalkScript};
use switchboard_tests::{Harness, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const NUMBER: &str = "+14155550100";

fn agent() -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Reception".into(),
        phone_numbers: vec![NUMBER.into()],
        voice: "marin".into(),
        instructions: "You answer the phone for Acme.".into(),
        temperature: Some(0.7),
        input_transcription: Some(pb::InputTranscription {
            model: "gpt-4o-transcribe".into(),
            language: "en".into(),
            prompt: String::new(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_is_answered_logged_in_order_and_completed_on_the_embedded_store() {
    inbound_call_on(StoreKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_is_answered_logged_in_order_and_completed_on_mongodb() {
    match StoreKind::from_env() {
        store @ StoreKind::Mongo(_) => inbound_call_on(store).await,
        StoreKind::Embedded => eprintln!("note: SWITCHBOARD_TEST_MONGODB_URI is not set; the other e2e tests ran on the embedded store"),
    }
}

async fn inbound_call_on(store: StoreKind) {
    let script = Script {
        turns: vec![Turn {
            caller: "Hello, is this Acme?".into(),
            reply: Some(Reply {
                text: "Yes, this is Acme. How can I help?".into(),
                audio_ms: Some(1_500),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    };
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script),
        ..SimConfig::for_test()
    })
    .await;
    let harness = Harness::start(store, &switchboard_tests::realtime_url(&openai), None).await;
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = harness
        .sessions()
        .watch_call_events(pb::WatchCallEventsRequest {
            agent_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let talk =
        TalkScript::saying(AudioSource::hello_en()).hang_up_after(Duration::from_millis(7_000));
    let spec =
        CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    let record = Caller::start(spec).finished().await;
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}\n{}", harness.logs()));
    assert!(
        stream.warnings.is_empty(),
        "the sidecar sent what Twilio accepts: {:?}",
        stream.warnings
    );
    assert!(
        stream.received.media > 0,
        "the caller heard the assistant\n{}",
        harness.logs()
    );

    // The session OpenAI got is the agent's.
    let session = openai.records().last().expect("an openai session");
    let config = &session.session_config;
    assert_eq!(config.voice.as_deref(), Some("marin"));
    assert_eq!(
        config.instructions.as_deref(),
        Some("You answer the phone for Acme.")
    );
    assert!(
        !session.user_turns.is_empty(),
        "the caller's turn was heard"
    );

    // The record: completed, with the caller's and the assistant's turns in order.
    let mut sessions = harness.sessions();
    let stored = harness
        .agent_session_where(&created.id, Duration::from_secs(15), |s| {
            s.status == pb::CallStatus::Completed as i32 && s.conversation.len() >= 2
        })
        .await;
    let Some(stored) = stored else {
        let list = sessions
            .list_call_sessions(pb::ListCallSessionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        panic!(
            "the call was not completed with its turns stored: {:?}\n{}",
            list.call_sessions,
            harness.logs()
        );
    };
    assert_eq!(stored.twilio_call_sid, record.call_sid);
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let user = stored.conversation.iter().position(|i| {
        i.role == pb::ConversationRole::User as i32 && i.text == "Hello, is this Acme?"
    });
    let assistant = stored.conversation.iter().position(|i| {
        i.role == pb::ConversationRole::Assistant as i32
            && i.text == "Yes, this is Acme. How can I help?"
    });
    let (Some(user), Some(assistant)) = (user, assistant) else {
        panic!("turns missing: {:?}", stored.conversation)
    };
    assert!(user < assistant);
    sessions
        .get_call_session(pb::GetCallSessionRequest {
            id: stored.id.clone(),
        })
        .await
        .unwrap();

    // Every relayed frame's latency was measured.
    let latencies = harness
        .sidecar_metric("switchboard_sidecar_relay_latency_seconds_count")
        .await;
    assert!(
        latencies.is_some_and(|n| n >= stream.sent.frames as f64 / 2.0),
        "relay latency histogram: {latencies:?}"
    );

    // Events: the status changes and the stored items were published.
    let mut saw_completed = false;
    let mut items = 0;
    while !(saw_completed && items >= 2) {
        let Ok(Ok(Some(event))) =
            tokio::time::timeout(Duration::from_secs(5), events.message()).await
        else {
            panic!("events missing: completed={saw_completed} items={items}");
        };
        match event.event {
            Some(pb::call_event::Event::ItemStored(_)) => items += 1,
            Some(pb::call_event::Event::StatusChanged(change)) => {
                saw_completed |= change.current == pb::CallStatus::Completed as i32
            }
            _ => {}
        }
    }
}
