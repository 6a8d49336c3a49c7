//! Tracing set-up shared by Switchboard's binaries: one call to [`init`] installs the
//! fmt layer (plain or JSON) and the filter, and returns a [`TelemetryGuard`] to keep
//! until exit.
//!
//! The binaries' `config.rs` read the settings (`SWITCHBOARD_LOG`,
//! `SWITCHBOARD_LOG_FORMAT`) and hand them here as a [`TelemetryConfig`]; this crate
//! never reads the environment itself. OpenTelemetry export arrives with the
//! observability work and will hang off the same guard.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Parses `plain` or `json`.
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value {
            "plain" | "text" => Some(LogFormat::Plain),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// What [`init`] installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive string, e.g. `info,switchboard_control_plane=debug`.
    pub filter: String,
    pub format: LogFormat,
}

/// A filter directive that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {directive:?}: {reason}")]
pub struct FilterError {
    pub directive: String,
    pub reason: String,
}

/// Checks a filter directive without installing it (for start-up validation).
pub fn parse_filter(directive: &str) -> Result<EnvFilter, FilterError> {
    EnvFilter::builder()
        .parse(directive)
        .map_err(|e| FilterError {
            directive: directive.to_owned(),
            reason: e.to_string(),
        })
}

/// Flushes telemetry when dropped. Keep it alive for the life of the process.
#[derive(Debug)]
#[must_use = "telemetry is flushed when the guard drops"]
pub struct TelemetryGuard {
    _private: (),
}

/// Installs the global subscriber. A second call (as in tests) leaves the first one in
/// place.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, FilterError> {
    let filter = parse_filter(&config.filter)?;
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match config.format {
        LogFormat::Plain => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Err means a subscriber exists already; keeping it is what we want.
    drop(installed);
    Ok(TelemetryGuard { _private: () })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        assert!(parse_filter("info,switchboard_control_plane=debug").is_ok());
        assert!(parse_filter("info,[[[").is_err());
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("xml"), None);
    }
}
