//! The `control-plane` binary: configuration, telemetry, bind, serve, drain.

use std::process::ExitCode;

use clap::Parser;
use switchboard_control_plane::config::{Config, Flags};

#[tokio::main]
async fn main() -> ExitCode {
    // One crypto provider for every TLS config in the process, chosen before any is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let flags = Flags::parse();
    let config = match Config::from_env(&flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("control-plane: configuration error: {e}");
            return ExitCode::from(64);
        }
    };
    let _telemetry = match switchboard_telemetry::init(&config.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("control-plane: {e}");
            return ExitCode::from(64);
        }
    };
    tracing::info!(?config, "starting");
    let shutdown = shutdown_signal();
    let listener = match tokio::net::TcpListener::bind(config.grpc_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(addr = %config.grpc_addr, error = %e, "cannot bind the gRPC address");
            return ExitCode::from(69);
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "serving gRPC"),
        Err(e) => tracing::warn!(error = %e, "bound address unknown"),
    }
    match switchboard_control_plane::serve(config, listener, shutdown).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "control plane failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C. The handlers are installed before this
/// returns, so a signal that arrives while we start up is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested; finishing requests in flight");
    }
}
