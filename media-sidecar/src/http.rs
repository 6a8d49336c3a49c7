//! The sidecar's HTTP edge: Twilio's webhooks and Media Stream upgrades on one listener,
//! health, readiness and metrics on another, and [`serve`], which runs both and drains.
//!
//! - `http/router.rs`: the Twilio-facing [`router`], its layers (security headers on
//!   every response, a 64 KiB body limit) and paths.
//! - `http/webhooks.rs`: `POST /api/twilio/voice` (signature, `OpenInboundCall`, TwiML),
//!   `/status` and `/stream-status`.
//! - `http/media_socket.rs`: `GET /api/twilio/media-stream/{callId}`, the upgrade, and
//!   the [`MediaHandler`] hook the call driver (`call/`) implements.
//! - `http/admin.rs`: `/healthz`, `/readyz`, `/metrics` ([`admin_router`]).
//! - `http/headers.rs`: the security headers.
//! - `http/tls_listener.rs`: the Twilio-facing port over TLS, when the sidecar
//!   terminates it itself.
//!
//! Everything a request needs is in [`AppState`]. This module decides how a call is
//! answered; it does not run calls: after the upgrade, the socket belongs to the
//! [`MediaHandler`].

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use switchboard_twilio::signature::RequestValidator;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::control::{ControlError, ControlPlane};
use crate::drain::{Drain, DrainReport};
use crate::metrics::Metrics;
use crate::realtime_client::RealtimeConnector;
use crate::token::TokenSigner;

mod admin;
mod headers;
pub mod media_socket;
mod router;
mod tls_listener;
mod webhooks;

pub use admin::admin_router;
pub use media_socket::{MediaBridgeUnavailable, MediaHandler, MediaSocket, UpgradeSignature};
pub use router::{
    router, MEDIA_STREAM_PATH_PREFIX, STATUS_PATH, STREAM_STATUS_PATH, VOICE_PATH,
    WEBHOOK_BODY_LIMIT,
};
pub use tls_listener::TlsListener;
pub use webhooks::fallback_twiml;

/// How long in-flight HTTP requests may take to finish once the drain is over.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the calls the drain grace cut may take to end through the control plane
/// (their fallback asked for and answered, their final status delivered) before
/// [`serve`] returns anyway. With [`CLOSE_TIMEOUT`], what a deployment must allow
/// beyond `SWITCHBOARD_DRAIN_GRACE` before it kills the process (the Kubernetes
/// manifest allows 30 s).
pub const CUT_GRACE: Duration = Duration::from_secs(20);

/// What every request and every call shares. Cheap to clone (all handles).
#[derive(Clone)]
pub struct AppState {
    /// The configuration, validated.
    pub config: Arc<Config>,
    /// The control-plane client.
    pub control: ControlPlane,
    /// Issues (webhook) and verifies (call driver) stream tokens.
    pub tokens: TokenSigner,
    pub metrics: Arc<Metrics>,
    /// Active calls and readiness.
    pub drain: Drain,
    /// Runs each accepted media socket.
    pub media_handler: Arc<dyn MediaHandler>,
    /// Opens the calls' Realtime sockets (TLS roots, proxy).
    pub realtime: RealtimeConnector,
    /// `None` when `TWILIO_AUTH_TOKEN` is unset: signatures are not checked.
    validator: Option<Arc<RequestValidator>>,
}

/// The two bound listeners [`serve`] runs on.
#[derive(Debug)]
pub struct Listeners {
    /// Twilio ingress.
    pub http: TcpListener,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin: TcpListener,
}

/// Why [`serve`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The control-plane client could not be built.
    #[error("control plane client: {0}")]
    ControlPlane(#[from] ControlError),
    /// A TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// A listener's server stopped with an error.
    #[error("{listener} server: {source}")]
    Server {
        /// `http` or `admin`.
        listener: &'static str,
        /// What went wrong.
        source: std::io::Error,
    },
}

// === impl AppState ===

impl AppState {
    /// Builds the shared state from a validated config. Must run inside a tokio runtime
    /// (the control-plane channel starts its worker; it does not connect yet).
    pub fn new(config: Config, media_handler: Arc<dyn MediaHandler>) -> Result<Self, ServeError> {
        let control = ControlPlane::new(&config.control_plane)?;
        let (realtime, roots) = RealtimeConnector::new(&config.openai)?;
        tracing::debug!(
            webpki = roots.webpki,
            native = roots.native,
            extra = roots.extra,
            "roots trusted for the realtime api"
        );
        let metrics = Arc::new(Metrics::new());
        let drain = Drain::new(config.max_calls, metrics.active_calls());
        let tokens = TokenSigner::new(config.stream_token.secret.expose(), config.stream_token.ttl);
        let validator = config
            .twilio_auth_token
            .as_ref()
            .map(|token| Arc::new(RequestValidator::new(token.expose())));
        Ok(Self {
            config: Arc::new(config),
            control,
            tokens,
            metrics,
            drain,
            media_handler,
            realtime,
            validator,
        })
    }

    /// The signature validator; `None` when validation is disabled.
    pub fn validator(&self) -> Option<&RequestValidator> {
        self.validator.as_deref()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("control", &self.control)
            .field("drain", &self.drain)
            .field("signatures_checked", &self.validator.is_some())
            .finish_non_exhaustive()
    }
}

// === serve ===

/// Serves Twilio ingress on `listeners.http` and the admin endpoints on
/// `listeners.admin` until `shutdown` resolves; then drains: readiness drops, new calls
/// get the fallback answer, active calls have `config.drain_grace` to finish. Calls
/// still on when it runs out are cut: each is told to end through the control plane
/// (redirected to its agent's fallback, recorded `sidecar_drained`) and they have
/// [`CUT_GRACE`] to finish saying so. Then the listeners close. Returns how many calls
/// the grace cut, and how many of those were still unfinished.
///
/// Media sockets are not part of the HTTP server's graceful shutdown (an upgraded
/// connection leaves it); they are counted by [`Drain`], and any still running when this
/// returns end with the process.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    media_handler: Arc<dyn MediaHandler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<DrainReport, ServeError> {
    let state = AppState::new(config, media_handler)?;
    serve_with_state(state, listeners, shutdown).await
}

/// [`serve`] with the state built by the caller (tests keep a handle to its drain and
/// metrics).
pub async fn serve_with_state(
    state: AppState,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<DrainReport, ServeError> {
    for warning in state.config.startup_warnings() {
        tracing::warn!("{warning}");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let twilio_router = router(state.clone());
    let twilio_stop = stopped(stop_rx.clone());
    let mut http = match &state.config.tls {
        Some(tls) => {
            let config = crate::tls::server_config(tls)?;
            let listener =
                TlsListener::new(listeners.http, config).map_err(|source| ServeError::Server {
                    listener: "http",
                    source,
                })?;
            tracing::info!(cert = %tls.cert_path.display(), "twilio port serves tls");
            spawn_server(listener, twilio_router, twilio_stop)
        }
        None => {
            // Media frames are small and real-time: send each write at once (no Nagle).
            let listener = listeners.http.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            spawn_server(listener, twilio_router, twilio_stop)
        }
    };
    let mut admin = spawn_server(
        listeners.admin,
        admin_router(state.clone()),
        stopped(stop_rx),
    );
    // With DNS discovery, the control plane's addresses are looked up now and again;
    // the task ends with the server.
    let discovery = state.control.spawn_discovery();
    state.drain.set_ready();
    tracing::info!(sidecar_id = %state.config.sidecar_id, control_plane = %state.control.url(), "ready");

    // A server that stops by itself is a failure; still drain what we can.
    let early_exit = tokio::select! {
        () = shutdown => None,
        result = &mut http => Some(("http", result)),
        result = &mut admin => Some(("admin", result)),
    };

    if let Some(discovery) = &discovery {
        // Replicas known now serve the drain's last calls, the cut ones included: the
        // control-plane client itself lives on with the calls' state.
        discovery.abort();
    }
    state.drain.begin_drain();
    tracing::info!(
        active_calls = state.drain.active(),
        grace = ?state.config.drain_grace,
        "draining: not ready, new calls get the fallback answer"
    );
    let mut report = state.drain.wait_idle(state.config.drain_grace).await;
    if report.cut > 0 || report.unconnected > 0 {
        // A socket still expected is cut as soon as its call starts.
        state.drain.cut_remaining();
    }
    if report.cut > 0 {
        tracing::warn!(
            cut = report.cut,
            cut_grace = ?CUT_GRACE,
            "drain grace elapsed with calls still active; sending them to their fallback"
        );
        report.unsettled = state.drain.wait_cut(CUT_GRACE).await;
        if report.unsettled > 0 {
            tracing::warn!(
                unsettled = report.unsettled,
                "cut calls still unfinished after the cut grace; they end with the process"
            );
        } else {
            tracing::info!(
                cut = report.cut,
                "cut calls ended through the control plane"
            );
        }
    } else {
        tracing::info!("drained: no active calls");
    }
    // The listeners served until now: Twilio's status callbacks for the cut calls still
    // reach the control plane.
    let _ = stop_tx.send(true);

    if let Some((listener, result)) = early_exit {
        return Err(server_error(listener, result));
    }
    for (listener, mut task) in [("http", http), ("admin", admin)] {
        match tokio::time::timeout(CLOSE_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(result) => return Err(server_error(listener, result)),
            Err(_) => {
                task.abort();
                tracing::warn!(listener, "requests still open after the drain; closed");
            }
        }
    }
    Ok(report)
}

/// Runs `router` on `listener` until `stop` resolves, then finishes open requests.
fn spawn_server<L>(
    listener: L,
    router: axum::Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let server = axum::serve(listener, router).with_graceful_shutdown(stop);
    tokio::spawn(server.into_future())
}

fn server_error(
    listener: &'static str,
    result: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> ServeError {
    let source = match result {
        Ok(Err(e)) => e,
        Ok(Ok(())) => std::io::Error::other("stopped unexpectedly"),
        Err(join) => std::io::Error::other(join.to_string()),
    };
    ServeError::Server { listener, source }
}
