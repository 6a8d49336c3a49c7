//! Tool webhooks on loopback: signatures, and trust of a private CA over HTTPS.

use tokio_rustls::rustls;

use super::*;

/// A webhook that records the headers and body it got and answers `{"ok":true}`.
async fn webhook() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>;
    async fn handle(
        axum::extract::State(seen): axum::extract::State<Seen>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> &'static str {
        seen.lock().unwrap().push((headers, body));
        r#"{"ok":true}"#
    }
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route("/tool", axum::routing::post(handle))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tool", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn tool(url: &str) -> Tool {
    Tool {
        name: "lookup".into(),
        description: String::new(),
        parameters_json_schema: r#"{"type":"object"}"#.into(),
        webhook_url: url.into(),
        timeout_ms: 2_000,
    }
}

#[tokio::test]
async fn signed_requests_carry_a_signature_the_tool_can_check() {
    let (url, seen) = webhook().await;
    let invoker = ToolInvoker::new(Some(Secret::new("tool-secret")));
    let outcome = invoker
        .invoke(&tool(&url), "call-1", "fc_1", r#"{"id":"42"}"#)
        .await;
    assert_eq!(
        outcome,
        ToolOutcome {
            output_json: r#"{"ok":true}"#.into(),
            error: None
        }
    );
    let (headers, body) = seen.lock().unwrap()[0].clone();
    let timestamp: u64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
    let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(signature, sign("tool-secret", timestamp, body.as_bytes()));
    assert_ne!(signature, sign("other-secret", timestamp, body.as_bytes()));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["arguments"]["id"], "42");
    assert_eq!(json["call_id"], "call-1");
}

#[tokio::test]
async fn without_a_secret_nothing_is_signed() {
    let (url, seen) = webhook().await;
    ToolInvoker::default()
        .invoke(&tool(&url), "call-1", "fc_1", "{}")
        .await;
    let (headers, _) = seen.lock().unwrap()[0].clone();
    assert!(headers.get(SIGNATURE_HEADER).is_none());
}

#[test]
fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac k
    assert_eq!(
        sign("k", 1_700_000_000, b"{}"),
        "v1=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
    );
}

// === HTTPS with a private CA ===

/// A CA of our own and a certificate it issued for 127.0.0.1, as PEM / DER.
struct PrivatePki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn private_pki() -> PrivatePki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Switchboard test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    PrivatePki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.der().clone(),
        server_key: rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
    }
}

/// Accepts TLS connections for axum; a handshake the client aborts is skipped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A tool webhook served over HTTPS with a certificate from `pki`'s CA.
async fn https_webhook(pki: &PrivatePki) -> String {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/tool", tcp.local_addr().unwrap());
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    };
    let app = axum::Router::new().route(
        "/tool",
        axum::routing::post(|| async { r#"{"ok":"over tls"}"# }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// The invoker `serve` builds from `SWITCHBOARD_TOOL_CA_FILE` (or its absence).
fn invoker_trusting(ca_file: Option<&std::path::Path>) -> ToolInvoker {
    let vars: Vec<(&str, String)> = ca_file
        .map(|path| (crate::config::ENV_TOOL_CA_FILE, path.display().to_string()))
        .into_iter()
        .collect();
    let config = crate::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    let client = crate::http_client::build("tool webhook", config.tool_ca.as_ref()).unwrap();
    ToolInvoker::with_client(None, client)
}

#[tokio::test]
async fn a_tool_behind_a_private_ca_is_trusted_when_the_ca_file_names_it() {
    let pki = private_pki();
    let url = https_webhook(&pki).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &pki.ca_pem).unwrap();

    let outcome = invoker_trusting(Some(ca_file.path()))
        .invoke(&tool(&url), "call-1", "fc_1", "{}")
        .await;
    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!(outcome.output_json, r#"{"ok":"over tls"}"#);
}

#[tokio::test]
async fn a_tool_behind_an_unknown_ca_fails_naming_the_certificate() {
    let pki = private_pki();
    let url = https_webhook(&pki).await;

    let outcome = invoker_trusting(None)
        .invoke(&tool(&url), "call-1", "fc_1", "{}")
        .await;
    let error = outcome.error.expect("an unknown issuer is refused");
    assert_eq!(error.code, "tool.unreachable");
    assert!(
        error.message.contains("certificate") && error.message.contains("UnknownIssuer"),
        "{}",
        error.message
    );
}
