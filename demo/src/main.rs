//! `switchboard demo`: everything on one machine, one command; `switchboard campaign …`
//! and `switchboard dnc …`: the operator commands of a running control plane (in
//! `cli`). See the crate docs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard_demo::cli::campaign::CampaignArgs;
use switchboard_demo::cli::dnc::DncArgs;
use switchboard_demo::cli::{self, http_url};
use switchboard_demo::{run, AgentFile, ClientTls, ControlPlane, Options};

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard on one machine, and the operator's commands for a running control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Control plane, sidecar and both simulators in this process; a batch of simulated
    /// calls (a third of them outbound, some talking over the assistant, one whose AI is
    /// unavailable); a summary with the relay latency.
    Demo(DemoArgs),
    /// Outbound call campaigns of a running control plane: create one from a CSV file
    /// of targets, watch, list, pause, resume, cancel, change its pacing.
    Campaign(CampaignArgs),
    /// The do-not-call list of a running control plane.
    Dnc(DncArgs),
}

/// `switchboard demo`.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Calls in the batch (one more shows the AI-unavailable fallback).
    #[arg(long, default_value_t = 5)]
    calls: usize,
    /// Directory of the embedded store.
    #[arg(long, default_value = "./demo-data", conflicts_with_all = ["mongodb", "control_plane"])]
    data: PathBuf,
    /// Run the in-process control plane on MongoDB at this URI instead of the embedded
    /// store (the database is the URI's path, default `switchboard`).
    #[arg(long, value_name = "URI", value_parser = mongodb_uri, conflicts_with = "control_plane")]
    mongodb: Option<String>,
    /// Use the control plane already running at this URL (`http://` for plaintext gRPC,
    /// `https://` for TLS) instead of starting one. It places calls through its own
    /// Twilio account, so every call dials in: outbound calls are skipped.
    #[arg(long, value_name = "URL", value_parser = http_url)]
    control_plane: Option<String>,
    /// CA certificate (PEM) to trust for an https:// control plane, besides the public
    /// and the system's roots.
    #[arg(long, value_name = "FILE", requires = "control_plane")]
    control_plane_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a control plane that requires one (mutual TLS).
    #[arg(long, value_name = "FILE", requires_all = ["control_plane", "control_plane_key"])]
    control_plane_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "control_plane_cert")]
    control_plane_key: Option<PathBuf>,
    /// Bearer token for the control plane's API (the in-process one then requires it).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SWITCHBOARD_API_TOKEN",
        hide_env_values = true
    )]
    control_plane_token: Option<String>,
    /// Agent file (JSON of AgentSettings fields) [default: demo/agents/sample.json, built in].
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Tracing filter for the services' logs (stderr).
    #[arg(long, default_value = "error")]
    log: String,
}

fn mongodb_uri(value: &str) -> Result<String, String> {
    let scheme_ok = value.starts_with("mongodb://") || value.starts_with("mongodb+srv://");
    if !scheme_ok {
        return Err("must be a mongodb:// or mongodb+srv:// URI".into());
    }
    Ok(value.to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Campaign(args) => cli::campaign::run(args).await,
        Command::Dnc(args) => cli::dnc::run(args).await,
        Command::Demo(args) => return demo(args).await,
    };
    match outcome {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(args: DemoArgs) -> ExitCode {
    let DemoArgs {
        calls,
        data,
        mongodb,
        control_plane,
        control_plane_ca,
        control_plane_cert,
        control_plane_key,
        control_plane_token,
        agent,
        log,
    } = args;
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
    let control_plane = match (control_plane, mongodb) {
        (Some(url), _) => ControlPlane::External(url),
        (None, Some(uri)) => ControlPlane::Mongo(uri),
        (None, None) => ControlPlane::Embedded(data),
    };
    let options = Options {
        calls,
        control_plane,
        token: control_plane_token.filter(|t| !t.is_empty()),
        tls: ClientTls {
            ca_file: control_plane_ca,
            client_cert: control_plane_cert,
            client_key: control_plane_key,
        },
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
