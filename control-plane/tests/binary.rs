//! The real `control-plane` binary: configuration errors, readiness and a clean stop
//! on SIGTERM.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_control-plane");

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A command with a clean environment apart from what the test sets.
fn control_plane() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn wait_until_listening(child: &mut Child, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("control-plane exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("control-plane did not listen on {addr} within 20 s");
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    let output = control_plane()
        .env("SWITCHBOARD_GRPC_ADDR", "nowhere")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SWITCHBOARD_GRPC_ADDR"), "{stderr}");

    let output = control_plane()
        .env("SWITCHBOARD_STORE", "postgres://db")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SWITCHBOARD_STORE"));

    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), b"not a certificate").unwrap();
    let output = control_plane()
        .env("SWITCHBOARD_TOOL_CA_FILE", not_pem.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SWITCHBOARD_TOOL_CA_FILE"));

    let output = control_plane()
        .env("TWILIO_API_KEY", "SK0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TWILIO_API_SECRET"));

    let output = control_plane()
        .env("SWITCHBOARD_TLS_CERT", "/nonexistent/tls.crt")
        .env("SWITCHBOARD_TLS_KEY", "/nonexistent/tls.key")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SWITCHBOARD_TLS_CERT: cannot read /nonexistent/tls.crt"),
        "{stderr}"
    );
}

#[test]
fn flags_are_documented() {
    let output = control_plane().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--grpc-addr",
        "--store",
        "--log",
        "SWITCHBOARD_GRPC_ADDR",
        "SWITCHBOARD_STORE",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn serves_until_sigterm_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = control_plane()
        .env("SWITCHBOARD_GRPC_ADDR", addr.to_string())
        .env("SWITCHBOARD_STORE", dir.path())
        .env("SWITCHBOARD_API_TOKEN", "never-printed-token")
        .env("SWITCHBOARD_LOG", "info")
        .spawn()
        .unwrap();
    wait_until_listening(&mut child, addr);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "control-plane did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(
        stderr.contains("serving gRPC") && stderr.contains("stopped"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("never-printed-token"),
        "the token leaked into the log"
    );
    assert!(
        dir.path().join("switchboard.redb").exists(),
        "the embedded store lives in the data directory"
    );
}
