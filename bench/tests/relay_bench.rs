//! The benchmark itself works: a short run through the real sidecar, the bare relay and
//! the floor streams every call and accounts for every frame — with the sidecar pinned to
//! one core where `taskset` exists, so its single-threaded runtime is the one exercised.
//! (Figures are printed, never asserted: these machines are shared and noisy.)

use std::path::PathBuf;
use std::process::Command;

/// The workspace's binaries are built next to `relay-bench` by `cargo test --workspace`.
fn bin_dir() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_relay-bench"));
    bench.parent().expect("target/<profile>").to_path_buf()
}

#[test]
fn a_short_run_accounts_for_every_frame() {
    let dir = bin_dir();
    for name in ["media-sidecar", "control-plane", "openai-sim"] {
        assert!(
            dir.join(name).exists(),
            "{name} is missing from {}: run `cargo test --workspace`",
            dir.display()
        );
    }
    let json = tempfile::NamedTempFile::new().expect("temporary file");
    let output = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
        .args([
            "--calls", "4", "--window", "2", "--warmup", "1", "--floor", "--bare",
        ])
        .arg("--bin-dir")
        .arg(&dir)
        .arg("--json")
        .arg(json.path())
        .output()
        .expect("run relay-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("round trip"), "{stdout}");

    let runs: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(json.path()).expect("json")).expect("figures");
    let targets: Vec<&str> = runs.iter().filter_map(|r| r["target"].as_str()).collect();
    assert_eq!(targets, ["floor", "bare", "sidecar"], "{stdout}");
    for run in &runs {
        assert_eq!(run["streamed"], 4, "{run}");
        assert_eq!(run["failed"], 0, "{run}");
        // Four calls at 50 frames a second for about two seconds.
        assert!(run["frames"].as_u64().unwrap_or(0) >= 300, "{run}");
        assert_eq!(run["lost"], 0, "{run}");
        assert_eq!(run["duplicated"], 0, "{run}");
        assert_eq!(run["misrouted"], 0, "{run}");
        assert_eq!(run["clears"], 0, "{run}");
        assert_eq!(run["foreign"], 0, "{run}");
        assert!(run["rtt_p50_ms"].as_f64().unwrap_or(0.0) > 0.0, "{run}");
    }
    // The sidecar answers every media frame with a mark; the callers echo each.
    assert!(
        runs[1]["marks_echoed"].as_u64().unwrap_or(0) >= 300,
        "{stdout}"
    );
}

#[test]
fn impossible_runs_are_refused_with_the_flag_named() {
    for (args, expected) in [
        (&["--calls", "0"][..], "--calls"),
        (
            &["--sidecar-cpu", "1", "--load-cpu", "1"][..],
            "--sidecar-cpu",
        ),
        (&["--window", "0"][..], "--window"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_relay-bench"))
            .args(args)
            .output()
            .expect("run relay-bench");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
