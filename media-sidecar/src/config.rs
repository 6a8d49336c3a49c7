//! The media sidecar's configuration: every setting, its variable, its default and its
//! validation, in one place.
//!
//! [`Config::from_env`] reads the process environment (command-line flags, which mirror
//! the non-secret variables, take precedence); everything else goes through
//! [`Config::from_lookup`], so tests build configurations from a map. A bad value stops
//! start-up with a [`ConfigError`] naming the variable (`main` exits 64). Secrets are held
//! in [`Secret`], whose `Debug` prints stars, so the effective config can be logged.
//!
//! Two settings have local-use defaults that are unsafe in production, and
//! [`Config::startup_warnings`] says so loudly at start-up:
//! - without `TWILIO_AUTH_TOKEN`, `X-Twilio-Signature` is not checked at all;
//! - without `SWITCHBOARD_STREAM_TOKEN_SECRET`, a random per-process secret signs stream
//!   tokens, so a token only verifies on the replica that issued it.
//!
//! Value parsers (durations, URLs, numbers) are in `config/parse.rs`; the per-call
//! timings (idle Twilio sockets, the default longest call) in `config/calls.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchboard_telemetry::{LogFormat, TelemetryConfig};

use parse::{
    check_token, parse_addr, parse_control_plane_urls, parse_duration, random_hex, require_e164,
};
use rustls::pki_types::CertificateDer;

mod calls;
mod parse;
mod realtime;

pub use calls::{
    CallTimings, DEFAULT_MAX_CALL_DURATION, DEFAULT_TWILIO_IDLE_TIMEOUT, ENV_MAX_CALL_DURATION,
    ENV_TWILIO_IDLE_TIMEOUT, MIN_TWILIO_IDLE_TIMEOUT,
};
pub use parse::PublicUrl;
pub use realtime::{AzureAuth, AzureConfig, CaBundle, OpenAiConfig, ProxyConfig};

/// Where Twilio's webhooks and Media Stream WebSockets are served.
pub const ENV_HTTP_ADDR: &str = "SWITCHBOARD_HTTP_ADDR";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// `/healthz`, `/readyz` and `/metrics`.
pub const ENV_ADMIN_ADDR: &str = "SWITCHBOARD_ADMIN_ADDR";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9090";
/// The control plane's gRPC endpoint: `http://` (loopback, or a mesh that encrypts) or
/// `https://` (verified against the webpki roots, the platform's roots and
/// [`ENV_CONTROL_PLANE_CA_FILE`]; the TLS server name is the URL's host). Several
/// replicas: a comma-separated list of URLs of one scheme, and/or
/// [`ENV_CONTROL_PLANE_DISCOVERY`] `dns`.
pub const ENV_CONTROL_PLANE_URL: &str = "SWITCHBOARD_CONTROL_PLANE_URL";
pub const DEFAULT_CONTROL_PLANE_URL: &str = "http://127.0.0.1:50051";
/// How the control-plane replicas are found: `static` (each URL is one replica) or `dns`
/// (each URL's host is resolved every 10 s and every address is a replica: a Kubernetes
/// headless Service).
pub const ENV_CONTROL_PLANE_DISCOVERY: &str = "SWITCHBOARD_CONTROL_PLANE_DISCOVERY";
/// PEM CA certificate(s) trusted for an `https://` control plane besides the webpki and
/// platform roots (a private CA). Unset: those roots only.
pub const ENV_CONTROL_PLANE_CA_FILE: &str = "SWITCHBOARD_CONTROL_PLANE_CA_FILE";
/// PEM client certificate presented to an `https://` control plane that asks for one
/// (mutual TLS); needs [`ENV_CONTROL_PLANE_CLIENT_KEY`].
pub const ENV_CONTROL_PLANE_CLIENT_CERT: &str = "SWITCHBOARD_CONTROL_PLANE_CLIENT_CERT";
/// PEM private key of [`ENV_CONTROL_PLANE_CLIENT_CERT`].
pub const ENV_CONTROL_PLANE_CLIENT_KEY: &str = "SWITCHBOARD_CONTROL_PLANE_CLIENT_KEY";
/// The base URL Twilio uses to reach this sidecar: signatures are checked against it and
/// the `<Stream url>` is built from it.
pub const ENV_PUBLIC_URL: &str = "SWITCHBOARD_PUBLIC_URL";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";
/// The account's Auth Token. Unset: signature validation is disabled (local use only).
pub const ENV_TWILIO_AUTH_TOKEN: &str = "TWILIO_AUTH_TOKEN";
/// OpenAI's key, for agents whose provider is OpenAI (GA or beta).
pub const ENV_OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// OpenAI's Realtime endpoint: `wss://` or `https://`, a bare host or a full URL (a
/// gateway or the simulator may stand in).
pub const ENV_OPENAI_URL: &str = "SWITCHBOARD_OPENAI_URL";
pub const DEFAULT_OPENAI_URL: &str = switchboard_realtime::connection::OPENAI_URL;
/// No longer read: each agent's provider chooses. Set, it stops start-up with a note
/// saying what replaced it.
pub const ENV_OPENAI_DIALECT: &str = "SWITCHBOARD_OPENAI_DIALECT";
/// The model used when the agent names none.
pub const ENV_OPENAI_MODEL: &str = "SWITCHBOARD_OPENAI_MODEL";
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-realtime";
/// A PEM file of certificate authorities trusted for the Realtime sockets (OpenAI and
/// Azure), besides the public roots and the platform's store: a private CA, or a
/// TLS-inspecting proxy's.
pub const ENV_OPENAI_CA_FILE: &str = "SWITCHBOARD_OPENAI_CA_FILE";
/// The Azure OpenAI resource (`https://<resource>.openai.azure.com`, or a full
/// realtime URL), for agents whose provider is `AZURE_OPENAI`. Unset: such agents'
/// calls get the fallback.
pub const ENV_AZURE_OPENAI_ENDPOINT: &str = "SWITCHBOARD_AZURE_OPENAI_ENDPOINT";
/// The resource's key (`api-key` header).
pub const ENV_AZURE_OPENAI_API_KEY: &str = "AZURE_OPENAI_API_KEY";
/// A Microsoft Entra ID access token instead of the key.
pub const ENV_AZURE_OPENAI_AD_TOKEN: &str = "AZURE_OPENAI_AD_TOKEN";
/// A file holding a Microsoft Entra ID access token, read again for every call.
pub const ENV_AZURE_OPENAI_TOKEN_FILE: &str = "SWITCHBOARD_AZURE_OPENAI_TOKEN_FILE";
/// Set (e.g. `2025-04-01-preview`): Azure's preview endpoint, beta dialect. Unset: the
/// GA `/openai/v1` endpoint.
pub const ENV_AZURE_OPENAI_API_VERSION: &str = "SWITCHBOARD_AZURE_OPENAI_API_VERSION";
/// The deployment when the agent names none. Default: `SWITCHBOARD_OPENAI_MODEL`.
pub const ENV_AZURE_OPENAI_DEPLOYMENT: &str = "SWITCHBOARD_AZURE_OPENAI_DEPLOYMENT";
/// The proxy for `wss://` Realtime sockets (also read lower-case, as curl does).
pub const ENV_HTTPS_PROXY: &str = "HTTPS_PROXY";
/// The proxy for `ws://` Realtime sockets.
pub const ENV_HTTP_PROXY: &str = "HTTP_PROXY";
/// Hosts reached without the proxy.
pub const ENV_NO_PROXY: &str = "NO_PROXY";
/// Serve Twilio's webhooks and Media Streams over TLS with this certificate chain (PEM)…
pub const ENV_TLS_CERT: &str = "SWITCHBOARD_TLS_CERT";
/// …and this private key (PEM). Unset: plain HTTP (TLS terminated in front).
pub const ENV_TLS_KEY: &str = "SWITCHBOARD_TLS_KEY";
/// Signs per-call stream tokens; share it across replicas. Unset: random per process.
pub const ENV_STREAM_TOKEN_SECRET: &str = "SWITCHBOARD_STREAM_TOKEN_SECRET";
/// Shortest accepted stream-token secret, in bytes.
pub const MIN_STREAM_TOKEN_SECRET_LEN: usize = 32;
pub const ENV_STREAM_TOKEN_TTL: &str = "SWITCHBOARD_STREAM_TOKEN_TTL";
pub const DEFAULT_STREAM_TOKEN_TTL: &str = "300s";
/// Calls this sidecar carries at once; beyond it new calls get the fallback answer.
pub const ENV_MAX_CALLS: &str = "SWITCHBOARD_MAX_CALLS";
pub const DEFAULT_MAX_CALLS: &str = "500";
/// How long active calls may run on after SIGTERM.
pub const ENV_DRAIN_GRACE: &str = "SWITCHBOARD_DRAIN_GRACE";
pub const DEFAULT_DRAIN_GRACE: &str = "30s";
/// Sent to the control plane as `authorization: Bearer <token>`.
pub const ENV_API_TOKEN: &str = "SWITCHBOARD_API_TOKEN";
/// This replica's name in sessions and logs. Default: `HOSTNAME`, else random.
pub const ENV_SIDECAR_ID: &str = "SWITCHBOARD_SIDECAR_ID";
/// Read for the default sidecar id (Kubernetes sets it to the pod name).
pub const ENV_HOSTNAME: &str = "HOSTNAME";
/// Said when a call cannot be given to an agent (control plane down, draining, full).
pub const ENV_FALLBACK_MESSAGE: &str = "SWITCHBOARD_FALLBACK_MESSAGE";
pub const DEFAULT_FALLBACK_MESSAGE: &str =
    "We are sorry, but we cannot take your call right now. Please try again later.";
/// E.164 number dialled after the fallback message; unset: hang up.
pub const ENV_FALLBACK_NUMBER: &str = "SWITCHBOARD_FALLBACK_NUMBER";
pub const ENV_LOG: &str = "SWITCHBOARD_LOG";
pub const DEFAULT_LOG: &str = "info";
pub const ENV_LOG_FORMAT: &str = "SWITCHBOARD_LOG_FORMAT";
pub const DEFAULT_LOG_FORMAT: &str = "plain";

/// How long to wait for a TCP connection to the control plane.
pub const CONTROL_PLANE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of a unary control-plane RPC: well inside Twilio's 15 s webhook timeout, so
/// the caller hears the fallback rather than Twilio's error message.
pub const CONTROL_PLANE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A value that must never be logged: `Debug` prints stars.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// The whole configuration of one sidecar process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Twilio ingress: webhooks and Media Stream WebSockets.
    pub http_addr: SocketAddr,
    /// Health, readiness and metrics.
    pub admin_addr: SocketAddr,
    /// The base URL Twilio sees.
    pub public_url: PublicUrl,
    pub control_plane: ControlPlaneConfig,
    /// `None`: signatures are not checked (local use only).
    pub twilio_auth_token: Option<Secret>,
    pub openai: OpenAiConfig,
    /// `Some`: the Twilio-facing port serves HTTPS/WSS itself.
    pub tls: Option<ServerTls>,
    pub stream_token: StreamTokenConfig,
    /// Calls carried at once before new ones get the fallback answer.
    pub max_calls: usize,
    /// How long active calls may run on after SIGTERM.
    pub drain_grace: Duration,
    /// Idle Twilio sockets and the default longest call.
    pub calls: CallTimings,
    /// This replica's name, sent with `OpenInboundCall` and `Hello`.
    pub sidecar_id: String,
    pub fallback: FallbackConfig,
    pub telemetry: TelemetryConfig,
}

/// How to reach the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    /// `http://host:port` or `https://host:port`, one per replica (or per DNS name with
    /// [`Discovery::Dns`]); never empty, all of one scheme.
    pub urls: Vec<String>,
    pub discovery: Discovery,
    /// Sent as `authorization: Bearer <token>` when set.
    pub api_token: Option<Secret>,
    /// [`ENV_CONTROL_PLANE_CA_FILE`], checked at start-up; `https://` only.
    pub ca_file: Option<std::path::PathBuf>,
    /// [`ENV_CONTROL_PLANE_CLIENT_CERT`] and [`ENV_CONTROL_PLANE_CLIENT_KEY`] (certificate,
    /// key), checked to belong together at start-up; `https://` only.
    pub client_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub connect_timeout: Duration,
    /// Deadline of each unary RPC (not of the per-call stream).
    pub request_timeout: Duration,
}

/// How the control-plane replicas are found ([`ENV_CONTROL_PLANE_DISCOVERY`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Discovery {
    /// Each URL is one replica.
    #[default]
    Static,
    /// Each URL's host is resolved again and again; every address is a replica.
    Dns,
}

impl ControlPlaneConfig {
    /// The URLs, comma-separated, for logs.
    pub fn describe(&self) -> String {
        self.urls.join(",")
    }

    /// True when every replica is `https://`.
    pub fn is_https(&self) -> bool {
        self.urls.iter().all(|url| url.starts_with("https://"))
    }
}

/// Per-call stream tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTokenConfig {
    /// The HMAC key.
    pub secret: Secret,
    /// True when no secret was configured and a random one was made for this process.
    pub generated: bool,
    /// How long a token stays valid after it is issued.
    pub ttl: Duration,
}

/// What a caller hears when no agent can take the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackConfig {
    /// Said first.
    pub message: String,
    /// Dialled after the message (E.164); `None` hangs up.
    pub number: Option<String>,
}

/// The certificate and key the Twilio-facing port serves TLS with, checked at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The certificate file.
    pub cert_path: PathBuf,
    /// The chain, leaf first.
    pub certs: Vec<CertificateDer<'static>>,
    /// The private key, PEM.
    pub key_pem: Secret,
}

/// A setting that cannot be used. The message names the variable, never a secret value.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Command-line flags; each mirrors a (non-secret) variable and wins over it.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "media-sidecar",
    version,
    about = "Switchboard's media sidecar: Twilio webhooks and Media Streams bridged to the OpenAI Realtime API",
    after_help = "Secrets are read from the environment only: TWILIO_AUTH_TOKEN, OPENAI_API_KEY, \
                  AZURE_OPENAI_API_KEY, AZURE_OPENAI_AD_TOKEN, SWITCHBOARD_STREAM_TOKEN_SECRET, \
                  SWITCHBOARD_API_TOKEN."
)]
pub struct Flags {
    /// Twilio ingress address [env: SWITCHBOARD_HTTP_ADDR] [default: 127.0.0.1:8080]
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Health, readiness and metrics address [env: SWITCHBOARD_ADMIN_ADDR] [default: 127.0.0.1:9090]
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// Control plane gRPC URL [env: SWITCHBOARD_CONTROL_PLANE_URL] [default: http://127.0.0.1:50051]
    #[arg(long)]
    pub control_plane_url: Option<String>,
    /// Base URL Twilio reaches this sidecar at [env: SWITCHBOARD_PUBLIC_URL] [default: http://127.0.0.1:8080]
    #[arg(long)]
    pub public_url: Option<String>,
    /// Realtime API WebSocket URL [env: SWITCHBOARD_OPENAI_URL] [default: wss://api.openai.com/v1/realtime]
    #[arg(long)]
    pub openai_url: Option<String>,
    /// Azure OpenAI resource endpoint [env: SWITCHBOARD_AZURE_OPENAI_ENDPOINT]
    #[arg(long)]
    pub azure_openai_endpoint: Option<String>,
    /// Model when the agent names none [env: SWITCHBOARD_OPENAI_MODEL] [default: gpt-realtime]
    #[arg(long)]
    pub openai_model: Option<String>,
    /// Stream token lifetime, e.g. `300s` [env: SWITCHBOARD_STREAM_TOKEN_TTL] [default: 300s]
    #[arg(long)]
    pub stream_token_ttl: Option<String>,
    /// Calls carried at once [env: SWITCHBOARD_MAX_CALLS] [default: 500]
    #[arg(long)]
    pub max_calls: Option<String>,
    /// Grace for active calls after SIGTERM, e.g. `30s`, `2m` [env: SWITCHBOARD_DRAIN_GRACE] [default: 30s]
    #[arg(long)]
    pub drain_grace: Option<String>,
    /// Silence after which a Twilio socket counts as dead, e.g. `15s` [env: SWITCHBOARD_TWILIO_IDLE_TIMEOUT] [default: 15s]
    #[arg(long)]
    pub twilio_idle_timeout: Option<String>,
    /// Longest call when the agent sets none; `0` for no limit [env: SWITCHBOARD_MAX_CALL_DURATION] [default: 4h]
    #[arg(long)]
    pub max_call_duration: Option<String>,
    /// This replica's name [env: SWITCHBOARD_SIDECAR_ID] [default: $HOSTNAME or random]
    #[arg(long)]
    pub sidecar_id: Option<String>,
    /// Said when no agent can take a call [env: SWITCHBOARD_FALLBACK_MESSAGE]
    #[arg(long)]
    pub fallback_message: Option<String>,
    /// E.164 number dialled after the fallback message [env: SWITCHBOARD_FALLBACK_NUMBER]
    #[arg(long)]
    pub fallback_number: Option<String>,
    /// Tracing filter, e.g. `info,switchboard_media_sidecar=debug` [env: SWITCHBOARD_LOG]
    #[arg(long)]
    pub log: Option<String>,
    /// `plain` or `json` [env: SWITCHBOARD_LOG_FORMAT]
    #[arg(long)]
    pub log_format: Option<String>,
}

// === impl Secret ===

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

// === impl ServerTls ===

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_path", &self.cert_path)
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

// === impl Config ===

impl Config {
    /// Reads the process environment, with `flags` taking precedence.
    #[allow(clippy::disallowed_methods)] // the one place that reads the environment
    pub fn from_env(flags: &Flags) -> Result<Config, ConfigError> {
        let overrides = [
            (ENV_HTTP_ADDR, &flags.http_addr),
            (ENV_ADMIN_ADDR, &flags.admin_addr),
            (ENV_CONTROL_PLANE_URL, &flags.control_plane_url),
            (ENV_PUBLIC_URL, &flags.public_url),
            (ENV_OPENAI_URL, &flags.openai_url),
            (ENV_AZURE_OPENAI_ENDPOINT, &flags.azure_openai_endpoint),
            (ENV_OPENAI_MODEL, &flags.openai_model),
            (ENV_STREAM_TOKEN_TTL, &flags.stream_token_ttl),
            (ENV_MAX_CALLS, &flags.max_calls),
            (ENV_DRAIN_GRACE, &flags.drain_grace),
            (ENV_TWILIO_IDLE_TIMEOUT, &flags.twilio_idle_timeout),
            (ENV_MAX_CALL_DURATION, &flags.max_call_duration),
            (ENV_SIDECAR_ID, &flags.sidecar_id),
            (ENV_FALLBACK_MESSAGE, &flags.fallback_message),
            (ENV_FALLBACK_NUMBER, &flags.fallback_number),
            (ENV_LOG, &flags.log),
            (ENV_LOG_FORMAT, &flags.log_format),
        ];
        Config::from_lookup(|name| {
            let flag = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| (*v).clone());
            flag.or_else(|| std::env::var(name).ok())
        })
    }

    /// Builds and validates a config from `lookup` (variable name → value). Empty values
    /// count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let or_default = |name: &str, default: &str| get(name).unwrap_or_else(|| default.into());

        let http_addr = parse_addr(ENV_HTTP_ADDR, &or_default(ENV_HTTP_ADDR, DEFAULT_HTTP_ADDR))?;
        let admin_addr = parse_addr(
            ENV_ADMIN_ADDR,
            &or_default(ENV_ADMIN_ADDR, DEFAULT_ADMIN_ADDR),
        )?;
        let public_url = PublicUrl::parse(&or_default(ENV_PUBLIC_URL, DEFAULT_PUBLIC_URL))
            .map_err(|reason| error(ENV_PUBLIC_URL, reason))?;

        let api_token = get(ENV_API_TOKEN);
        if let Some(token) = &api_token {
            check_token(ENV_API_TOKEN, token)?;
        }
        let control_plane_urls = parse_control_plane_urls(&or_default(
            ENV_CONTROL_PLANE_URL,
            DEFAULT_CONTROL_PLANE_URL,
        ))?;
        let discovery = match get(ENV_CONTROL_PLANE_DISCOVERY).as_deref().map(str::trim) {
            None | Some("static") => Discovery::Static,
            Some("dns") => Discovery::Dns,
            Some(other) => {
                return Err(error(
                    ENV_CONTROL_PLANE_DISCOVERY,
                    format!("{other:?} is neither static nor dns"),
                ))
            }
        };
        let (ca_file, client_identity) =
            parse::parse_control_plane_tls(&get, &control_plane_urls[0])?;
        let control_plane = ControlPlaneConfig {
            urls: control_plane_urls,
            discovery,
            api_token: api_token.map(Secret::new),
            ca_file,
            client_identity,
            connect_timeout: CONTROL_PLANE_CONNECT_TIMEOUT,
            request_timeout: CONTROL_PLANE_REQUEST_TIMEOUT,
        };

        let openai = OpenAiConfig::parse(&get)?;
        let tls = parse_server_tls(&get)?;

        let stream_token = parse_stream_token(&get)?;
        let max_calls = or_default(ENV_MAX_CALLS, DEFAULT_MAX_CALLS);
        let max_calls = match max_calls.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(error(
                    ENV_MAX_CALLS,
                    format!("{max_calls:?} is not a positive whole number"),
                ))
            }
        };
        let drain_grace = parse_duration(
            ENV_DRAIN_GRACE,
            &or_default(ENV_DRAIN_GRACE, DEFAULT_DRAIN_GRACE),
        )?;
        let calls = CallTimings::parse(&get)?;
        let sidecar_id = match get(ENV_SIDECAR_ID) {
            Some(id) => single_word(ENV_SIDECAR_ID, id)?,
            None => get(ENV_HOSTNAME)
                .filter(|host| single_word(ENV_HOSTNAME, host.clone()).is_ok())
                .unwrap_or_else(|| format!("sidecar-{}", random_hex(4))),
        };

        let message = or_default(ENV_FALLBACK_MESSAGE, DEFAULT_FALLBACK_MESSAGE);
        if message
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        {
            return Err(error(
                ENV_FALLBACK_MESSAGE,
                "contains a control character twiml cannot carry",
            ));
        }
        let number = get(ENV_FALLBACK_NUMBER)
            .map(|n| require_e164(ENV_FALLBACK_NUMBER, n))
            .transpose()?;

        let filter = or_default(ENV_LOG, DEFAULT_LOG);
        switchboard_telemetry::parse_filter(&filter).map_err(|e| error(ENV_LOG, e.to_string()))?;
        let format = or_default(ENV_LOG_FORMAT, DEFAULT_LOG_FORMAT);
        let format = LogFormat::parse(&format).ok_or_else(|| {
            error(
                ENV_LOG_FORMAT,
                format!("{format:?} is neither plain nor json"),
            )
        })?;

        Ok(Config {
            http_addr,
            admin_addr,
            public_url,
            control_plane,
            twilio_auth_token: get(ENV_TWILIO_AUTH_TOKEN).map(Secret::new),
            openai,
            tls,
            stream_token,
            max_calls,
            drain_grace,
            calls,
            sidecar_id,
            fallback: FallbackConfig { message, number },
            telemetry: TelemetryConfig { filter, format },
        })
    }

    /// Loopback on ephemeral ports, a fixed token secret and Auth Token, a control plane
    /// nobody listens on, short timeouts and quiet logs. Tests set `public_url` once they
    /// know their port.
    pub fn for_test() -> Config {
        let mut config = Config::from_lookup(|name| match name {
            ENV_HTTP_ADDR | ENV_ADMIN_ADDR => Some("127.0.0.1:0".into()),
            ENV_CONTROL_PLANE_URL => Some("http://127.0.0.1:1".into()),
            ENV_TWILIO_AUTH_TOKEN => Some("test-auth-token".into()),
            ENV_STREAM_TOKEN_SECRET => Some("test-stream-token-secret-of-32-bytes!".into()),
            ENV_DRAIN_GRACE => Some("1s".into()),
            ENV_SIDECAR_ID => Some("sidecar-test".into()),
            ENV_LOG => Some("warn".into()),
            _ => None,
        })
        .expect("the test settings are valid");
        config.control_plane.connect_timeout = Duration::from_millis(500);
        config.control_plane.request_timeout = Duration::from_secs(2);
        config
    }

    /// What an operator must hear at start-up: settings that are fine locally and unsafe
    /// in production. `serve` logs each at warn.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.twilio_auth_token.is_none() {
            warnings.push(format!(
                "{ENV_TWILIO_AUTH_TOKEN} is not set: X-Twilio-Signature is NOT checked and \
                 anyone can reach the webhooks; local use only"
            ));
        }
        if self.stream_token.generated {
            warnings.push(format!(
                "{ENV_STREAM_TOKEN_SECRET} is not set: stream tokens are signed with a random \
                 per-process secret and only verify on this replica"
            ));
        }
        if self.openai.api_key.is_none() {
            warnings.push(format!(
                "{ENV_OPENAI_API_KEY} is not set: only a local Realtime simulator will accept \
                 this sidecar"
            ));
        }
        if let Some(azure) = &self.openai.azure {
            if azure.auth.is_none() {
                warnings.push(format!(
                    "{ENV_AZURE_OPENAI_ENDPOINT} is set without {ENV_AZURE_OPENAI_API_KEY}, \
                     {ENV_AZURE_OPENAI_AD_TOKEN} or {ENV_AZURE_OPENAI_TOKEN_FILE}: Azure will \
                     refuse every call"
                ));
            }
        }
        if self.twilio_auth_token.is_some()
            && !self.public_url.is_https()
            && !self.public_url.is_loopback()
        {
            warnings.push(format!(
                "{ENV_PUBLIC_URL} is {} (http://) while signatures are checked: Twilio signs \
                 the https:// URL it calls, so every webhook would be refused with 403; set \
                 the https:// URL Twilio is given",
                self.public_url.as_str()
            ));
        }
        if self.tls.is_some() && !self.public_url.is_https() {
            warnings.push(format!(
                "{ENV_TLS_CERT} is set but {ENV_PUBLIC_URL} is http://: Twilio would be sent \
                 ws:// stream URLs for a port that speaks TLS"
            ));
        }
        let control_plane = &self.control_plane;
        if control_plane.api_token.is_some()
            && control_plane
                .urls
                .iter()
                .any(|url| url.starts_with("http://") && !parse::is_loopback_url(url))
        {
            warnings.push(format!(
                "{ENV_API_TOKEN} is set but {ENV_CONTROL_PLANE_URL} is plaintext http:// to \
                 another host: the token crosses the network in clear unless a service mesh \
                 encrypts it; use https://"
            ));
        }
        warnings
    }
}

/// `SWITCHBOARD_TLS_CERT` and `SWITCHBOARD_TLS_KEY`: both or neither, readable, PEM, and
/// a key that matches the certificate.
fn parse_server_tls(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<ServerTls>, ConfigError> {
    let (cert_path, key_path) = match (get(ENV_TLS_CERT), get(ENV_TLS_KEY)) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (PathBuf::from(cert.trim()), PathBuf::from(key.trim())),
        (Some(_), None) => {
            return Err(error(
                ENV_TLS_KEY,
                format!("must be set with {ENV_TLS_CERT}"),
            ))
        }
        (None, Some(_)) => {
            return Err(error(
                ENV_TLS_CERT,
                format!("must be set with {ENV_TLS_KEY}"),
            ))
        }
    };
    let (certs, key_pem) =
        parse::read_cert_and_key((ENV_TLS_CERT, &cert_path), (ENV_TLS_KEY, &key_path))?;
    Ok(Some(ServerTls {
        cert_path,
        certs,
        key_pem: Secret::new(String::from_utf8_lossy(&key_pem)),
    }))
}

fn parse_stream_token(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<StreamTokenConfig, ConfigError> {
    let ttl = parse_duration(
        ENV_STREAM_TOKEN_TTL,
        &get(ENV_STREAM_TOKEN_TTL).unwrap_or_else(|| DEFAULT_STREAM_TOKEN_TTL.into()),
    )?;
    if ttl < Duration::from_secs(1) {
        return Err(error(ENV_STREAM_TOKEN_TTL, "must be at least 1s"));
    }
    let (secret, generated) = match get(ENV_STREAM_TOKEN_SECRET) {
        Some(secret) if secret.len() < MIN_STREAM_TOKEN_SECRET_LEN => {
            return Err(error(
                ENV_STREAM_TOKEN_SECRET,
                format!(
                    "must be at least {MIN_STREAM_TOKEN_SECRET_LEN} bytes (e.g. `openssl rand -base64 32`)"
                ),
            ))
        }
        Some(secret) => (secret, false),
        None => (random_hex(32), true),
    };
    Ok(StreamTokenConfig {
        secret: Secret::new(secret),
        generated,
        ttl,
    })
}

/// A non-empty value without whitespace, at most 128 characters.
fn single_word(variable: &'static str, value: String) -> Result<String, ConfigError> {
    let value = value.trim().to_owned();
    if value.chars().any(char::is_whitespace) || value.chars().count() > 128 {
        return Err(error(
            variable,
            "must be one word of at most 128 characters",
        ));
    }
    Ok(value)
}

fn error(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
