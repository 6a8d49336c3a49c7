//! The campaign benchmark works: a small `import` on the embedded store and on the
//! MongoDB test server uploads every target and reports it, and the campaign counts them
//! all. (Figures are printed, never asserted: these machines are shared and noisy.)
#![allow(clippy::disallowed_methods)] // the test environment names the MongoDB server

use std::path::PathBuf;
use std::process::Command;

/// Runs `campaign-bench import` with `extra` flags; its stdout and JSON figures.
fn import(extra: &[&str]) -> (String, serde_json::Value) {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_campaign-bench"));
    let json = tempfile::NamedTempFile::new().expect("temporary file");
    let output = Command::new(&bench)
        .args([
            "import",
            "--targets",
            "2000",
            "--batch",
            "500",
            "--clients",
            "2",
        ])
        .args(extra)
        .arg("--json")
        .arg(json.path())
        .output()
        .expect("run campaign-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let figures = std::fs::read_to_string(json.path()).expect("figures written");
    let figures = serde_json::from_str(&figures).expect("figures are JSON");
    (stdout, figures)
}

fn assert_all_imported(stdout: &str, figures: &serde_json::Value, store: &str) {
    assert!(
        stdout.contains(&format!("store:            {store}")),
        "{stdout}"
    );
    assert!(stdout.contains("targets:          2000\n"), "{stdout}");
    assert!(
        stdout.contains("progress total:   2000 (ok: expected 2000)"),
        "{stdout}"
    );
    assert_eq!(figures["targets"], 2000, "{figures}");
    assert_eq!(figures["batches"], 4, "{figures}");
    assert_eq!(figures["accepted"], 2000, "{figures}");
    assert_eq!(figures["duplicates"], 0, "{figures}");
    assert_eq!(figures["invalid"], 0, "{figures}");
    assert_eq!(figures["progress_total"], 2000, "{figures}");
}

#[test]
fn import_on_the_embedded_store_counts_every_target() {
    let (stdout, figures) = import(&[]);
    assert_all_imported(&stdout, &figures, "embedded");
}

#[test]
fn import_on_mongodb_counts_every_target() {
    let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").unwrap_or_default();
    if uri.is_empty() {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
        assert!(!in_ci, "set SWITCHBOARD_TEST_MONGODB_URI in CI");
        eprintln!("note: SWITCHBOARD_TEST_MONGODB_URI is not set; skipping the MongoDB import");
        return;
    }
    let (stdout, figures) = import(&["--mongodb", &uri]);
    assert_all_imported(&stdout, &figures, "mongodb");
}
