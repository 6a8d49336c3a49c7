//! TLS for the simulators and for the tests that run Switchboard the way production
//! does: a private certificate authority ([`TestCa`]) that issues server and client
//! certificates — what an operator's private CA, or a TLS-inspecting proxy, looks like
//! to Switchboard — rustls configurations built from PEM, and a WebSocket client that
//! opens `wss://` over rustls itself ([`connect_websocket`]), so tokio-tungstenite's own
//! TLS features (and the crypto providers they would pull in) stay off.
//!
//! Who uses what: `openai-sim` serves `wss://` with [`server_config`] (its
//! `SimConfig::tls`); the Twilio caller reaches `https://` webhooks and `wss://` Media
//! Streams trusting [`client_config`] (a CA given as PEM) or [`public_client_config`].
//!
//! Every configuration here uses the `ring` provider explicitly, never a process-wide
//! default, so a binary that links this crate works whichever other crates it links.
//! Not for production key material: keys are generated in memory and certificates are
//! issued for the names the caller asks for, no questions asked.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_util::either::Either;

/// The ALPN a WebSocket server offers: WebSockets upgrade HTTP/1.1 (RFC 6455), so a
/// server must not let a client pick `h2`.
pub const WEBSOCKET_ALPN: &[&[u8]] = &[b"http/1.1"];

/// A client's socket: plain TCP for `ws://`, TLS for `wss://`.
pub type ClientStream = Either<TcpStream, TlsStream<TcpStream>>;

/// A certificate authority of its own, for tests and local TLS.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate issued by a [`TestCa`], with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate (leaf only).
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

/// Why PEM material could not be turned into a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The PEM holds no certificate, no key, or something unreadable.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the material (a key that does not match its certificate, …).
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why [`connect_websocket`] opened no socket; each step names itself, so a TLS
/// failure (an untrusted certificate) reads differently from a refused upgrade.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Not a `ws://` or `wss://` URL with a host.
    #[error("invalid websocket url {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {host}:{port}: {source}")]
    Tcp {
        /// The URL's host.
        host: String,
        /// The port.
        port: u16,
        /// What the OS said.
        source: io::Error,
    },
    /// The TLS handshake failed: most often, the server's certificate is not trusted.
    #[error("tls handshake with {host} failed: {source}")]
    Tls {
        /// The URL's host (the name verified).
        host: String,
        /// What rustls said.
        source: io::Error,
    },
    /// The HTTP upgrade failed (refused, not `101`, or the socket broke).
    #[error("websocket handshake failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

// === impl TestCa ===

impl TestCa {
    /// A new authority named `name` (its subject's common name).
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ring generates an ECDSA P-256 key");
        let issuer = CertifiedIssuer::self_signed(params, key)
            .expect("a CA certificate with a common name serializes");
        TestCa { issuer }
    }

    /// The authority's certificate, PEM: what a client must trust.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses), good for both server and
    /// client authentication.
    pub fn issue(&self, names: &[&str]) -> IssuedCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let common_name = names
            .first()
            .cloned()
            .unwrap_or_else(|| "client".to_owned());
        let mut params =
            CertificateParams::new(names).expect("names are DNS names or IP addresses");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("ring generates an ECDSA P-256 key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a leaf certificate serializes");
        IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// `issue(["localhost", "127.0.0.1", "::1"])`: a server certificate for loopback.
    pub fn issue_for_loopback(&self) -> IssuedCert {
        self.issue(&["localhost", "127.0.0.1", "::1"])
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("key_pem", &"*****")
            .finish_non_exhaustive()
    }
}

// === impl IssuedCert ===

impl IssuedCert {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; returns their paths.
    pub fn write(
        &self,
        dir: &Path,
        stem: &str,
    ) -> io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

/// The `ring` provider, named once: every configuration of this crate uses it.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration presenting `cert_pem` (a chain, leaf first) with `key_pem`,
/// offering `alpn` (e.g. `http/1.1` for WebSockets; empty: no ALPN).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certificates(cert_pem.as_bytes(), "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(format!("private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// [`server_config`] from a certificate file and a key file.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(&read(cert)?, &read(key)?, alpn)
}

/// A client configuration trusting exactly the certificates of `ca_pem`: the
/// simulators reach only test servers, never the public internet.
pub fn client_config(ca_pem: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem.as_bytes(), "CA certificate")? {
        roots.add(cert)?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client configuration trusting the public web PKI (Mozilla's roots, as bundled by
/// `webpki-roots`): what a real service such as Twilio trusts.
pub fn public_client_config() -> Arc<ClientConfig> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Opens a WebSocket to `request`'s URL: TCP (no Nagle: media frames are small and
/// late), then for `wss://` a TLS handshake with `tls`, the server name (SNI, and the
/// name its certificate must carry) being the URL's host, a DNS name or an IP address;
/// then the upgrade, sending `request`'s headers. `ws://` ignores `tls`.
pub async fn connect_websocket(
    request: impl IntoClientRequest,
    tls: &Arc<ClientConfig>,
    ws_config: Option<WebSocketConfig>,
) -> Result<(WebSocketStream<ClientStream>, Response), ConnectError> {
    let request = request.into_client_request()?;
    let uri = request.uri();
    let invalid = |reason: &str| ConnectError::Url {
        url: uri.to_string(),
        reason: reason.to_owned(),
    };
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(invalid("expected ws:// or wss://")),
    };
    let host = uri.host().ok_or_else(|| invalid("no host"))?;
    // `[::1]` in a URL is `::1` to the resolver and to the certificate check.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|source| ConnectError::Tcp {
            host: host.clone(),
            port,
            source,
        })?;
    // Best effort: a socket that refuses the option still carries the stream.
    let _ = tcp.set_nodelay(true);
    let stream = if secure {
        let name = ServerName::try_from(host.clone())
            .map_err(|_| invalid("the host is neither a dns name nor an ip address"))?;
        let tls = TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await
            .map_err(|source| ConnectError::Tls { host, source })?;
        Either::Right(tls)
    } else {
        Either::Left(tcp)
    };
    let socket = tokio_tungstenite::client_async_with_config(request, stream, ws_config).await?;
    Ok(socket)
}

/// The certificates of a PEM bundle; none at all is an error.
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!("{what}: no PEM certificate found")));
    }
    Ok(certs)
}

/// Reads a PEM file.
pub fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_makes_a_server_config_and_its_ca_a_client_config() {
        let ca = TestCa::new("Switchboard test CA");
        let server = ca.issue_for_loopback();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&server.cert_pem, &server.key_pem, &[b"http/1.1"]).expect("server");
        client_config(&ca.ca_pem()).expect("client");
        assert!(!format!("{server:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let ca = TestCa::new("ca");
        let one = ca.issue(&["one.test"]);
        let two = ca.issue(&["two.test"]);
        assert!(server_config(&one.cert_pem, &two.key_pem, &[]).is_err());
    }

    #[test]
    fn pem_without_certificates_is_an_error_that_says_so() {
        let err = client_config("not pem at all").unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
