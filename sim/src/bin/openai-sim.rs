//! `openai-sim`: the OpenAI Realtime simulator as a process, for load tests
//! and manual runs. Flags only; the logic lives in `switchboard_sim::openai`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use switchboard_realtime::Secret;
use switchboard_sim::openai::{AudioPace, Fault, Mode, OpenAiSim, Script, SimConfig};
use switchboard_telemetry::{LogFormat, TelemetryConfig};
use tokio::signal::unix::{signal, SignalKind};

/// A fake OpenAI / Azure OpenAI Realtime endpoint (GA and beta dialects):
/// server VAD, scripted transcripts and answers, tool calls, truncation,
/// faults, and an echo mode for relay benchmarks.
#[derive(Debug, Parser)]
#[command(name = "openai-sim", version)]
struct Args {
    /// Address to listen on (clients use ws://ADDR/v1/realtime?model=M or the Azure paths).
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// `scripted`, or `echo` (each append answered by a delta with the same payload).
    #[arg(long, default_value = "scripted")]
    mode: Mode,
    /// JSON script of caller turns and answers (default: a short bilingual call).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Key clients must present (`Authorization: Bearer` or `api-key`); default: any.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Fault for every connection (repeatable): refuse[=STATUS], reset, drop@T, stall@T,
    /// rate-limit@T, expire@T; T is `500ms`, `12ev` or omitted (at once). Clients may
    /// also pick faults with `?sim_fault=SPEC` or a `/faults/SPEC` path prefix.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
    /// Apply the --fault specs only to the next N connections.
    #[arg(long, value_name = "N")]
    fault_connections: Option<usize>,
    /// Pace of response audio: `fast`, `realtime`, or a speed-up like `4x`.
    #[arg(long, default_value = "fast")]
    audio_pace: AudioPace,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let telemetry = TelemetryConfig {
        filter: args.log.clone(),
        format: LogFormat::Plain,
    };
    let _guard = switchboard_telemetry::init(&telemetry)?;
    let script = match &args.script {
        Some(path) => Script::from_file(path)?,
        None => Script::default(),
    };
    let queued = (args.fault_connections).map(|n| (std::mem::take(&mut args.faults), n));
    let config = SimConfig {
        mode: args.mode,
        script: Arc::new(script),
        api_key: args.api_key.map(Secret::new),
        faults: args.faults,
        audio_pace: args.audio_pace,
        ..SimConfig::default()
    };
    let sim = OpenAiSim::bind(args.listen, config)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    if let Some((faults, connections)) = queued {
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
