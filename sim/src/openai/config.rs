//! [`SimConfig`]: how the simulator behaves, for every connection it serves.
//!
//! Built in code by tests (`SimConfig::for_test()`) and from flags by the
//! `openai-sim` binary; the simulator never reads the environment.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use switchboard_realtime::Secret;

use super::faults::Fault;
use super::script::Script;

/// What the simulator does with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// VAD, transcripts, scripted responses, tool calls, truncation.
    #[default]
    Scripted,
    /// Every `input_audio_buffer.append` answered at once with one audio
    /// delta carrying the same payload, with no VAD and no JSON DOM. Other
    /// events (`session.update`, …) are handled as in scripted mode. For
    /// relay benchmarks.
    Echo,
}

/// How fast response audio is sent, relative to its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioPace {
    /// As fast as the socket takes it (the real API is several times faster
    /// than real time; tests want it all at once).
    #[default]
    Fast,
    /// One chunk per chunk duration.
    Realtime,
    /// This many times faster than real time.
    Speedup(u32),
}

/// A pace name that is not `fast`, `realtime` or `Nx`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audio pace {0:?}, expected fast, realtime or a speed-up like 4x")]
pub struct UnknownPace(pub String);

/// A mode name that is not `scripted` or `echo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}, expected scripted or echo")]
pub struct UnknownMode(pub String);

/// Configuration of an [`OpenAiSim`](super::OpenAiSim).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Scripted or echo.
    pub mode: Mode,
    /// The scenario of every session.
    pub script: Arc<Script>,
    /// When set, the key every client must present (`Authorization: Bearer`
    /// or Azure `api-key`); otherwise any credentials are accepted.
    pub api_key: Option<Secret>,
    /// Faults applied to every connection.
    pub faults: Vec<Fault>,
    /// Pace of response audio.
    pub audio_pace: AudioPace,
    /// Length of each audio delta, ms.
    pub chunk_ms: u32,
    /// Frequency of the assistant's tone, Hz.
    pub tone_hz: u32,
    /// How long shutdown waits for open sessions before aborting them.
    pub shutdown_grace: Duration,
    /// When set, every connection is TLS (`wss://`), presenting this
    /// configuration's certificate; it should offer the `http/1.1` ALPN
    /// ([`tls::WEBSOCKET_ALPN`](crate::tls::WEBSOCKET_ALPN)). `None`: plain `ws://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Scripted,
            script: Arc::new(Script::default()),
            api_key: None,
            faults: Vec::new(),
            audio_pace: AudioPace::Fast,
            chunk_ms: 100,
            tone_hz: 440,
            shutdown_grace: Duration::from_secs(2),
            tls: None,
        }
    }
}

impl SimConfig {
    /// The default script, fast audio, no key, no faults, a short grace.
    pub fn for_test() -> Self {
        Self {
            shutdown_grace: Duration::from_millis(200),
            ..Self::default()
        }
    }

    /// Echo mode with otherwise default settings.
    pub fn echo() -> Self {
        Self {
            mode: Mode::Echo,
            ..Self::default()
        }
    }
}

impl AudioPace {
    /// How long to wait after sending `audio_ms` of audio.
    pub fn delay(self, audio_ms: u64) -> Duration {
        match self {
            Self::Fast => Duration::ZERO,
            Self::Realtime => Duration::from_millis(audio_ms),
            Self::Speedup(factor) => Duration::from_millis(audio_ms) / factor.max(1),
        }
    }
}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scripted" => Ok(Self::Scripted),
            "echo" => Ok(Self::Echo),
            other => Err(UnknownMode(other.chars().take(32).collect())),
        }
    }
}

impl FromStr for AudioPace {
    type Err = UnknownPace;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fast" => Ok(Self::Fast),
            "realtime" | "1x" => Ok(Self::Realtime),
            other => other
                .strip_suffix('x')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&n| n > 0)
                .map(Self::Speedup)
                .ok_or_else(|| UnknownPace(other.chars().take(32).collect())),
        }
    }
}

impl fmt::Display for AudioPace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fast => f.write_str("fast"),
            Self::Realtime => f.write_str("realtime"),
            Self::Speedup(n) => write!(f, "{n}x"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_parse_and_delay() {
        assert_eq!("fast".parse(), Ok(AudioPace::Fast));
        assert_eq!("realtime".parse(), Ok(AudioPace::Realtime));
        assert_eq!("4x".parse(), Ok(AudioPace::Speedup(4)));
        assert!("0x".parse::<AudioPace>().is_err());
        assert!("slow".parse::<AudioPace>().is_err());
        assert_eq!(AudioPace::Fast.delay(100), Duration::ZERO);
        assert_eq!(AudioPace::Realtime.delay(100), Duration::from_millis(100));
        assert_eq!(AudioPace::Speedup(4).delay(100), Duration::from_millis(25));
        assert_eq!(AudioPace::Speedup(4).to_string(), "4x");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("echo".parse(), Ok(Mode::Echo));
        assert!("loud".parse::<Mode>().is_err());
    }
}
