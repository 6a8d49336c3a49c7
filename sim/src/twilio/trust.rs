//! Whom the simulated Twilio trusts when it reaches an application over TLS: the
//! `https://` webhooks and status callbacks (reqwest) and the `wss://` Media Streams
//! (rustls under tokio-tungstenite, through [`tls::connect_websocket`]).
//!
//! By default (no [`TrustedCa`]) it trusts the public web PKI, as real Twilio does:
//! reqwest's built-in roots and [`tls::public_client_config`], both Mozilla's bundle.
//! With a [`TrustedCa`] it trusts exactly that CA, on both paths, and not the
//! built-in roots: the simulator is then pointed at test servers, and a connection
//! that succeeds proves the CA is what made it succeed, the same on `https` as on `wss`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;

use crate::tls::{self, TlsError};

/// A private certificate authority the simulated Twilio trusts instead of the public
/// ones. Built once (PEM checked here, not at the first call); cheap to clone, and
/// clones share one HTTP client.
#[derive(Clone)]
pub struct TrustedCa {
    http: reqwest::Client,
    websocket: Arc<ClientConfig>,
}

impl TrustedCa {
    /// Trusts the CA certificate(s) of `ca_pem`.
    pub fn from_pem(ca_pem: &str) -> Result<Self, TlsError> {
        let websocket = tls::client_config(ca_pem)?;
        let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
        for der in tls::certificates(ca_pem.as_bytes(), "CA certificate")? {
            let cert = reqwest::Certificate::from_der(&der)
                .map_err(|e| TlsError::Pem(format!("CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| TlsError::Pem(format!("http client with the CA: {e}")))?;
        Ok(Self { http, websocket })
    }

    /// Trusts the CA certificate(s) of a PEM file.
    pub fn from_file(path: &Path) -> Result<Self, TlsError> {
        Self::from_pem(&tls::read(path)?)
    }

    /// An HTTP client trusting this CA only (for webhooks and status callbacks).
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The rustls configuration of `wss://` connections, trusting this CA only.
    pub fn websocket_tls(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.websocket)
    }
}

impl fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCa").finish_non_exhaustive()
    }
}

/// The HTTP client for calls trusting `ca` (`None`: the public roots).
pub fn http_client(ca: Option<&TrustedCa>) -> reqwest::Client {
    ca.map_or_else(reqwest::Client::new, TrustedCa::http_client)
}

/// The rustls configuration of `wss://` for calls trusting `ca` (`None`: the public
/// roots).
pub fn websocket_tls(ca: Option<&TrustedCa>) -> Arc<ClientConfig> {
    ca.map_or_else(tls::public_client_config, TrustedCa::websocket_tls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TestCa;

    #[test]
    fn a_ca_that_is_not_pem_is_refused_when_built() {
        let err = TrustedCa::from_pem("nope").unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let ca = TestCa::new("trust test");
        assert!(TrustedCa::from_pem(&ca.ca_pem()).is_ok());
    }
}
