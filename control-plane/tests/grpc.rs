//! The control plane's gRPC services over real loopback sockets, with the real
//! generated clients and the embedded store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use switchboard_control_plane::config::{Config, Secret};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::call_channel_service_client::CallChannelServiceClient;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_proto::v1::connect_request::Message as In;
use switchboard_proto::v1::connect_response::Message as Out;
use switchboard_proto::v1::open_inbound_call_response::Route;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// A control plane on `127.0.0.1:0` for one test.
struct TestServer {
    addr: SocketAddr,
    channel: Channel,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), |_| {}).await
    }

    async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), edit).await
    }

    async fn start_in(dir: tempfile::TempDir, edit: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_test(dir.path().to_path_buf());
        edit(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            switchboard_control_plane::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            addr,
            channel,
            stop,
            task,
            dir,
        }
    }

    /// Stops the server and starts a new one on the same data, with `edit` applied.
    async fn restart_with(self, edit: impl FnOnce(&mut Config)) -> Self {
        let TestServer {
            channel,
            stop,
            task,
            dir,
            ..
        } = self;
        drop(channel);
        let _ = stop.send(());
        task.await.unwrap();
        Self::start_in(dir, edit).await
    }

    fn agents(&self) -> AgentSettingsServiceClient<Channel> {
        AgentSettingsServiceClient::new(self.channel.clone())
    }

    fn sessions(&self) -> CallSessionServiceClient<Channel> {
        CallSessionServiceClient::new(self.channel.clone())
    }

    /// The session once it has reached `status` (bounded patience).
    async fn wait_for_status(&self, id: &str, status: pb::CallStatus) -> pb::CallSession {
        let sessions = self.sessions();
        eventually(|| {
            let mut sessions = sessions.clone();
            let id = id.to_owned();
            async move {
                let s = sessions
                    .get_call_session(pb::GetCallSessionRequest { id })
                    .await
                    .unwrap()
                    .into_inner();
                (s.status == status as i32).then_some(s)
            }
        })
        .await
    }

    fn calls(&self) -> CallChannelServiceClient<Channel> {
        CallChannelServiceClient::new(self.channel.clone())
    }
}

fn unique_number() -> String {
    let n = uuid::Uuid::now_v7().as_u128() % 100_000_000;
    format!("+8150{n:08}")
}

fn agent(name: &str, number: &str) -> pb::AgentSettings {
    pb::AgentSettings {
        name: name.into(),
        phone_numbers: vec![number.into()],
        instructions: "You are speaking with {{name}} about plan {{plan}}.".into(),
        voice: "marin".into(),
        temperature: Some(0.8),
        tools: vec![pb::Tool {
            name: "lookup_order".into(),
            description: "Looks up an order".into(),
            parameters_json_schema: r#"{"type":"object","properties":{"id":{"type":"string"}}}"#
                .into(),
            webhook_url: "https://tools.example.invalid/order".into(),
            timeout: None,
        }],
        ..Default::default()
    }
}

async fn create_agent(server: &TestServer, a: pb::AgentSettings) -> pb::AgentSettings {
    let request = pb::CreateAgentSettingsRequest {
        agent_settings: Some(a),
    };
    server
        .agents()
        .create_agent_settings(request)
        .await
        .unwrap()
        .into_inner()
}

async fn create_session(server: &TestServer, agent_id: &str) -> pb::CallSession {
    let request = pb::CreateCallSessionRequest {
        agent_id: agent_id.into(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        customer: Some(pb::Customer {
            name: "Yamada".into(),
            ..Default::default()
        }),
        variables: HashMap::from([("plan".to_owned(), "premium".to_owned())]),
        ..Default::default()
    };
    server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner()
}

fn item(seq: u64, text: &str) -> pb::ConversationItem {
    pb::ConversationItem {
        seq,
        role: pb::ConversationRole::User.into(),
        kind: pb::ConversationItemKind::Message.into(),
        text: text.into(),
        ..Default::default()
    }
}

fn batch(seqs: std::ops::RangeInclusive<u64>) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Items(pb::ConversationBatch {
            items: seqs.map(|s| item(s, &format!("item {s}"))).collect(),
        })),
    }
}

fn hello(call_id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Hello(pb::Hello {
            call_id: call_id.into(),
            stream_sid: "MZ00000000000000000000000000000001".into(),
            call_sid: String::new(),
            sidecar_id: "sidecar-test".into(),
        })),
    }
}

/// A sidecar's end of one call stream.
struct CallStream {
    send: mpsc::Sender<pb::ConnectRequest>,
    recv: tonic::Streaming<pb::ConnectResponse>,
}

impl CallStream {
    async fn open(server: &TestServer, first: pb::ConnectRequest) -> Result<Self, tonic::Status> {
        let (send, outgoing) = mpsc::channel(16);
        send.send(first).await.unwrap();
        let response = server
            .calls()
            .connect(ReceiverStream::new(outgoing))
            .await?;
        Ok(Self {
            send,
            recv: response.into_inner(),
        })
    }

    async fn next(&mut self) -> Result<Out, tonic::Status> {
        let message = tokio::time::timeout(Duration::from_secs(10), self.recv.message())
            .await
            .expect("a reply within 10 s")?;
        Ok(message.and_then(|m| m.message).expect("a message"))
    }

    async fn send(&self, request: pb::ConnectRequest) {
        self.send.send(request).await.unwrap();
    }
}

async fn eventually<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn agent_settings_crud_with_optimistic_versions() {
    let server = TestServer::start().await;
    let created = create_agent(&server, agent("Reception", &unique_number())).await;
    assert_eq!(created.version, 1);
    assert_eq!(
        created.mode,
        pb::AgentMode::Realtime as i32,
        "mode defaults to realtime"
    );

    let fetched = server
        .agents()
        .get_agent_settings(pb::GetAgentSettingsRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);

    // Switch to the legacy conference mode at run time, naming only that field.
    let mut edit = created.clone();
    edit.mode = pb::AgentMode::Conference.into();
    edit.instructions = "ignored: not in the mask".into();
    let updated = server
        .agents()
        .update_agent_settings(pb::UpdateAgentSettingsRequest {
            agent_settings: Some(edit.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["mode".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.mode, pb::AgentMode::Conference as i32);
    assert_eq!(updated.instructions, created.instructions);

    let stale = server
        .agents()
        .update_agent_settings(pb::UpdateAgentSettingsRequest {
            agent_settings: Some(edit),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    let listed = server
        .agents()
        .list_agent_settings(pb::ListAgentSettingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agent_settings, vec![updated.clone()]);
    assert!(listed.next_page_token.is_empty());

    server
        .agents()
        .delete_agent_settings(pb::DeleteAgentSettingsRequest {
            id: created.id.clone(),
            version: 2,
        })
        .await
        .unwrap();
    let gone = server
        .agents()
        .get_agent_settings(pb::GetAgentSettingsRequest { id: created.id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_agent_settings_are_refused_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let number = unique_number();
    type Spoil = Box<dyn Fn(&mut pb::AgentSettings)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("agent_settings.name", Box::new(|a| a.name.clear())),
        (
            "agent_settings.phone_numbers[0]",
            Box::new(|a| a.phone_numbers = vec!["090-1234-5678".into()]),
        ),
        (
            "agent_settings.temperature",
            Box::new(|a| a.temperature = Some(1.9)),
        ),
        (
            "agent_settings.turn_detection.threshold",
            Box::new(|a| {
                a.turn_detection = Some(pb::TurnDetection {
                    threshold: Some(1.2),
                    ..Default::default()
                })
            }),
        ),
        (
            "agent_settings.turn_detection.silence_duration_ms",
            Box::new(|a| {
                a.turn_detection = Some(pb::TurnDetection {
                    silence_duration_ms: Some(99_999),
                    ..Default::default()
                })
            }),
        ),
        (
            "agent_settings.tools[0].parameters_json_schema",
            Box::new(|a| {
                a.tools[0].parameters_json_schema = r#"{"type":"object","required":"id"}"#.into()
            }),
        ),
        ("agent_settings.mode", Box::new(|a| a.mode = 17)),
        ("agent_settings.provider", Box::new(|a| a.provider = -3)),
    ];
    for (field, spoil) in cases {
        let mut a = agent("Bad", &number);
        spoil(&mut a);
        let status = server
            .agents()
            .create_agent_settings(pb::CreateAgentSettingsRequest {
                agent_settings: Some(a),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let listed = server
        .agents()
        .list_agent_settings(pb::ListAgentSettingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.agent_settings.is_empty(), "nothing was stored");

    let missing = server
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().starts_with("agent_settings"));
}

#[tokio::test]
async fn a_phone_number_owned_by_another_agent_is_already_exists() {
    let server = TestServer::start().await;
    let number = unique_number();
    create_agent(&server, agent("First", &number)).await;
    let status = server
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent("Second", &number)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains(&number), "{}", status.message());
}

#[tokio::test]
async fn call_sessions_reject_bad_input_and_unknown_agents() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Outbound", &unique_number())).await;
    let base = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        ..Default::default()
    };
    let bad = [
        (
            "to_number",
            pb::CreateCallSessionRequest {
                to_number: "12345".into(),
                ..base.clone()
            },
        ),
        (
            "from_number",
            pb::CreateCallSessionRequest {
                from_number: String::new(),
                ..base.clone()
            },
        ),
        (
            "agent_id",
            pb::CreateCallSessionRequest {
                agent_id: String::new(),
                ..base.clone()
            },
        ),
        (
            "direction",
            pb::CreateCallSessionRequest {
                direction: 9,
                ..base.clone()
            },
        ),
    ];
    for (field, request) in bad {
        let status = server
            .sessions()
            .create_call_session(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let unknown = pb::CreateCallSessionRequest {
        agent_id: "no-such-agent".into(),
        ..base
    };
    assert_eq!(
        server
            .sessions()
            .create_call_session(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let missing = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let token = pb::ListCallSessionsRequest {
        page_token: "garbage".into(),
        ..Default::default()
    };
    let status = server
        .sessions()
        .list_call_sessions(token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("page_token"));
}

#[tokio::test]
async fn a_final_status_cannot_be_left() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Status", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    assert_eq!(s.status, pb::CallStatus::Queued as i32);
    let update = |status: pb::CallStatus| pb::UpdateCallStatusRequest {
        id: s.id.clone(),
        status: status.into(),
        ..Default::default()
    };
    server
        .sessions()
        .update_call_status(update(pb::CallStatus::Ringing))
        .await
        .unwrap();
    let done = server
        .sessions()
        .update_call_status(update(pb::CallStatus::NoAnswer))
        .await
        .unwrap()
        .into_inner();
    assert!(done.ended_at.is_some());
    let status = server
        .sessions()
        .update_call_status(update(pb::CallStatus::InProgress))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("no-answer") && status.message().contains("in-progress"),
        "{}",
        status.message()
    );
    let unspecified = server
        .sessions()
        .update_call_status(update(pb::CallStatus::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_call_stream_acks_items_idempotently_and_nacks_gaps() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Stream", &unique_number())).await;
    let s = create_session(&server, &a.id).await;

    let mut watch = server
        .sessions()
        .watch_call_events(pb::WatchCallEventsRequest {
            call_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    let Out::Config(config) = call.next().await.unwrap() else {
        panic!("config first")
    };
    assert_eq!(config.stored_through_seq, 0);
    let settings = config.agent_settings.unwrap();
    assert_eq!(
        settings.instructions,
        "You are speaking with Yamada about plan premium."
    );
    assert_eq!(
        config.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );

    call.send(batch(1..=3)).await;
    assert_eq!(
        call.next().await.unwrap(),
        Out::Ack(pb::Ack {
            stored_through_seq: 3
        })
    );
    call.send(batch(1..=3)).await;
    assert_eq!(
        call.next().await.unwrap(),
        Out::Ack(pb::Ack {
            stored_through_seq: 3
        })
    );
    call.send(batch(6..=7)).await;
    let Out::Nack(nack) = call.next().await.unwrap() else {
        panic!("nack on a gap")
    };
    assert_eq!(nack.expected_seq, 4);
    call.send(batch(3..=5)).await;
    assert_eq!(
        call.next().await.unwrap(),
        Out::Ack(pb::Ack {
            stored_through_seq: 5
        })
    );

    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        stored.twilio_stream_sid,
        "MZ00000000000000000000000000000001"
    );

    let mut seen_items = Vec::new();
    let mut saw_in_progress = false;
    while seen_items.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event.event.unwrap() {
            pb::call_event::Event::ItemStored(stored) => seen_items.push(stored.item.unwrap().seq),
            pb::call_event::Event::StatusChanged(change) => {
                saw_in_progress |= change.current == pb::CallStatus::InProgress as i32;
            }
            other => panic!("unexpected event {other:?}"),
        }
        assert_eq!(event.call_id, s.id);
    }
    assert_eq!(seen_items, vec![1, 2, 3, 4, 5]);
    assert!(saw_in_progress);

    // A reconnect (after a control-plane restart, say) learns what is stored.
    let mut again = CallStream::open(&server, hello(&s.id)).await.unwrap();
    let Out::Config(config) = again.next().await.unwrap() else {
        panic!("config first")
    };
    assert_eq!(config.stored_through_seq, 5);
}

#[tokio::test]
async fn a_stream_for_an_unknown_or_ended_call_is_refused() {
    let server = TestServer::start().await;
    let unknown = CallStream::open(&server, hello("no-such-call"))
        .await
        .err()
        .expect("refused");
    assert_eq!(unknown.code(), Code::NotFound);

    let a = create_agent(&server, agent("Ended", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let done = pb::UpdateCallStatusRequest {
        id: s.id.clone(),
        status: pb::CallStatus::Completed.into(),
        ..Default::default()
    };
    server.sessions().update_call_status(done).await.unwrap();
    let ended = CallStream::open(&server, hello(&s.id))
        .await
        .err()
        .expect("refused");
    assert_eq!(ended.code(), Code::FailedPrecondition);
    assert!(ended.message().contains("completed"));

    let not_hello = CallStream::open(&server, batch(1..=1))
        .await
        .err()
        .expect("refused");
    assert_eq!(not_hello.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn status_updates_on_the_stream_end_the_call() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Status stream", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    call.next().await.unwrap();
    call.send(pb::ConnectRequest {
        message: Some(In::Status(pb::StatusUpdate {
            status: pb::CallStatus::Failed.into(),
            end_reason: "openai_unavailable".into(),
            error: Some(pb::CallError {
                code: "openai.unavailable".into(),
                message: "connection refused".into(),
            }),
        })),
    })
    .await;
    let ended = server.wait_for_status(&s.id, pb::CallStatus::Failed).await;
    assert_eq!(ended.end_reason, "openai_unavailable");
    assert_eq!(ended.error.unwrap().code, "openai.unavailable");
}

#[tokio::test]
async fn inbound_calls_are_routed_by_the_dialled_number() {
    let server = TestServer::start().await;
    let realtime_number = unique_number();
    let mut a = agent("Realtime", &realtime_number);
    a.greeting = "Hello!".into();
    create_agent(&server, a).await;
    let conference_number = unique_number();
    let mut c = agent("Humans", &conference_number);
    c.mode = pb::AgentMode::Conference.into();
    c.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName(
            "support-desk".into(),
        )),
    });
    create_agent(&server, c).await;

    let open = |to: &str, sid: &str| pb::OpenInboundCallRequest {
        to_number: to.into(),
        from_number: "+14155550123".into(),
        call_sid: sid.into(),
        sidecar_id: "sidecar-1".into(),
        call_id: String::new(),
    };
    let first = server
        .calls()
        .open_inbound_call(open(&realtime_number, "CA0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.route,
        Some(Route::Realtime(pb::RealtimeRoute {
            greeting: "Hello!".into()
        }))
    );
    let session = first.session.unwrap();
    assert_eq!(session.direction, pb::CallDirection::Inbound as i32);
    assert_eq!(session.status, pb::CallStatus::Ringing as i32);
    assert_eq!(session.customer.unwrap().phone, "+14155550123");

    // Twilio retries the webhook: same session.
    let retry = server
        .calls()
        .open_inbound_call(open(&realtime_number, "CA0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.session.unwrap().id, session.id);

    let humans = server
        .calls()
        .open_inbound_call(open(&conference_number, "CA0002"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        humans.route,
        Some(Route::Conference(pb::ConferenceRoute {
            conference_name: "support-desk".into(),
            say: String::new()
        }))
    );
    assert_eq!(
        humans.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );

    let nobody = server
        .calls()
        .open_inbound_call(open(&unique_number(), "CA0003"))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(nobody.route, Some(Route::Reject(_))));
    let failed = nobody.session.unwrap();
    assert_eq!(failed.status, pb::CallStatus::Failed as i32);
    assert_eq!(failed.error.unwrap().code, "agent.not_found");

    let bad = server
        .calls()
        .open_inbound_call(open("not-a-number", "CA0004"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("to_number"));
}

#[tokio::test]
async fn the_default_agent_answers_unknown_numbers_and_data_survives_a_restart() {
    let server =
        TestServer::start_with(|c| c.default_agent_id = Some("not-created-yet".into())).await;
    let open = |sid: &str| pb::OpenInboundCallRequest {
        to_number: unique_number(),
        from_number: "+14155550123".into(),
        call_sid: sid.into(),
        sidecar_id: String::new(),
        call_id: String::new(),
    };
    // A default agent that does not exist: the call is refused politely, not crashed.
    let refused = server
        .calls()
        .open_inbound_call(open("CA0100"))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(refused.route, Some(Route::Reject(_))));

    let fallback = create_agent(&server, agent("Default", &unique_number())).await;
    let id = fallback.id.clone();
    let server = server
        .restart_with(move |c| c.default_agent_id = Some(id))
        .await;
    let answered = server
        .calls()
        .open_inbound_call(open("CA0101"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(answered.route, Some(Route::Realtime(_))),
        "{:?}",
        answered.route
    );
    assert_eq!(answered.session.unwrap().agent_id, fallback.id);
    // The session refused before the restart is still on record.
    let before = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest {
            id: refused.session.unwrap().id,
        })
        .await
        .unwrap();
    assert_eq!(before.into_inner().status, pb::CallStatus::Failed as i32);
}

#[tokio::test]
async fn with_a_token_every_rpc_but_health_needs_it() {
    let server =
        TestServer::start_with(|c| c.api_token = Some(Secret::new("t0ken-for-tests"))).await;
    let status = server
        .agents()
        .list_agent_settings(pb::ListAgentSettingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("t0ken"));

    let mut request = Request::new(pb::ListAgentSettingsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Bearer t0ken-for-tests".parse().unwrap());
    server.agents().list_agent_settings(request).await.unwrap();

    let mut wrong = Request::new(pb::ListAgentSettingsRequest::default());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer t0ken-for-test".parse().unwrap());
    assert_eq!(
        server
            .agents()
            .list_agent_settings(wrong)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn campaigns_are_declared_but_unimplemented() {
    use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
    let server = TestServer::start().await;
    let status = CampaignServiceClient::new(server.channel.clone())
        .create_campaign(pb::CreateCampaignRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let server = TestServer::start().await;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: server.addr.to_string(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(server.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "switchboard.v1.AgentSettingsService",
        "switchboard.v1.CallSessionService",
        "switchboard.v1.CallChannelService",
        "switchboard.v1.CampaignService",
        "switchboard.v1.HandoffService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn batches_sent_together_are_stored_in_order_and_acknowledged_cumulatively() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Burst", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    call.next().await.unwrap();
    // Twenty batches without waiting for acks, one of them a re-send and one a gap.
    for start in (1..=100).step_by(5) {
        call.send(batch(start..=start + 4)).await;
        if start == 51 {
            call.send(batch(46..=55)).await;
        }
    }
    call.send(batch(200..=201)).await;
    let mut last_ack = 0;
    let mut nacks = Vec::new();
    while last_ack < 100 || nacks.is_empty() {
        match call.next().await.unwrap() {
            Out::Ack(ack) => {
                assert!(ack.stored_through_seq >= last_ack, "acks never go back");
                last_ack = ack.stored_through_seq;
            }
            Out::Nack(nack) => nacks.push(nack.expected_seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(nacks, vec![101]);
    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    assert!(stored
        .conversation
        .iter()
        .all(|i| i.text == format!("item {}", i.seq)));
}

#[tokio::test]
async fn twilio_status_callbacks_move_the_call_and_stale_ones_change_nothing() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Callbacks", &unique_number())).await;
    let mut request = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        ..Default::default()
    };
    request.twilio_call_sid = "CA00000000000000000000000000000042".into();
    let s = server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner();
    let report = |status: &str, seq: u32| pb::ReportTwilioStatusRequest {
        call_sid: "CA00000000000000000000000000000042".into(),
        call_status: status.into(),
        sequence_number: seq,
        ..Default::default()
    };
    let mut calls = server.calls();
    let ringing = calls
        .report_twilio_status(report("ringing", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(ringing.applied);
    let answered = calls
        .report_twilio_status(report("in-progress", 2))
        .await
        .unwrap()
        .into_inner();
    assert!(answered.applied);
    // A late "ringing" after "in-progress": ignored, not an error.
    let stale = calls
        .report_twilio_status(report("ringing", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!stale.applied);
    assert_eq!(
        stale.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );
    let busy = pb::ReportTwilioStatusRequest {
        call_id: s.id.clone(),
        error_code: "31005".into(),
        error_message: "connection error".into(),
        ..report("failed", 3)
    };
    let failed = calls
        .report_twilio_status(busy)
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(failed.status, pb::CallStatus::Failed as i32);
    assert_eq!(failed.end_reason, "twilio_failed");
    assert_eq!(failed.error.unwrap().code, "twilio.31005");

    let unknown = pb::ReportTwilioStatusRequest {
        call_sid: "CAffffffffffffffffffffffffffffffff".into(),
        ..report("completed", 4)
    };
    assert_eq!(
        calls
            .report_twilio_status(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let bad = calls
        .report_twilio_status(report("exploded", 5))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("call_status"));
}

/// A fake of Twilio's "update a call" endpoint that records what it was sent.
async fn fake_twilio() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
) {
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;
    async fn update(
        State(seen): State<Seen>,
        Path((account, call)): Path<(String, String)>,
        headers: HeaderMap,
        body: String,
    ) -> axum::Json<serde_json::Value> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock()
            .unwrap()
            .push((format!("{account}/{call}"), auth, body));
        axum::Json(
            serde_json::json!({ "sid": call.trim_end_matches(".json"), "status": "in-progress" }),
        )
    }
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            axum::routing::post(update),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn when_the_ai_is_unavailable_the_call_is_redirected_to_the_agents_fallback() {
    let (twilio_url, seen) = fake_twilio().await;
    let server = TestServer::start_with(|c| {
        c.twilio.account_sid = Some("AC00000000000000000000000000000007".into());
        c.twilio.auth_token = Some(Secret::new("twilio-token"));
        c.twilio.api_url = twilio_url;
    })
    .await;
    let mut a = agent("Fallback", &unique_number());
    a.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName("humans".into())),
    });
    a.fallback = Some(pb::Fallback {
        message: "Connecting you to a person.".into(),
        action: pb::fallback::Action::Transfer.into(),
    });
    let a = create_agent(&server, a).await;
    let request = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        twilio_call_sid: "CA00000000000000000000000000000077".into(),
        ..Default::default()
    };
    let s = server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner();
    let mut watch = server
        .sessions()
        .watch_call_events(pb::WatchCallEventsRequest {
            call_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    call.next().await.unwrap();
    call.send(pb::ConnectRequest {
        message: Some(In::Fallback(pb::FallbackRequest {
            error: Some(pb::CallError {
                code: "openai.unavailable".into(),
                message: "connection refused".into(),
            }),
        })),
    })
    .await;

    let ended = server
        .wait_for_status(&s.id, pb::CallStatus::HandedOff)
        .await;
    assert_eq!(ended.end_reason, "ai_unavailable");
    assert_eq!(ended.error.unwrap().code, "openai.unavailable");

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (path, auth, body) = &requests[0];
    assert_eq!(
        path,
        "AC00000000000000000000000000000007/CA00000000000000000000000000000077.json"
    );
    assert!(auth.starts_with("Basic "), "{auth}");
    let form: HashMap<String, String> = serde_urlencoded::from_str(body).unwrap();
    let twiml = &form["Twiml"];
    assert!(
        twiml.contains("<Say>Connecting you to a person.</Say>")
            && twiml.contains("<Conference>humans</Conference>"),
        "{twiml}"
    );

    let mut saw_handoff = false;
    while !saw_handoff {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        saw_handoff = matches!(event.event, Some(pb::call_event::Event::Handoff(_)));
    }
}

#[tokio::test]
async fn a_placed_call_is_answered_by_its_own_agent_and_learns_its_call_sid() {
    let server = TestServer::start().await;
    let mut greeter = agent("Outbound", &unique_number());
    greeter.greeting = "Hello from the outbound agent".into();
    let outbound = create_agent(&server, greeter).await;
    let other_number = unique_number();
    create_agent(&server, agent("Owner of the number", &other_number)).await;
    let placed = create_session(&server, &outbound.id).await;

    let request = pb::OpenInboundCallRequest {
        to_number: other_number.clone(),
        from_number: "+815011112222".into(),
        call_sid: "CA000000000000000000000000000000aa".into(),
        sidecar_id: "sidecar-1".into(),
        call_id: placed.id.clone(),
    };
    let answer = server
        .calls()
        .open_inbound_call(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.route,
        Some(Route::Realtime(pb::RealtimeRoute {
            greeting: "Hello from the outbound agent".into()
        }))
    );
    let session = answer.session.unwrap();
    assert_eq!(session.id, placed.id);
    assert_eq!(
        session.twilio_call_sid,
        "CA000000000000000000000000000000aa"
    );

    let unknown = pb::OpenInboundCallRequest {
        call_id: "no-such-call".into(),
        ..request
    };
    assert_eq!(
        server
            .calls()
            .open_inbound_call(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn a_handoff_redirects_the_live_call_to_humans_and_ends_the_session() {
    use switchboard_proto::v1::handoff_service_client::HandoffServiceClient;
    let (twilio_url, seen) = fake_twilio().await;
    let server = TestServer::start_with(|c| {
        c.twilio.account_sid = Some("AC00000000000000000000000000000007".into());
        c.twilio.auth_token = Some(Secret::new("twilio-token"));
        c.twilio.api_url = twilio_url;
    })
    .await;
    let mut a = agent("Handoff", &unique_number());
    a.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName("support".into())),
    });
    let a = create_agent(&server, a).await;
    let request = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        twilio_call_sid: "CA000000000000000000000000000000bb".into(),
        ..Default::default()
    };
    let s = server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner();
    let mut handoff = HandoffServiceClient::new(server.channel.clone());

    let bad = pb::RequestHandoffRequest {
        call_id: s.id.clone(),
        target: Some(pb::HandoffTarget {
            target: Some(pb::handoff_target::Target::PhoneNumber("0312345678".into())),
        }),
        ..Default::default()
    };
    let status = handoff.request_handoff(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("target.phone_number"),
        "{}",
        status.message()
    );
    let unknown = pb::RequestHandoffRequest {
        call_id: "no-such-call".into(),
        ..Default::default()
    };
    assert_eq!(
        handoff.request_handoff(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "refused requests call nobody"
    );

    let request = pb::RequestHandoffRequest {
        call_id: s.id.clone(),
        reason: "caller asked".into(),
        say: "One moment please.".into(),
        ..Default::default()
    };
    let ended = handoff
        .request_handoff(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.status, pb::CallStatus::HandedOff as i32);
    assert_eq!(ended.end_reason, "caller asked");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let form: HashMap<String, String> = serde_urlencoded::from_str(&requests[0].2).unwrap();
    assert!(
        form["Twiml"].contains("<Say>One moment please.</Say>")
            && form["Twiml"].contains("<Conference>support</Conference>"),
        "{}",
        form["Twiml"]
    );

    let again = handoff.request_handoff(request).await.unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "an ended call cannot be handed off"
    );
}

#[tokio::test]
async fn a_handoff_without_any_target_is_refused_and_the_call_goes_on() {
    use switchboard_proto::v1::handoff_service_client::HandoffServiceClient;
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("No target", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let status = HandoffServiceClient::new(server.channel.clone())
        .request_handoff(pb::RequestHandoffRequest {
            call_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.status, pb::CallStatus::Queued as i32);
}
