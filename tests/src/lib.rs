//! Cross-service tests: the real `control-plane` and `media-sidecar` binaries on
//! loopback, driven by the simulators, read like the call they test.
//!
//! [`Harness`] starts what a test needs — a control plane (embedded store, or MongoDB
//! when `SWITCHBOARD_TEST_MONGODB_URI` is set), a sidecar pointed at it and at an
//! `openai-sim` — and stops every process when dropped. The binaries are the ones
//! `cargo test --workspace` builds next to this test; [`eventually`] polls with
//! bounded patience instead of sleeping.
//!
//! The Realtime leg runs over TLS, as in production: [`openai_sim`] serves `wss://`
//! with a certificate of a private CA ([`test_ca`]) that the sidecar trusts only
//! through `SWITCHBOARD_OPENAI_CA_FILE`.
//!
//! With [`HarnessOptions::control_plane_tls`] the
//! control plane serves gRPC over TLS (mutual, if asked) with certificates from a private
//! CA, and the sidecar and the harness's own clients reach it at `https://localhost`.
//!
//! [`Cluster`] starts several control-plane replicas on one MongoDB-wire server and
//! several sidecars, each pointed at one replica or at all of them, and kills and
//! restarts them for fault tests; [`SecantusServer`] is a MongoDB-wire server of a
//! test's own, for tests that stop the database.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
use switchboard_sim::openai::{OpenAiSim, SimConfig};
use switchboard_sim::tls::{IssuedCert, TestCa};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Account and token the simulated Twilio signs with, and the sidecar checks.
pub const ACCOUNT_SID: &str = "AC0000000000000000000000000000e2e0";
pub const TWILIO_AUTH_TOKEN: &str = "e2e-twilio-auth-token";
/// The secret the sidecar signs its per-call stream tokens with.
pub const STREAM_TOKEN_SECRET: &str = "e2e-stream-token-secret-of-32-bytes-or-more";

/// A binary built by this workspace, next to the running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or build the binaries first)",
        path.display()
    );
    path
}

/// A free loopback port (bound and released; good enough for tests on one machine).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A child process killed on drop, its output kept in a file for failures.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with a clean environment plus `env`, and waits until `ready`
    /// accepts TCP connections.
    pub fn start(
        name: &'static str,
        env: &[(&str, String)],
        ready: SocketAddr,
        dir: &std::path::Path,
    ) -> Process {
        Process::start_binary(name, &binary(name), env, ready, dir)
    }

    /// [`Process::start`] of the executable at `path` (a binary built elsewhere).
    pub fn start_binary(
        name: &'static str,
        path: &std::path::Path,
        env: &[(&str, String)],
        ready: SocketAddr,
        dir: &std::path::Path,
    ) -> Process {
        let mut command = Command::new(path);
        command.env_clear();
        for (key, value) in env {
            command.env(key, value);
        }
        Process::spawn(name, command, ready, dir)
    }

    /// Runs `command` as it is set up (arguments, environment), its output into
    /// `dir/<name>.log`, and waits until `ready` accepts TCP connections.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        ready: SocketAddr,
        dir: &std::path::Path,
    ) -> Process {
        let log = dir.join(format!("{name}.log"));
        // Appended to: a restarted process keeps the log of its previous run.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut process = Process { name, child, log };
        process.wait_for(ready);
        process
    }

    fn wait_for(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not listen on {addr}:\n{}", self.name, self.output());
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal_terminate();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends SIGTERM and returns at once; [`Process::exit_status`] tells when it exited.
    pub fn signal_terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// The exit status once the process has exited; `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process at once (a crash, as far as its peers can tell).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where the control plane keeps its records.
#[derive(Debug, Clone)]
pub enum StoreKind {
    Embedded,
    /// A MongoDB URI; each harness uses a database of its own.
    Mongo(String),
}

impl StoreKind {
    /// MongoDB when the test environment provides one, else the embedded store.
    #[allow(clippy::disallowed_methods)] // the test harness reads its environment
    pub fn from_env() -> StoreKind {
        match std::env::var("SWITCHBOARD_TEST_MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => StoreKind::Mongo(uri),
            _ => StoreKind::Embedded,
        }
    }
}

/// Whether this run is CI's (`CI` set and not empty), where a test that lacks what it
/// needs fails rather than skips: a skipped test would hide what it guards.
#[allow(clippy::disallowed_methods)] // the test harness reads its environment
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty())
}

/// The value of the test environment's variable `name`; `None` (the caller skips, with
/// a note saying why) when it is not set, except in CI, where that fails the test.
#[allow(clippy::disallowed_methods)] // the test harness reads its environment
fn required_env(name: &str, what_for: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                !in_ci(),
                "{what_for} must run in CI: set {name} (scripts/test.sh does)"
            );
            eprintln!("note: {name} is not set; skipping {what_for}");
            None
        }
    }
}

/// The MongoDB-wire test server's URI (`SWITCHBOARD_TEST_MONGODB_URI`), for tests that
/// cannot run on the embedded store (a [`Cluster`]); `None` (skip) when it is not set,
/// except in CI.
pub fn test_mongodb_uri(what_for: &str) -> Option<String> {
    required_env("SWITCHBOARD_TEST_MONGODB_URI", what_for)
}

// === impl SecantusServer ===

/// A SecantusDB server (the MongoDB-wire test server) of a test's own, on a fixed
/// loopback port, storing on disk, so a test can stop it — `kill -9`, an outage as
/// honest as it gets — and start it again on the same port and data.
///
/// Commits are synced to disk before they are acknowledged (`--sync-on-commit`), as
/// MongoDB's journal does: a server that acknowledged writes and then lost them in a
/// crash has lost data no client can bring back, which is not the fault under test.
/// It runs from the Python of `SWITCHBOARD_TEST_PYTHON` (`.venv`, see
/// `scripts/test.sh`). Killed on drop.
#[derive(Debug)]
pub struct SecantusServer {
    python: String,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    process: Option<Process>,
}

impl SecantusServer {
    /// Starts a server on a free port with an empty storage directory; `None` (skip)
    /// without `SWITCHBOARD_TEST_PYTHON`, except in CI.
    pub fn start(what_for: &str) -> Option<SecantusServer> {
        let python = required_env("SWITCHBOARD_TEST_PYTHON", what_for)?;
        let mut server = SecantusServer {
            python,
            addr: free_addr(),
            dir: tempfile::tempdir().expect("temporary directory"),
            process: None,
        };
        server.start_again();
        Some(server)
    }

    /// `mongodb://…` of this server.
    pub fn uri(&self) -> String {
        format!("mongodb://{}", self.addr)
    }

    /// Kills the server at once (SIGKILL): its clients see connections reset, then
    /// refused.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server (again, after [`SecantusServer::kill`]) on the same port and
    /// storage directory; returns once it accepts connections.
    pub fn start_again(&mut self) {
        self.kill();
        let mut command = Command::new(&self.python);
        command
            .args(["-m", "secantus", "--host", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .arg("--storage-path")
            .arg(self.dir.path().join("data"))
            .arg("--sync-on-commit");
        self.process = Some(Process::spawn(
            "secantus",
            command,
            self.addr,
            self.dir.path(),
        ));
    }

    /// What the server printed, over all its runs.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("secantus.log")).unwrap_or_default()
    }
}

/// What a harness starts with beyond the defaults. Extra variables come after the
/// harness's own, so they also override them.
#[derive(Debug, Clone, Default)]
pub struct HarnessOptions {
    /// Where the control plane reaches Twilio's REST API.
    pub twilio_api_url: Option<String>,
    /// More control-plane environment (e.g. `SWITCHBOARD_DEFAULT_AGENT_ID`).
    pub control_plane_env: Vec<(&'static str, String)>,
    /// More sidecar environment (e.g. `SWITCHBOARD_FALLBACK_NUMBER`).
    pub sidecar_env: Vec<(&'static str, String)>,
    /// The sidecar does not get [`test_ca`] through `SWITCHBOARD_OPENAI_CA_FILE`, as an
    /// operator who forgot it: a simulator from [`openai_sim`] is then untrusted.
    pub openai_ca_untrusted: bool,
    /// The sidecar terminates Twilio's TLS itself (`SWITCHBOARD_TLS_CERT` and
    /// `SWITCHBOARD_TLS_KEY`, a certificate of [`test_ca`]); Twilio reaches it at
    /// `https://localhost:…` and `wss://localhost:…`.
    pub sidecar_tls: bool,
    /// Run this sidecar executable instead of the workspace's.
    pub sidecar_binary: Option<PathBuf>,
    /// gRPC over TLS between the sidecar (and the harness) and the control plane.
    pub control_plane_tls: Option<ControlPlaneTls>,
}

impl HarnessOptions {
    /// Serves the control plane's gRPC over TLS with `tls`'s certificates.
    pub fn control_plane_tls(mut self, tls: ControlPlaneTls) -> Self {
        self.control_plane_tls = Some(tls);
        self
    }
}

/// Environment variables of a process.
type Env = Vec<(&'static str, String)>;

/// Certificates for a control plane serving TLS, all from one private CA: what the
/// control plane presents, and, for mutual TLS, what its clients present.
#[derive(Debug, Clone)]
pub struct ControlPlaneTls {
    /// The CA, PEM: the sidecar trusts it through `SWITCHBOARD_CONTROL_PLANE_CA_FILE`.
    pub ca_pem: String,
    /// The control plane's certificate, for `localhost` and the loopback addresses.
    pub server: IssuedCert,
    /// For mutual TLS: the client certificate the sidecar and the harness present. The
    /// control plane then requires one from the same CA.
    pub client: Option<IssuedCert>,
}

impl ControlPlaneTls {
    /// Server-side TLS: clients verify the control plane, which asks them for nothing.
    pub fn server(ca: &TestCa) -> Self {
        ControlPlaneTls {
            ca_pem: ca.ca_pem(),
            server: ca.issue_for_loopback(),
            client: None,
        }
    }

    /// Mutual TLS: clients need a certificate from `ca` too.
    pub fn mutual(ca: &TestCa) -> Self {
        ControlPlaneTls {
            client: Some(ca.issue(&["sidecar-e2e"])),
            ..ControlPlaneTls::server(ca)
        }
    }

    /// Writes the PEM files into `dir`; returns the control plane's and the sidecar's
    /// environment.
    fn write(&self, dir: &std::path::Path) -> (Env, Env) {
        let path = |p: PathBuf| p.display().to_string();
        let ca = dir.join("control-plane-ca.crt");
        std::fs::write(&ca, &self.ca_pem).expect("write the ca");
        let (cert, key) = self
            .server
            .write(dir, "control-plane")
            .expect("write the server certificate");
        let mut control_plane = vec![
            ("SWITCHBOARD_TLS_CERT", path(cert)),
            ("SWITCHBOARD_TLS_KEY", path(key)),
        ];
        let mut sidecar = vec![("SWITCHBOARD_CONTROL_PLANE_CA_FILE", path(ca.clone()))];
        if let Some(client) = &self.client {
            let (cert, key) = client
                .write(dir, "sidecar")
                .expect("write the client certificate");
            control_plane.push(("SWITCHBOARD_TLS_CLIENT_CA", path(ca)));
            sidecar.push(("SWITCHBOARD_CONTROL_PLANE_CLIENT_CERT", path(cert)));
            sidecar.push(("SWITCHBOARD_CONTROL_PLANE_CLIENT_KEY", path(key)));
        }
        (control_plane, sidecar)
    }

    /// A client TLS config trusting the CA, presenting the client certificate if any.
    pub fn client_config(&self) -> ClientTlsConfig {
        let tls = ClientTlsConfig::new()
            .domain_name("localhost")
            .ca_certificate(Certificate::from_pem(&self.ca_pem));
        match &self.client {
            Some(client) => tls.identity(Identity::from_pem(&client.cert_pem, &client.key_pem)),
            None => tls,
        }
    }
}

/// The private certificate authority of the e2e tests: the TLS servers they start
/// present certificates it issued, and the sidecar trusts it only through
/// `SWITCHBOARD_OPENAI_CA_FILE`, as an operator's private CA.
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("Switchboard e2e private CA"))
}

/// `config` serving `wss://` on loopback with a certificate of [`test_ca`].
pub fn with_tls(config: SimConfig) -> SimConfig {
    let cert = test_ca().issue_for_loopback();
    let tls = switchboard_sim::tls::server_config(
        &cert.cert_pem,
        &cert.key_pem,
        switchboard_sim::tls::WEBSOCKET_ALPN,
    )
    .expect("a certificate of the test CA makes a server config");
    SimConfig {
        tls: Some(tls),
        ..config
    }
}

/// An OpenAI simulator on `127.0.0.1:0` serving `wss://` (see [`with_tls`]): the
/// e2e tests run the Realtime leg over TLS, as production does.
pub async fn openai_sim(config: SimConfig) -> OpenAiSim {
    OpenAiSim::bind("127.0.0.1:0", with_tls(config))
        .await
        .expect("the openai simulator binds loopback")
}

/// The URL of `openai`'s Realtime endpoint, for [`Harness::start`].
pub fn realtime_url(openai: &OpenAiSim) -> String {
    format!("{}/v1/realtime", openai.base_url())
}

/// A control plane and a sidecar on loopback, talking to an OpenAI simulator.
#[derive(Debug)]
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub control_plane: Process,
    pub control_plane_addr: SocketAddr,
    pub control_plane_env: Vec<(&'static str, String)>,
    /// How clients reach the control plane: `http://127.0.0.1:…`, or
    /// `https://localhost:…` with TLS.
    pub control_plane_url: String,
    pub sidecar: Process,
    pub sidecar_http: SocketAddr,
    /// The base URL Twilio reaches the sidecar at (`SWITCHBOARD_PUBLIC_URL`).
    pub public_url: String,
    pub sidecar_admin: SocketAddr,
    channel: Channel,
}

impl Harness {
    /// Starts both services; the sidecar reaches the Realtime API at `openai_url`
    /// (`ws://…/v1/realtime`) and, when given, the control plane reaches Twilio's REST
    /// API at `twilio_api_url`.
    pub async fn start(
        store: StoreKind,
        openai_url: &str,
        twilio_api_url: Option<&str>,
    ) -> Harness {
        let options = HarnessOptions {
            twilio_api_url: twilio_api_url.map(str::to_owned),
            ..HarnessOptions::default()
        };
        Harness::start_with(store, openai_url, options).await
    }

    /// [`Harness::start`] with more settings.
    pub async fn start_with(
        store: StoreKind,
        openai_url: &str,
        options: HarnessOptions,
    ) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let control_plane_addr = free_addr();
        let store_value = match &store {
            StoreKind::Embedded => dir.path().join("data").display().to_string(),
            StoreKind::Mongo(uri) => format!(
                "{}/e2e_{}",
                uri.trim_end_matches('/'),
                uuid::Uuid::now_v7().simple()
            ),
        };
        let mut control_plane_env = vec![
            ("SWITCHBOARD_GRPC_ADDR", control_plane_addr.to_string()),
            ("SWITCHBOARD_STORE", store_value),
            ("SWITCHBOARD_LOG", "info".to_owned()),
            ("SWITCHBOARD_API_TOKEN", "e2e-api-token".to_owned()),
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
            ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
        ];
        if let Some(url) = options.twilio_api_url {
            control_plane_env.push(("SWITCHBOARD_TWILIO_API_URL", url));
        }
        let (control_plane_url, sidecar_tls_env) = match &options.control_plane_tls {
            Some(tls) => {
                let (server_env, client_env) = tls.write(dir.path());
                control_plane_env.extend(server_env);
                let url = format!("https://localhost:{}", control_plane_addr.port());
                (url, client_env)
            }
            None => (format!("http://{control_plane_addr}"), Vec::new()),
        };
        control_plane_env.extend(options.control_plane_env);
        let control_plane = Process::start(
            "control-plane",
            &control_plane_env,
            control_plane_addr,
            dir.path(),
        );

        let sidecar_http = free_addr();
        let sidecar_admin = free_addr();
        let public_url = if options.sidecar_tls {
            format!("https://localhost:{}", sidecar_http.port())
        } else {
            format!("http://{sidecar_http}")
        };
        let mut sidecar_env = vec![
            ("SWITCHBOARD_HTTP_ADDR", sidecar_http.to_string()),
            ("SWITCHBOARD_ADMIN_ADDR", sidecar_admin.to_string()),
            ("SWITCHBOARD_CONTROL_PLANE_URL", control_plane_url.clone()),
            ("SWITCHBOARD_PUBLIC_URL", public_url.clone()),
            ("SWITCHBOARD_API_TOKEN", "e2e-api-token".to_owned()),
            ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
            ("OPENAI_API_KEY", "e2e-openai-key".to_owned()),
            ("SWITCHBOARD_OPENAI_URL", openai_url.to_owned()),
            (
                "SWITCHBOARD_STREAM_TOKEN_SECRET",
                STREAM_TOKEN_SECRET.to_owned(),
            ),
            ("SWITCHBOARD_DRAIN_GRACE", "20s".to_owned()),
            ("SWITCHBOARD_SIDECAR_ID", "sidecar-e2e".to_owned()),
            ("SWITCHBOARD_LOG", "info".to_owned()),
        ];
        if options.sidecar_tls {
            let (cert, key) = test_ca()
                .issue_for_loopback()
                .write(dir.path(), "sidecar-public")
                .expect("write the sidecar's certificate");
            sidecar_env.push(("SWITCHBOARD_TLS_CERT", cert.display().to_string()));
            sidecar_env.push(("SWITCHBOARD_TLS_KEY", key.display().to_string()));
        }
        if !options.openai_ca_untrusted {
            let ca_file = dir.path().join("openai-ca.pem");
            std::fs::write(&ca_file, test_ca().ca_pem()).expect("write the test CA");
            sidecar_env.push(("SWITCHBOARD_OPENAI_CA_FILE", ca_file.display().to_string()));
        }
        sidecar_env.extend(sidecar_tls_env);
        sidecar_env.extend(options.sidecar_env);
        let sidecar_binary = options
            .sidecar_binary
            .unwrap_or_else(|| binary("media-sidecar"));
        let sidecar = Process::start_binary(
            "media-sidecar",
            &sidecar_binary,
            &sidecar_env,
            sidecar_http,
            dir.path(),
        );
        let mut endpoint = Channel::from_shared(control_plane_url.clone()).expect("valid uri");
        if let Some(tls) = &options.control_plane_tls {
            endpoint = endpoint
                .tls_config(tls.client_config())
                .expect("a usable client tls config");
        }
        let channel = endpoint
            .connect()
            .await
            .expect("the control plane accepts connections");
        Harness {
            dir,
            control_plane,
            control_plane_addr,
            control_plane_env,
            control_plane_url,
            sidecar,
            sidecar_http,
            public_url,
            sidecar_admin,
            channel,
        }
    }

    /// Kills the control plane at once (a crash, as far as the sidecar can tell).
    pub fn kill_control_plane(&mut self) {
        self.control_plane.kill();
    }

    /// Starts the control plane again with `control_plane_env` (same address, same
    /// store), after [`Harness::kill_control_plane`]; waits until it listens.
    pub fn start_control_plane(&mut self) {
        self.control_plane.kill();
        self.control_plane = Process::start(
            "control-plane",
            &self.control_plane_env,
            self.control_plane_addr,
            self.dir.path(),
        );
    }

    /// Kills the control plane and starts it again (same env, port and store).
    pub fn restart_control_plane(&mut self) {
        self.kill_control_plane();
        self.start_control_plane();
    }

    /// The sidecar's voice webhook, as Twilio would be configured with it.
    pub fn voice_url(&self) -> String {
        format!("{}/api/twilio/voice", self.public_url)
    }

    pub fn agents(&self) -> AgentSettingsServiceClient<Authorized> {
        AgentSettingsServiceClient::with_interceptor(self.channel.clone(), authorize as Authorize)
    }

    pub fn sessions(&self) -> CallSessionServiceClient<Authorized> {
        CallSessionServiceClient::with_interceptor(self.channel.clone(), authorize as Authorize)
    }

    /// `GET path` on the sidecar's admin listener (`/readyz`, `/metrics`, …): the status
    /// and body, or `None` when it does not answer.
    pub async fn sidecar_admin_get(&self, path: &str) -> Option<(u16, String)> {
        let url = format!("http://{}{path}", self.sidecar_admin);
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// The value of one series on the sidecar's `/metrics`, named as printed there
    /// (`switchboard_sidecar_calls_total{outcome="completed"}`); `None` when absent.
    pub async fn sidecar_metric(&self, series: &str) -> Option<f64> {
        let (_, metrics) = self.sidecar_admin_get("/metrics").await?;
        metrics.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// The sidecar's active-calls gauge, read from `/metrics`.
    pub async fn sidecar_active_calls(&self) -> Option<u64> {
        let value = self
            .sidecar_metric("switchboard_sidecar_active_calls")
            .await?;
        Some(value as u64)
    }

    /// Waits (at most `patience`) until the newest session of `agent_id`, read with its
    /// conversation, satisfies `done`.
    pub async fn agent_session_where(
        &self,
        agent_id: &str,
        patience: Duration,
        done: impl Fn(&switchboard_proto::v1::CallSession) -> bool,
    ) -> Option<switchboard_proto::v1::CallSession> {
        use switchboard_proto::v1 as pb;
        let sessions = self.sessions();
        eventually(patience, || {
            let mut sessions = sessions.clone();
            let agent_id = agent_id.to_owned();
            let done = &done;
            async move {
                let request = pb::ListCallSessionsRequest {
                    agent_id,
                    ..Default::default()
                };
                let list = sessions
                    .list_call_sessions(request)
                    .await
                    .ok()?
                    .into_inner();
                let id = list.call_sessions.first()?.id.clone();
                let request = pb::GetCallSessionRequest { id };
                let session = sessions.get_call_session(request).await.ok()?.into_inner();
                done(&session).then_some(session)
            }
        })
        .await
    }

    /// Logs of both services, for a failing assertion's message.
    pub fn logs(&self) -> String {
        format!(
            "--- control-plane ---\n{}\n--- media-sidecar ---\n{}",
            self.control_plane.output(),
            self.sidecar.output()
        )
    }
}

// === impl Cluster ===

/// Several control-plane replicas on one MongoDB-wire server and several sidecars, all
/// talking to one OpenAI simulator: what a dashboard watching "the cluster" sees.
///
/// By default sidecar `i` is pinned to replica `i % replicas`; with
/// [`ClusterOptions::sidecars_reach_every_replica`] every sidecar is given every
/// replica's URL and spreads its calls over them, as in production. Replicas and
/// sidecars can be killed (a crash, as far as their peers can tell) and started again
/// on the same addresses.
///
/// Every replica serves `/metrics` ([`Cluster::event_watchers`] reads its watcher
/// gauge). Each process logs into a directory of its own under [`Cluster::dir`].
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub replicas: Vec<Replica>,
    pub sidecars: Vec<ClusterSidecar>,
}

/// What a [`Cluster`] starts with beyond the defaults. Extra variables come after the
/// cluster's own, so they also override them.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Every sidecar's `SWITCHBOARD_CONTROL_PLANE_URL` lists every replica (a sidecar's
    /// own list starts at a different replica), instead of one replica per sidecar.
    pub sidecars_reach_every_replica: bool,
    /// More environment for every control-plane replica (e.g.
    /// `SWITCHBOARD_ORPHAN_TIMEOUT`).
    pub control_plane_env: Vec<(&'static str, String)>,
    /// More environment for every sidecar.
    pub sidecar_env: Vec<(&'static str, String)>,
}

/// One control-plane replica of a [`Cluster`].
#[derive(Debug)]
pub struct Replica {
    pub process: Process,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    env: Env,
    dir: PathBuf,
    channel: Channel,
}

impl Replica {
    /// Sets (or replaces) a variable of the replica's environment, for its next start.
    pub fn set_env(&mut self, key: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_owned()));
    }
}

/// One sidecar of a [`Cluster`].
#[derive(Debug)]
pub struct ClusterSidecar {
    pub process: Process,
    /// The replicas it reports to, in the order of its `SWITCHBOARD_CONTROL_PLANE_URL`.
    pub replicas: Vec<usize>,
    /// The base URL Twilio reaches it at.
    pub public_url: String,
    pub admin: SocketAddr,
    http: SocketAddr,
    env: Env,
    dir: PathBuf,
}

impl Cluster {
    /// Starts `replicas` control planes on a fresh database of the MongoDB server at
    /// `mongodb_uri` (which may carry the driver's options: `mongodb://host:port/?…`)
    /// and `sidecars` sidecars, each pinned to one replica, reaching the
    /// Realtime API at `openai_url` (see [`realtime_url`]).
    pub async fn start(
        mongodb_uri: &str,
        replicas: usize,
        sidecars: usize,
        openai_url: &str,
    ) -> Cluster {
        Cluster::start_with(
            mongodb_uri,
            replicas,
            sidecars,
            openai_url,
            ClusterOptions::default(),
        )
        .await
    }

    /// [`Cluster::start`] with more settings.
    pub async fn start_with(
        mongodb_uri: &str,
        replicas: usize,
        sidecars: usize,
        openai_url: &str,
        options: ClusterOptions,
    ) -> Cluster {
        assert!(replicas > 0 && sidecars > 0, "a cluster runs something");
        let dir = tempfile::tempdir().expect("temporary directory");
        // A fresh database, named in the URI's path, before its options if any.
        let (server, query) = match mongodb_uri.split_once('?') {
            Some((server, options)) => (server, format!("?{options}")),
            None => (mongodb_uri, String::new()),
        };
        let store = format!(
            "{}/e2e_cluster_{}{query}",
            server.trim_end_matches('/'),
            uuid::Uuid::now_v7().simple()
        );
        let mut started = Vec::with_capacity(replicas);
        for index in 0..replicas {
            let addr = free_addr();
            let metrics_addr = free_addr();
            let mut env: Env = vec![
                ("SWITCHBOARD_GRPC_ADDR", addr.to_string()),
                ("SWITCHBOARD_METRICS_ADDR", metrics_addr.to_string()),
                ("SWITCHBOARD_STORE", store.clone()),
                ("SWITCHBOARD_LOG", "info".to_owned()),
                ("SWITCHBOARD_API_TOKEN", "e2e-api-token".to_owned()),
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
                ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
            ];
            env.extend(options.control_plane_env.iter().cloned());
            let process_dir = dir.path().join(format!("control-plane-{index}"));
            std::fs::create_dir_all(&process_dir).expect("a directory per process");
            let process = Process::start("control-plane", &env, addr, &process_dir);
            let channel = connect_replica(addr).await;
            started.push(Replica {
                process,
                addr,
                metrics_addr,
                env,
                dir: process_dir,
                channel,
            });
        }
        let ca_file = dir.path().join("openai-ca.pem");
        std::fs::write(&ca_file, test_ca().ca_pem()).expect("write the test CA");
        let mut sidecar_processes = Vec::with_capacity(sidecars);
        for index in 0..sidecars {
            let reaches: Vec<usize> = if options.sidecars_reach_every_replica {
                (0..replicas).map(|r| (index + r) % replicas).collect()
            } else {
                vec![index % replicas]
            };
            let control_plane_url = reaches
                .iter()
                .map(|r| format!("http://{}", started[*r].addr))
                .collect::<Vec<_>>()
                .join(",");
            let http = free_addr();
            let admin = free_addr();
            let public_url = format!("http://{http}");
            let mut env: Env = vec![
                ("SWITCHBOARD_HTTP_ADDR", http.to_string()),
                ("SWITCHBOARD_ADMIN_ADDR", admin.to_string()),
                ("SWITCHBOARD_CONTROL_PLANE_URL", control_plane_url),
                ("SWITCHBOARD_PUBLIC_URL", public_url.clone()),
                ("SWITCHBOARD_API_TOKEN", "e2e-api-token".to_owned()),
                ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN.to_owned()),
                ("OPENAI_API_KEY", "e2e-openai-key".to_owned()),
                ("SWITCHBOARD_OPENAI_URL", openai_url.to_owned()),
                ("SWITCHBOARD_OPENAI_CA_FILE", ca_file.display().to_string()),
                (
                    "SWITCHBOARD_STREAM_TOKEN_SECRET",
                    STREAM_TOKEN_SECRET.to_owned(),
                ),
                ("SWITCHBOARD_DRAIN_GRACE", "20s".to_owned()),
                ("SWITCHBOARD_SIDECAR_ID", format!("sidecar-e2e-{index}")),
                ("SWITCHBOARD_LOG", "info".to_owned()),
            ];
            env.extend(options.sidecar_env.iter().cloned());
            let process_dir = dir.path().join(format!("media-sidecar-{index}"));
            std::fs::create_dir_all(&process_dir).expect("a directory per process");
            let process = Process::start("media-sidecar", &env, http, &process_dir);
            sidecar_processes.push(ClusterSidecar {
                process,
                replicas: reaches,
                public_url,
                admin,
                http,
                env,
                dir: process_dir,
            });
        }
        Cluster {
            dir,
            replicas: started,
            sidecars: sidecar_processes,
        }
    }

    /// The voice webhook of sidecar `index`, as Twilio would be configured with it.
    pub fn voice_url(&self, sidecar: usize) -> String {
        format!("{}/api/twilio/voice", self.sidecars[sidecar].public_url)
    }

    pub fn agents(&self, replica: usize) -> AgentSettingsServiceClient<Authorized> {
        AgentSettingsServiceClient::with_interceptor(
            self.replicas[replica].channel.clone(),
            authorize as Authorize,
        )
    }

    pub fn sessions(&self, replica: usize) -> CallSessionServiceClient<Authorized> {
        CallSessionServiceClient::with_interceptor(
            self.replicas[replica].channel.clone(),
            authorize as Authorize,
        )
    }

    pub fn campaigns(&self, replica: usize) -> CampaignServiceClient<Authorized> {
        CampaignServiceClient::with_interceptor(
            self.replicas[replica].channel.clone(),
            authorize as Authorize,
        )
    }

    /// A client of `replica` on a connection of its own, so dropping it (and its
    /// streams) is what a client going away looks like to that replica.
    pub async fn sessions_on_own_connection(
        &self,
        replica: usize,
    ) -> CallSessionServiceClient<Authorized> {
        let channel = connect_replica(self.replicas[replica].addr).await;
        CallSessionServiceClient::with_interceptor(channel, authorize as Authorize)
    }

    /// The watcher gauge of `replica`, read from its `/metrics`; `None` when it does
    /// not answer.
    pub async fn event_watchers(&self, replica: usize) -> Option<i64> {
        let url = format!("http://{}/metrics", self.replicas[replica].metrics_addr);
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let metrics = response.text().await.ok()?;
        metrics.lines().find_map(|line| {
            let value = line
                .strip_prefix("switchboard_control_plane_event_watchers ")?
                .trim();
            value.parse().ok()
        })
    }

    /// Kills `replica` at once (SIGKILL: a crash, as far as its sidecars and clients can
    /// tell).
    pub fn kill_replica(&mut self, replica: usize) {
        self.replicas[replica].process.kill();
    }

    /// Starts `replica` (again, after [`Cluster::kill_replica`]) with the same address,
    /// environment and database; returns once it listens, with a fresh connection to it.
    pub async fn start_replica(&mut self, replica: usize) {
        let replica = &mut self.replicas[replica];
        replica.process.kill();
        replica.process = Process::start("control-plane", &replica.env, replica.addr, &replica.dir);
        replica.channel = connect_replica(replica.addr).await;
    }

    /// Kills `replica` and starts it again (same address, environment and database);
    /// returns once it listens, with a fresh connection to it.
    pub async fn restart_replica(&mut self, replica: usize) {
        self.kill_replica(replica);
        self.start_replica(replica).await;
    }

    /// Kills `sidecar` at once (SIGKILL: its calls' sockets close without a word).
    pub fn kill_sidecar(&mut self, sidecar: usize) {
        self.sidecars[sidecar].process.kill();
    }

    /// Starts `sidecar` (again, after [`Cluster::kill_sidecar`]) with the same addresses
    /// and environment; returns once it listens.
    pub fn start_sidecar(&mut self, sidecar: usize) {
        let sidecar = &mut self.sidecars[sidecar];
        sidecar.process.kill();
        sidecar.process = Process::start("media-sidecar", &sidecar.env, sidecar.http, &sidecar.dir);
    }

    /// The ids of the calls whose stream connected to `replica` (its log's `call
    /// connected` lines, over all its runs): which replica served which call.
    pub fn calls_connected(&self, replica: usize) -> std::collections::HashSet<String> {
        let log = strip_ansi(&self.replicas[replica].process.output());
        log.lines()
            .filter(|line| line.contains("call connected"))
            .filter_map(|line| {
                let rest = &line[line.find("call_id=")? + "call_id=".len()..];
                let id = rest.split_whitespace().next()?;
                Some(id.trim_matches('"').to_owned())
            })
            .collect()
    }

    /// Every process's log, for a failing assertion's message.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for (index, replica) in self.replicas.iter().enumerate() {
            logs.push_str(&format!(
                "--- control-plane {index} ---\n{}\n",
                replica.process.output()
            ));
        }
        for (index, sidecar) in self.sidecars.iter().enumerate() {
            logs.push_str(&format!(
                "--- media-sidecar {index} (replicas {:?}) ---\n{}\n",
                sidecar.replicas,
                sidecar.process.output()
            ));
        }
        logs
    }
}

/// `text` without the terminal colour codes a log may carry.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // `ESC [ … m`: skip to the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// A connection to the replica listening on `addr`.
async fn connect_replica(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("the control plane accepts connections")
}

type Authorize = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// A channel to the control plane carrying the harness's API token.
pub type Authorized = tonic::service::interceptor::InterceptedService<Channel, Authorize>;

fn authorize(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let token = tonic::metadata::MetadataValue::from_static("Bearer e2e-api-token");
    request.metadata_mut().insert("authorization", token);
    Ok(request)
}

/// Polls `probe` until it yields a value, for at most `patience`.
pub async fn eventually<T, F, Fut>(patience: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Some(value) = probe().await {
            return Some(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
