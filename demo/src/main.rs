//! `switchboard demo`: everything on one machine, one command. See the crate docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard_demo::{run, AgentFile, Options};

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Switchboard on one machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Control plane, sidecar and both simulators in this process; a batch of simulated
    /// calls (some talking over the assistant, one whose AI is unavailable); a summary.
    Demo {
        /// Calls in the batch (one more shows the AI-unavailable fallback).
        #[arg(long, default_value_t = 5)]
        calls: usize,
        /// Directory of the embedded store.
        #[arg(long, default_value = "./demo-data")]
        data: PathBuf,
        /// Agent file (JSON of AgentSettings fields) [default: demo/agents/sample.json, built in].
        #[arg(long)]
        agent: Option<PathBuf>,
        /// Tracing filter for the services' logs (stderr).
        #[arg(long, default_value = "error")]
        log: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let Command::Demo {
        calls,
        data,
        agent,
        log,
    } = Cli::parse().command;
    let telemetry = switchboard_telemetry::TelemetryConfig {
        filter: log,
        format: switchboard_telemetry::LogFormat::Plain,
    };
    let _telemetry = switchboard_telemetry::init(&telemetry)
        .map_err(|e| eprintln!("switchboard: log filter: {e}"))
        .ok();
    let agent = match agent.map_or_else(
        || AgentFile::parse(switchboard_demo::agent::SAMPLE_AGENT),
        |path| AgentFile::read(&path),
    ) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            return ExitCode::from(64);
        }
    };
    let options = Options {
        calls,
        data_dir: data,
        agent,
        progress: true,
    };
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("\nswitchboard: interrupted, shutting down");
    };
    match run(options, ctrl_c).await {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}
