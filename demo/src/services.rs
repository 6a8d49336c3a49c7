//! Everything the demo runs, in this process, on `127.0.0.1:0`: the control plane (on the
//! embedded store or MongoDB, unless an external one is named), one media sidecar, the
//! OpenAI Realtime simulator and Twilio's fake REST API (which places the inbound calls
//! and dials the outbound ones the control plane asks for).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_control_plane as control_plane;
use switchboard_media_sidecar as sidecar;
use switchboard_sim::openai::{OpenAiSim, Reply, Script, SimConfig, Turn};
use switchboard_sim::tls::TestCa;
use switchboard_sim::twilio::{FakeTwilio, Outcomes, RestConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::summary::DataLocation;

/// The simulated Twilio account: the control plane calls the fake REST API with it, and
/// the sidecar checks the callers' webhook signatures with its token.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000de0";
pub const TWILIO_AUTH_TOKEN: &str = "demo-twilio-auth-token";
/// Calls per second the in-process control plane may ask of the simulated account: room
/// for the demo's campaign (`campaign::CALLS_PER_SECOND`) and an operator's at 5/s.
pub const MAX_CPS: usize = 5;
const STREAM_TOKEN_SECRET: &str = "demo-stream-token-secret-of-32-bytes-or-more";

/// What the simulated caller says first, and the assistant's long answer to it.
pub const QUESTION: &str = "Hi, how long does shipping take?";
pub const LONG_ANSWER: &str = "Orders usually ship within two business days, and you will \
                               get an email with the tracking number as soon as yours does.";
/// What a caller says over the long answer, and the short answer to that.
pub const INTERRUPTION: &str = "Sorry, one more thing.";
pub const SHORT_ANSWER: &str = "Sure, go ahead.";
/// Audio of the long answer, ms: long enough to talk over.
pub const LONG_ANSWER_MS: u64 = 6_000;

/// Which control plane the demo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPlane {
    /// In this process, on the embedded store in this directory.
    Embedded(PathBuf),
    /// In this process, on MongoDB at this URI (never printed: it may hold credentials).
    Mongo(String),
    /// Already running at this `http://` or `https://` URL; it keeps its own store and
    /// Twilio account.
    External(String),
}

/// How to reach an external `https://` control plane beyond the public and platform
/// roots: the sidecar's `SWITCHBOARD_CONTROL_PLANE_*` TLS settings, which the demo's own
/// client uses too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// A private CA's certificate (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a control plane that requires one (mutual TLS).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Setup {
    pub control_plane: ControlPlane,
    /// Bearer token for the control plane's API; the in-process one then requires it.
    pub token: Option<String>,
    /// TLS files for an external `https://` control plane.
    pub tls: ClientTls,
    /// How the numbers the fake Twilio dials answer (the outbound callees).
    pub outcomes: Outcomes,
}

/// A channel to the control plane that presents the bearer token, if any.
pub type Grpc = InterceptedService<Channel, BearerToken>;

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BearerToken(*****)"
        } else {
            "BearerToken(none)"
        })
    }
}

impl BearerToken {
    /// Presents `authorization: Bearer <token>`, or nothing without a token.
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let value = token
            .map(|t| format!("Bearer {t}").parse())
            .transpose()
            .context("the control plane token is not a valid header value")?;
        Ok(Self(value))
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Connects to the control plane at `url` (`http://` or `https://`) as the sidecar does
/// (the public, the platform's and `tls`'s CA; `tls`'s client certificate for mutual
/// TLS), presenting `token`. For the operator commands, which talk to a running one.
pub async fn connect(url: &str, tls: &ClientTls, token: Option<&str>) -> anyhow::Result<Grpc> {
    let config = sidecar::config::ControlPlaneConfig {
        urls: vec![url.trim_end_matches('/').to_owned()],
        discovery: sidecar::config::Discovery::Static,
        // Presented by the interceptor below, as for the demo's own channel.
        api_token: None,
        ca_file: tls.ca_file.clone(),
        client_identity: tls.client_cert.clone().zip(tls.client_key.clone()),
        connect_timeout: CONNECT_TIMEOUT,
        request_timeout: REQUEST_TIMEOUT,
    };
    let channel = sidecar::control::endpoint(&config)
        .context("control plane client")?
        .timeout(REQUEST_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("connect to the control plane at {url}"))?;
    Ok(InterceptedService::new(channel, BearerToken::new(token)?))
}

/// How long connecting to the control plane may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of one request of the operator commands (an upload of 10,000 targets too).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The running services; [`Services::stop`] shuts them down in order.
#[derive(Debug)]
pub struct Services {
    pub openai: OpenAiSim,
    pub twilio: FakeTwilio,
    /// The sidecar's voice webhook, as Twilio is configured with it.
    pub voice_url: String,
    /// The sidecar's Prometheus endpoint.
    pub metrics_url: String,
    /// The control plane's gRPC API, with the bearer token.
    pub channel: Grpc,
    /// Where the control plane listens (`host:port` in process, else its URL).
    pub control_plane_addr: String,
    /// Whether the control plane places calls through this demo's fake Twilio (false for
    /// an external control plane, which has its own Twilio account).
    pub places_calls: bool,
    /// Where the calls are recorded.
    pub data: DataLocation,
    control_plane: Option<Stoppable<Result<(), control_plane::Error>>>,
    sidecar: Stoppable<Result<sidecar::drain::DrainReport, sidecar::ServeError>>,
    twilio_task: Stoppable<std::io::Result<()>>,
}

#[derive(Debug)]
struct Stoppable<T> {
    stop: oneshot::Sender<()>,
    task: JoinHandle<T>,
}

impl<T: Send + 'static> Stoppable<T> {
    fn spawn<F>(serve: impl FnOnce(Shutdown) -> F) -> Self
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(Box::pin(async move {
            let _ = stopped.await;
        })));
        Stoppable { stop, task }
    }

    /// Asks it to stop and waits, at most `patience`.
    async fn stop(self, patience: Duration) -> Option<T> {
        let _ = self.stop.send(());
        tokio::time::timeout(patience, self.task).await.ok()?.ok()
    }
}

type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The script of every Realtime session: a question answered at length, and an
/// interruption answered briefly.
fn script() -> Script {
    let turn = |caller: &str, text: &str, audio_ms: u64| Turn {
        caller: caller.into(),
        reply: Some(Reply {
            text: text.into(),
            audio_ms: Some(audio_ms),
        }),
        function_call: None,
        after_call: None,
    };
    Script {
        turns: vec![
            turn(QUESTION, LONG_ANSWER, LONG_ANSWER_MS),
            turn(INTERRUPTION, SHORT_ANSWER, 1_500),
        ],
        ..Script::default()
    }
}

async fn loopback() -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    Ok((listener, addr))
}

impl Services {
    /// Starts everything `setup` asks for.
    pub async fn start(setup: &Setup) -> anyhow::Result<Services> {
        // The Realtime leg runs as in production: wss://, with a certificate of a private
        // CA the sidecar trusts through SWITCHBOARD_OPENAI_CA_FILE.
        let ca = TestCa::new("Switchboard demo CA");
        let cert = ca.issue_for_loopback();
        let tls = switchboard_sim::tls::server_config(
            &cert.cert_pem,
            &cert.key_pem,
            switchboard_sim::tls::WEBSOCKET_ALPN,
        )
        .context("the demo's certificate")?;
        let openai = OpenAiSim::bind(
            "127.0.0.1:0",
            SimConfig {
                script: Arc::new(script()),
                tls: Some(tls),
                ..SimConfig::default()
            },
        )
        .await
        .context("start the openai simulator")?;
        let ca_file = tempfile::NamedTempFile::new().context("a file for the demo's CA")?;
        std::fs::write(ca_file.path(), ca.ca_pem()).context("write the demo's CA")?;

        let twilio = FakeTwilio::new(RestConfig {
            outcomes: setup.outcomes.clone(),
            keep_audio: false,
            ..RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN)
        });
        let (listener, twilio_addr) = loopback().await?;
        let twilio_task = Stoppable::spawn(|shutdown| twilio.clone().serve(listener, shutdown));

        // The sidecar's listeners first: the control plane tells Twilio the webhook URLs.
        let (http, http_addr) = loopback().await?;
        let (admin, admin_addr) = loopback().await?;
        let voice_url = format!("http://{http_addr}/api/twilio/voice");

        let (control_plane, control_plane_url, data) = match &setup.control_plane {
            ControlPlane::External(url) => (
                None,
                url.trim_end_matches('/').to_owned(),
                DataLocation::External { url: url.clone() },
            ),
            in_process => {
                let (listener, addr) = loopback().await?;
                let (task, data) = start_control_plane(
                    in_process,
                    setup,
                    listener,
                    &addr,
                    &twilio_addr,
                    &voice_url,
                )
                .await?;
                (Some(task), format!("http://{addr}"), data)
            }
        };

        // The sidecar, between the simulated callers and the simulated Realtime API.
        let mut values = HashMap::from([
            (sidecar::config::ENV_HTTP_ADDR, http_addr.clone()),
            (sidecar::config::ENV_ADMIN_ADDR, admin_addr.clone()),
            (
                sidecar::config::ENV_CONTROL_PLANE_URL,
                control_plane_url.clone(),
            ),
            (
                sidecar::config::ENV_PUBLIC_URL,
                format!("http://{http_addr}"),
            ),
            (
                sidecar::config::ENV_TWILIO_AUTH_TOKEN,
                TWILIO_AUTH_TOKEN.into(),
            ),
            (
                sidecar::config::ENV_OPENAI_API_KEY,
                "demo-openai-key".into(),
            ),
            (
                sidecar::config::ENV_OPENAI_URL,
                format!("{}/v1/realtime", openai.base_url()),
            ),
            (
                sidecar::config::ENV_OPENAI_CA_FILE,
                ca_file.path().display().to_string(),
            ),
            (
                sidecar::config::ENV_STREAM_TOKEN_SECRET,
                STREAM_TOKEN_SECRET.into(),
            ),
            (sidecar::config::ENV_DRAIN_GRACE, "3s".into()),
            (sidecar::config::ENV_SIDECAR_ID, "demo-sidecar".into()),
        ]);
        if let Some(token) = &setup.token {
            values.insert(sidecar::config::ENV_API_TOKEN, token.clone());
        }
        let tls_files = [
            (
                sidecar::config::ENV_CONTROL_PLANE_CA_FILE,
                &setup.tls.ca_file,
            ),
            (
                sidecar::config::ENV_CONTROL_PLANE_CLIENT_CERT,
                &setup.tls.client_cert,
            ),
            (
                sidecar::config::ENV_CONTROL_PLANE_CLIENT_KEY,
                &setup.tls.client_key,
            ),
        ];
        for (variable, file) in tls_files {
            if let Some(file) = file {
                values.insert(variable, file.display().to_string());
            }
        }
        // The config reads the CA files now; the demo's CA file is gone when `ca_file` drops.
        let config = sidecar::config::Config::from_lookup(|name| values.get(name).cloned())
            .context("sidecar config")?;
        drop(ca_file);
        // The demo's client reaches the control plane exactly as the sidecar does.
        let endpoint =
            sidecar::control::endpoint(&config.control_plane).context("control plane client")?;
        let listeners = sidecar::Listeners { http, admin };
        let sidecar = Stoppable::spawn(|shutdown| {
            sidecar::serve(
                config,
                listeners,
                Arc::new(sidecar::call::CallDriver),
                shutdown,
            )
        });

        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connect to the control plane at {control_plane_url}"))?;
        let token = BearerToken::new(setup.token.as_deref())?;
        Ok(Services {
            openai,
            twilio,
            voice_url,
            metrics_url: format!("http://{admin_addr}/metrics"),
            channel: InterceptedService::new(channel, token),
            control_plane_addr: control_plane_url
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .to_owned(),
            places_calls: control_plane.is_some(),
            data,
            control_plane,
            sidecar,
            twilio_task,
        })
    }

    /// Stops the sidecar (its calls drain and flush to the control plane), then the
    /// control plane, then the simulators.
    pub async fn stop(self) {
        let patience = Duration::from_secs(10);
        if let Some(Err(e)) = self.sidecar.stop(patience).await {
            eprintln!("media sidecar: {e}");
        }
        if let Some(control_plane) = self.control_plane {
            if let Some(Err(e)) = control_plane.stop(patience).await {
                eprintln!("control plane: {e}");
            }
        }
        let _ = self.twilio_task.stop(patience).await;
        self.openai.shutdown().await;
    }
}

/// Starts the in-process control plane on `listener`: its store, the fake Twilio as its
/// Twilio account, the sidecar's webhooks for the calls it places.
async fn start_control_plane(
    choice: &ControlPlane,
    setup: &Setup,
    listener: TcpListener,
    addr: &str,
    twilio_addr: &str,
    voice_url: &str,
) -> anyhow::Result<(Stoppable<Result<(), control_plane::Error>>, DataLocation)> {
    let store = match choice {
        ControlPlane::Embedded(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            dir.display().to_string()
        }
        ControlPlane::Mongo(uri) => uri.clone(),
        ControlPlane::External(_) => unreachable!("an external control plane is not started"),
    };
    let mut values = HashMap::from([
        (control_plane::config::ENV_GRPC_ADDR, addr.to_owned()),
        (control_plane::config::ENV_STORE, store),
        (
            control_plane::config::ENV_TWILIO_ACCOUNT_SID,
            ACCOUNT_SID.into(),
        ),
        (
            control_plane::config::ENV_TWILIO_AUTH_TOKEN,
            TWILIO_AUTH_TOKEN.into(),
        ),
        (
            control_plane::config::ENV_TWILIO_API_URL,
            format!("http://{twilio_addr}"),
        ),
        (
            control_plane::config::ENV_VOICE_WEBHOOK_URL,
            voice_url.to_owned(),
        ),
        (
            control_plane::config::ENV_TWILIO_MAX_CPS,
            MAX_CPS.to_string(),
        ),
    ]);
    if let Some(token) = &setup.token {
        values.insert(control_plane::config::ENV_API_TOKEN, token.clone());
    }
    let config = control_plane::config::Config::from_lookup(|name| values.get(name).cloned())
        .context("control plane config")?;
    let (store, data) = match (&config.store, choice) {
        (control_plane::config::StoreConfig::Mongo { database, .. }, _) => {
            let store = control_plane::open_store(&config.store)
                .await
                .context("connect to MongoDB")?;
            let data = DataLocation::Mongo {
                database: database.clone(),
            };
            (store, data)
        }
        (_, ControlPlane::Embedded(dir)) => {
            let store = control_plane::open_store(&config.store)
                .await
                .with_context(|| format!("open the embedded store in {}", dir.display()))?;
            let dir = std::fs::canonicalize(dir).unwrap_or(dir.clone());
            (store, DataLocation::Embedded(dir))
        }
        _ => anyhow::bail!("--mongodb needs a mongodb:// or mongodb+srv:// URI"),
    };
    let task = Stoppable::spawn(|shutdown| {
        control_plane::serve_with_store(config, store, listener, shutdown)
    });
    Ok((task, data))
}
