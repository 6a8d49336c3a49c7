//! TLS for the simulators and for the tests that run Switchboard the way production
//! does: a private certificate authority ([`TestCa`]) that issues server and client
//! certificates — what an operator's private CA, or a TLS-inspecting proxy, looks like
//! to Switchboard — and rustls configurations built from PEM.
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
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

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
