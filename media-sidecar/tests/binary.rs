//! The real `media-sidecar` binary: configuration errors, documented flags, health and
//! readiness, and a prompt clean stop on SIGTERM when no call is active.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_media-sidecar");

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A command with a clean environment apart from what the test sets.
fn sidecar() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `GET path` over a fresh connection; the status code, or `None` if nobody answers.
fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

fn wait_until_ready(child: &mut Child, admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if get_status(admin, "/readyz") == Some(200) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("media-sidecar exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("media-sidecar was not ready on {admin} within 20 s");
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    for (variable, value) in [
        ("SWITCHBOARD_PUBLIC_URL", "sidecar.example.com"),
        ("SWITCHBOARD_MAX_CALLS", "0"),
        ("SWITCHBOARD_DRAIN_GRACE", "soon"),
        ("SWITCHBOARD_OPENAI_URL", "api.openai.com/v1/realtime"),
        ("SWITCHBOARD_OPENAI_DIALECT", "ga"),
        (
            "SWITCHBOARD_AZURE_OPENAI_ENDPOINT",
            "ftp://contoso.openai.azure.com",
        ),
        ("SWITCHBOARD_OPENAI_CA_FILE", "/nonexistent/ca.pem"),
        ("SWITCHBOARD_CONTROL_PLANE_URL", "grpc://cp:50051"),
        ("SWITCHBOARD_CONTROL_PLANE_CA_FILE", "/nonexistent/ca.crt"),
    ] {
        let output = sidecar().env(variable, value).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{stderr}");
    }
    let output = sidecar().args(["--http-addr", "nowhere"]).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SWITCHBOARD_HTTP_ADDR"));
}

#[test]
fn flags_are_documented() {
    let output = sidecar().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--http-addr",
        "--admin-addr",
        "--control-plane-url",
        "--public-url",
        "--azure-openai-endpoint",
        "AZURE_OPENAI_API_KEY",
        "--max-calls",
        "--drain-grace",
        "--fallback-number",
        "SWITCHBOARD_HTTP_ADDR",
        "SWITCHBOARD_PUBLIC_URL",
        "SWITCHBOARD_DRAIN_GRACE",
        "TWILIO_AUTH_TOKEN",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn serves_health_until_sigterm_then_exits_promptly_without_calls() {
    let http = free_addr();
    let admin = free_addr();
    let mut child = sidecar()
        .env("SWITCHBOARD_HTTP_ADDR", http.to_string())
        .env("SWITCHBOARD_ADMIN_ADDR", admin.to_string())
        .env("SWITCHBOARD_PUBLIC_URL", format!("http://{http}"))
        .env("SWITCHBOARD_DRAIN_GRACE", "10m")
        .env("SWITCHBOARD_API_TOKEN", "never-printed-token")
        .env("OPENAI_API_KEY", "sk-never-printed")
        .env("SWITCHBOARD_LOG", "info")
        .spawn()
        .unwrap();
    wait_until_ready(&mut child, admin);
    assert_eq!(get_status(admin, "/healthz"), Some(200));
    assert_eq!(get_status(http, "/nowhere"), Some(404));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // "Promptly": with no active call, far sooner than the 10 minute grace.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "media-sidecar did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "exit {status}: {stderr}");
    for expected in ["listening", "ready", "draining", "stopped"] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("TWILIO_AUTH_TOKEN is not set"),
        "the disabled signature check is announced: {stderr}"
    );
    for secret in ["never-printed-token", "sk-never-printed"] {
        assert!(!stderr.contains(secret), "{secret} leaked into the log");
    }
}
