//! The control-plane client's TLS settings, through `Config::from_lookup`: what is
//! accepted, and that every refusal names its variable.

use std::collections::HashMap;
use std::path::Path;

use switchboard_sim::tls::TestCa;

use super::is_loopback_url;
use crate::config::{
    Config, ConfigError, ENV_API_TOKEN, ENV_CONTROL_PLANE_CA_FILE, ENV_CONTROL_PLANE_CLIENT_CERT,
    ENV_CONTROL_PLANE_CLIENT_KEY, ENV_CONTROL_PLANE_URL,
};

/// Settings, the variable the error must name, and a word of its reason.
type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);

fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    Config::from_lookup(|name| map.get(name).cloned())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn an_https_url_with_a_private_ca_and_a_client_certificate_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sidecar test ca");
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let (cert, key) = ca.issue(&["sidecar"]).write(dir.path(), "client").unwrap();

    let plain_https = config(&[(ENV_CONTROL_PLANE_URL, "https://cp.example.com:50051")]).unwrap();
    assert_eq!(plain_https.control_plane.ca_file, None);
    assert_eq!(plain_https.control_plane.client_identity, None);

    let c = config(&[
        (ENV_CONTROL_PLANE_URL, "https://127.0.0.1:50051/"),
        (ENV_CONTROL_PLANE_CA_FILE, &path(&ca_file)),
        (ENV_CONTROL_PLANE_CLIENT_CERT, &path(&cert)),
        (ENV_CONTROL_PLANE_CLIENT_KEY, &path(&key)),
    ])
    .unwrap();
    assert_eq!(c.control_plane.urls, ["https://127.0.0.1:50051"]);
    assert_eq!(c.control_plane.ca_file.as_deref(), Some(ca_file.as_path()));
    assert_eq!(c.control_plane.client_identity, Some((cert, key)));
}

#[test]
fn bad_control_plane_tls_settings_name_their_variable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("sidecar test ca");
    let (cert, key) = ca.issue(&["sidecar"]).write(dir.path(), "client").unwrap();
    let (_, other_key) = ca.issue(&["other"]).write(dir.path(), "other").unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let (cert, key, other_key, not_pem) =
        (path(&cert), path(&key), path(&other_key), path(&not_pem));
    let missing = path(&dir.path().join("missing.pem"));
    let https = (ENV_CONTROL_PLANE_URL, "https://cp:50051");
    let http = (ENV_CONTROL_PLANE_URL, "http://cp:50051");

    let cases: Vec<Case<'_>> = vec![
        (
            vec![https, (ENV_CONTROL_PLANE_CLIENT_CERT, &cert)],
            ENV_CONTROL_PLANE_CLIENT_KEY,
            "set both",
        ),
        (
            vec![https, (ENV_CONTROL_PLANE_CLIENT_KEY, &key)],
            ENV_CONTROL_PLANE_CLIENT_CERT,
            "set both",
        ),
        (
            vec![https, (ENV_CONTROL_PLANE_CA_FILE, &missing)],
            ENV_CONTROL_PLANE_CA_FILE,
            "cannot read",
        ),
        (
            vec![https, (ENV_CONTROL_PLANE_CA_FILE, &not_pem)],
            ENV_CONTROL_PLANE_CA_FILE,
            "no pem certificate",
        ),
        (
            vec![
                https,
                (ENV_CONTROL_PLANE_CLIENT_CERT, &not_pem),
                (ENV_CONTROL_PLANE_CLIENT_KEY, &key),
            ],
            ENV_CONTROL_PLANE_CLIENT_CERT,
            "no pem certificate",
        ),
        (
            vec![
                https,
                (ENV_CONTROL_PLANE_CLIENT_CERT, &cert),
                (ENV_CONTROL_PLANE_CLIENT_KEY, &not_pem),
            ],
            ENV_CONTROL_PLANE_CLIENT_KEY,
            "private key",
        ),
        (
            vec![
                https,
                (ENV_CONTROL_PLANE_CLIENT_CERT, &cert),
                (ENV_CONTROL_PLANE_CLIENT_KEY, &other_key),
            ],
            ENV_CONTROL_PLANE_CLIENT_KEY,
            "does not fit",
        ),
        (
            vec![http, (ENV_CONTROL_PLANE_CA_FILE, &cert)],
            ENV_CONTROL_PLANE_CA_FILE,
            "https",
        ),
        (
            vec![
                http,
                (ENV_CONTROL_PLANE_CLIENT_CERT, &cert),
                (ENV_CONTROL_PLANE_CLIENT_KEY, &key),
            ],
            ENV_CONTROL_PLANE_CLIENT_CERT,
            "https",
        ),
    ];
    for (vars, variable, says) in cases {
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, variable, "{vars:?}: {err}");
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn a_token_sent_in_plaintext_to_another_host_is_warned_about() {
    let warned = |url: &str| {
        let c = config(&[(ENV_CONTROL_PLANE_URL, url), (ENV_API_TOKEN, "tok")]).unwrap();
        c.startup_warnings()
            .iter()
            .any(|w| w.contains(ENV_CONTROL_PLANE_URL))
    };
    assert!(warned("http://control-plane:50051"));
    assert!(warned("http://10.0.0.7:50051"));
    assert!(!warned("https://control-plane:50051"));
    assert!(!warned("http://127.0.0.1:50051"));
    assert!(!warned("http://localhost:50051"));
    assert!(!warned("http://[::1]:50051"));
    let tokenless = config(&[(ENV_CONTROL_PLANE_URL, "http://control-plane:50051")]).unwrap();
    assert!(!tokenless
        .startup_warnings()
        .iter()
        .any(|w| w.contains(ENV_CONTROL_PLANE_URL)));
    assert!(is_loopback_url("http://127.0.0.2:1"));
    assert!(!is_loopback_url("not a url"));
}
