//! Shared by the `http_*` tests: a fake control plane (our own `CallChannelService`,
//! with canned routes, recording what it is asked), a sidecar served on loopback with
//! [`serve_with_state`], and a minimal HTTP/1.1 client so the tests speak to real
//! sockets without another dependency.
//!
//! Included with `#[path]` by each test file; not every file uses every helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use switchboard_media_sidecar::config::{Config, PublicUrl};
use switchboard_media_sidecar::drain::DrainReport;
use switchboard_media_sidecar::http::{MediaBridgeUnavailable, MediaHandler};
use switchboard_media_sidecar::{serve_with_state, AppState, Listeners, ServeError};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_channel_service_server::{
    CallChannelService, CallChannelServiceServer,
};
use switchboard_proto::v1::open_inbound_call_response::Route;
use switchboard_twilio::signature::RequestValidator;
use switchboard_twilio::webhooks::form_params;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

/// The Auth Token of `Config::for_test`.
pub(crate) const AUTH_TOKEN: &str = "test-auth-token";
/// A voice webhook body as Twilio sends it for an inbound call.
pub(crate) const VOICE_BODY: &str = "AccountSid=AC00000000000000000000000000000001\
    &ApiVersion=2010-04-01&CallSid=CA00000000000000000000000000000001&CallStatus=ringing\
    &Called=%2B14155550100&Caller=%2B14155550199&Direction=inbound\
    &From=%2B14155550199&To=%2B14155550100";

// === fake control plane ===

/// What the fake answers to `OpenInboundCall` for a dialled number.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Route(Route),
    Fail(tonic::Code),
}

/// Everything the fake was asked, and its canned answers.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) opened: Vec<pb::OpenInboundCallRequest>,
    pub(crate) statuses: Vec<pb::ReportTwilioStatusRequest>,
    pub(crate) authorization: Vec<Option<String>>,
    answers: HashMap<String, Answer>,
}

/// Our own `CallChannelService`, faked: every session is `call-<n>`, routes are
/// realtime unless [`FakeControlPlane::answer`] says otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeControlPlane {
    recorded: Arc<Mutex<Recorded>>,
}

/// A running fake; dropping it stops the server.
#[derive(Debug)]
pub(crate) struct RunningFake {
    pub(crate) fake: FakeControlPlane,
    pub(crate) url: String,
    _stop: oneshot::Sender<()>,
}

impl FakeControlPlane {
    pub(crate) async fn start() -> RunningFake {
        let fake = FakeControlPlane::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(CallChannelServiceServer::new(fake.clone()))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        RunningFake {
            fake,
            url,
            _stop: stop,
        }
    }

    /// Answers calls to `to_number` with `answer`.
    pub(crate) fn answer(&self, to_number: &str, answer: Answer) {
        self.lock().answers.insert(to_number.to_owned(), answer);
    }

    pub(crate) fn opened(&self) -> Vec<pb::OpenInboundCallRequest> {
        self.lock().opened.clone()
    }

    pub(crate) fn statuses(&self) -> Vec<pb::ReportTwilioStatusRequest> {
        self.lock().statuses.clone()
    }

    pub(crate) fn authorization(&self) -> Vec<Option<String>> {
        self.lock().authorization.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap()
    }

    fn record_auth<T>(&self, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        self.lock().authorization.push(header);
    }
}

#[tonic::async_trait]
impl CallChannelService for FakeControlPlane {
    async fn open_inbound_call(
        &self,
        request: Request<pb::OpenInboundCallRequest>,
    ) -> Result<Response<pb::OpenInboundCallResponse>, Status> {
        self.record_auth(&request);
        let request = request.into_inner();
        let mut recorded = self.lock();
        recorded.opened.push(request.clone());
        let answer = recorded
            .answers
            .get(&request.to_number)
            .cloned()
            .unwrap_or(Answer::Route(Route::Realtime(pb::RealtimeRoute::default())));
        let route = match answer {
            Answer::Route(route) => route,
            Answer::Fail(code) => return Err(Status::new(code, "the fake says no")),
        };
        let session = pb::CallSession {
            id: format!("call-{}", recorded.opened.len()),
            twilio_call_sid: request.call_sid,
            ..pb::CallSession::default()
        };
        Ok(Response::new(pb::OpenInboundCallResponse {
            session: Some(session),
            route: Some(route),
        }))
    }

    type ConnectStream =
        Pin<Box<dyn Stream<Item = Result<pb::ConnectResponse, Status>> + Send + 'static>>;

    async fn connect(
        &self,
        _request: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        Err(Status::unimplemented("the fake has no call streams"))
    }

    async fn report_twilio_status(
        &self,
        request: Request<pb::ReportTwilioStatusRequest>,
    ) -> Result<Response<pb::ReportTwilioStatusResponse>, Status> {
        self.record_auth(&request);
        self.lock().statuses.push(request.into_inner());
        Ok(Response::new(pb::ReportTwilioStatusResponse {
            session: None,
            applied: true,
        }))
    }
}

// === sidecar ===

/// A sidecar served on loopback; [`Sidecar::stop`] runs its drain.
#[derive(Debug)]
pub(crate) struct Sidecar {
    pub(crate) http: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<DrainReport, ServeError>>>,
}

impl Sidecar {
    /// `Config::for_test` against `control_plane_url`, changed by `tweak`, with the
    /// placeholder media handler.
    pub(crate) async fn start(control_plane_url: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_with_handler(control_plane_url, tweak, Arc::new(MediaBridgeUnavailable)).await
    }

    pub(crate) async fn start_with_handler(
        control_plane_url: &str,
        tweak: impl FnOnce(&mut Config),
        handler: Arc<dyn MediaHandler>,
    ) -> Self {
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let mut config = Config::for_test();
        config.public_url = PublicUrl::parse(&format!("http://{http}")).unwrap();
        config.control_plane.urls = vec![control_plane_url.to_owned()];
        tweak(&mut config);
        let state = AppState::new(config, handler).unwrap();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            http: http_listener,
            admin: admin_listener,
        };
        let task = tokio::spawn(serve_with_state(state.clone(), listeners, async {
            let _ = stopped.await;
        }));
        let sidecar = Self {
            http,
            admin,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        eventually("the sidecar is ready", || sidecar.state.drain.is_ready()).await;
        sidecar
    }

    /// The public URL of `path_and_query` (what Twilio signs).
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        self.state.config.public_url.http_url(path_and_query)
    }

    /// POSTs `body` to `path_and_query`, signed as Twilio signs it with `auth_token`.
    pub(crate) async fn post_signed(
        &self,
        path_and_query: &str,
        body: &str,
        auth_token: &str,
    ) -> HttpResponse {
        let signature = RequestValidator::new(auth_token)
            .compute(&self.url(path_and_query), &form_params(body.as_bytes()));
        self.post(path_and_query, body, Some(&signature)).await
    }

    /// POSTs a form `body` with an optional `X-Twilio-Signature`.
    pub(crate) async fn post(
        &self,
        path_and_query: &str,
        body: &str,
        signature: Option<&str>,
    ) -> HttpResponse {
        let mut headers = vec![(
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        if let Some(signature) = signature {
            headers.push(("X-Twilio-Signature", signature.to_owned()));
        }
        send(self.http, "POST", path_and_query, &headers, body.as_bytes()).await
    }

    /// GETs `path` on the admin listener.
    pub(crate) async fn admin_get(&self, path: &str) -> HttpResponse {
        send(self.admin, "GET", path, &[], b"").await
    }

    /// Triggers shutdown and waits for the drain to finish.
    pub(crate) async fn stop(mut self) -> DrainReport {
        let _ = self.shutdown.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("serve returns after the drain")
            .unwrap()
            .unwrap()
    }
}

// === HTTP/1.1 client ===

/// An answer read off the socket.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl HttpResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one request on a new connection (`Connection: close`) and reads the answer.
pub(crate) async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server refusing the body (413) may close before reading it all.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if !raw.is_empty() => {
                eprintln!("connection ended with {e} after the answer");
                break;
            }
            Err(e) => panic!("no answer from {addr}{path}: {e}"),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    out
}

// === waiting ===

/// Polls `condition` until it holds, for at most 10 s.
pub(crate) async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A control-plane URL nothing listens on (a port bound, then released).
pub(crate) async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
