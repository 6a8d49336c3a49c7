//! The flags of the `openai-sim` binary and how they become a [`SimConfig`] (plus the
//! faults for the first connections). The binary itself only parses, initialises
//! telemetry, binds, prints and waits for a signal, as `twilio-sim`'s flags live in
//! `twilio::cli`.
//!
//! TLS: without flags the simulator serves `ws://`. `--tls-cert FILE --tls-key FILE`
//! serve `wss://` with a given certificate; `--tls --tls-ca-out FILE` issue a
//! certificate for `localhost`, `127.0.0.1` and `::1` from a fresh private CA and write
//! the CA's PEM to FILE, for clients to trust (the sidecar's
//! `SWITCHBOARD_OPENAI_CA_FILE`, `twilio-sim --ca-file`, a test's `tls::client_config`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use switchboard_realtime::Secret;

use super::config::{AudioPace, Mode, SimConfig};
use super::faults::Fault;
use super::script::{Script, ScriptError};
use crate::tls::{self, TestCa, TlsError, WEBSOCKET_ALPN};

/// A fake OpenAI / Azure OpenAI Realtime endpoint (GA and beta dialects):
/// server VAD, scripted transcripts and answers, tool calls, truncation,
/// faults, and an echo mode for relay benchmarks. Serves ws://, or wss:// with
/// --tls-cert/--tls-key or --tls/--tls-ca-out.
#[derive(Debug, Parser)]
#[command(name = "openai-sim", version)]
pub struct Cli {
    /// Address to listen on (clients use ws://ADDR/v1/realtime?model=M, wss:// with TLS,
    /// or the Azure paths).
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// `scripted`, or `echo` (each append answered by a delta with the same payload).
    #[arg(long, default_value = "scripted")]
    pub mode: Mode,
    /// JSON script of caller turns and answers (default: a short bilingual call).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Key clients must present (`Authorization: Bearer` or `api-key`); default: any.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Fault for every connection (repeatable): refuse[=STATUS], reset, drop@T, stall@T,
    /// rate-limit@T, expire@T; T is `500ms`, `12ev` or omitted (at once). Clients may
    /// also pick faults with `?sim_fault=SPEC` or a `/faults/SPEC` path prefix.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<Fault>,
    /// Apply the --fault specs only to the next N connections.
    #[arg(long, value_name = "N")]
    pub fault_connections: Option<usize>,
    /// Pace of response audio: `fast`, `realtime`, or a speed-up like `4x`.
    #[arg(long, default_value = "fast")]
    pub audio_pace: AudioPace,
    /// Serve wss:// with this certificate (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve wss:// with a certificate for localhost, 127.0.0.1 and ::1 issued by a new
    /// private CA; needs --tls-ca-out.
    #[arg(long, requires = "tls_ca_out", conflicts_with = "tls_cert")]
    pub tls: bool,
    /// With --tls: write the CA's certificate (PEM) here, for clients to trust (e.g. the
    /// sidecar's SWITCHBOARD_OPENAI_CA_FILE, twilio-sim's --ca-file).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca_out: Option<PathBuf>,
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// What the flags describe: the configuration, and the faults meant only for the
/// next connections (`--fault-connections`), to queue once the server runs.
#[derive(Debug)]
pub struct Setup {
    /// The simulator's configuration.
    pub config: SimConfig,
    /// `(faults, connections)` for [`OpenAiSim::push_faults`](super::OpenAiSim::push_faults).
    pub queued_faults: Option<(Vec<Fault>, usize)>,
}

/// Why the flags do not make a simulator.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--script` is unusable.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// The certificate, key or CA is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `--tls-ca-out` could not be written.
    #[error("cannot write the CA to {path}: {source}")]
    WriteCa {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

// === impl Cli ===

impl Cli {
    /// The simulator these flags describe. With `--tls`, issues the certificate and
    /// writes the CA file now, so it exists before the server prints where it listens.
    pub fn setup(&self) -> Result<Setup, CliError> {
        let script = match &self.script {
            Some(path) => Script::from_file(path)?,
            None => Script::default(),
        };
        let (faults, queued_faults) = match self.fault_connections {
            Some(n) => (Vec::new(), Some((self.faults.clone(), n))),
            None => (self.faults.clone(), None),
        };
        let config = SimConfig {
            mode: self.mode,
            script: Arc::new(script),
            api_key: self.api_key.clone().map(Secret::new),
            faults,
            audio_pace: self.audio_pace,
            tls: self.server_tls()?,
            ..SimConfig::default()
        };
        Ok(Setup {
            config,
            queued_faults,
        })
    }

    fn server_tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, CliError> {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            return Ok(Some(tls::server_config_from_files(
                cert,
                key,
                WEBSOCKET_ALPN,
            )?));
        }
        let Some(ca_out) = self.tls_ca_out.as_deref().filter(|_| self.tls) else {
            return Ok(None);
        };
        let ca = TestCa::new("openai-sim private CA");
        let issued = ca.issue_for_loopback();
        write_ca(ca_out, &ca.ca_pem())?;
        let config = tls::server_config(&issued.cert_pem, &issued.key_pem, WEBSOCKET_ALPN)?;
        Ok(Some(config))
    }
}

fn write_ca(path: &Path, pem: &str) -> Result<(), CliError> {
    std::fs::write(path, pem).map_err(|source| CliError::WriteCa {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("openai-sim").chain(args.iter().copied()))
    }

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn without_tls_flags_the_simulator_serves_plain_websockets() {
        let setup = parse(&[]).expect("no flags").setup().expect("a setup");
        assert!(setup.config.tls.is_none());
    }

    #[test]
    fn tls_needs_a_file_for_its_ca_and_excludes_a_given_certificate() {
        assert!(parse(&["--tls"]).is_err());
        assert!(parse(&["--tls-ca-out", "ca.pem"]).is_err(), "needs --tls");
        assert!(parse(&["--tls-cert", "c.pem"]).is_err(), "needs --tls-key");
        let both = [
            "--tls",
            "--tls-ca-out",
            "a",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ];
        assert!(parse(&both).is_err());
    }

    #[test]
    fn tls_writes_the_ca_and_serves_a_certificate_it_issued() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca_out = dir.path().join("ca.pem");
        let ca_path = ca_out.to_str().expect("utf-8");
        let cli = parse(&["--tls", "--tls-ca-out", ca_path]).expect("valid");
        let setup = cli.setup().expect("a setup");
        assert!(setup.config.tls.is_some());
        let pem = std::fs::read_to_string(&ca_out).expect("the CA was written");
        tls::client_config(&pem).expect("a CA clients can trust");
    }

    #[test]
    fn a_given_certificate_and_key_are_served() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let issued = TestCa::new("cli CA").issue_for_loopback();
        let (cert, key) = issued.write(dir.path(), "server").expect("written");
        let cert = cert.to_str().expect("utf-8");
        let key = key.to_str().expect("utf-8");
        let cli = parse(&["--tls-cert", cert, "--tls-key", key]).expect("valid");
        assert!(cli.setup().expect("a setup").config.tls.is_some());
        let missing = parse(&["--tls-cert", "/nonexistent.crt", "--tls-key", key]).expect("valid");
        let err = missing.setup().unwrap_err();
        assert!(
            err.to_string().contains("cannot read /nonexistent.crt"),
            "{err}"
        );
    }

    #[test]
    fn faults_for_the_next_connections_are_queued_not_global() {
        let cli = parse(&["--fault", "reset", "--fault-connections", "2"]).expect("valid");
        let setup = cli.setup().expect("a setup");
        assert!(setup.config.faults.is_empty());
        assert_eq!(setup.queued_faults, Some((vec![Fault::Reset], 2)));
    }
}
