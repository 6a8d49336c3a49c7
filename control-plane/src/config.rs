//! The control plane's configuration: every setting, its variable, its default, and
//! its validation, in one place.
//!
//! [`Config::from_env`] reads the process environment (with command-line flags taking
//! precedence); everything else goes through [`Config::from_lookup`], so tests build
//! configurations from a map. A bad value stops start-up with a message naming the
//! variable (`main` exits 64).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use switchboard_telemetry::{LogFormat, TelemetryConfig};

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
pub const ENV_TWILIO_ACCOUNT_SID: &str = "TWILIO_ACCOUNT_SID";
pub const ENV_TWILIO_AUTH_TOKEN: &str = "TWILIO_AUTH_TOKEN";
pub const ENV_TWILIO_API_URL: &str = "SWITCHBOARD_TWILIO_API_URL";
pub const DEFAULT_TWILIO_API_URL: &str = "https://api.twilio.com";
/// The media sidecar's voice webhook as Twilio reaches it (`https://…/api/twilio/voice`):
/// the `Url` of calls the control plane places. Unset: no calls are placed.
pub const ENV_VOICE_WEBHOOK_URL: &str = "SWITCHBOARD_VOICE_WEBHOOK_URL";
/// The media sidecar's call-status webhook, the `StatusCallback` of placed calls.
/// Default: the voice webhook URL with its last path segment `voice` replaced by `status`.
pub const ENV_STATUS_WEBHOOK_URL: &str = "SWITCHBOARD_STATUS_WEBHOOK_URL";
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

/// Credentials and address of Twilio's REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub api_url: String,
}

/// Where Twilio reaches the media sidecars, for the calls the control plane places.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookConfig {
    /// [`ENV_VOICE_WEBHOOK_URL`]; `None` when calls cannot be placed.
    pub voice_url: Option<reqwest::Url>,
    /// [`ENV_STATUS_WEBHOOK_URL`], or derived from the voice URL; set whenever `voice_url` is.
    pub status_url: Option<reqwest::Url>,
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
    pub twilio: TwilioConfig,
    pub webhooks: WebhookConfig,
}

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
        let twilio_api_url =
            get(ENV_TWILIO_API_URL).unwrap_or_else(|| DEFAULT_TWILIO_API_URL.into());
        let parsed = reqwest::Url::parse(&twilio_api_url).map_err(|e| {
            error(
                ENV_TWILIO_API_URL,
                format!("{twilio_api_url:?} is not a URL: {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(error(ENV_TWILIO_API_URL, "must be an http(s) URL"));
        }
        let account_sid = get(ENV_TWILIO_ACCOUNT_SID);
        if let Some(sid) = &account_sid {
            if !sid.starts_with("AC") || sid.len() != 34 {
                return Err(error(
                    ENV_TWILIO_ACCOUNT_SID,
                    "must be an account SID: AC followed by 32 hex digits",
                ));
            }
        }
        let webhooks = parse_webhooks(
            get(ENV_VOICE_WEBHOOK_URL).as_deref(),
            get(ENV_STATUS_WEBHOOK_URL).as_deref(),
        )?;
        Ok(Config {
            grpc_addr,
            store,
            telemetry: TelemetryConfig { filter, format },
            api_token: api_token.map(Secret::new),
            tls,
            default_agent_id: get(ENV_DEFAULT_AGENT_ID),
            tool_signing_secret: get(ENV_TOOL_SIGNING_SECRET).map(Secret::new),
            twilio: TwilioConfig {
                account_sid,
                auth_token: get(ENV_TWILIO_AUTH_TOKEN).map(Secret::new),
                api_url: twilio_api_url.trim_end_matches('/').to_owned(),
            },
            webhooks,
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

    /// What an operator must hear at start-up: settings that work but expose something.
    /// `serve` logs each at warn.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.api_token.is_some() && self.tls.is_none() && !self.grpc_addr.ip().is_loopback() {
            warnings.push(format!(
                "{ENV_API_TOKEN} is set but gRPC is served in plaintext on {}: the token \
                 crosses the network in clear unless a service mesh encrypts it; set \
                 {ENV_TLS_CERT} and {ENV_TLS_KEY}",
                self.grpc_addr
            ));
        }
        warnings
    }
}

fn parse_webhooks(voice: Option<&str>, status: Option<&str>) -> Result<WebhookConfig, ConfigError> {
    let url = |variable, value: &str| {
        let url = reqwest::Url::parse(value)
            .map_err(|e| error(variable, format!("{value:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(error(variable, "must be an http(s) URL"));
        }
        Ok(url)
    };
    let Some(voice) = voice else {
        if status.is_some() {
            return Err(error(
                ENV_STATUS_WEBHOOK_URL,
                format!("is set but {ENV_VOICE_WEBHOOK_URL} is not; set both or neither"),
            ));
        }
        return Ok(WebhookConfig::default());
    };
    let voice = url(ENV_VOICE_WEBHOOK_URL, voice)?;
    let status = match status {
        Some(status) => url(ENV_STATUS_WEBHOOK_URL, status)?,
        None => derive_status_url(&voice).ok_or_else(|| {
            error(
                ENV_STATUS_WEBHOOK_URL,
                format!("must be set when {ENV_VOICE_WEBHOOK_URL} does not end in /voice"),
            )
        })?,
    };
    Ok(WebhookConfig {
        voice_url: Some(voice),
        status_url: Some(status),
    })
}

/// `…/api/twilio/voice?x` → `…/api/twilio/status?x`: the sidecar serves both side by side.
fn derive_status_url(voice: &reqwest::Url) -> Option<reqwest::Url> {
    let path = voice.path().strip_suffix("/voice")?;
    let mut status = voice.clone();
    status.set_path(&format!("{path}/status"));
    Some(status)
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
        let warned = |vars: &[(&str, &str)]| !config(vars).unwrap().startup_warnings().is_empty();
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
        ])
        .unwrap();
        let text = format!("{c:?}");
        assert!(
            !text.contains("tok-123") && !text.contains("auth-456"),
            "{text}"
        );
        assert_eq!(c.api_token.as_ref().map(Secret::expose), Some("tok-123"));
    }
}
