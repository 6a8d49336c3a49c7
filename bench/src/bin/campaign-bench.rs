//! `campaign-bench`: campaign benchmarks against a control plane run in this process.
//! `import` times uploading a campaign's targets. See `switchboard_bench::campaign` for
//! what is measured and for figures.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use switchboard_bench::campaign::{self, ImportPlan, StoreChoice, MAX_BATCH};

/// Campaign benchmarks against an in-process control plane.
#[derive(Debug, Parser)]
#[command(name = "campaign-bench", version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// What to measure.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Upload a campaign's targets with AddCampaignTargets; print targets/s and batch
    /// latency, and check GetCampaign's progress total.
    Import(ImportArgs),
}

/// Where the control plane keeps its data.
#[derive(Debug, Args)]
struct StoreArgs {
    /// Run on MongoDB at this URI (a fresh database is used) instead of the embedded
    /// store in a temporary directory.
    #[arg(long)]
    mongodb: Option<String>,
}

/// Flags of `import`.
#[derive(Debug, Args)]
struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Targets uploaded in all.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    targets: u64,
    /// Targets per AddCampaignTargets request (the API takes at most 10,000).
    #[arg(long, default_value_t = MAX_BATCH as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH as u64))]
    batch: u64,
    /// Concurrent uploaders, each one batch at a time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl StoreArgs {
    fn choice(&self) -> StoreChoice {
        match &self.mongodb {
            Some(uri) => StoreChoice::Mongo(uri.clone()),
            None => StoreChoice::Embedded,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campaign-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.mode {
        Mode::Import(args) => {
            let plan = ImportPlan {
                targets: usize::try_from(args.targets).context("--targets")?,
                batch: usize::try_from(args.batch).context("--batch")?,
                clients: usize::try_from(args.clients).context("--clients")?,
            };
            let figures = campaign::import(&args.store.choice(), &plan).await?;
            campaign::print_import(&figures);
            campaign::write_json(args.json.as_ref(), &figures)?;
            anyhow::ensure!(
                figures.progress_total == args.targets,
                "GetCampaign counts {} targets, {} were uploaded",
                figures.progress_total,
                args.targets
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["campaign-bench", "import", "--batch", "10001"]).is_err());
    }
}
