//! `openai-sim`: the OpenAI Realtime simulator as a process, for load tests
//! and manual runs. Flags only; the logic lives in `switchboard_sim::openai`.
//!
//! TLS: `--tls-cert FILE --tls-key FILE` serve `wss://` with a given certificate;
//! `--tls --tls-ca-out FILE` issue a loopback certificate from a fresh private CA
//! and write the CA's PEM to FILE, for clients to trust (the sidecar's
//! `SWITCHBOARD_OPENAI_CA_FILE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use switchboard_realtime::Secret;
use switchboard_sim::openai::{AudioPace, Fault, Mode, OpenAiSim, Script, SimConfig};
use switchboard_sim::tls::{self, TestCa, WEBSOCKET_ALPN};
use switchboard_telemetry::{LogFormat, TelemetryConfig};
use tokio::signal::unix::{signal, SignalKind};

/// A fake OpenAI / Azure OpenAI Realtime endpoint (GA and beta dialects):
/// server VAD, scripted transcripts and answers, tool calls, truncation,
/// faults, and an echo mode for relay benchmarks.
#[derive(Debug, Parser)]
#[command(name = "openai-sim", version)]
struct Args {
    /// Address to listen on (clients use ws[s]://ADDR/v1/realtime?model=M or the Azure paths).
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
    /// Serve wss:// with this certificate (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve wss:// with a certificate for localhost, 127.0.0.1 and ::1 issued by a new
    /// private CA; needs --tls-ca-out.
    #[arg(long, requires = "tls_ca_out", conflicts_with = "tls_cert")]
    tls: bool,
    /// With --tls: write the CA's certificate (PEM) here, for clients to trust.
    #[arg(long, value_name = "FILE", requires = "tls")]
    tls_ca_out: Option<PathBuf>,
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
        tls: server_tls(&args)?,
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

/// The TLS configuration the flags ask for, if any. The CA file is written before
/// the listening line is printed, so a script that waits for that line can read it.
fn server_tls(args: &Args) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Some(tls::server_config_from_files(
            cert,
            key,
            WEBSOCKET_ALPN,
        )?));
    }
    let Some(ca_out) = args.tls_ca_out.as_deref().filter(|_| args.tls) else {
        return Ok(None);
    };
    let ca = TestCa::new("openai-sim private CA");
    let issued = ca.issue_for_loopback();
    write_pem(ca_out, &ca.ca_pem())?;
    Ok(Some(tls::server_config(
        &issued.cert_pem,
        &issued.key_pem,
        WEBSOCKET_ALPN,
    )?))
}

fn write_pem(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))
}
