//! TLS for the gRPC listener: which files, read and checked once at start-up.
//!
//! The control plane serves TLS when [`ENV_TLS_CERT`] and [`ENV_TLS_KEY`] are set, and
//! asks every client for a certificate issued by [`ENV_TLS_CLIENT_CA`] when that is set
//! too (mutual TLS). Everything that can be wrong with the files — one without the
//! other, unreadable, no PEM certificate, a key that is not the certificate's — is a
//! [`ConfigError`] naming the variable, so a bad mount stops start-up instead of failing
//! every handshake later. rustls does the checking, with the `ring` provider named here
//! rather than taken from the process default, so validation works before `main` installs
//! it and in tests that never do. `lib.rs` turns the result into tonic's
//! `ServerTlsConfig`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::{error, ConfigError, Secret, ENV_TLS_CERT, ENV_TLS_CLIENT_CA, ENV_TLS_KEY};

/// The listener's certificate and key, and the CA client certificates must come from.
/// `Debug` shows the file paths only.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// [`ENV_TLS_CERT`]: the certificate, leaf first, then any intermediates.
    pub cert_path: PathBuf,
    /// The contents of `cert_path`, PEM.
    pub cert_pem: String,
    /// [`ENV_TLS_KEY`]: the certificate's private key.
    pub key_path: PathBuf,
    /// The contents of `key_path`, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Secret,
    /// [`ENV_TLS_CLIENT_CA`] and its PEM: when set, clients must present a certificate it
    /// issued (mutual TLS).
    pub client_ca: Option<(PathBuf, String)>,
}

impl TlsConfig {
    /// True when clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.client_ca.is_some()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .field("client_ca", &self.client_ca.as_ref().map(|(path, _)| path))
            .finish()
    }
}

/// Reads and checks the TLS files `get` names; `None` serves plaintext.
pub(super) fn parse_tls(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<TlsConfig>, ConfigError> {
    let cert = get(ENV_TLS_CERT).map(PathBuf::from);
    let key = get(ENV_TLS_KEY).map(PathBuf::from);
    let client_ca = get(ENV_TLS_CLIENT_CA).map(PathBuf::from);
    let (cert_path, key_path) = match (cert, key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            if client_ca.is_some() {
                return Err(error(
                    ENV_TLS_CLIENT_CA,
                    format!(
                        "client certificates need tls: set {ENV_TLS_CERT} and {ENV_TLS_KEY} too"
                    ),
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => {
            return Err(error(
                ENV_TLS_KEY,
                format!("is not set but {ENV_TLS_CERT} is; set both or neither"),
            ))
        }
        (None, Some(_)) => {
            return Err(error(
                ENV_TLS_CERT,
                format!("is not set but {ENV_TLS_KEY} is; set both or neither"),
            ))
        }
    };
    let cert_pem = read(ENV_TLS_CERT, &cert_path)?;
    let key_pem = read(ENV_TLS_KEY, &key_path)?;
    let chain = certificates(ENV_TLS_CERT, &cert_path, &cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        error(
            ENV_TLS_KEY,
            format!("{}: no usable pem private key: {e}", key_path.display()),
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        error(
            ENV_TLS_KEY,
            format!(
                "{} does not fit the certificate in {}: {e}",
                key_path.display(),
                cert_path.display()
            ),
        )
    })?;
    let client_ca = match client_ca {
        Some(path) => {
            let pem = read(ENV_TLS_CLIENT_CA, &path)?;
            check_client_ca(&path, &pem, provider)?;
            Some((path, pem))
        }
        None => None,
    };
    Ok(Some(TlsConfig {
        cert_path,
        cert_pem,
        key_path,
        key_pem: Secret::new(key_pem),
        client_ca,
    }))
}

/// The client CA must be a certificate rustls accepts as a trust anchor.
fn check_client_ca(
    path: &Path,
    pem: &str,
    provider: rustls::crypto::CryptoProvider,
) -> Result<(), ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ENV_TLS_CLIENT_CA, path, pem)? {
        roots.add(cert).map_err(|e| {
            error(
                ENV_TLS_CLIENT_CA,
                format!("{}: not a usable ca certificate: {e}", path.display()),
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider))
        .build()
        .map_err(|e| error(ENV_TLS_CLIENT_CA, format!("{}: {e}", path.display())))?;
    Ok(())
}

fn read(variable: &'static str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| error(variable, format!("cannot read {}: {e}", path.display())))
}

/// Every certificate of a PEM bundle; none at all is an error.
fn certificates(
    variable: &'static str,
    path: &Path,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(variable, format!("{}: unreadable pem: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            variable,
            format!("{}: no pem certificate found", path.display()),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use switchboard_sim::tls::TestCa;

    use super::*;

    /// Settings, the variable the error must name, and a word of its reason.
    type Case<'a> = (&'a [(&'a str, &'a Path)], &'a str, &'a str);

    fn tls(vars: &[(&str, &Path)]) -> Result<Option<TlsConfig>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.display().to_string()))
            .collect();
        parse_tls(&|name: &str| map.get(name).cloned())
    }

    #[test]
    fn a_certificate_and_its_key_serve_tls_and_a_client_ca_makes_it_mutual() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("cp test ca");
        let (cert, key) = ca.issue_for_loopback().write(dir.path(), "server").unwrap();
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca.ca_pem()).unwrap();

        assert_eq!(tls(&[]).unwrap(), None);
        let one_way = tls(&[(ENV_TLS_CERT, &cert), (ENV_TLS_KEY, &key)])
            .unwrap()
            .unwrap();
        assert!(!one_way.is_mutual());
        let mutual = tls(&[
            (ENV_TLS_CERT, &cert),
            (ENV_TLS_KEY, &key),
            (ENV_TLS_CLIENT_CA, &ca_file),
        ])
        .unwrap()
        .unwrap();
        assert!(mutual.is_mutual());
        let shown = format!("{mutual:?}");
        assert!(shown.contains("server.key") && !shown.contains("PRIVATE KEY"));
    }

    #[test]
    fn a_chain_of_leaf_and_intermediate_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("root");
        let leaf = ca.issue_for_loopback();
        let chain = dir.path().join("chain.crt");
        std::fs::write(&chain, format!("{}{}", leaf.cert_pem, ca.ca_pem())).unwrap();
        let (_, key) = leaf.write(dir.path(), "leaf").unwrap();
        assert!(tls(&[(ENV_TLS_CERT, &chain), (ENV_TLS_KEY, &key)])
            .unwrap()
            .is_some());
    }

    #[test]
    fn bad_tls_settings_name_their_variable() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("cp test ca");
        let (cert, key) = ca.issue_for_loopback().write(dir.path(), "a").unwrap();
        let (_, other_key) = ca.issue(&["b.test"]).write(dir.path(), "b").unwrap();
        let missing = dir.path().join("missing.pem");
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();

        let cases: [Case<'_>; 8] = [
            (&[(ENV_TLS_CERT, &cert)], ENV_TLS_KEY, "set both"),
            (&[(ENV_TLS_KEY, &key)], ENV_TLS_CERT, "set both"),
            (&[(ENV_TLS_CLIENT_CA, &cert)], ENV_TLS_CLIENT_CA, "need tls"),
            (
                &[(ENV_TLS_CERT, &missing), (ENV_TLS_KEY, &key)],
                ENV_TLS_CERT,
                "cannot read",
            ),
            (
                &[(ENV_TLS_CERT, &not_pem), (ENV_TLS_KEY, &key)],
                ENV_TLS_CERT,
                "no pem certificate",
            ),
            (
                &[(ENV_TLS_CERT, &cert), (ENV_TLS_KEY, &not_pem)],
                ENV_TLS_KEY,
                "private key",
            ),
            (
                &[(ENV_TLS_CERT, &cert), (ENV_TLS_KEY, &other_key)],
                ENV_TLS_KEY,
                "does not fit",
            ),
            (
                &[
                    (ENV_TLS_CERT, &cert),
                    (ENV_TLS_KEY, &key),
                    (ENV_TLS_CLIENT_CA, &not_pem),
                ],
                ENV_TLS_CLIENT_CA,
                "no pem certificate",
            ),
        ];
        for (vars, variable, says) in cases {
            let err = tls(vars).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}: {err}");
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
