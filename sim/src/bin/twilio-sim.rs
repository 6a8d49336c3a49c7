//! `twilio-sim`: place a simulated call, run a load of them, or serve the fake REST API.
//! Flags and logic live in `switchboard_sim::twilio` (`cli`, `caller`, `load`, `rest`);
//! this is parse, telemetry, run, print.

use anyhow::Context as _;
use clap::Parser;
use switchboard_sim::twilio::cli::{Cli, Command};
use switchboard_sim::twilio::{run_load, Caller, FakeTwilio};
use switchboard_telemetry::{LogFormat, TelemetryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = switchboard_telemetry::init(&TelemetryConfig {
        filter: cli.log,
        format: LogFormat::Plain,
    })?;
    match cli.command {
        Command::Call(args) => {
            let record = Caller::start(args.to_spec()?).finished().await;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        Command::Load(args) => {
            let report = run_load(args.to_spec()?).await;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Rest(args) => {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("cannot bind {}", args.listen))?;
            tracing::info!(addr = %listener.local_addr()?, "fake twilio rest api listening");
            let shutdown = async {
                // Without a signal handler, serve until killed.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
                tracing::info!("shutting down");
            };
            FakeTwilio::new(args.to_config()?)
                .serve(listener, shutdown)
                .await?;
        }
    }
    Ok(())
}
