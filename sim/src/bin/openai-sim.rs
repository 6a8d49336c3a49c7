//! `openai-sim`: the OpenAI Realtime simulator as a process, for load tests
//! and manual runs. Flags and logic live in `switchboard_sim::openai` (`cli`
//! says what each flag does, TLS included); this is parse, telemetry, bind,
//! print, wait for a signal.

use anyhow::Context as _;
use clap::Parser;
use switchboard_sim::openai::cli::Cli;
use switchboard_sim::openai::OpenAiSim;
use switchboard_telemetry::{LogFormat, TelemetryConfig};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = TelemetryConfig {
        filter: cli.log.clone(),
        format: LogFormat::Plain,
    };
    let _guard = switchboard_telemetry::init(&telemetry)?;
    // With --tls, this writes the CA file: before the listening line is printed.
    let setup = cli.setup()?;
    let sim = OpenAiSim::bind(cli.listen, setup.config)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    if let Some((faults, connections)) = setup.queued_faults {
        sim.push_faults(faults, connections);
    }
    println!("openai-sim listening on {}", sim.base_url());
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
