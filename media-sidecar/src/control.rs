//! The control-plane client: the generated `CallChannelService` client, spread over the
//! control plane's replicas.
//!
//! Each replica has one tonic [`Channel`] shared by every call on this sidecar that
//! goes to it (HTTP/2 multiplexes the unary RPCs and the per-call streams). Replicas are
//! the URLs of `SWITCHBOARD_CONTROL_PLANE_URL` (comma-separated) or, with DNS discovery,
//! the addresses its hosts resolve to, resolved again every [`RESOLVE_INTERVAL`] (a
//! Kubernetes headless Service lists every ready pod). Each call's stream goes to the
//! live replica with the fewest of this sidecar's calls ([`pool`]); a replica that
//! refuses a connection is passed over for a few seconds and the next one is tried at
//! once, and a call whose stream broke reconnects to another replica (the call driver
//! reopens it; the log's seq/ack makes the move lose and double nothing).
//!
//! Channels connect lazily, so the sidecar starts and answers webhooks (with the
//! fallback) while the control plane is down, and send HTTP/2 keepalives so a dead
//! peer is noticed during a quiet call. Every request carries
//! `authorization: Bearer <SWITCHBOARD_API_TOKEN>` when the token is set.
//!
//! An `https://` URL is served over TLS (rustls, ring): the control plane's certificate
//! must chain to the webpki roots, the platform's roots (a corporate CA installed in the
//! image works) or `SWITCHBOARD_CONTROL_PLANE_CA_FILE`, for the URL's host (also when the
//! connection goes to an address DNS discovery found); a client certificate is
//! presented when one is configured (mutual TLS). The files were checked by `config`;
//! they are read again here, when a client is built.
//!
//! Unary RPCs get a deadline ([`ControlPlaneConfig::request_timeout`]), both as
//! `grpc-timeout` and enforced here, because a webhook must be answered long before
//! Twilio's 15 s timeout; within it, a replica that cannot be reached is skipped for the
//! next. The `Connect` stream has none: it lives as long as its call.

pub mod pool;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_proto::v1::call_channel_service_client::CallChannelServiceClient;
use switchboard_proto::v1::{
    ConnectRequest, ConnectResponse, OpenInboundCallRequest, OpenInboundCallResponse,
    ReportTwilioStatusRequest, ReportTwilioStatusResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status, Streaming};

use self::pool::{Pool, Replica, ReplicaLease};
use crate::config::{ControlPlaneConfig, Discovery};

/// HTTP/2 PING interval on the control-plane connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a PING may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often DNS discovery resolves the control plane's hosts again.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(10);

type Client = CallChannelServiceClient<InterceptedService<Channel, BearerToken>>;

/// A call's hold on the replica its stream is open on: the replica counts the call
/// until the lease drops.
#[derive(Debug)]
pub struct ControlLease(ReplicaLease<Client>);

/// The control plane, as the sidecar sees it. Cheap to clone (clones share the replicas
/// and their channels).
#[derive(Clone)]
pub struct ControlPlane {
    pool: Arc<Pool<Client>>,
    config: Arc<ControlPlaneConfig>,
    token: BearerToken,
}

/// A call's stream, open on one replica.
#[derive(Debug)]
pub struct OpenStream {
    /// What the sidecar sends (the `Hello` is already in it); dropping it half-closes.
    pub sender: mpsc::Sender<ConnectRequest>,
    /// What the control plane answers.
    pub inbound: Streaming<ConnectResponse>,
    /// The replica, counted busier while the lease lives.
    pub lease: ControlLease,
}

/// Why the client could not be built (the config validates both earlier; this guards
/// callers that build a config by hand).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The URL is not one tonic can connect to.
    #[error("control plane url {url:?} is invalid: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What tonic said.
        reason: String,
    },
    /// The API token cannot go into a header.
    #[error("the control plane api token is not a valid header value")]
    InvalidToken,
    /// A TLS file could not be read (it was readable when the config was checked).
    #[error("control plane tls: cannot read {path}: {source}")]
    ReadTls {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// tonic refused the TLS settings.
    #[error("control plane tls: {0}")]
    Tls(#[source] tonic::transport::Error),
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
struct BearerToken(Option<MetadataValue<Ascii>>);

// === impl ControlPlane ===

impl ControlPlane {
    /// A client for `config.urls`, one replica per URL (DNS discovery, when configured,
    /// starts with [`ControlPlane::spawn_discovery`]). Does not connect: the first RPC
    /// does.
    pub fn new(config: &ControlPlaneConfig) -> Result<Self, ControlError> {
        let token = match &config.api_token {
            Some(token) => Some(
                MetadataValue::try_from(format!("Bearer {}", token.expose()))
                    .map_err(|_| ControlError::InvalidToken)?,
            ),
            None => None,
        };
        let token = BearerToken(token);
        let mut replicas = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            let channel = endpoint_for(config, url, None)?.connect_lazy();
            replicas.push((
                url.clone(),
                CallChannelServiceClient::with_interceptor(channel, token.clone()),
            ));
        }
        Ok(Self {
            pool: Arc::new(Pool::new(replicas)),
            config: Arc::new(config.clone()),
            token,
        })
    }

    /// The URLs this client talks to, for logs.
    pub fn url(&self) -> String {
        self.config.describe()
    }

    /// The replicas known now (URLs, or `url@address` with DNS discovery).
    pub fn replicas(&self) -> Vec<String> {
        self.pool.keys()
    }

    /// With DNS discovery, resolves the URLs' hosts now and every [`RESOLVE_INTERVAL`]
    /// on a task, each address a replica; a failed or empty resolution keeps the
    /// replicas known. `None` with static discovery.
    pub fn spawn_discovery(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.config.discovery != Discovery::Dns {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(RESOLVE_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                this.resolve().await;
            }
        }))
    }

    async fn resolve(&self) {
        let mut wanted = Vec::new();
        let mut addresses = Vec::new();
        for url in &self.config.urls {
            let Some(authority) = url
                .parse::<axum::http::Uri>()
                .ok()
                .and_then(|uri| uri.authority().cloned())
            else {
                continue;
            };
            let port = authority
                .port_u16()
                .unwrap_or(if url.starts_with("https://") { 443 } else { 80 });
            // `host()` keeps an IPv6 literal's brackets, as `lookup_host` wants them.
            let target = format!("{}:{port}", authority.host());
            let found = tokio::net::lookup_host(target).await;
            match found {
                Ok(found) => {
                    for address in found {
                        let key = format!("{url}@{address}");
                        if !wanted.contains(&key) {
                            wanted.push(key);
                            addresses.push((url.clone(), address));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%url, error = %e, "control plane discovery: cannot resolve")
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        let (added, removed) = self.pool.replace(&wanted, |key| {
            let (url, address) = addresses.iter().find(|(url, address)| {
                key == format!("{url}@{address}")
            })?;
            match endpoint_for(&self.config, url, Some(*address)) {
                Ok(endpoint) => Some(CallChannelServiceClient::with_interceptor(
                    endpoint.connect_lazy(),
                    self.token.clone(),
                )),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "control plane discovery: cannot build a client");
                    None
                }
            }
        });
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(?added, ?removed, replicas = ?self.pool.keys(), "control plane replicas changed");
        }
    }

    /// `OpenInboundCall`: opens (or, for a retried webhook, returns) the call's session
    /// and says how to answer it.
    pub async fn open_inbound_call(
        &self,
        request: OpenInboundCallRequest,
    ) -> Result<OpenInboundCallResponse, Status> {
        self.unary(request, |mut client, request| async move {
            client.open_inbound_call(request).await
        })
        .await
    }

    /// `ReportTwilioStatus`: forwards a (signature-checked) call status callback.
    pub async fn report_twilio_status(
        &self,
        request: ReportTwilioStatusRequest,
    ) -> Result<ReportTwilioStatusResponse, Status> {
        self.unary(request, |mut client, request| async move {
            client.report_twilio_status(request).await
        })
        .await
    }

    /// Opens a call's `Connect` stream on the live replica with the fewest calls and
    /// sends `hello`; a replica that cannot be reached is passed over and the next one
    /// tried. `queue` bounds what the sender holds. No deadline: the caller sets one.
    pub async fn connect(&self, hello: ConnectRequest, queue: usize) -> Result<OpenStream, Status> {
        let ((sender, inbound), replica) = self
            .on_a_replica(|mut client| {
                let hello = hello.clone();
                async move {
                    let (sender, outgoing) = mpsc::channel(queue.max(1));
                    sender
                        .send(hello)
                        .await
                        .map_err(|_| Status::internal("control queue closed"))?;
                    let response = client
                        .connect(Request::new(ReceiverStream::new(outgoing)))
                        .await?;
                    Ok((sender, response.into_inner()))
                }
            })
            .await?;
        Ok(OpenStream {
            sender,
            inbound,
            lease: ControlLease(ReplicaLease::new(replica)),
        })
    }

    /// Runs a unary RPC on the live replica with the fewest calls, the next one when a
    /// replica cannot be reached, all within the request timeout (`DEADLINE_EXCEEDED`).
    async fn unary<T, R, F, Fut>(&self, message: T, call: F) -> Result<R, Status>
    where
        T: Clone,
        F: Fn(Client, Request<T>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let timeout = self.config.request_timeout;
        let attempts = self.on_a_replica(|client| {
            let mut request = Request::new(message.clone());
            request.set_timeout(timeout);
            call(client, request)
        });
        match tokio::time::timeout(timeout, attempts).await {
            Ok(result) => result.map(|(response, _)| response.into_inner()),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "control plane did not answer within {timeout:?}"
            ))),
        }
    }

    /// Runs `call` on the live replica with the fewest calls; when a replica cannot be
    /// reached (`UNAVAILABLE`) it is passed over for a while and the next one is tried,
    /// each at most once. Returns the result and the replica that gave it.
    async fn on_a_replica<R, F, Fut>(
        &self,
        mut call: F,
    ) -> Result<(R, Arc<Replica<Client>>), Status>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        let mut tried = Vec::new();
        let mut last = Status::unavailable("no control plane replica is known");
        while let Some(replica) = self.pool.pick(Instant::now(), &tried) {
            match call(replica.client.clone()).await {
                Ok(result) => {
                    replica.mark_up();
                    return Ok((result, replica));
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    tracing::debug!(replica = %replica.key, "control plane replica unreachable: {}", status.message());
                    replica.mark_down(Instant::now());
                    tried.push(replica.key.clone());
                    last = explained(status);
                }
                Err(status) => return Err(explained(status)),
            }
        }
        Err(last)
    }
}

impl ControlLease {
    /// The call's stream on this replica broke: pass the replica over for a while, so
    /// the reconnect (and new calls) go to another.
    pub fn broke(&self) {
        self.0.replica().mark_down(Instant::now());
    }

    /// The replica's key, for logs.
    pub fn replica_key(&self) -> &str {
        &self.0.replica().key
    }
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("replicas", &self.pool.keys())
            .field("request_timeout", &self.config.request_timeout)
            .finish_non_exhaustive()
    }
}

/// The endpoint of `config`'s first URL: timeouts, keepalives and, for `https://`, TLS.
/// Other clients of the same control plane (the demo) build their channel from it too.
pub fn endpoint(config: &ControlPlaneConfig) -> Result<Endpoint, ControlError> {
    let url = config
        .urls
        .first()
        .ok_or_else(|| ControlError::InvalidUrl {
            url: String::new(),
            reason: "no control plane url".into(),
        })?;
    endpoint_for(config, url, None)
}

/// The endpoint of one replica: `url`, or `address` (found by DNS discovery for `url`'s
/// host) with TLS still verifying `url`'s host.
fn endpoint_for(
    config: &ControlPlaneConfig,
    url: &str,
    address: Option<SocketAddr>,
) -> Result<Endpoint, ControlError> {
    let invalid = |reason: String| ControlError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri = url
        .parse::<axum::http::Uri>()
        .map_err(|e| invalid(e.to_string()))?;
    let target = match address {
        Some(address) => format!("{}://{address}", uri.scheme_str().unwrap_or("http")),
        None => url.to_owned(),
    };
    let endpoint = Endpoint::from_shared(target)
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if uri.scheme_str() != Some("https") {
        return Ok(endpoint);
    }
    let host = uri.host().unwrap_or_default();
    // The server name is the URL's host; an IPv6 literal comes without its brackets.
    let server_name = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut tls = ClientTlsConfig::new()
        .domain_name(server_name)
        .with_webpki_roots();
    if let Some(ca_file) = &config.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca_file)?));
    }
    if let Some((cert, key)) = &config.client_identity {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    // tonic refuses the native roots when the platform has none (an image without a CA
    // bundle); the webpki roots and the CA file are then still worth using.
    match endpoint.clone().tls_config(tls.clone().with_native_roots()) {
        Ok(endpoint) => Ok(endpoint),
        Err(native) => {
            tracing::warn!(error = %error_chain(&native), "no usable platform ca certificates; trusting the webpki roots and the control plane ca file only");
            endpoint.tls_config(tls).map_err(ControlError::Tls)
        }
    }
}

/// A status made from a connection failure carries the reason (refused, an unknown
/// certificate issuer, …) only as its error source, which logs of `message()` miss:
/// fold the chain into the message.
fn explained(status: Status) -> Status {
    let Some(source) = std::error::Error::source(&status) else {
        return status;
    };
    let chain = error_chain(source);
    if status.message().contains(&chain) {
        return status;
    }
    Status::new(status.code(), format!("{}: {chain}", status.message()))
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ControlError> {
    std::fs::read(path).map_err(|source| ControlError::ReadTls {
        path: path.display().to_string(),
        source,
    })
}

/// `error` and its sources, `: `-separated: a TLS failure's reason (an unknown issuer, a
/// name mismatch) is several sources deep.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

// === impl BearerToken ===

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("set", &self.0.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor as _;

    use super::*;
    use crate::config::{Config, Secret};

    #[test]
    fn the_bearer_token_goes_on_every_request() {
        let mut with = BearerToken(Some(MetadataValue::from_static("Bearer s3cret")));
        let request = with.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        let mut without = BearerToken(None);
        let request = without.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(!format!("{with:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn an_unreachable_control_plane_fails_fast_instead_of_hanging() {
        let mut config = Config::for_test().control_plane;
        config.api_token = Some(Secret::new("tok"));
        let client = ControlPlane::new(&config).expect("lazy: building never connects");
        let status = client
            .open_inbound_call(OpenInboundCallRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ),
            "{status:?}"
        );
        assert!(!format!("{client:?}").contains("tok"));
    }

    #[test]
    fn a_token_that_is_no_header_value_is_refused() {
        let mut config = Config::for_test().control_plane;
        config.api_token = Some(Secret::new("bad\ntoken"));
        assert!(matches!(
            ControlPlane::new(&config),
            Err(ControlError::InvalidToken)
        ));
    }
}
