//! Both simulator binaries document their flags, and `openai-sim --tls` serves
//! `wss://` with a CA it writes for clients to trust.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt as _;
use switchboard_sim::tls::{self, connect_websocket, ConnectError};
use tokio_tungstenite::tungstenite::Message;

fn help(bin: &str, args: &[&str]) -> String {
    let output = Command::new(bin).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "{bin} {args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn twilio_sim_documents_its_subcommands_and_flags() {
    let bin = env!("CARGO_BIN_EXE_twilio-sim");
    let top = help(bin, &[]);
    for word in ["call", "load", "rest", "--log"] {
        assert!(top.contains(word), "{word} missing:\n{top}");
    }
    let call = help(bin, &["call"]);
    for flag in [
        "--ca-file",
        "--url",
        "--auth-token",
        "--audio",
        "--dtmf",
        "--hang-up-after-ms",
    ] {
        assert!(call.contains(flag), "{flag} missing:\n{call}");
    }
    let load = help(bin, &["load"]);
    assert!(
        load.contains("--calls") && load.contains("--rate") && load.contains("--ca-file"),
        "{load}"
    );
    let rest = help(bin, &["rest"]);
    assert!(
        rest.contains("--listen") && rest.contains("--outcome") && rest.contains("--ca-file"),
        "{rest}"
    );
}

#[test]
fn openai_sim_documents_its_flags() {
    let text = help(env!("CARGO_BIN_EXE_openai-sim"), &[]);
    for flag in [
        "--listen",
        "--mode",
        "--script",
        "--api-key",
        "--fault",
        "--audio-pace",
        "--tls-cert",
        "--tls-key",
        "--tls",
        "--tls-ca-out",
    ] {
        assert!(text.contains(flag), "{flag} missing:\n{text}");
    }
}

/// Kills the child it holds when dropped, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn openai_sim_tls_needs_a_file_for_its_ca() {
    let output = Command::new(env!("CARGO_BIN_EXE_openai-sim"))
        .args(["--listen", "127.0.0.1:0", "--tls"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "--tls alone was accepted");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--tls-ca-out"), "{stderr}");
}

#[tokio::test]
async fn openai_sim_tls_writes_a_ca_that_clients_can_trust() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("openai-sim-ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_openai-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--tls",
            "--tls-ca-out",
        ])
        .arg(&ca_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    // The first line says where it listens; the CA file is written before it.
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("openai-sim prints where it listens");
    let base = line
        .trim()
        .strip_prefix("openai-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(base.starts_with("wss://127.0.0.1:"), "{base}");
    let url = format!("{base}/v1/realtime?model=gpt-realtime");

    let untrusting = connect_websocket(url.as_str(), &tls::public_client_config(), None).await;
    assert!(
        matches!(untrusting, Err(ConnectError::Tls { .. })),
        "the public roots do not know the simulator's CA"
    );

    let ca_pem = std::fs::read_to_string(&ca_file).expect("the CA file was written");
    let trusting = tls::client_config(&ca_pem).expect("the file holds a CA certificate");
    let (mut ws, _) = connect_websocket(url.as_str(), &trusting, None)
        .await
        .expect("a client trusting the written CA connects");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an event within the patience")
        .expect("socket open")
        .expect("no socket error");
    let Message::Text(text) = first else {
        panic!("expected text, got {first:?}");
    };
    assert!(text.contains(r#""type":"session.created""#), "{text}");
}
