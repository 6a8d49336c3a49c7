//! The event feed benchmark works: a short run through two real control-plane replicas
//! on the MongoDB test server delivers every item of its window to the other replica's
//! watcher, once. (Figures are printed, never asserted: these machines are shared and
//! noisy.)
#![allow(clippy::disallowed_methods)] // the test environment names the MongoDB server

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_short_run_delivers_every_item_once() {
    let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").unwrap_or_default();
    if uri.is_empty() {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
        assert!(!in_ci, "set SWITCHBOARD_TEST_MONGODB_URI in CI");
        eprintln!("note: SWITCHBOARD_TEST_MONGODB_URI is not set; skipping events-bench");
        return;
    }
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_events-bench"));
    let dir = bench.parent().expect("target/<profile>");
    assert!(
        dir.join("control-plane").exists(),
        "control-plane is missing from {}: run `cargo test --workspace`",
        dir.display()
    );
    let json = tempfile::NamedTempFile::new().expect("temporary file");
    let output = Command::new(&bench)
        .args([
            "--calls", "4", "--rate", "2", "--window", "2", "--warmup", "1",
        ])
        .arg("--mongodb")
        .arg(&uri)
        .arg("--json")
        .arg(json.path())
        .output()
        .expect("run events-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let figures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap()).unwrap();
    let run = &figures[0];
    assert!(run["items"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["lost"].as_u64(), Some(0), "{run}\n{stderr}");
    assert_eq!(run["duplicated"].as_u64(), Some(0), "{run}");
}
