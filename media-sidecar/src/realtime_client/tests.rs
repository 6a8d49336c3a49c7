use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures::{SinkExt as _, StreamExt as _};
use switchboard_realtime::Dialect;
use switchboard_sim::tls::{self as test_tls, TestCa};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::config::{AzureConfig, Config, ENV_OPENAI_API_KEY, ENV_OPENAI_URL};
use crate::proxy::{NoProxy, ProxyUrl};

fn openai_config(url: &str) -> OpenAiConfig {
    Config::from_lookup(|name| match name {
        ENV_OPENAI_URL => Some(url.to_owned()),
        ENV_OPENAI_API_KEY => Some("sk-test-key".to_owned()),
        _ => None,
    })
    .expect("valid")
    .openai
}

fn agent(provider: pb::RealtimeProvider, model: &str) -> pb::AgentSettings {
    pb::AgentSettings {
        provider: provider.into(),
        model: model.into(),
        ..Default::default()
    }
}

#[test]
fn an_agent_without_provider_or_model_gets_openai_and_the_default_model() {
    let config = openai_config("https://api.openai.com");
    let params = params_for(&config, &agent(pb::RealtimeProvider::Unspecified, "")).unwrap();
    assert_eq!(
        params.url().unwrap(),
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    );
    assert_eq!(
        params.headers().get("authorization"),
        Some("Bearer sk-test-key")
    );
    assert_eq!(params.dialect(), Dialect::Ga);

    let mini = params_for(
        &config,
        &agent(pb::RealtimeProvider::Openai, "gpt-realtime-mini"),
    );
    assert!(mini
        .unwrap()
        .url()
        .unwrap()
        .ends_with("?model=gpt-realtime-mini"));
    let beta = params_for(&config, &agent(pb::RealtimeProvider::OpenaiBeta, "")).unwrap();
    assert_eq!(beta.dialect(), Dialect::Beta);
    assert_eq!(beta.headers().get("openai-beta"), Some("realtime=v1"));
}

#[test]
fn an_azure_agent_needs_azure_configured() {
    let config = openai_config("https://api.openai.com");
    let err = params_for(&config, &agent(pb::RealtimeProvider::AzureOpenai, "")).unwrap_err();
    assert!(err.to_string().contains(ENV_AZURE_OPENAI_ENDPOINT), "{err}");
}

#[test]
fn azure_agents_use_the_resource_its_credentials_and_their_deployment() {
    let mut config = openai_config("https://api.openai.com");
    config.azure = Some(AzureConfig {
        endpoint: "https://contoso.openai.azure.com".into(),
        api_version: None,
        default_deployment: "realtime-prod".into(),
        auth: Some(AzureAuth::ApiKey(crate::config::Secret::new("azure-key"))),
    });
    let ga = params_for(&config, &agent(pb::RealtimeProvider::AzureOpenai, "")).unwrap();
    assert_eq!(
        ga.url().unwrap(),
        "wss://contoso.openai.azure.com/openai/v1/realtime?model=realtime-prod"
    );
    assert_eq!(ga.headers().get("api-key"), Some("azure-key"));
    assert_eq!(ga.dialect(), Dialect::Ga);

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "entra-1\n").unwrap();
    let azure = config.azure.as_mut().unwrap();
    azure.api_version = Some("2025-04-01-preview".into());
    azure.auth = Some(AzureAuth::TokenFile(token_file.clone()));
    let preview = params_for(&config, &agent(pb::RealtimeProvider::AzureOpenai, "dep 2")).unwrap();
    assert_eq!(
        preview.url().unwrap(),
        "wss://contoso.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep%202"
    );
    assert_eq!(
        preview.headers().get("authorization"),
        Some("Bearer entra-1")
    );
    assert_eq!(preview.dialect(), Dialect::Beta);
    // The file is read again for every call: a refreshed token is used at once.
    std::fs::write(&token_file, "entra-2").unwrap();
    let next = params_for(&config, &agent(pb::RealtimeProvider::AzureOpenai, "")).unwrap();
    assert_eq!(next.headers().get("authorization"), Some("Bearer entra-2"));
    std::fs::remove_file(&token_file).unwrap();
    let gone = params_for(&config, &agent(pb::RealtimeProvider::AzureOpenai, "")).unwrap_err();
    assert!(gone.to_string().contains("token file"), "{gone}");
}

/// A WebSocket server on loopback over TLS with a certificate of `ca`; it echoes one
/// text message and keeps the request headers it saw.
struct TlsEchoServer {
    addr: std::net::SocketAddr,
    headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn tls_echo_server(ca: &TestCa) -> TlsEchoServer {
    let cert = ca.issue_for_loopback();
    let config = test_tls::server_config(&cert.cert_pem, &cert.key_pem, &[b"http/1.1"]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let headers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&headers);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The callback's signature is tungstenite's; its error is the response.
                #[allow(clippy::result_large_err)]
                let callback = |request: &Request, response: Response| {
                    let map = request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .chain([("uri".to_owned(), request.uri().to_string())])
                        .collect();
                    seen.lock().unwrap().push(map);
                    Ok(response)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await else {
                    return;
                };
                if let Some(Ok(message)) = ws.next().await {
                    let _ = ws.send(message).await;
                }
            });
        }
    });
    TlsEchoServer { addr, headers }
}

fn params_to(addr: std::net::SocketAddr, host: &str) -> ConnectParams {
    ConnectParams {
        provider: Provider::OpenAi,
        endpoint: format!("wss://{host}:{}", addr.port()),
        model: "gpt-realtime".into(),
        auth: Some(Auth::ApiKey(Secret::new("sk-over-tls"))),
    }
}

fn connector(ca: Option<&TestCa>, proxy: ProxyConfig) -> RealtimeConnector {
    let bundle = ca.map(|ca| crate::config::CaBundle {
        path: "test-ca.pem".into(),
        certs: test_tls::certificates(ca.ca_pem().as_bytes(), "ca").unwrap(),
    });
    let (tls, _) = crate::tls::client_config(bundle.as_ref()).unwrap();
    RealtimeConnector::with_tls(tls, proxy)
}

async fn echo_once(socket: &mut RealtimeSocket) -> String {
    socket.send(Message::text("ping")).await.unwrap();
    match socket.next().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("no echo: {other:?}"),
    }
}

#[tokio::test]
async fn a_wss_endpoint_signed_by_a_trusted_private_ca_is_reached_with_the_key_in_a_header() {
    let ca = TestCa::new("private realtime CA");
    let server = tls_echo_server(&ca).await;
    let mut socket = connector(Some(&ca), ProxyConfig::default())
        .connect(&params_to(server.addr, "localhost"))
        .await
        .expect("connects over TLS");
    assert_eq!(echo_once(&mut socket).await, "ping");
    let seen = server.headers.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["authorization"], "Bearer sk-over-tls");
    assert_eq!(seen[0]["uri"], "/v1/realtime?model=gpt-realtime");

    // An IP address works as the server name too (the certificate carries it).
    let mut by_ip = connector(Some(&ca), ProxyConfig::default())
        .connect(&params_to(server.addr, "127.0.0.1"))
        .await
        .expect("connects by IP");
    assert_eq!(echo_once(&mut by_ip).await, "ping");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_an_error_naming_the_problem() {
    let ca = TestCa::new("private realtime CA");
    let server = tls_echo_server(&ca).await;
    let err = connector(None, ProxyConfig::default())
        .connect(&params_to(server.addr, "localhost"))
        .await
        .expect_err("the public roots do not know this CA");
    let text = err.to_string();
    assert!(matches!(err, RealtimeConnectError::Tls { .. }), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("SWITCHBOARD_OPENAI_CA_FILE"), "{text}");
    assert!(!text.contains("sk-over-tls"), "{text}");

    let other_ca = TestCa::new("someone else");
    let err = connector(Some(&other_ca), ProxyConfig::default())
        .connect(&params_to(server.addr, "localhost"))
        .await
        .expect_err("another CA is no help");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

/// A `CONNECT` proxy on loopback that counts its tunnels and the targets asked for.
async fn connect_proxy() -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (Arc::clone(&tunnels), Arc::clone(&targets));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (count, seen) = (Arc::clone(&count), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut line = String::new();
                client.read_line(&mut line).await.unwrap();
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                loop {
                    let mut header = String::new();
                    client.read_line(&mut header).await.unwrap();
                    if header == "\r\n" || header.is_empty() {
                        break;
                    }
                }
                seen.lock().unwrap().push(target.clone());
                let mut upstream = tokio::net::TcpStream::connect(&target).await.unwrap();
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, tunnels, targets)
}

#[tokio::test]
async fn https_proxy_tunnels_the_socket_unless_no_proxy_names_the_host() {
    let ca = TestCa::new("private realtime CA");
    let server = tls_echo_server(&ca).await;
    let (proxy_addr, tunnels, targets) = connect_proxy().await;
    let proxy = ProxyConfig {
        https: Some(ProxyUrl::parse(&format!("http://{proxy_addr}")).unwrap()),
        http: None,
        no_proxy: NoProxy::parse("127.0.0.1"),
    };
    let connector = connector(Some(&ca), proxy);
    let mut socket = connector
        .connect(&params_to(server.addr, "localhost"))
        .await
        .expect("through the proxy");
    assert_eq!(echo_once(&mut socket).await, "ping");
    assert_eq!(tunnels.load(Ordering::SeqCst), 1);
    assert_eq!(
        targets.lock().unwrap().as_slice(),
        [format!("localhost:{}", server.addr.port())]
    );

    let mut direct = connector
        .connect(&params_to(server.addr, "127.0.0.1"))
        .await
        .expect("NO_PROXY: direct");
    assert_eq!(echo_once(&mut direct).await, "ping");
    assert_eq!(tunnels.load(Ordering::SeqCst), 1, "no second tunnel");
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_is_reported() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 512];
        let _ = client.read(&mut buf).await;
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            .await;
    });
    let proxy = ProxyConfig {
        https: Some(ProxyUrl::parse(&format!("http://{addr}")).unwrap()),
        ..ProxyConfig::default()
    };
    let err = connector(None, proxy)
        .connect(&params_to(addr, "api.example.test"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("407"), "{err}");
}
