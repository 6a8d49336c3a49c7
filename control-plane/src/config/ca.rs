//! Extra certificate authorities the control plane's HTTPS clients trust, read from PEM
//! files named by the environment.
//!
//! A file is read and checked once, at start-up: an unreadable file, one without a PEM
//! certificate, or one whose certificates rustls cannot use is a [`ConfigError`] naming
//! the variable, never a failure on the first request. The clients themselves are built
//! in `http_client.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{error, ConfigError};

/// The certificates of one PEM file (one or more `-----BEGIN CERTIFICATE-----` blocks).
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    path: PathBuf,
    pem: Vec<u8>,
    count: usize,
}

impl CaBundle {
    /// Reads and checks the PEM file at `path`; errors name `variable`.
    pub fn load(variable: &'static str, path: &Path) -> Result<CaBundle, ConfigError> {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| error(variable, format!("cannot read {shown}: {e}")))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| error(variable, format!("{shown} is not PEM: {e}")))?;
        if certificates.is_empty() {
            return Err(error(
                variable,
                format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            ));
        }
        let count = certificates.len();
        // rustls parses the certificates only when a client is built: build one now,
        // without the built-in roots, so a block that is not X.509 fails here.
        let mut probe = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false);
        for certificate in certificates {
            probe = probe.add_root_certificate(certificate);
        }
        probe.build().map_err(|e| {
            error(
                variable,
                format!("{shown} holds a certificate that cannot be used: {e}"),
            )
        })?;
        Ok(CaBundle {
            path: path.to_owned(),
            pem,
            count,
        })
    }

    /// The certificates, to add to a client's roots.
    pub fn certificates(&self) -> Vec<reqwest::Certificate> {
        // Parsed once in `load`; the same bytes parse again.
        reqwest::Certificate::from_pem_bundle(&self.pem).unwrap_or_default()
    }

    /// The file the certificates came from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("path", &self.path)
            .field("certificates", &self.count)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARIABLE: &str = "SWITCHBOARD_TOOL_CA_FILE";

    fn file(contents: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), contents).unwrap();
        file
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_pem_file_of_several_certificates_is_one_bundle() {
        let pem = format!("{}\n{}", ca_pem(), ca_pem());
        let f = file(pem.as_bytes());
        let bundle = CaBundle::load(VARIABLE, f.path()).unwrap();
        assert_eq!(bundle.certificates().len(), 2);
        assert!(format!("{bundle:?}").contains("certificates: 2"));
    }

    #[test]
    fn unreadable_or_non_pem_files_name_the_variable() {
        let missing = CaBundle::load(VARIABLE, Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(missing.variable, VARIABLE);
        assert!(missing.reason.contains("cannot read"), "{missing}");

        let der = file(&[0x30, 0x82, 0x01, 0x0a, 0x02]);
        let not_pem = CaBundle::load(VARIABLE, der.path()).unwrap_err();
        assert_eq!(not_pem.variable, VARIABLE);
        assert!(not_pem.reason.contains("no PEM certificate"), "{not_pem}");

        let garbage =
            file(b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
        let unusable = CaBundle::load(VARIABLE, garbage.path()).unwrap_err();
        assert_eq!(unusable.variable, VARIABLE);
    }
}
