//! [`OpenAiSim`]: the listener. Accepts TCP connections, picks each one's
//! faults, runs the TLS handshake when [`SimConfig::tls`] is set, then the
//! WebSocket handshake (`handshake`), and hands accepted sockets to the
//! per-connection driver (`driver`), which feeds a
//! [`SessionCore`](super::SessionCore).
//!
//! Both handshakes run in the connection's own task, never in the accept
//! loop: a client that stalls mid-handshake holds only its own task. A failed
//! TLS handshake (a client that does not trust the certificate, a plain-text
//! client on a TLS port) is logged and kept in [`Records::rejections`]; the
//! server goes on serving.
//!
//! Shutdown stops accepting, closes every session with 1001 and waits
//! [`SimConfig::shutdown_grace`] before aborting what is left.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, info, warn};

use super::config::SimConfig;
use super::faults::Fault;
use super::records::{Records, Rejection};

mod driver;
mod handshake;

/// Read buffer of each socket: tungstenite zero-fills it on reads, and the
/// default 128 KiB shows up as a large `memset` in a relay's profile.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// How long a client may take over its TLS handshake before it is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running simulator. Dropping it stops the server (without waiting);
/// [`OpenAiSim::shutdown`] also waits for the sessions to close.
#[derive(Debug)]
pub struct OpenAiSim {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// What every connection task sees.
#[derive(Debug)]
struct Shared {
    config: SimConfig,
    records: Records,
    /// Faults for the next connections, one entry per connection.
    queued: Mutex<VecDeque<Vec<Fault>>>,
}

impl OpenAiSim {
    /// Binds `addr` (tests use `127.0.0.1:0`) and starts serving.
    pub async fn bind(addr: impl ToSocketAddrs, config: SimConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, config)
    }

    /// Serves on an already-bound listener. Must be called within a Tokio
    /// runtime.
    pub fn serve(listener: TcpListener, config: SimConfig) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            records: Records::default(),
            queued: Mutex::new(VecDeque::new()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        let tls = shared.config.tls.is_some();
        info!(%local_addr, mode = ?shared.config.mode, tls, "openai simulator listening");
        Ok(Self {
            local_addr,
            shared,
            shutdown,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://ADDR`, or `wss://ADDR` with TLS: a base URL for a client whose
    /// host is configurable (the sidecar's `ConnectParams::base_url`).
    pub fn base_url(&self) -> String {
        let scheme = if self.shared.config.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}", self.local_addr)
    }

    /// `ws[s]://ADDR/v1/realtime?model=MODEL`: the OpenAI endpoint.
    pub fn url(&self, model: &str) -> String {
        format!("{}/v1/realtime?model={model}", self.base_url())
    }

    /// What happened so far, per session. The handle stays valid after
    /// shutdown.
    pub fn records(&self) -> Records {
        self.shared.records.clone()
    }

    /// Applies `faults` to each of the next `connections` connections (on
    /// top of [`SimConfig::faults`] and whatever the URL asks for).
    pub fn push_faults(&self, faults: Vec<Fault>, connections: usize) {
        let mut queued = self
            .shared
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queued.extend(std::iter::repeat_n(faults, connections));
    }

    /// Stops accepting, closes every session and waits for them (up to the
    /// configured grace).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                warn!(error = %err, "openai simulator accept loop failed");
            }
        }
    }
}

impl Drop for OpenAiSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Shared {
    fn next_queued_faults(&self) -> Vec<Fault> {
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        queued.pop_front().unwrap_or_default()
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let task = connection(stream, peer, Arc::clone(&shared), shutdown.clone());
                    connections.spawn(task);
                }
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let grace = shared.config.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        debug!(
            left = connections.len(),
            "aborting sessions after the grace"
        );
        connections.shutdown().await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let mut faults = shared.config.faults.clone();
    faults.extend(shared.next_queued_faults());
    if faults.contains(&Fault::Reset) {
        debug!(%peer, "fault: reset before the handshake");
        shared.records.reject(Rejection {
            path: String::new(),
            status: 0,
            reason: "reset".to_owned(),
        });
        return;
    }
    let Some(tls) = shared.config.tls.clone() else {
        return upgrade(stream, peer, &shared, &faults, shutdown).await;
    };
    let handshake = TlsAcceptor::from(tls).accept(stream);
    let failure = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => return upgrade(stream, peer, &shared, &faults, shutdown).await,
        Ok(Err(err)) => format!("tls handshake failed: {err}"),
        Err(_) => "tls handshake timed out".to_owned(),
    };
    // Usually a client that does not trust the certificate: worth a warning,
    // since nothing else would show why its sessions never start.
    warn!(%peer, reason = %failure, "connection dropped before the websocket upgrade");
    shared.records.reject(Rejection {
        path: String::new(),
        status: 0,
        reason: failure,
    });
}

/// The WebSocket handshake on a plain or TLS stream, then the session.
async fn upgrade<S>(
    stream: S,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    faults: &[Fault],
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut accepted = None;
    let mut refused = None;
    let api_key = shared.config.api_key.as_ref();
    // The callback's signature is tungstenite's; its error is the response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        let path = request.uri().path().to_owned();
        match handshake::check(request, api_key, faults) {
            Ok(info) => {
                accepted = Some(info);
                Ok(response)
            }
            Err(refusal) => {
                refused = Some((path, refusal.clone()));
                Err(refusal.into_response())
            }
        }
    };
    let ws_config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let result =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)).await;
    match (result, accepted, refused) {
        (Ok(ws), Some(info), _) => driver::run(ws, shared, info, shutdown).await,
        (_, _, Some((path, refusal))) => {
            debug!(%peer, status = refusal.status, code = refusal.code, "upgrade refused");
            shared.records.reject(Rejection {
                path,
                status: refusal.status,
                reason: refusal.code.to_owned(),
            });
        }
        (Err(err), _, None) => debug!(%peer, error = %err, "handshake failed"),
        (Ok(_), None, None) => warn!(%peer, "handshake accepted without a verdict"),
    }
}
