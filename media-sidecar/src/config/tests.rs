use std::collections::HashMap;

use super::*;

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn defaults_serve_loopback_for_a_local_run() {
    let c = config(&[]).unwrap();
    assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
    assert_eq!(c.admin_addr.to_string(), DEFAULT_ADMIN_ADDR);
    assert_eq!(c.control_plane.urls, [DEFAULT_CONTROL_PLANE_URL]);
    assert_eq!(c.public_url.as_str(), DEFAULT_PUBLIC_URL);
    assert_eq!(c.openai.url, DEFAULT_OPENAI_URL);
    assert_eq!(c.openai.azure, None);
    assert_eq!(c.openai.extra_ca, None);
    assert_eq!(c.openai.proxy, ProxyConfig::default());
    assert_eq!(c.tls, None);
    assert_eq!(c.openai.default_model, DEFAULT_OPENAI_MODEL);
    assert_eq!(c.stream_token.ttl, Duration::from_secs(300));
    assert_eq!(c.max_calls, 500);
    assert_eq!(c.drain_grace, Duration::from_secs(30));
    assert_eq!(c.fallback.message, DEFAULT_FALLBACK_MESSAGE);
    assert_eq!(c.fallback.number, None);
    assert_eq!(c.twilio_auth_token, None);
    assert!(c.sidecar_id.starts_with("sidecar-"), "{}", c.sidecar_id);
}

#[test]
fn every_variable_is_read() {
    let c = config(&[
        (ENV_HTTP_ADDR, "0.0.0.0:8443"),
        (ENV_ADMIN_ADDR, "0.0.0.0:9100"),
        (ENV_CONTROL_PLANE_URL, "https://control-plane:50051/"),
        (ENV_PUBLIC_URL, "https://sidecar.example.com/"),
        (ENV_TWILIO_AUTH_TOKEN, "auth"),
        (ENV_OPENAI_API_KEY, "sk-1"),
        (ENV_OPENAI_URL, "https://gateway.example.com/openai"),
        (ENV_OPENAI_MODEL, "gpt-realtime-mini"),
        (
            ENV_AZURE_OPENAI_ENDPOINT,
            "https://contoso.openai.azure.com/",
        ),
        (ENV_AZURE_OPENAI_API_KEY, "azure-key"),
        (ENV_AZURE_OPENAI_API_VERSION, "2025-04-01-preview"),
        (ENV_AZURE_OPENAI_DEPLOYMENT, "realtime-prod"),
        (ENV_HTTPS_PROXY, "http://proxy.internal:3128"),
        (ENV_NO_PROXY, ".internal,localhost"),
        (ENV_STREAM_TOKEN_SECRET, &"k".repeat(32)),
        (ENV_STREAM_TOKEN_TTL, "2m"),
        (ENV_MAX_CALLS, "40"),
        (ENV_DRAIN_GRACE, "500ms"),
        (ENV_API_TOKEN, "tok"),
        (ENV_SIDECAR_ID, "sidecar-a"),
        (ENV_FALLBACK_MESSAGE, "Please hold."),
        (ENV_FALLBACK_NUMBER, "+14155550100"),
        (ENV_LOG, "debug"),
        (ENV_LOG_FORMAT, "json"),
    ])
    .unwrap();
    assert_eq!(c.http_addr.port(), 8443);
    assert_eq!(c.admin_addr.port(), 9100);
    assert_eq!(c.control_plane.urls, ["https://control-plane:50051"]);
    assert!(c.public_url.is_https());
    assert_eq!(c.openai.url, "https://gateway.example.com/openai");
    assert_eq!(c.openai.default_model, "gpt-realtime-mini");
    let azure = c.openai.azure.as_ref().expect("azure");
    assert_eq!(azure.endpoint, "https://contoso.openai.azure.com/");
    assert_eq!(azure.api_version.as_deref(), Some("2025-04-01-preview"));
    assert_eq!(azure.default_deployment, "realtime-prod");
    assert!(matches!(&azure.auth, Some(AzureAuth::ApiKey(k)) if k.expose() == "azure-key"));
    assert!(c.openai.proxy.for_host("api.openai.com", true).is_some());
    assert!(c.openai.proxy.for_host("rt.internal", true).is_none());
    assert!(c.openai.proxy.for_host("api.openai.com", false).is_none());
    assert!(!c.stream_token.generated);
    assert_eq!(c.stream_token.ttl, Duration::from_secs(120));
    assert_eq!(c.max_calls, 40);
    assert_eq!(c.drain_grace, Duration::from_millis(500));
    assert_eq!(c.sidecar_id, "sidecar-a");
    assert_eq!(c.fallback.number.as_deref(), Some("+14155550100"));
    assert_eq!(c.telemetry.format, LogFormat::Json);
    assert!(
        c.startup_warnings().is_empty(),
        "{:?}",
        c.startup_warnings()
    );
}

#[test]
fn several_control_plane_replicas_and_dns_discovery() {
    let c = config(&[(
        ENV_CONTROL_PLANE_URL,
        " http://cp-0:50051/, http://cp-1:50051,http://cp-0:50051",
    )])
    .unwrap();
    assert_eq!(
        c.control_plane.urls,
        ["http://cp-0:50051", "http://cp-1:50051"],
        "trimmed, duplicates dropped, order kept"
    );
    assert_eq!(c.control_plane.discovery, Discovery::Static);
    assert_eq!(
        c.control_plane.describe(),
        "http://cp-0:50051,http://cp-1:50051"
    );
    let dns = config(&[
        (
            ENV_CONTROL_PLANE_URL,
            "https://control-plane-headless:50051",
        ),
        (ENV_CONTROL_PLANE_DISCOVERY, "dns"),
    ])
    .unwrap();
    assert_eq!(dns.control_plane.discovery, Discovery::Dns);
    assert!(dns.control_plane.is_https());
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        (ENV_HTTP_ADDR, "localhost"),
        (ENV_ADMIN_ADDR, "9090"),
        (ENV_CONTROL_PLANE_URL, "grpc://cp:50051"),
        (ENV_CONTROL_PLANE_URL, "cp:50051"),
        (ENV_CONTROL_PLANE_URL, "http://cp:50051/path"),
        (
            ENV_CONTROL_PLANE_URL,
            "http://cp-0:50051,https://cp-1:50051",
        ),
        (
            ENV_CONTROL_PLANE_URL,
            "http://cp-0:50051,,http://cp-1:50051",
        ),
        (ENV_CONTROL_PLANE_DISCOVERY, "consul"),
        (ENV_PUBLIC_URL, "sidecar.example.com"),
        (ENV_PUBLIC_URL, "https://x/?a=b"),
        (ENV_OPENAI_URL, "ftp://api.openai.com"),
        (ENV_OPENAI_URL, "api.openai.com/v1/realtime"),
        (ENV_OPENAI_URL, "wss://user:key@api.openai.com"),
        (ENV_OPENAI_DIALECT, "ga"),
        (ENV_OPENAI_CA_FILE, "/nonexistent/ca.pem"),
        (ENV_AZURE_OPENAI_API_KEY, "azure-key-without-endpoint"),
        (ENV_HTTPS_PROXY, "https://proxy:3128"),
        (ENV_HTTP_PROXY, "socks5://proxy:1080"),
        (ENV_OPENAI_MODEL, "two words"),
        (ENV_STREAM_TOKEN_SECRET, "short"),
        (ENV_STREAM_TOKEN_TTL, "300"),
        (ENV_STREAM_TOKEN_TTL, "0s"),
        (ENV_MAX_CALLS, "0"),
        (ENV_MAX_CALLS, "many"),
        (ENV_DRAIN_GRACE, "soon"),
        (ENV_TWILIO_IDLE_TIMEOUT, "15"),
        (ENV_MAX_CALL_DURATION, "forever"),
        (ENV_API_TOKEN, "has space"),
        (ENV_SIDECAR_ID, "a b"),
        (ENV_FALLBACK_MESSAGE, "bell\u{7}"),
        (ENV_FALLBACK_NUMBER, "555-0100"),
        (ENV_LOG, "info,[[["),
        (ENV_LOG_FORMAT, "xml"),
    ] {
        let err = config(&[(var, value)]).unwrap_err();
        assert_eq!(err.variable, var, "{value}");
        assert!(err.to_string().starts_with(var), "{err}");
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let c = config(&[
        (ENV_API_TOKEN, "tok-123"),
        (ENV_TWILIO_AUTH_TOKEN, "auth-456"),
        (ENV_OPENAI_API_KEY, "sk-789"),
        (
            ENV_STREAM_TOKEN_SECRET,
            "stream-secret-0123456789abcdefghij",
        ),
    ])
    .unwrap();
    let text = format!("{c:?}");
    for secret in ["tok-123", "auth-456", "sk-789", "stream-secret"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(
        c.control_plane.api_token.as_ref().map(Secret::expose),
        Some("tok-123")
    );
    let err = config(&[(ENV_STREAM_TOKEN_SECRET, "too-short-secret")]).unwrap_err();
    assert!(!err.to_string().contains("too-short-secret"), "{err}");
}

#[test]
fn unsafe_local_defaults_are_warned_about() {
    let c = config(&[]).unwrap();
    assert!(c.stream_token.generated);
    assert_eq!(c.stream_token.secret.expose().len(), 64);
    let warnings = c.startup_warnings().join("\n");
    assert!(warnings.contains(ENV_TWILIO_AUTH_TOKEN), "{warnings}");
    assert!(warnings.contains(ENV_STREAM_TOKEN_SECRET), "{warnings}");
    assert!(warnings.contains(ENV_OPENAI_API_KEY), "{warnings}");
    let other = config(&[]).unwrap();
    assert_ne!(
        c.stream_token.secret, other.stream_token.secret,
        "each process makes its own"
    );
}

#[test]
fn the_sidecar_id_defaults_to_the_hostname() {
    let c = config(&[(ENV_HOSTNAME, "sidecar-7d9f-abc")]).unwrap();
    assert_eq!(c.sidecar_id, "sidecar-7d9f-abc");
    let c = config(&[(ENV_HOSTNAME, "x"), (ENV_SIDECAR_ID, "chosen")]).unwrap();
    assert_eq!(c.sidecar_id, "chosen");
}

#[test]
fn the_test_config_is_loopback_and_checks_signatures() {
    let c = Config::for_test();
    assert_eq!(c.http_addr.port(), 0);
    assert_eq!(c.admin_addr.port(), 0);
    assert!(c.twilio_auth_token.is_some());
    assert!(!c.stream_token.generated);
}

#[test]
fn the_retired_dialect_variable_says_what_replaced_it() {
    let err = config(&[(ENV_OPENAI_DIALECT, "azure")]).unwrap_err();
    assert_eq!(err.variable, ENV_OPENAI_DIALECT);
    assert!(err.reason.contains(ENV_AZURE_OPENAI_ENDPOINT), "{err}");
    assert!(err.reason.contains("provider"), "{err}");
}

#[test]
fn bad_azure_settings_name_their_variable() {
    let endpoint = (
        ENV_AZURE_OPENAI_ENDPOINT,
        "https://contoso.openai.azure.com",
    );
    for (vars, variable) in [
        (
            vec![(ENV_AZURE_OPENAI_ENDPOINT, "contoso.openai.azure.com")],
            ENV_AZURE_OPENAI_ENDPOINT,
        ),
        (
            vec![(ENV_AZURE_OPENAI_ENDPOINT, "https://user:pw@contoso")],
            ENV_AZURE_OPENAI_ENDPOINT,
        ),
        (
            vec![
                endpoint,
                (ENV_AZURE_OPENAI_API_KEY, "k"),
                (ENV_AZURE_OPENAI_AD_TOKEN, "t"),
            ],
            ENV_AZURE_OPENAI_AD_TOKEN,
        ),
        (
            vec![
                endpoint,
                (ENV_AZURE_OPENAI_TOKEN_FILE, "/nonexistent/token"),
            ],
            ENV_AZURE_OPENAI_TOKEN_FILE,
        ),
        (
            vec![endpoint, (ENV_AZURE_OPENAI_DEPLOYMENT, "two words")],
            ENV_AZURE_OPENAI_DEPLOYMENT,
        ),
        (
            vec![(ENV_AZURE_OPENAI_API_VERSION, "2025-04-01-preview")],
            ENV_AZURE_OPENAI_API_VERSION,
        ),
    ] {
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, variable, "{vars:?}: {err}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    // Without a key, a warning; with an Entra token alone, none about Azure.
    let keyless = config(&[endpoint]).unwrap();
    assert!(keyless
        .startup_warnings()
        .join("\n")
        .contains(ENV_AZURE_OPENAI_API_KEY));
    let entra = config(&[endpoint, (ENV_AZURE_OPENAI_AD_TOKEN, "eyJ0")]).unwrap();
    assert!(matches!(
        entra.openai.azure.unwrap().auth,
        Some(AzureAuth::Token(_))
    ));
}

#[test]
fn a_ca_file_and_the_tls_listener_files_are_read_and_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let ca = switchboard_sim::tls::TestCa::new("private");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.ca_pem()).unwrap();
    let (cert, key) = ca
        .issue(&["sidecar.example.com"])
        .write(dir.path(), "sidecar")
        .unwrap();
    let other_key = ca.issue(&["other"]).write(dir.path(), "other").unwrap().1;
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let path = |p: &std::path::Path| p.display().to_string();

    let c = config(&[
        (ENV_OPENAI_CA_FILE, &path(&ca_path)),
        (ENV_TLS_CERT, &path(&cert)),
        (ENV_TLS_KEY, &path(&key)),
        (ENV_PUBLIC_URL, "https://sidecar.example.com"),
    ])
    .unwrap();
    assert_eq!(c.openai.extra_ca.as_ref().map(|b| b.certs.len()), Some(1));
    let tls = c.tls.as_ref().expect("tls");
    assert_eq!(tls.certs.len(), 1);
    assert!(!format!("{c:?}").contains("PRIVATE KEY"));

    for (vars, variable) in [
        (
            vec![(ENV_OPENAI_CA_FILE, path(&not_pem))],
            ENV_OPENAI_CA_FILE,
        ),
        (vec![(ENV_TLS_CERT, path(&cert))], ENV_TLS_KEY),
        (vec![(ENV_TLS_KEY, path(&key))], ENV_TLS_CERT),
        (
            vec![(ENV_TLS_CERT, path(&cert)), (ENV_TLS_KEY, path(&other_key))],
            ENV_TLS_KEY,
        ),
        (
            vec![(ENV_TLS_CERT, path(&not_pem)), (ENV_TLS_KEY, path(&key))],
            ENV_TLS_CERT,
        ),
    ] {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, variable, "{vars:?}: {err}");
    }
}

#[test]
fn an_http_public_url_with_signatures_checked_is_warned_about_unless_local() {
    let public = |url: &str| {
        config(&[(ENV_TWILIO_AUTH_TOKEN, "auth"), (ENV_PUBLIC_URL, url)])
            .unwrap()
            .startup_warnings()
            .join("\n")
    };
    assert!(public("http://sidecar.example.com").contains("403"));
    assert!(!public("https://sidecar.example.com").contains("403"));
    assert!(!public("http://127.0.0.1:8080").contains("403"));
    assert!(!public("http://localhost:8080").contains("403"));
    assert!(!public("http://[::1]:8080").contains("403"));
}
