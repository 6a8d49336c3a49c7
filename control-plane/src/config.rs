//! The control plane's configuration: every setting, its variable, its default, and
//! its validation, in one place.
//!
//! [`Config::from_env`] reads the process environment (with command-line flags taking
//! precedence); everything else goes through [`Config::from_lookup`], so tests build
//! configurations from a map. A bad value stops start-up with a message naming the
//! variable (`main` exits 64). [`Config::startup_warnings`] lists what is allowed but
//! probably wrong (`config/warnings.rs`).
//!
//! Twilio's settings and their checks are in `config/twilio.rs`, extra CA files in
//! `config/ca.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchboard_telemetry::{LogFormat, TelemetryConfig};

mod ca;
mod events;
mod twilio;
mod warnings;

pub use crate::liveness::ENV_ORPHAN_TIMEOUT;
pub use ca::CaBundle;
pub use events::{DEFAULT_EVENT_RETENTION, ENV_EVENT_RETENTION, ENV_METRICS_ADDR};
pub use twilio::{
    ApiKey, RestCredentials, TwilioConfig, WebhookConfig, DEFAULT_TWILIO_API_URL,
    DEFAULT_TWILIO_MAX_CPS, ENV_STATUS_WEBHOOK_URL, ENV_TWILIO_ACCOUNT_SID, ENV_TWILIO_API_KEY,
    ENV_TWILIO_API_SECRET, ENV_TWILIO_API_URL, ENV_TWILIO_AUTH_TOKEN, ENV_TWILIO_CA_FILE,
    ENV_TWILIO_MAX_CPS, ENV_VOICE_WEBHOOK_URL,
};
pub use warnings::{SIDECAR_STATUS_PATH, SIDECAR_VOICE_PATH};
mod tls;

pub use tls::TlsConfig;

pub const ENV_GRPC_ADDR: &str = "SWITCHBOARD_GRPC_ADDR";
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
/// A data directory for the embedded store, or a `mongodb://` / `mongodb+srv://` URI.
pub const ENV_STORE: &str = "SWITCHBOARD_STORE";
pub const DEFAULT_STORE: &str = "./data";
pub const ENV_LOG: &str = "SWITCHBOARD_LOG";
pub const DEFAULT_LOG: &str = "info";
pub const ENV_LOG_FORMAT: &str = "SWITCHBOARD_LOG_FORMAT";
pub const DEFAULT_LOG_FORMAT: &str = "plain";
/// When set, every RPC but health needs `authorization: Bearer <token>`.
pub const ENV_API_TOKEN: &str = "SWITCHBOARD_API_TOKEN";
/// PEM certificate (leaf first, then intermediates) to serve gRPC over TLS with; needs
/// [`ENV_TLS_KEY`]. Unset: plaintext (loopback, or a mesh that encrypts).
pub const ENV_TLS_CERT: &str = "SWITCHBOARD_TLS_CERT";
/// PEM private key of [`ENV_TLS_CERT`].
pub const ENV_TLS_KEY: &str = "SWITCHBOARD_TLS_KEY";
/// PEM CA certificate(s): when set, every client must present a certificate they issued
/// (mutual TLS). Needs [`ENV_TLS_CERT`] and [`ENV_TLS_KEY`].
pub const ENV_TLS_CLIENT_CA: &str = "SWITCHBOARD_TLS_CLIENT_CA";
/// The agent that answers calls to numbers no agent owns (optional).
pub const ENV_DEFAULT_AGENT_ID: &str = "SWITCHBOARD_DEFAULT_AGENT_ID";
/// When set, tool webhook requests are signed with it (HMAC-SHA256; see `tools`).
pub const ENV_TOOL_SIGNING_SECRET: &str = "SWITCHBOARD_TOOL_SIGNING_SECRET";
/// A PEM file of extra CAs trusted for tool webhooks (a private CA), besides the
/// webpki roots and the platform's store.
pub const ENV_TOOL_CA_FILE: &str = "SWITCHBOARD_TOOL_CA_FILE";
/// Most tool webhooks of one call running at once; beyond it the model gets an error
/// result at once.
pub const ENV_TOOL_MAX_IN_FLIGHT_PER_CALL: &str = "SWITCHBOARD_TOOL_MAX_IN_FLIGHT_PER_CALL";
/// Most tool webhooks running at once on this replica, all calls together.
pub const ENV_TOOL_MAX_IN_FLIGHT: &str = "SWITCHBOARD_TOOL_MAX_IN_FLIGHT";
/// Database used when a MongoDB URI names none.
pub const DEFAULT_MONGODB_DATABASE: &str = "switchboard";

/// A value that must never be logged: `Debug` prints stars.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// Where the system of record lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded store in this directory.
    Embedded(PathBuf),
    /// MongoDB; the URI may carry credentials, so it is kept secret.
    Mongo { uri: Secret, database: String },
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Embedded(dir) => f.debug_tuple("Embedded").field(dir).finish(),
            StoreConfig::Mongo { database, .. } => f
                .debug_struct("Mongo")
                .field("uri", &"*****")
                .field("database", database)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub store: StoreConfig,
    pub telemetry: TelemetryConfig,
    pub api_token: Option<Secret>,
    /// `None`: gRPC is served in plaintext.
    pub tls: Option<TlsConfig>,
    pub default_agent_id: Option<String>,
    pub tool_signing_secret: Option<Secret>,
    /// [`ENV_TOOL_CA_FILE`].
    pub tool_ca: Option<CaBundle>,
    /// [`ENV_TOOL_MAX_IN_FLIGHT_PER_CALL`] and [`ENV_TOOL_MAX_IN_FLIGHT`].
    pub tool_limits: crate::tools::ToolLimits,
    pub twilio: TwilioConfig,
    pub webhooks: WebhookConfig,
    /// [`ENV_EVENT_RETENTION`].
    pub event_retention: Duration,
    /// [`ENV_METRICS_ADDR`]: where `/metrics` is served; `None`: nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// [`crate::liveness::ENV_ORPHAN_TIMEOUT`].
    pub orphan_timeout: Duration,
    /// [`ENV_CAMPAIGN_MAX_LIVE_CALLS`] and [`ENV_CAMPAIGN_INBOUND_RESERVE`].
    pub campaign_load: crate::campaigns::LoadCeiling,
    /// The host's name (`HOSTNAME`: the pod's name on Kubernetes), which tells replicas
    /// apart in cluster-wide leases; `None` when unset.
    pub host_name: Option<String>,
}

/// Campaigns dial only while the system's live calls stay below this many, less the
/// inbound reserve; unset means no ceiling.
pub const ENV_CAMPAIGN_MAX_LIVE_CALLS: &str = "SWITCHBOARD_CAMPAIGN_MAX_LIVE_CALLS";
/// Live calls kept free for inbound callers under the ceiling (default 0).
pub const ENV_CAMPAIGN_INBOUND_RESERVE: &str = "SWITCHBOARD_CAMPAIGN_INBOUND_RESERVE";

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

fn error(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

/// Command-line flags; each mirrors a variable and wins over it.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "control-plane",
    version,
    about = "Switchboard's control plane: call sessions, agents and the sidecars' call channel over gRPC"
)]
pub struct Flags {
    /// Address to serve gRPC on [env: SWITCHBOARD_GRPC_ADDR] [default: 127.0.0.1:50051]
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// Embedded store directory or mongodb:// URI [env: SWITCHBOARD_STORE] [default: ./data]
    #[arg(long)]
    pub store: Option<String>,
    /// Tracing filter, e.g. `info,switchboard_control_plane=debug` [env: SWITCHBOARD_LOG]
    #[arg(long)]
    pub log: Option<String>,
    /// `plain` or `json` [env: SWITCHBOARD_LOG_FORMAT]
    #[arg(long)]
    pub log_format: Option<String>,
    /// Agent answering numbers no agent owns [env: SWITCHBOARD_DEFAULT_AGENT_ID]
    #[arg(long)]
    pub default_agent_id: Option<String>,
    /// The sidecars' voice webhook, for placed calls [env: SWITCHBOARD_VOICE_WEBHOOK_URL]
    #[arg(long)]
    pub voice_webhook_url: Option<String>,
    /// The sidecars' status webhook [env: SWITCHBOARD_STATUS_WEBHOOK_URL] [default: derived]
    #[arg(long)]
    pub status_webhook_url: Option<String>,
}

impl Config {
    /// Reads the process environment, with `flags` taking precedence.
    #[allow(clippy::disallowed_methods)] // the one place that reads the environment
    pub fn from_env(flags: &Flags) -> Result<Config, ConfigError> {
        let overrides = [
            (ENV_GRPC_ADDR, &flags.grpc_addr),
            (ENV_STORE, &flags.store),
            (ENV_LOG, &flags.log),
            (ENV_LOG_FORMAT, &flags.log_format),
            (ENV_DEFAULT_AGENT_ID, &flags.default_agent_id),
            (ENV_VOICE_WEBHOOK_URL, &flags.voice_webhook_url),
            (ENV_STATUS_WEBHOOK_URL, &flags.status_webhook_url),
        ];
        Config::from_lookup(|name| {
            let flag = overrides
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| (*v).clone());
            flag.or_else(|| std::env::var(name).ok())
        })
    }

    /// Builds and validates a config from `lookup` (variable name → value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let grpc_addr = get(ENV_GRPC_ADDR).unwrap_or_else(|| DEFAULT_GRPC_ADDR.into());
        let grpc_addr = grpc_addr.parse().map_err(|_| {
            error(
                ENV_GRPC_ADDR,
                format!("{grpc_addr:?} is not a socket address like 127.0.0.1:50051"),
            )
        })?;
        let store = parse_store(&get(ENV_STORE).unwrap_or_else(|| DEFAULT_STORE.into()))?;
        let filter = get(ENV_LOG).unwrap_or_else(|| DEFAULT_LOG.into());
        switchboard_telemetry::parse_filter(&filter).map_err(|e| error(ENV_LOG, e.to_string()))?;
        let format = get(ENV_LOG_FORMAT).unwrap_or_else(|| DEFAULT_LOG_FORMAT.into());
        let format = LogFormat::parse(&format).ok_or_else(|| {
            error(
                ENV_LOG_FORMAT,
                format!("{format:?} is neither plain nor json"),
            )
        })?;
        let api_token = lookup(ENV_API_TOKEN);
        if let Some(token) = &api_token {
            if token.trim().is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(error(
                    ENV_API_TOKEN,
                    "must be non-empty and contain no whitespace",
                ));
            }
        }
        let tls = tls::parse_tls(&get)?;
        let twilio = TwilioConfig::parse(get)?;
        let webhooks = WebhookConfig::parse(
            get(ENV_VOICE_WEBHOOK_URL).as_deref(),
            get(ENV_STATUS_WEBHOOK_URL).as_deref(),
        )?;
        let tool_ca = get(ENV_TOOL_CA_FILE)
            .map(|path| CaBundle::load(ENV_TOOL_CA_FILE, &PathBuf::from(path)))
            .transpose()?;
        let tool_limits = crate::tools::ToolLimits {
            per_call: positive(
                ENV_TOOL_MAX_IN_FLIGHT_PER_CALL,
                get(ENV_TOOL_MAX_IN_FLIGHT_PER_CALL),
                crate::tools::DEFAULT_PER_CALL,
            )?,
            per_replica: positive(
                ENV_TOOL_MAX_IN_FLIGHT,
                get(ENV_TOOL_MAX_IN_FLIGHT),
                crate::tools::DEFAULT_PER_REPLICA,
            )?,
        };
        let event_retention = events::parse_retention(get(ENV_EVENT_RETENTION))?;
        let metrics_addr = events::parse_metrics_addr(get(ENV_METRICS_ADDR))?;
        let orphan_timeout =
            events::parse_orphan_timeout(get(crate::liveness::ENV_ORPHAN_TIMEOUT))?;
        let campaign_load = crate::campaigns::LoadCeiling {
            max_live_calls: get(ENV_CAMPAIGN_MAX_LIVE_CALLS)
                .map(|v| positive(ENV_CAMPAIGN_MAX_LIVE_CALLS, Some(v), 0))
                .transpose()?,
            inbound_reserve: match get(ENV_CAMPAIGN_INBOUND_RESERVE) {
                None => 0,
                Some(v) => v.trim().parse::<usize>().map_err(|_| {
                    error(
                        ENV_CAMPAIGN_INBOUND_RESERVE,
                        format!("{v:?} is not a whole number"),
                    )
                })?,
            },
        };
        Ok(Config {
            host_name: get("HOSTNAME").filter(|h| !h.trim().is_empty()),
            campaign_load,
            orphan_timeout,
            grpc_addr,
            store,
            telemetry: TelemetryConfig { filter, format },
            api_token: api_token.map(Secret::new),
            tls,
            default_agent_id: get(ENV_DEFAULT_AGENT_ID),
            tool_signing_secret: get(ENV_TOOL_SIGNING_SECRET).map(Secret::new),
            tool_ca,
            tool_limits,
            twilio,
            webhooks,
            event_retention,
            metrics_addr,
        })
    }

    /// Loopback on an ephemeral port, the embedded store in `dir`, quiet logs.
    pub fn for_test(dir: PathBuf) -> Config {
        let mut config = Config::from_lookup(|_| None).expect("the defaults are valid");
        config.grpc_addr = "127.0.0.1:0".parse().expect("literal address");
        config.store = StoreConfig::Embedded(dir);
        config.telemetry.filter = "warn".into();
        config
    }
}

/// A whole number of at least 1, or `default` when unset.
fn positive(
    variable: &'static str,
    value: Option<String>,
    default: usize,
) -> Result<usize, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(error(
            variable,
            format!("{value:?} is not a positive whole number"),
        )),
    }
}

fn parse_store(value: &str) -> Result<StoreConfig, ConfigError> {
    let Some(rest) = value
        .strip_prefix("mongodb://")
        .or_else(|| value.strip_prefix("mongodb+srv://"))
    else {
        if value.contains("://") {
            return Err(error(ENV_STORE, "must be a directory or a mongodb:// URI"));
        }
        return Ok(StoreConfig::Embedded(PathBuf::from(value)));
    };
    // mongodb://[user:pass@]hosts[/database][?options]
    let after_hosts = rest.split_once('/').map(|(_, tail)| tail).unwrap_or("");
    let database = after_hosts.split('?').next().unwrap_or("");
    let hosts = rest.split('/').next().unwrap_or("");
    if hosts.rsplit('@').next().unwrap_or("").is_empty() {
        return Err(error(ENV_STORE, "the mongodb URI names no host"));
    }
    let database = if database.is_empty() {
        DEFAULT_MONGODB_DATABASE
    } else {
        database
    };
    Ok(StoreConfig::Mongo {
        uri: Secret::new(value),
        database: database.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_serve_loopback_with_the_embedded_store() {
        let c = config(&[]).unwrap();
        assert_eq!(c.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
        assert_eq!(c.store, StoreConfig::Embedded(PathBuf::from("./data")));
        assert_eq!(c.twilio.api_url, DEFAULT_TWILIO_API_URL);
        assert_eq!(c.api_token, None);
        assert_eq!(c.tool_limits, crate::tools::ToolLimits::default());
        let c = config(&[
            (ENV_TOOL_MAX_IN_FLIGHT_PER_CALL, "2"),
            (ENV_TOOL_MAX_IN_FLIGHT, "64"),
        ])
        .unwrap();
        assert_eq!((c.tool_limits.per_call, c.tool_limits.per_replica), (2, 64));
    }

    #[test]
    fn a_mongodb_uri_selects_mongo_and_its_database() {
        let c = config(&[(
            ENV_STORE,
            "mongodb://u:p@db1:27017,db2/calls?replicaSet=rs0",
        )])
        .unwrap();
        assert!(matches!(&c.store, StoreConfig::Mongo { database, .. } if database == "calls"));
        let c = config(&[(ENV_STORE, "mongodb://127.0.0.1:27017")]).unwrap();
        assert!(
            matches!(&c.store, StoreConfig::Mongo { database, .. } if database == DEFAULT_MONGODB_DATABASE)
        );
        assert!(
            !format!("{c:?}").contains("27017"),
            "the URI may hold credentials"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            (ENV_GRPC_ADDR, "localhost"),
            (ENV_STORE, "postgres://x"),
            (ENV_STORE, "mongodb:///db"),
            (ENV_LOG, "info,[[["),
            (ENV_LOG_FORMAT, "xml"),
            (ENV_API_TOKEN, "has space"),
            (ENV_TWILIO_API_URL, "not a url"),
            (ENV_TWILIO_ACCOUNT_SID, "XY123"),
            (ENV_VOICE_WEBHOOK_URL, "not a url"),
            (ENV_VOICE_WEBHOOK_URL, "ftp://sidecar/api/twilio/voice"),
            (ENV_STATUS_WEBHOOK_URL, "https://sidecar/api/twilio/status"),
            (ENV_TOOL_CA_FILE, "/nonexistent/tool-ca.pem"),
            (ENV_TOOL_MAX_IN_FLIGHT_PER_CALL, "0"),
            (ENV_TOOL_MAX_IN_FLIGHT, "many"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{value}");
            assert!(err.to_string().starts_with(var));
        }
    }

    #[test]
    fn the_status_webhook_defaults_to_the_voice_webhooks_sibling() {
        let c = config(&[(
            ENV_VOICE_WEBHOOK_URL,
            "https://calls.example.com/edge/api/twilio/voice",
        )])
        .unwrap();
        assert_eq!(
            c.webhooks.status_url.unwrap().as_str(),
            "https://calls.example.com/edge/api/twilio/status"
        );
        let c = config(&[
            (ENV_VOICE_WEBHOOK_URL, "https://calls.example.com/answer"),
            (ENV_STATUS_WEBHOOK_URL, "https://calls.example.com/progress"),
        ])
        .unwrap();
        assert_eq!(
            c.webhooks.status_url.unwrap().as_str(),
            "https://calls.example.com/progress"
        );
        assert_eq!(config(&[]).unwrap().webhooks, WebhookConfig::default());
        let underivable = config(&[(ENV_VOICE_WEBHOOK_URL, "https://calls.example.com/answer")]);
        assert_eq!(underivable.unwrap_err().variable, ENV_STATUS_WEBHOOK_URL);
    }

    #[test]
    fn a_token_served_in_plaintext_beyond_loopback_is_warned_about() {
        let warned = |vars: &[(&str, &str)]| {
            config(vars)
                .unwrap()
                .startup_warnings()
                .iter()
                .any(|w| w.contains(ENV_API_TOKEN))
        };
        assert!(warned(&[
            (ENV_API_TOKEN, "tok"),
            (ENV_GRPC_ADDR, "0.0.0.0:50051")
        ]));
        assert!(
            !warned(&[(ENV_API_TOKEN, "tok")]),
            "loopback stays on the host"
        );
        assert!(
            !warned(&[(ENV_GRPC_ADDR, "0.0.0.0:50051")]),
            "no token to leak"
        );
        assert!(!warned(&[
            (ENV_API_TOKEN, "tok"),
            (ENV_GRPC_ADDR, "[::1]:50051")
        ]));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = config(&[
            (ENV_API_TOKEN, "tok-123"),
            (ENV_TWILIO_AUTH_TOKEN, "auth-456"),
            (ENV_TWILIO_ACCOUNT_SID, "AC0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_API_KEY, "SK0123456789abcdef0123456789abcdef"),
            (ENV_TWILIO_API_SECRET, "key-789"),
        ])
        .unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains("tok-123") && !text.contains("auth-456") && !text.contains("key-789"),
            "{text}"
        );
        assert_eq!(c.api_token.as_ref().map(Secret::expose), Some("tok-123"));
    }
}
