//! Connects a call to the Realtime API: OpenAI (GA or beta) or Azure OpenAI, per the
//! agent's provider, or any endpoint standing in for them (the simulator, a gateway).
//!
//! [`params_for`] turns the agent and the settings into [`ConnectParams`] — the one URL
//! builder, in `switchboard-realtime` — and [`RealtimeConnector::connect`] opens the
//! socket: TCP (through the `HTTPS_PROXY` tunnel unless `NO_PROXY` says otherwise),
//! TLS for `wss://` with the roots of `tls.rs`, then the WebSocket handshake with the
//! provider's headers. The call driver (`call/driver.rs`) speaks over the socket
//! through the call core.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use switchboard_proto::v1 as pb;
use switchboard_realtime::{Auth, ConnectParams, Provider, Secret};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_util::either::Either;

use crate::config::{AzureAuth, OpenAiConfig, ProxyConfig, ENV_AZURE_OPENAI_ENDPOINT};
use crate::tls::RootCounts;

/// The byte stream under a Realtime socket: plain TCP (`ws://`, local simulators) or
/// TLS over TCP.
pub type RealtimeStream = Either<TcpStream, TlsStream<TcpStream>>;
/// The Realtime socket of one call.
pub type RealtimeSocket = WebSocketStream<RealtimeStream>;

/// How long opening the socket may take, TCP, proxy, TLS and WebSocket handshakes
/// together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per socket: frames are small, and a large buffer is zero-filled on
/// reads.
const READ_BUFFER: usize = 2 * 1024;
const MAX_MESSAGE: usize = 1024 * 1024;

/// Why the Realtime API could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeConnectError {
    /// The agent asks for something this sidecar is not set up for.
    #[error("realtime provider not configured: {0}")]
    NotConfigured(String),
    #[error("invalid realtime url: {0}")]
    Url(String),
    #[error("realtime handshake did not finish within {0:?}")]
    Timeout(Duration),
    /// TCP (or the proxy tunnel) failed.
    #[error("cannot reach realtime host {host}: {reason}")]
    Connect { host: String, reason: String },
    /// The TLS handshake failed: the message names the certificate problem.
    #[error(
        "tls handshake with realtime host {host} failed: {reason} (if a private CA or a \
         TLS-inspecting proxy signs this endpoint's certificate, point \
         SWITCHBOARD_OPENAI_CA_FILE at its PEM)"
    )]
    Tls { host: String, reason: String },
    #[error("realtime handshake failed: {0}")]
    Handshake(String),
}

/// Opens Realtime sockets; one per process, shared by every call.
#[derive(Clone)]
pub struct RealtimeConnector {
    tls: TlsConnector,
    proxy: ProxyConfig,
}

// === impl RealtimeConnector ===

impl RealtimeConnector {
    /// Builds the TLS configuration once (the platform's store is read here).
    pub fn new(config: &OpenAiConfig) -> Result<(Self, RootCounts), rustls::Error> {
        let (tls, counts) = crate::tls::client_config(config.extra_ca.as_ref())?;
        Ok((Self::with_tls(tls, config.proxy.clone()), counts))
    }

    /// With a TLS configuration of the caller's (tests).
    pub fn with_tls(tls: Arc<ClientConfig>, proxy: ProxyConfig) -> Self {
        Self {
            tls: TlsConnector::from(tls),
            proxy,
        }
    }

    /// Opens the socket of one call.
    pub async fn connect(
        &self,
        params: &ConnectParams,
    ) -> Result<RealtimeSocket, RealtimeConnectError> {
        let url = params
            .url()
            .map_err(|e| RealtimeConnectError::Url(e.to_string()))?;
        let (host, port, tls) = params
            .host_port()
            .map_err(|e| RealtimeConnectError::Url(e.to_string()))?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| RealtimeConnectError::Url(e.to_string()))?;
        for (name, value) in params.headers().iter() {
            let value = HeaderValue::from_str(value).map_err(|_| {
                RealtimeConnectError::Url(format!("the {name} header is not a valid header value"))
            })?;
            request.headers_mut().insert(name, value);
        }
        let mut ws_config = WebSocketConfig::default();
        ws_config.read_buffer_size = READ_BUFFER;
        ws_config.max_message_size = Some(MAX_MESSAGE);
        ws_config.max_frame_size = Some(MAX_MESSAGE);
        let open = async {
            let stream = self.open_stream(&host, port, tls).await?;
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config))
                .await
                // The error may echo the request; report only its kind, never the key.
                .map_err(|e| RealtimeConnectError::Handshake(handshake_error(&e)))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Err(_) => Err(RealtimeConnectError::Timeout(CONNECT_TIMEOUT)),
            Ok(Err(e)) => Err(e),
            Ok(Ok((socket, _response))) => Ok(socket),
        }
    }

    /// TCP, directly or through the proxy, then TLS when `tls`.
    async fn open_stream(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<RealtimeStream, RealtimeConnectError> {
        let unreachable = |reason: String| RealtimeConnectError::Connect {
            host: host.to_owned(),
            reason,
        };
        let tcp = match self.proxy.for_host(host, tls) {
            Some(proxy) => proxy.connect(host, port).await.map_err(|e| {
                let (proxy_host, proxy_port) = proxy.address();
                unreachable(format!("through proxy {proxy_host}:{proxy_port}: {e}"))
            })?,
            None => TcpStream::connect((host, port))
                .await
                .map_err(|e| unreachable(e.to_string()))?,
        };
        // Audio frames are small and real-time: send each write at once.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if !tls {
            return Ok(Either::Left(tcp));
        }
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            RealtimeConnectError::Url(format!("{host:?} is no tls server name: {e}"))
        })?;
        let stream = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| RealtimeConnectError::Tls {
                host: host.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Either::Right(stream))
    }
}

impl std::fmt::Debug for RealtimeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeConnector")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// The connection of a call to `agent`: its provider (OpenAI when unspecified), its
/// model or the default, and the provider's credentials.
pub fn params_for(
    config: &OpenAiConfig,
    agent: &pb::AgentSettings,
) -> Result<ConnectParams, RealtimeConnectError> {
    let provider =
        pb::RealtimeProvider::try_from(agent.provider).unwrap_or(pb::RealtimeProvider::Unspecified);
    let model = agent.model.trim();
    let openai = |provider| ConnectParams {
        provider,
        endpoint: config.url.clone(),
        model: if model.is_empty() {
            config.default_model.clone()
        } else {
            model.to_owned()
        },
        auth: config
            .api_key
            .as_ref()
            .map(|key| Auth::ApiKey(Secret::new(key.expose()))),
    };
    match provider {
        pb::RealtimeProvider::Unspecified | pb::RealtimeProvider::Openai => {
            Ok(openai(Provider::OpenAi))
        }
        pb::RealtimeProvider::OpenaiBeta => Ok(openai(Provider::OpenAiBeta)),
        pb::RealtimeProvider::AzureOpenai => {
            let Some(azure) = &config.azure else {
                return Err(RealtimeConnectError::NotConfigured(format!(
                    "the agent's provider is Azure OpenAI and {ENV_AZURE_OPENAI_ENDPOINT} is not set"
                )));
            };
            let auth = match &azure.auth {
                None => None,
                Some(AzureAuth::ApiKey(key)) => Some(Auth::ApiKey(Secret::new(key.expose()))),
                Some(AzureAuth::Token(token)) => {
                    Some(Auth::BearerToken(Secret::new(token.expose())))
                }
                Some(AzureAuth::TokenFile(path)) => {
                    let token = std::fs::read_to_string(path).map_err(|e| {
                        RealtimeConnectError::NotConfigured(format!(
                            "cannot read the Azure token file {}: {e}",
                            path.display()
                        ))
                    })?;
                    let token = token.trim();
                    if token.is_empty() {
                        return Err(RealtimeConnectError::NotConfigured(format!(
                            "the Azure token file {} is empty",
                            path.display()
                        )));
                    }
                    Some(Auth::BearerToken(Secret::new(token)))
                }
            };
            Ok(ConnectParams {
                provider: Provider::Azure {
                    api_version: azure.api_version.clone(),
                },
                endpoint: azure.endpoint.clone(),
                model: if model.is_empty() {
                    azure.default_deployment.clone()
                } else {
                    model.to_owned()
                },
                auth,
            })
        }
    }
}

fn handshake_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => format!("http {}", response.status()),
        Error::Io(io) => format!("io: {}", io.kind()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
