//! The control plane's outbound HTTPS clients (Twilio's REST API, tool webhooks) and
//! whom they trust.
//!
//! Every client trusts the webpki roots bundled at build time (so a scratch container
//! without a CA store still reaches Twilio), the platform's native store (so a CA an
//! operator installs on the host is honoured), and any extra CAs a `*_CA_FILE` variable
//! names. TLS is rustls with the `ring` provider, chosen through reqwest's features:
//! the workspace has exactly one crypto provider.

use crate::config::CaBundle;

/// A client could not be built (a native store that holds only unusable certificates).
#[derive(Debug, thiserror::Error)]
#[error("{purpose} http client: {message}")]
pub struct HttpClientError {
    pub purpose: &'static str,
    pub message: String,
}

/// A client for `purpose` (named in errors) trusting the built-in roots and `extra`.
pub fn build(
    purpose: &'static str,
    extra: Option<&CaBundle>,
) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_webpki_certs(true)
        .tls_built_in_native_certs(true);
    for certificate in extra.map(CaBundle::certificates).unwrap_or_default() {
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|e| HttpClientError {
        purpose,
        message: error_chain(&e),
    })
}

/// `e` and its causes, `: `-separated. reqwest's own message ("error sending request")
/// hides the reason (an unknown certificate issuer, a refused connection) in its sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
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
