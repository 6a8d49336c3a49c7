//! The control-plane client: a thin wrapper over the generated `CallChannelService`
//! client.
//!
//! One tonic [`Channel`] serves every call on this replica (HTTP/2 multiplexes the unary
//! RPCs and the per-call streams). It connects lazily, so the sidecar starts and answers
//! webhooks (with the fallback) while the control plane is down, and it sends HTTP/2
//! keepalives so a dead peer is noticed during a quiet call. Every request carries
//! `authorization: Bearer <SWITCHBOARD_API_TOKEN>` when the token is set.
//!
//! An `https://` URL is served over TLS (rustls, ring): the control plane's certificate
//! must chain to the webpki roots, the platform's roots (a corporate CA installed in the
//! image works) or `SWITCHBOARD_CONTROL_PLANE_CA_FILE`, for the URL's host; a client
//! certificate is presented when one is configured (mutual TLS). The files were checked
//! by `config`; they are read again here, when the client is built.
//!
//! Unary RPCs get a deadline ([`ControlPlaneConfig::request_timeout`]), both as
//! `grpc-timeout` and enforced here, because a webhook must be answered long before
//! Twilio's 15 s timeout. The `Connect` stream has none: it lives as long as its call.
//! Reconnecting a dropped stream, with backoff and re-sending unacknowledged items, is
//! the call driver's job (`call/`), not this module's.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::Stream;
use switchboard_proto::v1::call_channel_service_client::CallChannelServiceClient;
use switchboard_proto::v1::{
    ConnectRequest, ConnectResponse, OpenInboundCallRequest, OpenInboundCallResponse,
    ReportTwilioStatusRequest, ReportTwilioStatusResponse,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status, Streaming};

use crate::config::ControlPlaneConfig;

/// HTTP/2 PING interval on the control-plane connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a PING may go unanswered before the connection is dropped.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The control plane, as the sidecar sees it. Cheap to clone (clones share the channel).
#[derive(Clone)]
pub struct ControlPlane {
    client: CallChannelServiceClient<InterceptedService<Channel, BearerToken>>,
    request_timeout: Duration,
    url: String,
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
    /// A client for `config.url`. Does not connect: the first RPC does.
    pub fn new(config: &ControlPlaneConfig) -> Result<Self, ControlError> {
        let endpoint = endpoint(config)?;
        let token = match &config.api_token {
            Some(token) => Some(
                MetadataValue::try_from(format!("Bearer {}", token.expose()))
                    .map_err(|_| ControlError::InvalidToken)?,
            ),
            None => None,
        };
        let channel = endpoint.connect_lazy();
        Ok(Self {
            client: CallChannelServiceClient::with_interceptor(channel, BearerToken(token)),
            request_timeout: config.request_timeout,
            url: config.url.clone(),
        })
    }

    /// The URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `OpenInboundCall`: opens (or, for a retried webhook, returns) the call's session
    /// and says how to answer it.
    pub async fn open_inbound_call(
        &self,
        request: OpenInboundCallRequest,
    ) -> Result<OpenInboundCallResponse, Status> {
        let mut client = self.client.clone();
        let request = self.unary(request);
        self.deadline(async move { client.open_inbound_call(request).await })
            .await
    }

    /// `ReportTwilioStatus`: forwards a (signature-checked) call status callback.
    pub async fn report_twilio_status(
        &self,
        request: ReportTwilioStatusRequest,
    ) -> Result<ReportTwilioStatusResponse, Status> {
        let mut client = self.client.clone();
        let request = self.unary(request);
        self.deadline(async move { client.report_twilio_status(request).await })
            .await
    }

    /// Opens a call's `Connect` stream: `outbound` is what the sidecar sends (`Hello`
    /// first), the result what the control plane answers. Ending `outbound` half-closes
    /// the stream. No deadline.
    pub async fn connect(
        &self,
        outbound: impl Stream<Item = ConnectRequest> + Send + 'static,
    ) -> Result<Streaming<ConnectResponse>, Status> {
        let mut client = self.client.clone();
        client
            .connect(Request::new(outbound))
            .await
            .map(tonic::Response::into_inner)
            .map_err(explained)
    }

    fn unary<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.request_timeout);
        request
    }

    /// Runs an RPC within the request timeout; a timeout is `DEADLINE_EXCEEDED`.
    async fn deadline<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner).map_err(explained),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "control plane did not answer within {:?}",
                self.request_timeout
            ))),
        }
    }
}

impl fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPlane")
            .field("url", &self.url)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// The endpoint `config` describes: timeouts, keepalives and, for `https://`, TLS. Other
/// clients of the same control plane (the demo) build their channel from it too.
pub fn endpoint(config: &ControlPlaneConfig) -> Result<Endpoint, ControlError> {
    let endpoint = Endpoint::from_shared(config.url.clone())
        .map_err(|e| ControlError::InvalidUrl {
            url: config.url.clone(),
            reason: e.to_string(),
        })?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if endpoint.uri().scheme_str() != Some("https") {
        return Ok(endpoint);
    }
    let host = endpoint.uri().host().unwrap_or_default();
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
