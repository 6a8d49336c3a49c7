//! Settings of the event feed, the metrics listener and the orphan timeout.

use std::net::SocketAddr;
use std::time::Duration;

use super::{error, ConfigError};
use crate::liveness::{DEFAULT_ORPHAN_TIMEOUT, ENV_ORPHAN_TIMEOUT, MIN_ORPHAN_TIMEOUT};

/// How long events are kept for watchers resuming by id (MongoDB: the TTL of
/// `call_events` documents).
pub const ENV_EVENT_RETENTION: &str = "SWITCHBOARD_EVENT_RETENTION";
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// MongoDB's TTL monitor runs once a minute: a shorter retention means nothing.
const MIN_EVENT_RETENTION: Duration = Duration::from_secs(60);
/// Address of the `/metrics` listener; unset: none.
pub const ENV_METRICS_ADDR: &str = "SWITCHBOARD_METRICS_ADDR";

/// [`ENV_EVENT_RETENTION`]: `90s`, `30m`, `24h`, `7d`.
pub(super) fn parse_retention(value: Option<String>) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_EVENT_RETENTION);
    };
    let retention = parse_duration(ENV_EVENT_RETENTION, &value)?;
    if retention < MIN_EVENT_RETENTION {
        return Err(error(
            ENV_EVENT_RETENTION,
            format!("{value:?} is shorter than a minute"),
        ));
    }
    Ok(retention)
}

/// [`ENV_ORPHAN_TIMEOUT`]: `60s`, `2m`; at least a second.
pub(super) fn parse_orphan_timeout(value: Option<String>) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_ORPHAN_TIMEOUT);
    };
    let timeout = parse_duration(ENV_ORPHAN_TIMEOUT, &value)?;
    if timeout < MIN_ORPHAN_TIMEOUT {
        return Err(error(
            ENV_ORPHAN_TIMEOUT,
            format!("{value:?} is shorter than a second"),
        ));
    }
    Ok(timeout)
}

/// [`ENV_METRICS_ADDR`].
pub(super) fn parse_metrics_addr(value: Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|value| {
            value.trim().parse().map_err(|_| {
                error(
                    ENV_METRICS_ADDR,
                    format!("{value:?} is not a socket address like 127.0.0.1:9091"),
                )
            })
        })
        .transpose()
}

/// `500ms`, `30s`, `2m`, `1h`, `7d`.
fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let bad = || {
        error(
            variable,
            format!("{value:?} is not a duration like 90s, 30m, 24h or 7d"),
        )
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(bad()),
    };
    let seconds = number.checked_mul(seconds_per_unit).ok_or_else(bad)?;
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orphan_timeout_defaults_to_a_minute_and_refuses_less_than_a_second() {
        assert_eq!(parse_orphan_timeout(None).unwrap(), DEFAULT_ORPHAN_TIMEOUT);
        assert_eq!(
            parse_orphan_timeout(Some("3s".into())).unwrap(),
            Duration::from_secs(3)
        );
        for bad in ["500ms", "0s", "soon"] {
            let err = parse_orphan_timeout(Some(bad.into())).unwrap_err();
            assert_eq!(err.variable, ENV_ORPHAN_TIMEOUT, "{bad}");
        }
    }

    #[test]
    fn retention_defaults_to_a_day_and_takes_the_usual_units() {
        assert_eq!(parse_retention(None).unwrap(), DEFAULT_EVENT_RETENTION);
        for (text, seconds) in [("90s", 90), ("30m", 1800), ("24h", 86_400), ("7d", 604_800)] {
            assert_eq!(
                parse_retention(Some(text.into())).unwrap(),
                Duration::from_secs(seconds)
            );
        }
        for bad in ["", "24", "1w", "-1h", "59s", "500ms", "99999999999999999d"] {
            let err = parse_retention(Some(bad.into())).unwrap_err();
            assert_eq!(err.variable, ENV_EVENT_RETENTION, "{bad}");
        }
    }

    #[test]
    fn the_metrics_listener_is_off_unless_an_address_is_given() {
        assert_eq!(parse_metrics_addr(None).unwrap(), None);
        assert_eq!(
            parse_metrics_addr(Some("127.0.0.1:9091".into())).unwrap(),
            Some("127.0.0.1:9091".parse().unwrap())
        );
        let err = parse_metrics_addr(Some("localhost".into())).unwrap_err();
        assert_eq!(err.variable, ENV_METRICS_ADDR);
    }
}
