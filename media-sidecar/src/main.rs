//! The `media-sidecar` binary: configuration, telemetry, signals, bind, serve, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use switchboard_media_sidecar::call::CallDriver;
use switchboard_media_sidecar::config::{Config, Flags};
use switchboard_media_sidecar::{serve, Listeners};
use tokio::net::TcpListener;

fn main() -> ExitCode {
    // One crypto provider (ring) for every TLS config in the process, chosen before any.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("media-sidecar: cannot start the async runtime: {e}");
            return ExitCode::from(71);
        }
    };
    runtime.block_on(run())
}

/// One worker per core the process may use (affinity and cgroup quota included). With
/// a single core — a pinned process, or a pod limited to one CPU — the single-threaded
/// scheduler does the same work without cross-thread wake-ups and atomics (on the relay
/// benchmark the saving is within run-to-run noise; it costs nothing either).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(cores);
        builder
    };
    builder.enable_all().build()
}

async fn run() -> ExitCode {
    // ring, chosen here, for any library that asks rustls for the process default.
    switchboard_media_sidecar::tls::install_default_provider();
    let flags = Flags::parse();
    let config = match Config::from_env(&flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("media-sidecar: configuration error: {e}");
            return ExitCode::from(64);
        }
    };
    // The filter was validated with the config; should init still fail, run unlogged.
    let _telemetry = switchboard_telemetry::init(&config.telemetry)
        .map_err(|e| eprintln!("media-sidecar: telemetry: {e}"))
        .ok();
    tracing::info!(?config, "starting");
    // Installed before binding, so a SIGTERM during start-up is not lost.
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::from(71);
        }
    };
    let (Some(http), Some(admin)) = (
        bind("http", config.http_addr).await,
        bind("admin", config.admin_addr).await,
    ) else {
        return ExitCode::from(69);
    };
    let media_handler = Arc::new(CallDriver);
    match serve(config, Listeners { http, admin }, media_handler, shutdown).await {
        Ok(report) => {
            tracing::info!(calls_cut = report.cut, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "media sidecar failed");
            ExitCode::FAILURE
        }
    }
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Option<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(bound) => {
            let addr = bound.local_addr().map_or(addr, |local| local);
            tracing::info!(listener, %addr, "listening");
            Some(bound)
        }
        Err(e) => {
            tracing::error!(listener, %addr, error = %e, "cannot bind");
            None
        }
    }
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C); both handlers exist on return.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutdown requested");
    })
}
