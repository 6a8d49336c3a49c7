//! SIGTERM with a call in progress: the sidecar stops being ready, answers a new call
//! with the fallback instead of a stream, lets the call in progress run to the caller's
//! own hang-up with its conversation stored and the session completed, and only then
//! exits, with status 0.
//!
//! And SIGTERM between a call's answer and its media socket: the voice webhook was
//! answered with a stream before the drain began, the socket arrives after; the call is
//! the sidecar's already, so the socket is accepted, the call runs to the caller's
//! hang-up with its session completed, and the sidecar (which had no other call) waits
//! for it before exiting with status 0.
//!
//! And SIGTERM with a call that outlasts the drain grace: when the grace runs out the
//! sidecar does not let the process cut the call — it asks the control plane to send
//! the caller to the agent's fallback (Twilio's REST API redirects the live call), the
//! session ends `sidecar_drained` with its conversation stored, and the sidecar exits
//! with status 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_sim::openai::{Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{
    AudioSource, CallEnd, CallRecord, CallSpec, Caller, FakeTwilio, RestConfig, StreamEnd,
    TalkScript, Verb,
};
use switchboard_tests::{
    eventually, Harness, HarnessOptions, StoreKind, ACCOUNT_SID, TWILIO_AUTH_TOKEN,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const NUMBER: &str = "+14155550100";
const CALLER_SAYS: &str = "Hello, I'd like to check on my order.";
/// How much audio the call in progress sends before its caller hangs up.
const CALL_AUDIO_MS: u64 = 6_000;
const ASSISTANT_SAYS: &str = "Of course. What is the order number?";

fn agent() -> pb::AgentSettings {
    pb::AgentSettings {
        name: "Reception".into(),
        phone_numbers: vec![NUMBER.into()],
        voice: "marin".into(),
        instructions: "You answer the phone for Acme.".into(),
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
                audio_ms: Some(1_000),
            }),
            function_call: None,
            after_call: None,
        }],
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_progress_finish_refuses_new_ones_and_exits_cleanly() {
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    let mut harness = Harness::start(
        StoreKind::from_env(),
        &switchboard_tests::realtime_url(&openai),
        None,
    )
    .await;
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap()
        .into_inner();
    let ready = eventually(Duration::from_secs(10), || async {
        let (status, _) = harness.sidecar_admin_get("/readyz").await?;
        (status == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "the sidecar is ready\n{}", harness.logs());

    // A call that lasts until its caller hangs up, about 6 s in, once the drain has been
    // seen from outside (no race with a scripted hang-up on a slow machine).
    let talk = TalkScript::saying(AudioSource::hello_en());
    let spec =
        CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    let in_progress = Caller::start(spec);
    let records = openai.records();
    let streaming = eventually(Duration::from_secs(15), || {
        let records = records.clone();
        async move { records.last().filter(|s| s.appends > 0).map(|_| ()) }
    })
    .await;
    assert!(
        streaming.is_some(),
        "the call streams to openai: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );
    let counted = eventually(Duration::from_secs(10), || async {
        (harness.sidecar_active_calls().await? == 1).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the sidecar counts the call as active");

    // SIGTERM: the replica turns not-ready at once, for good.
    harness.sidecar.signal_terminate();
    let draining = eventually(Duration::from_secs(10), || async {
        let (status, body) = harness.sidecar_admin_get("/readyz").await?;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(
        draining.as_deref(),
        Some("draining\n"),
        "/readyz answers 503 while draining\n{}",
        harness.logs()
    );
    assert!(
        !in_progress.is_finished(),
        "the call in progress goes on after SIGTERM: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );
    assert_eq!(
        harness.sidecar_active_calls().await,
        Some(1),
        "the call in progress still counts while draining"
    );

    // A new call during the drain hears the fallback: no stream, a message, a hang-up.
    let late = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN);
    let late = tokio::time::timeout(Duration::from_secs(30), Caller::start(late).finished())
        .await
        .expect("the new call is answered");
    assert!(
        late.streams.is_empty(),
        "no stream for a new call during the drain: {late:?}"
    );
    assert!(
        late.verbs
            .iter()
            .any(|verb| matches!(verb, Verb::Say { text, .. } if !text.trim().is_empty())),
        "the new call hears the fallback message: {late:?}"
    );
    assert_eq!(late.end, Some(CallEnd::Hangup), "and is hung up: {late:?}");
    assert_eq!(
        openai.records().len(),
        1,
        "the refused call never reached openai"
    );
    assert!(
        !in_progress.is_finished(),
        "the call in progress is still going: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );

    // The call in progress goes on through the drain: the caller is answered, and the
    // call runs to about 6 s of audio.
    let talked = talks_through(&in_progress, CALL_AUDIO_MS).await;
    assert!(
        talked && !in_progress.is_finished(),
        "the call in progress goes on during the drain: {:?}\n{}",
        in_progress.record(),
        harness.logs()
    );

    // It ends when the caller hangs up, not before: nothing cut it.
    let record = hang_up_and_finish(&in_progress, &harness).await;
    assert!(
        record
            .stream()
            .is_some_and(|stream| stream.received.media > 0),
        "the caller heard the assistant during the drain"
    );

    let closed = eventually(Duration::from_secs(15), || {
        let ended = openai.records().last().and_then(|s| s.ended);
        async move { ended }
    })
    .await;
    assert_eq!(
        closed.as_deref(),
        Some("client closed"),
        "the sidecar closed the realtime session itself"
    );

    // Its session: completed, with both turns stored in order.
    let sessions = harness.sessions();
    let agent_id = created.id.clone();
    let stored = eventually(Duration::from_secs(30), || {
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
            let id = list
                .call_sessions
                .iter()
                .find(|s| s.status == pb::CallStatus::Completed as i32)?
                .id
                .clone();
            let s = sessions
                .get_call_session(pb::GetCallSessionRequest { id })
                .await
                .ok()?
                .into_inner();
            (s.conversation.len() >= 2).then_some(s)
        }
    })
    .await;
    let Some(stored) = stored else {
        let list = sessions
            .clone()
            .list_call_sessions(pb::ListCallSessionsRequest::default())
            .await
            .unwrap()
            .into_inner();
        panic!(
            "the drained call was not completed with its turns stored: {:?}\n{}",
            list.call_sessions,
            harness.logs()
        );
    };
    assert_eq!(stored.twilio_call_sid, record.call_sid);
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let user = stored
        .conversation
        .iter()
        .position(|i| i.role == pb::ConversationRole::User as i32 && i.text == CALLER_SAYS);
    let assistant = stored
        .conversation
        .iter()
        .position(|i| i.role == pb::ConversationRole::Assistant as i32 && i.text == ASSISTANT_SAYS);
    let (Some(user), Some(assistant)) = (user, assistant) else {
        panic!("turns missing: {:?}", stored.conversation)
    };
    assert!(user < assistant);

    // Then, and not before the call ended, the sidecar exits cleanly.
    let sidecar = &mut harness.sidecar;
    let exited = eventually(Duration::from_secs(30), || {
        let status = sidecar.exit_status();
        async move { status }
    })
    .await;
    let logs = harness.logs();
    let Some(status) = exited else {
        panic!("the sidecar did not exit after the drain\n{logs}");
    };
    assert!(
        status.success(),
        "the sidecar exits with 0 after draining: {status}\n{logs}"
    );
}

/// How much audio the late-connected call sends before its caller hangs up.
const LATE_CALL_AUDIO_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_before_sigterm_whose_socket_comes_after_is_served_to_its_end() {
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    // Twilio reaches the sidecar through a gate that holds media-stream upgrades: the
    // public URL (webhook signatures, the `<Stream>` url) is the gate's.
    let gate = StreamGate::bind().await;
    let mut harness = Harness::start_with(
        StoreKind::from_env(),
        &switchboard_tests::realtime_url(&openai),
        HarnessOptions {
            sidecar_env: vec![("SWITCHBOARD_PUBLIC_URL", format!("http://{}", gate.addr))],
            ..HarnessOptions::default()
        },
    )
    .await;
    gate.forward_to(harness.sidecar_http);
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent()),
        })
        .await
        .unwrap()
        .into_inner();
    let ready = eventually(Duration::from_secs(10), || async {
        let (status, _) = harness.sidecar_admin_get("/readyz").await?;
        (status == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "the sidecar is ready\n{}", harness.logs());

    // The call is answered with a stream; its media socket waits at the gate.
    let voice_url = format!("http://{}/api/twilio/voice", gate.addr);
    let talk = TalkScript::saying(AudioSource::hello_en());
    let spec = CallSpec::inbound(voice_url, ACCOUNT_SID, TWILIO_AUTH_TOKEN).with_script(talk);
    let call = Caller::start(spec);
    let held = gate.held_upgrade(Duration::from_secs(15)).await;
    assert!(
        held,
        "the call's media socket reaches the gate: {:?}\n{}",
        call.record(),
        harness.logs()
    );
    assert!(
        call.record().verbs.iter().any(|verb| matches!(
            verb,
            Verb::Connect {
                stream: Some(_),
                ..
            }
        )),
        "the webhook answered with a stream: {:?}",
        call.record()
    );

    // SIGTERM, with no call active yet: the drain begins.
    harness.sidecar.signal_terminate();
    let draining = eventually(Duration::from_secs(10), || async {
        let (status, body) = harness.sidecar_admin_get("/readyz").await?;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(
        draining.as_deref(),
        Some("draining\n"),
        "/readyz answers 503 while draining\n{}",
        harness.logs()
    );
    assert_eq!(
        harness.sidecar_active_calls().await,
        Some(0),
        "the answered call has no media socket yet"
    );

    // Now the socket arrives: it is accepted and the call streams.
    gate.open();
    let records = openai.records();
    let streaming = eventually(Duration::from_secs(15), || {
        let records = records.clone();
        async move { records.last().filter(|s| s.appends > 0).map(|_| ()) }
    })
    .await;
    assert!(
        streaming.is_some(),
        "the late socket is accepted and the call streams to openai: {:?}\n{}",
        call.record(),
        harness.logs()
    );
    let talked = talks_through(&call, LATE_CALL_AUDIO_MS).await;
    assert!(
        talked && !call.is_finished(),
        "the call goes on during the drain: {:?}\n{}",
        call.record(),
        harness.logs()
    );
    assert!(
        harness.sidecar.exit_status().is_none(),
        "the sidecar waits for the call\n{}",
        harness.logs()
    );

    // It ends when the caller hangs up, not before.
    let record = hang_up_and_finish(&call, &harness).await;

    // Its session: completed, not left ringing.
    let sessions = harness.sessions();
    let agent_id = created.id.clone();
    let completed = eventually(Duration::from_secs(30), || {
        let mut sessions = sessions.clone();
        let agent_id = agent_id.clone();
        let call_sid = record.call_sid.clone();
        async move {
            let list = sessions
                .list_call_sessions(pb::ListCallSessionsRequest {
                    agent_id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            list.call_sessions.into_iter().find(|s| {
                s.twilio_call_sid == call_sid && s.status == pb::CallStatus::Completed as i32
            })
        }
    })
    .await;
    assert!(
        completed.is_some(),
        "the late-connected call's session is completed\n{}",
        harness.logs()
    );

    // Then the sidecar exits cleanly.
    let sidecar = &mut harness.sidecar;
    let exited = eventually(Duration::from_secs(30), || {
        let status = sidecar.exit_status();
        async move { status }
    })
    .await;
    let logs = harness.logs();
    let Some(status) = exited else {
        panic!("the sidecar did not exit after the drain\n{logs}");
    };
    assert!(
        status.success(),
        "the sidecar exits with 0 after draining: {status}\n{logs}"
    );
}

/// The drain grace of the sidecar whose call outlasts it.
const SHORT_GRACE: &str = "2s";
const DRAINED_NUMBER: &str = "+14155550101";
const DRAINED_MESSAGE: &str = "We have to end this call now. Please call us again.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_outlasts_the_drain_grace_is_sent_to_its_fallback_and_recorded_drained() {
    let openai = switchboard_tests::openai_sim(SimConfig {
        script: Arc::new(script()),
        ..SimConfig::for_test()
    })
    .await;
    // The control plane redirects live calls through this Twilio REST API.
    let fake = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN));
    let rest = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rest_url = format!("http://{}", rest.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(rest, std::future::pending()));
    let mut harness = Harness::start_with(
        StoreKind::from_env(),
        &switchboard_tests::realtime_url(&openai),
        HarnessOptions {
            twilio_api_url: Some(rest_url),
            sidecar_env: vec![("SWITCHBOARD_DRAIN_GRACE", SHORT_GRACE.to_owned())],
            ..HarnessOptions::default()
        },
    )
    .await;
    let created = harness
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(pb::AgentSettings {
                phone_numbers: vec![DRAINED_NUMBER.into()],
                fallback: Some(pb::Fallback {
                    message: DRAINED_MESSAGE.into(),
                    action: pb::fallback::Action::HangUp.into(),
                }),
                ..agent()
            }),
        })
        .await
        .unwrap()
        .into_inner();

    // A caller who never hangs up: only the sidecar's drain can end this call.
    let mut spec = CallSpec::inbound(harness.voice_url(), ACCOUNT_SID, TWILIO_AUTH_TOKEN)
        .with_script(TalkScript::saying(AudioSource::hello_en()));
    spec.to = DRAINED_NUMBER.into();
    let call = fake.place_inbound_call(spec);

    // Both turns are stored before SIGTERM.
    let talked = harness
        .agent_session_where(&created.id, Duration::from_secs(30), |s| {
            s.conversation.len() >= 2
        })
        .await;
    assert!(
        talked.is_some(),
        "the call's turns are stored: {:?}\n{}",
        call.record(),
        harness.logs()
    );
    assert!(
        !call.is_finished(),
        "the call goes on: {:?}\n{}",
        call.record(),
        harness.logs()
    );

    harness.sidecar.signal_terminate();

    // The grace runs out with the call still on: the control plane redirects it to the
    // agent's fallback — its message, then a hang-up.
    let record = tokio::time::timeout(Duration::from_secs(60), call.finished())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the drained call did not end: {:?}\n{}",
                call.record(),
                harness.logs()
            )
        });
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}"));
    assert_eq!(
        stream.end,
        Some(StreamEnd::Redirected),
        "the stream ended by the fallback's redirect, not cut: {record:?}\n{}",
        harness.logs()
    );
    let path = format!(
        "/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{}.json",
        record.call_sid
    );
    let redirects: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .collect();
    let [redirect] = redirects.as_slice() else {
        panic!("one redirect of the call expected: {:?}", fake.requests());
    };
    assert!(
        redirect.authorized && redirect.status == 200,
        "{redirect:?}"
    );
    let last = record.documents.last().expect("documents");
    assert_eq!(last.origin, "update", "{record:?}");
    let connect = record
        .verbs
        .iter()
        .position(|verb| matches!(verb, Verb::Connect { .. }))
        .unwrap_or_else(|| panic!("no <Connect>: {record:?}"));
    assert_eq!(
        record.verbs[connect + 1..],
        [
            Verb::Say {
                text: DRAINED_MESSAGE.into(),
                voice: None,
                language: None
            },
            Verb::Hangup
        ],
        "the caller hears the agent's fallback: {record:?}"
    );
    assert_eq!(record.end, Some(CallEnd::Hangup));

    // The session: ended `sidecar_drained`, every item stored in order, the fallback
    // last.
    let stored = harness
        .agent_session_where(&created.id, Duration::from_secs(30), |s| {
            s.end_reason == "sidecar_drained" && s.conversation.len() >= 3
        })
        .await
        .unwrap_or_else(|| panic!("the session was not recorded drained\n{}", harness.logs()));
    assert_eq!(stored.status, pb::CallStatus::Failed as i32, "{stored:?}");
    assert_eq!(
        stored.error.as_ref().map(|e| e.code.as_str()),
        Some("sidecar.drained"),
        "{stored:?}"
    );
    assert_eq!(stored.twilio_call_sid, record.call_sid);
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let said = |role: pb::ConversationRole, text: &str| {
        stored
            .conversation
            .iter()
            .any(|i| i.role == role as i32 && i.text == text)
    };
    assert!(
        said(pb::ConversationRole::User, CALLER_SAYS)
            && said(pb::ConversationRole::Assistant, ASSISTANT_SAYS),
        "both turns stored: {:?}",
        stored.conversation
    );
    let last = stored.conversation.last().expect("items");
    assert_eq!(
        (last.role, last.kind, last.text.as_str()),
        (
            pb::ConversationRole::System as i32,
            pb::ConversationItemKind::Note as i32,
            "fallback: sidecar_drained"
        ),
        "{stored:?}"
    );

    // The sidecar closed the realtime session itself, and exits cleanly, having seen
    // the cut call end through the control plane.
    let closed = eventually(Duration::from_secs(15), || {
        let ended = openai.records().last().and_then(|s| s.ended);
        async move { ended }
    })
    .await;
    assert_eq!(closed.as_deref(), Some("client closed"));
    let sidecar = &mut harness.sidecar;
    let exited = eventually(Duration::from_secs(40), || {
        let status = sidecar.exit_status();
        async move { status }
    })
    .await;
    let logs = harness.logs();
    let Some(status) = exited else {
        panic!("the sidecar did not exit after the drain\n{logs}");
    };
    assert!(
        status.success(),
        "the sidecar exits with 0 after draining: {status}\n{logs}"
    );
    assert!(
        harness
            .sidecar
            .output()
            .contains("cut calls ended through the control plane"),
        "no cut call was left unfinished\n{logs}"
    );
}

/// A TCP proxy in front of the sidecar's Twilio listener that passes every connection
/// through, except that a media-stream upgrade waits until [`StreamGate::open`].
struct StreamGate {
    addr: SocketAddr,
    upstream: watch::Sender<Option<SocketAddr>>,
    open: watch::Sender<bool>,
    /// Media-stream upgrades that reached the gate.
    held: watch::Sender<usize>,
}

impl StreamGate {
    const MEDIA_STREAM: &'static [u8] = b"GET /api/twilio/media-stream/";

    async fn bind() -> StreamGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gate = StreamGate {
            addr: listener.local_addr().unwrap(),
            upstream: watch::Sender::new(None),
            open: watch::Sender::new(false),
            held: watch::Sender::new(0),
        };
        let (upstream, open, held) = (gate.upstream.clone(), gate.open.clone(), gate.held.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let relay =
                    Self::relay(client, upstream.subscribe(), open.subscribe(), held.clone());
                tokio::spawn(async move {
                    let _ = relay.await;
                });
            }
        });
        gate
    }

    /// Where connections go (the sidecar's address is known once it started).
    fn forward_to(&self, addr: SocketAddr) {
        self.upstream.send_replace(Some(addr));
    }

    /// Waits (bounded) until a media-stream upgrade is held at the gate.
    async fn held_upgrade(&self, patience: Duration) -> bool {
        let mut held = self.held.subscribe();
        tokio::time::timeout(patience, held.wait_for(|n| *n > 0))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// Lets held and future media-stream upgrades through.
    fn open(&self) {
        self.open.send_replace(true);
    }

    async fn relay(
        mut client: TcpStream,
        mut upstream: watch::Receiver<Option<SocketAddr>>,
        mut open: watch::Receiver<bool>,
        held: watch::Sender<usize>,
    ) -> std::io::Result<()> {
        // The request line tells a media-stream upgrade from a webhook.
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = client.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        if head.starts_with(Self::MEDIA_STREAM) {
            held.send_modify(|n| *n += 1);
            let _ = open.wait_for(|open| *open).await;
        }
        let to = upstream
            .wait_for(Option::is_some)
            .await
            .map_err(std::io::Error::other)?
            .expect("waited for an address");
        let mut server = TcpStream::connect(to).await?;
        server.write_all(&head).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        Ok(())
    }
}

/// Hangs up `call`, waits (bounded) for it to end, and checks that it ended by that
/// hang-up — the stream too, so nothing on the sidecar's side cut it first.
async fn hang_up_and_finish(call: &Caller, harness: &Harness) -> CallRecord {
    call.hang_up().expect("the call is live");
    let record = tokio::time::timeout(Duration::from_secs(60), call.finished())
        .await
        .unwrap_or_else(|_| panic!("the call did not end\n{}", harness.logs()));
    let stream = record
        .stream()
        .unwrap_or_else(|| panic!("no media stream: {record:?}"));
    assert_eq!(
        stream.end,
        Some(StreamEnd::CallerHungUp),
        "the stream ended by the caller's hang-up, not by the sidecar: {record:?}\n{}",
        harness.logs()
    );
    assert_eq!(record.end, Some(CallEnd::CallerHungUp));
    record
}

/// True once the caller has heard the assistant and sent `audio_ms` of audio; false as
/// soon as the call ends before that (a call cut short never gets there).
async fn talks_through(call: &Caller, audio_ms: u64) -> bool {
    let talked = eventually(Duration::from_secs(30), || {
        let record = call.record();
        let talked = record.stream().is_some_and(|stream| {
            stream.received.media > 0 && stream.sent.last_timestamp_ms >= audio_ms
        });
        let cut = record.is_finished();
        async move { (talked || cut).then_some(talked) }
    })
    .await;
    talked == Some(true)
}
