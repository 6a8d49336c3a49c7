//! TLS for the sidecar: the client configuration of the Realtime sockets and the server
//! configuration of the Twilio-facing port.
//!
//! Both use the `ring` provider, named here, never a process default: the sidecar then
//! works the same whichever other crates a build links (`main` also installs it as the
//! process default for the libraries that ask for one). A Realtime endpoint is trusted
//! when its certificate chains to the public web roots (webpki-roots, compiled in), to
//! the platform's store (so a corporate CA installed in the image works), or to
//! `SWITCHBOARD_OPENAI_CA_FILE`.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{CaBundle, ServerTls};

/// The one crypto provider of this binary.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes `ring` the process default, for libraries that build their own TLS
/// configuration from it. Harmless when a default is already installed.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the trusted roots came from, for the start-up log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootCounts {
    /// Compiled-in public roots.
    pub webpki: usize,
    /// From the platform's store.
    pub native: usize,
    /// From `SWITCHBOARD_OPENAI_CA_FILE`.
    pub extra: usize,
}

/// The client configuration of the Realtime sockets (ALPN `http/1.1`, as WebSocket
/// needs).
pub fn client_config(
    extra_ca: Option<&CaBundle>,
) -> Result<(Arc<ClientConfig>, RootCounts), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut counts = RootCounts {
        webpki: roots.len(),
        ..RootCounts::default()
    };
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        // A missing or partly unreadable store is common in slim images; the public
        // roots still apply.
        tracing::debug!(%error, "platform certificate store");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    counts.native = added;
    if let Some(bundle) = extra_ca {
        for cert in &bundle.certs {
            roots.add(cert.clone())?;
            counts.extra += 1;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), counts))
}

/// The server configuration of the Twilio-facing port (ALPN `http/1.1`: Twilio's
/// webhooks and Media Stream upgrades are HTTP/1.1).
pub fn server_config(tls: &ServerTls) -> Result<Arc<ServerConfig>, rustls::Error> {
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose().as_bytes())
        .map_err(|e| rustls::Error::General(format!("private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(tls.certs.clone(), key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_roots_are_always_trusted_and_an_extra_ca_is_added() {
        let (_, counts) = client_config(None).expect("config");
        assert!(counts.webpki > 50, "{counts:?}");
        assert_eq!(counts.extra, 0);
        let ca = switchboard_sim::tls::TestCa::new("private");
        let certs = switchboard_sim::tls::certificates(ca.ca_pem().as_bytes(), "ca").unwrap();
        let bundle = CaBundle {
            path: "ca.pem".into(),
            certs,
        };
        let (_, counts) = client_config(Some(&bundle)).expect("config");
        assert_eq!(counts.extra, 1);
    }
}
