//! What the control plane's service tests share: a server on `127.0.0.1:0` with the
//! embedded store, the real generated clients, fixtures, a sidecar's end of a call
//! stream, and a fake of Twilio's "update a call" endpoint.

#![allow(dead_code, unreachable_pub, unused_imports)] // each test file uses its own part

pub use std::collections::HashMap;
pub use std::net::SocketAddr;
pub use std::time::Duration;

pub use switchboard_control_plane::config::{Config, Secret};
pub use switchboard_proto::v1 as pb;
pub use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
pub use switchboard_proto::v1::call_channel_service_client::CallChannelServiceClient;
pub use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
pub use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
pub use switchboard_proto::v1::connect_request::Message as In;
pub use switchboard_proto::v1::connect_response::Message as Out;
pub use switchboard_proto::v1::open_inbound_call_response::Route;
pub use tokio::sync::{mpsc, oneshot};
pub use tokio_stream::wrappers::ReceiverStream;
pub use tonic::transport::Channel;
pub use tonic::{Code, Request};

/// A control plane on `127.0.0.1:0` for one test.
pub struct TestServer {
    pub addr: SocketAddr,
    pub channel: Channel,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), |_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), edit).await
    }

    pub async fn start_in(dir: tempfile::TempDir, edit: impl FnOnce(&mut Config)) -> Self {
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
    pub async fn restart_with(self, edit: impl FnOnce(&mut Config)) -> Self {
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

    pub fn agents(&self) -> AgentSettingsServiceClient<Channel> {
        AgentSettingsServiceClient::new(self.channel.clone())
    }

    pub fn sessions(&self) -> CallSessionServiceClient<Channel> {
        CallSessionServiceClient::new(self.channel.clone())
    }

    /// The session once it has reached `status` (bounded patience).
    pub async fn wait_for_status(&self, id: &str, status: pb::CallStatus) -> pb::CallSession {
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

    pub fn campaigns(&self) -> CampaignServiceClient<Channel> {
        CampaignServiceClient::new(self.channel.clone())
    }

    pub fn calls(&self) -> CallChannelServiceClient<Channel> {
        CallChannelServiceClient::new(self.channel.clone())
    }
}

pub fn unique_number() -> String {
    let n = uuid::Uuid::now_v7().as_u128() % 100_000_000;
    format!("+8150{n:08}")
}

pub fn agent(name: &str, number: &str) -> pb::AgentSettings {
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

pub async fn create_agent(server: &TestServer, a: pb::AgentSettings) -> pb::AgentSettings {
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

pub async fn create_session(server: &TestServer, agent_id: &str) -> pb::CallSession {
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

pub fn item(seq: u64, text: &str) -> pb::ConversationItem {
    pb::ConversationItem {
        seq,
        role: pb::ConversationRole::User.into(),
        kind: pb::ConversationItemKind::Message.into(),
        text: text.into(),
        ..Default::default()
    }
}

pub fn batch(seqs: std::ops::RangeInclusive<u64>) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Items(pb::ConversationBatch {
            items: seqs.map(|s| item(s, &format!("item {s}"))).collect(),
        })),
    }
}

pub fn hello(call_id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Hello(pb::Hello {
            call_id: call_id.into(),
            stream_sid: "MZ00000000000000000000000000000001".into(),
            call_sid: String::new(),
            sidecar_id: "sidecar-test".into(),
            resume: false,
        })),
    }
}

/// A sidecar's end of one call stream.
pub struct CallStream {
    pub send: mpsc::Sender<pb::ConnectRequest>,
    recv: tonic::Streaming<pb::ConnectResponse>,
}

impl CallStream {
    pub async fn open(
        server: &TestServer,
        first: pb::ConnectRequest,
    ) -> Result<Self, tonic::Status> {
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

    pub async fn next(&mut self) -> Result<Out, tonic::Status> {
        let message = tokio::time::timeout(Duration::from_secs(10), self.recv.message())
            .await
            .expect("a reply within 10 s")?;
        Ok(message.and_then(|m| m.message).expect("a message"))
    }

    pub async fn send(&self, request: pb::ConnectRequest) {
        self.send.send(request).await.unwrap();
    }
}

pub async fn eventually<T, F, Fut>(mut probe: F) -> T
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

/// A fake of Twilio's "update a call" endpoint that records what it was sent.
pub async fn fake_twilio() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
) {
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;
    pub async fn update(
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
