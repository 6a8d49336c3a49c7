//! A client generated from `proto/` alone drives the real `control-plane` binary.
//!
//! Each test starts the binary on a free loopback port and runs
//! `tests/python/client_check.py` against it, which generates Python stubs with
//! `grpc_tools.protoc` and walks a call through its life (agent, session, sidecar
//! stream, events, error codes). One test uses the embedded store behind an API token,
//! the other MongoDB without one.
//!
//! The Python interpreter comes from `SWITCHBOARD_TEST_PYTHON` and the MongoDB server
//! from `SWITCHBOARD_TEST_MONGODB_URI` (`scripts/test.sh` sets both). Without them the
//! tests print a note and pass, except under CI, where they fail.
#![allow(clippy::disallowed_methods)] // the harness's variables are read here, not through config.rs

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use uuid::Uuid;

const PYTHON_VAR: &str = "SWITCHBOARD_TEST_PYTHON";
const MONGODB_VAR: &str = "SWITCHBOARD_TEST_MONGODB_URI";
/// How long the binary may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the Python check may run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the binary may take to drain after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

#[test]
fn python_client_works_against_the_embedded_store() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = dir.path().join("data");
    let token = format!("tok-{}", Uuid::now_v7().simple());
    let server = Server::start(
        dir.path(),
        &[
            (
                "SWITCHBOARD_STORE",
                store.to_str().expect("UTF-8 temp path"),
            ),
            ("SWITCHBOARD_API_TOKEN", &token),
        ],
    );
    run_client_check(&python, dir.path(), server.addr, Some(&token));
    server.stop();
}

#[test]
fn python_client_works_against_mongodb() {
    let Some(python) = python() else { return };
    let Some(uri) = harness_var(
        MONGODB_VAR,
        "SWITCHBOARD_TEST_MONGODB_URI not set",
        "the Python client check against MongoDB",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = with_database(&uri, &format!("pycheck_{}", Uuid::now_v7().simple()));
    let server = Server::start(dir.path(), &[("SWITCHBOARD_STORE", &store)]);
    run_client_check(&python, dir.path(), server.addr, None);
    server.stop();
}

/// A harness variable, or `None` when it is unset (see [`skip`]).
fn harness_var(name: &str, missing: &str, check: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => skip(missing, check),
    }
}

/// Skips `check` with a note saying what is `missing`; under CI, where every check
/// must run, fails instead.
fn skip<T>(missing: &str, check: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
        panic!("{missing}, but CI is set: {check} must run (use `bash scripts/test.sh`)");
    }
    eprintln!("note: {missing}; skipping {check}");
    None
}

/// The Python interpreter to use, if it is set and has grpcio-tools.
fn python() -> Option<PathBuf> {
    const MISSING: &str = "SWITCHBOARD_TEST_PYTHON not set (or lacks grpcio-tools)";
    const CHECK: &str = "the Python client check";
    let python = PathBuf::from(harness_var(PYTHON_VAR, MISSING, CHECK)?);
    let has_grpc_tools = Command::new(&python)
        .args(["-c", "import grpc_tools.protoc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if has_grpc_tools {
        Some(python)
    } else {
        skip(MISSING, CHECK)
    }
}

/// `uri` naming `database` (the URI is expected to name none).
fn with_database(uri: &str, database: &str) -> String {
    let (base, options) = match uri.split_once('?') {
        Some((base, options)) => (base, format!("?{options}")),
        None => (uri, String::new()),
    };
    format!("{}/{database}{options}", base.trim_end_matches('/'))
}

/// A loopback address nothing listens on right now.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

/// Polls `child` until it exits or `timeout` passes.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {path:?}: {e}>"))
}

/// The `control-plane` binary, running; stopped when dropped.
#[derive(Debug)]
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts the binary with `vars` (and no inherited SWITCHBOARD_* variables) and
    /// waits until it accepts TCP connections; its output goes to `dir`.
    fn start(dir: &Path, vars: &[(&str, &str)]) -> Server {
        let addr = free_addr();
        let log = dir.join("control-plane.log");
        let output = File::create(&log).expect("create the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_control-plane"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(name);
            }
        }
        command
            .env("SWITCHBOARD_GRPC_ADDR", addr.to_string())
            .env("SWITCHBOARD_LOG", "warn")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone the log handle"))
            .stderr(output);
        let child = command.spawn().expect("start the control-plane binary");
        let mut server = Server {
            child: Some(child),
            addr,
            log,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let child = self.child.as_mut().expect("running");
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = child.try_wait().expect("poll the control plane") {
                panic!(
                    "control-plane exited ({status}) before listening on {}:\n{}",
                    self.addr,
                    read_log(&self.log)
                );
            }
            assert!(
                Instant::now() < deadline,
                "control-plane did not listen on {} within {STARTUP_TIMEOUT:?}:\n{}",
                self.addr,
                read_log(&self.log)
            );
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, then a bounded wait for the graceful drain; killed if it overstays.
    fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let terminated = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !terminated || wait_with_timeout(&mut child, SHUTDOWN_TIMEOUT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Reached with a running child only when a test failed: do not leak it.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `tests/python/client_check.py` against `addr` and asserts it passes.
fn run_client_check(python: &Path, dir: &Path, addr: SocketAddr, token: Option<&str>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace");
    let script = repo.join("tests/python/client_check.py");
    let stdout_path = dir.join("client_check.stdout");
    let stderr_path = dir.join("client_check.stderr");
    let mut command = Command::new(python);
    command
        .arg(&script)
        .arg("--addr")
        .arg(addr.to_string())
        .current_dir(repo)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create the check's stdout file"))
        .stderr(File::create(&stderr_path).expect("create the check's stderr file"));
    if let Some(token) = token {
        command.arg("--token").arg(token);
    }
    let mut child = command.spawn().expect("start the Python client check");
    let status = wait_with_timeout(&mut child, CHECK_TIMEOUT);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = read_log(&stdout_path);
    let stderr = read_log(&stderr_path);
    match status {
        Some(status) if status.success() => println!("{stdout}"),
        Some(status) => panic!(
            "the Python client check failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
        None => panic!(
            "the Python client check ran longer than {CHECK_TIMEOUT:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
    }
}
