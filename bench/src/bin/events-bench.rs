//! `events-bench`: the event feed benchmark — from a conversation item stored through
//! control-plane replica A to a watcher on replica B, with N calls writing through A.
//! See `switchboard_bench::events` for what is measured and the crate docs for figures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchboard_bench::events::{self, EventFigures, Plan};
use switchboard_bench::system::Layout;

/// Latency of the cluster-wide event feed under the write load of N calls.
#[derive(Debug, Parser)]
#[command(name = "events-bench", version)]
struct Cli {
    /// MongoDB (a replica set: change streams) to run on; a fresh database is used
    /// [default: $SWITCHBOARD_TEST_MONGODB_URI].
    #[arg(long)]
    mongodb: Option<String>,
    /// Numbers of concurrent calls, one run each, e.g. `50,200`.
    #[arg(long, value_delimiter = ',', default_value = "200")]
    calls: Vec<usize>,
    /// Conversation items each call stores per second.
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    /// Directory of the control-plane binary [default: this binary's directory].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Log filter of the replicas.
    #[arg(long, default_value = "warn")]
    log: String,
    /// Also write every run's figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("events-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::disallowed_methods)] // a benchmark's own settings, not a service's
async fn run(cli: Cli) -> anyhow::Result<()> {
    let mongodb = match cli.mongodb {
        Some(uri) => uri,
        None => std::env::var("SWITCHBOARD_TEST_MONGODB_URI")
            .ok()
            .filter(|uri| !uri.is_empty())
            .context("give --mongodb URI (or set SWITCHBOARD_TEST_MONGODB_URI)")?,
    };
    anyhow::ensure!(cli.rate > 0.0, "--rate must be positive");
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .context("the binary's directory")?
            .to_path_buf(),
    };
    let work_dir = tempfile::tempdir()?;
    let layout = Layout {
        bin_dir,
        sidecar_cpu: None,
        load_cpu: None,
        work_dir: work_dir.path().to_path_buf(),
        log: cli.log,
    };
    println!(
        "{:>6} {:>9} {:>8} {:>6} {:>5} {:>13} {:>13} {:>12} {:>12} {:>12} {:>7} {:>7}",
        "calls",
        "items/s",
        "items",
        "lost",
        "dup",
        "stored p50 ms",
        "stored p99 ms",
        "stored max",
        "sent p99 ms",
        "ack p99 ms",
        "A core",
        "B core"
    );
    let mut all: Vec<EventFigures> = Vec::new();
    for calls in cli.calls {
        let plan = Plan {
            mongodb: mongodb.clone(),
            calls,
            rate: cli.rate,
            warmup: Duration::from_secs(cli.warmup),
            window: Duration::from_secs(cli.window),
        };
        let f = events::run(&layout, &plan).await?;
        println!(
            "{:>6} {:>9.1} {:>8} {:>6} {:>5} {:>13.1} {:>13.1} {:>12.1} {:>12.1} {:>12.1} {:>6.0}% {:>6.0}%",
            f.calls,
            f.items_per_s,
            f.items,
            f.lost,
            f.duplicated,
            f.stored_p50_ms,
            f.stored_p99_ms,
            f.stored_max_ms,
            f.sent_p99_ms,
            f.ack_p99_ms,
            f.replica_a_core_pct,
            f.replica_b_core_pct
        );
        all.push(f);
    }
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}
