//! Faults the simulator can inject, written as short specs so that a test, a
//! URL and a command line can all name them.
//!
//! | spec | effect |
//! |---|---|
//! | `refuse`, `refuse=429` | answer the upgrade with HTTP 503 (or the status given) |
//! | `reset` | close the TCP connection before the handshake (not selectable from the URL, which is read during the handshake) |
//! | `drop@T` | close the socket without a close frame |
//! | `stall@T` | stop sending anything, keep reading, keep the socket open |
//! | `rate-limit@T` | every response from then on fails with `rate_limit_exceeded` |
//! | `expire@T` | send `error` `session_expired`, close with 1001 |
//!
//! `T` is `500ms` (wall-clock time since `session.created`), `12ev` (once
//! the 12th client event has been handled and answered) or left out (right
//! after `session.created`). A connection collects faults from
//! [`SimConfig::faults`](super::SimConfig) (every connection),
//! [`OpenAiSim::push_faults`](super::OpenAiSim::push_faults) (the next N
//! connections), a `sim_fault=SPEC[,SPEC]` query parameter, and a
//! `/faults/SPEC[,SPEC]` path prefix (so a client whose base URL is
//! configurable, like the sidecar, can be pointed at a faulty endpoint).

use std::fmt;
use std::str::FromStr;

/// When a fault takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Right after `session.created`.
    Immediately,
    /// This many ms after `session.created`.
    AfterMs(u64),
    /// Once this many client events have been handled and answered.
    AfterEvents(u64),
}

/// One injected fault. See the module docs for the spec syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answer the WebSocket upgrade with this HTTP status.
    Refuse {
        /// The status (503 unless given).
        status: u16,
    },
    /// Close the TCP connection before reading the request.
    Reset,
    /// Close the socket without a close frame.
    Drop(Trigger),
    /// Send nothing more; keep reading and discarding.
    Stall(Trigger),
    /// Refuse every response with `rate_limit_exceeded`.
    RateLimit(Trigger),
    /// Send the `session_expired` error and close with code 1001.
    Expire(Trigger),
}

/// A fault spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault spec {spec:?}: {reason}")]
pub struct FaultSpecError {
    /// The spec (cut short).
    pub spec: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Fault {
    /// Parses a comma-separated list of specs (empty items are skipped).
    pub fn parse_list(specs: &str) -> Result<Vec<Fault>, FaultSpecError> {
        specs
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    /// When the fault takes effect after the handshake (`None` for the
    /// handshake faults `refuse` and `reset`).
    pub fn trigger(&self) -> Option<Trigger> {
        match *self {
            Self::Refuse { .. } | Self::Reset => None,
            Self::Drop(t) | Self::Stall(t) | Self::RateLimit(t) | Self::Expire(t) => Some(t),
        }
    }
}

impl FromStr for Fault {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason| FaultSpecError {
            spec: spec.chars().take(40).collect(),
            reason,
        };
        let (name, trigger) = match spec.split_once('@') {
            None => (spec, Trigger::Immediately),
            Some((name, at)) => (name, parse_trigger(at).ok_or_else(|| err("bad trigger"))?),
        };
        let (name, arg) = match name.split_once('=') {
            None => (name, None),
            Some((name, arg)) => (name, Some(arg)),
        };
        let fault = match (name, arg) {
            ("refuse", None) => Self::Refuse { status: 503 },
            ("refuse", Some(status)) => match status.parse::<u16>() {
                Ok(status @ 400..=599) => Self::Refuse { status },
                _ => return Err(err("refuse takes an http error status")),
            },
            ("reset", None) => Self::Reset,
            ("drop", None) => Self::Drop(trigger),
            ("stall", None) => Self::Stall(trigger),
            ("rate-limit" | "rate_limit", None) => Self::RateLimit(trigger),
            ("expire", None) => Self::Expire(trigger),
            (_, Some(_)) => return Err(err("only refuse takes an argument")),
            _ => return Err(err("unknown fault")),
        };
        if fault.trigger().is_none() && trigger != Trigger::Immediately {
            return Err(err("refuse and reset happen at the handshake"));
        }
        Ok(fault)
    }
}

fn parse_trigger(at: &str) -> Option<Trigger> {
    if let Some(ms) = at.strip_suffix("ms") {
        return ms.parse().ok().map(Trigger::AfterMs);
    }
    if let Some(events) = at.strip_suffix("ev") {
        return events.parse().ok().map(Trigger::AfterEvents);
    }
    None
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Immediately => Ok(()),
            Self::AfterMs(ms) => write!(f, "@{ms}ms"),
            Self::AfterEvents(n) => write!(f, "@{n}ev"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refuse { status: 503 } => f.write_str("refuse"),
            Self::Refuse { status } => write!(f, "refuse={status}"),
            Self::Reset => f.write_str("reset"),
            Self::Drop(t) => write!(f, "drop{t}"),
            Self::Stall(t) => write!(f, "stall{t}"),
            Self::RateLimit(t) => write!(f, "rate-limit{t}"),
            Self::Expire(t) => write!(f, "expire{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for spec in [
            "refuse",
            "refuse=429",
            "reset",
            "drop",
            "drop@500ms",
            "stall@3ev",
            "rate-limit",
            "expire@2000ms",
        ] {
            let fault: Fault = spec.parse().expect(spec);
            assert_eq!(fault.to_string(), spec);
        }
        assert_eq!(
            "drop@12ev".parse(),
            Ok(Fault::Drop(Trigger::AfterEvents(12)))
        );
    }

    #[test]
    fn lists_skip_blanks() {
        assert_eq!(
            Fault::parse_list("rate-limit, stall@5ev,"),
            Ok(vec![
                Fault::RateLimit(Trigger::Immediately),
                Fault::Stall(Trigger::AfterEvents(5))
            ])
        );
        assert_eq!(Fault::parse_list(""), Ok(vec![]));
    }

    #[test]
    fn bad_specs_are_rejected() {
        for spec in [
            "explode",
            "drop@soon",
            "refuse=200",
            "refuse@5ms",
            "stall=1",
            "drop@5",
        ] {
            assert!(spec.parse::<Fault>().is_err(), "{spec}");
        }
    }
}
