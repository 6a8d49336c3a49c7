//! Per-call timings: when a quiet Twilio socket counts as dead, and the longest a call
//! may last when its agent sets no limit. Read `config.rs` first.

use std::time::Duration;

use super::parse::parse_duration;
use super::{error, ConfigError};

/// A Twilio Media Stream that sends nothing for this long is dead: Twilio sends a media
/// frame every 20 ms for as long as the call lasts.
pub const ENV_TWILIO_IDLE_TIMEOUT: &str = "SWITCHBOARD_TWILIO_IDLE_TIMEOUT";
pub const DEFAULT_TWILIO_IDLE_TIMEOUT: &str = "15s";
/// Shortest accepted idle timeout: Twilio's frames may bunch up by a few hundred ms.
pub const MIN_TWILIO_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a call may last when its agent sets no `max_call_duration`; `0` means
/// no limit.
pub const ENV_MAX_CALL_DURATION: &str = "SWITCHBOARD_MAX_CALL_DURATION";
pub const DEFAULT_MAX_CALL_DURATION: &str = "4h";

/// Timings of every call on this sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimings {
    /// [`ENV_TWILIO_IDLE_TIMEOUT`].
    pub twilio_idle_timeout: Duration,
    /// [`ENV_MAX_CALL_DURATION`]; `None`: no limit unless the agent sets one.
    pub max_call_duration: Option<Duration>,
}

// === impl CallTimings ===

impl CallTimings {
    /// Reads both variables through `get` (unset or empty: the defaults).
    pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let idle =
            get(ENV_TWILIO_IDLE_TIMEOUT).unwrap_or_else(|| DEFAULT_TWILIO_IDLE_TIMEOUT.to_owned());
        let twilio_idle_timeout = parse_duration(ENV_TWILIO_IDLE_TIMEOUT, &idle)?;
        if twilio_idle_timeout < MIN_TWILIO_IDLE_TIMEOUT {
            return Err(error(
                ENV_TWILIO_IDLE_TIMEOUT,
                format!("{idle:?} is shorter than 1s"),
            ));
        }
        let max =
            get(ENV_MAX_CALL_DURATION).unwrap_or_else(|| DEFAULT_MAX_CALL_DURATION.to_owned());
        let max_call_duration = if max.trim() == "0" {
            None
        } else {
            let duration = parse_duration(ENV_MAX_CALL_DURATION, &max)?;
            if duration.is_zero() {
                None
            } else {
                Some(duration)
            }
        };
        Ok(Self {
            twilio_idle_timeout,
            max_call_duration,
        })
    }
}

impl Default for CallTimings {
    fn default() -> Self {
        Self::parse(&|_| None).expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings(vars: &[(&str, &str)]) -> Result<CallTimings, ConfigError> {
        CallTimings::parse(&|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_are_fifteen_seconds_of_silence_and_four_hours_of_call() {
        let t = timings(&[]).unwrap();
        assert_eq!(t.twilio_idle_timeout, Duration::from_secs(15));
        assert_eq!(t.max_call_duration, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(t, CallTimings::default());
    }

    #[test]
    fn durations_parse_like_the_other_settings_and_zero_means_no_limit() {
        let t = timings(&[
            (ENV_TWILIO_IDLE_TIMEOUT, "2500ms"),
            (ENV_MAX_CALL_DURATION, "90m"),
        ])
        .unwrap();
        assert_eq!(t.twilio_idle_timeout, Duration::from_millis(2_500));
        assert_eq!(t.max_call_duration, Some(Duration::from_secs(90 * 60)));
        for none in ["0", "0s", " 0 "] {
            let t = timings(&[(ENV_MAX_CALL_DURATION, none)]).unwrap();
            assert_eq!(t.max_call_duration, None, "{none:?}");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            (ENV_TWILIO_IDLE_TIMEOUT, "soon"),
            (ENV_TWILIO_IDLE_TIMEOUT, "500ms"),
            (ENV_TWILIO_IDLE_TIMEOUT, "0"),
            (ENV_MAX_CALL_DURATION, "4 hours"),
            (ENV_MAX_CALL_DURATION, "-1h"),
        ] {
            let e = timings(&[(variable, value)]).unwrap_err();
            assert_eq!(e.variable, variable, "{value}");
            assert!(e.to_string().starts_with(variable), "{e}");
        }
    }
}
