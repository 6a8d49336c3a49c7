//! Everything the demo runs, in this process, on `127.0.0.1:0`: the control plane on the
//! embedded store, one media sidecar, the OpenAI Realtime simulator and Twilio's fake
//! REST API (which also places the calls).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_control_plane as control_plane;
use switchboard_media_sidecar as sidecar;
use switchboard_sim::openai::{OpenAiSim, Reply, Script, SimConfig, Turn};
use switchboard_sim::twilio::{FakeTwilio, RestConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The simulated Twilio account: the control plane calls the fake REST API with it, and
/// the sidecar checks the callers' webhook signatures with its token.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000de0";
pub const TWILIO_AUTH_TOKEN: &str = "demo-twilio-auth-token";
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

/// The running services; [`Services::stop`] shuts them down in order.
#[derive(Debug)]
pub struct Services {
    pub openai: OpenAiSim,
    pub twilio: FakeTwilio,
    /// The sidecar's voice webhook, as Twilio is configured with it.
    pub voice_url: String,
    /// A channel to the control plane's gRPC API.
    pub channel: Channel,
    pub control_plane_addr: String,
    control_plane: Stoppable<Result<(), control_plane::Error>>,
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
    /// Starts everything, the control plane's embedded store in `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Services> {
        let openai = OpenAiSim::bind(
            "127.0.0.1:0",
            SimConfig {
                script: Arc::new(script()),
                ..SimConfig::default()
            },
        )
        .await
        .context("start the openai simulator")?;

        let twilio = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, TWILIO_AUTH_TOKEN));
        let (listener, twilio_addr) = loopback().await?;
        let twilio_task = Stoppable::spawn(|shutdown| twilio.clone().serve(listener, shutdown));

        // The control plane, on the embedded store.
        let (listener, control_plane_addr) = loopback().await?;
        let store_dir = data_dir.display().to_string();
        let values = HashMap::from([
            (
                control_plane::config::ENV_GRPC_ADDR,
                control_plane_addr.clone(),
            ),
            (control_plane::config::ENV_STORE, store_dir),
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
        ]);
        let config = control_plane::config::Config::from_lookup(|name| values.get(name).cloned())
            .context("control plane config")?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("create {}", data_dir.display()))?;
        let store = control_plane::open_store(&config.store)
            .await
            .with_context(|| format!("open the embedded store in {}", data_dir.display()))?;
        let control_plane = Stoppable::spawn(|shutdown| {
            control_plane::serve_with_store(config, store, listener, shutdown)
        });

        // The sidecar, between the simulated callers and the simulated Realtime API.
        let (http, http_addr) = loopback().await?;
        let (admin, admin_addr) = loopback().await?;
        let values = HashMap::from([
            (sidecar::config::ENV_HTTP_ADDR, http_addr.clone()),
            (sidecar::config::ENV_ADMIN_ADDR, admin_addr.clone()),
            (
                sidecar::config::ENV_CONTROL_PLANE_URL,
                format!("http://{control_plane_addr}"),
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
                sidecar::config::ENV_STREAM_TOKEN_SECRET,
                STREAM_TOKEN_SECRET.into(),
            ),
            (sidecar::config::ENV_DRAIN_GRACE, "3s".into()),
            (sidecar::config::ENV_SIDECAR_ID, "demo-sidecar".into()),
        ]);
        let config = sidecar::config::Config::from_lookup(|name| values.get(name).cloned())
            .context("sidecar config")?;
        let listeners = sidecar::Listeners { http, admin };
        let sidecar = Stoppable::spawn(|shutdown| {
            sidecar::serve(
                config,
                listeners,
                Arc::new(sidecar::call::CallDriver),
                shutdown,
            )
        });

        let channel = Channel::from_shared(format!("http://{control_plane_addr}"))
            .context("control plane uri")?
            .connect()
            .await
            .context("connect to the control plane")?;
        Ok(Services {
            openai,
            twilio,
            voice_url: format!("http://{http_addr}/api/twilio/voice"),
            channel,
            control_plane_addr,
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
        if let Some(Err(e)) = self.control_plane.stop(patience).await {
            eprintln!("control plane: {e}");
        }
        let _ = self.twilio_task.stop(patience).await;
        self.openai.shutdown().await;
    }
}
