//! The flags of the `twilio-sim` binary and how they become a [`CallSpec`], a [`LoadSpec`]
//! or a [`RestConfig`]. The binary itself only parses, initialises telemetry, runs and
//! prints (as the control plane's `config::Flags` live in its library).
//!
//! TLS: `https://` webhooks and `wss://` streams always use TLS. By default the public
//! roots are trusted, as by real Twilio; `--ca-file FILE` (on `call`, `load` and `rest`)
//! trusts exactly the CA in FILE instead, e.g. the one `openai-sim --tls --tls-ca-out`
//! or a test's private CA wrote.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::audio::{AudioError, AudioSource};
use super::caller::CallSpec;
use super::load::LoadSpec;
use super::rest::{OutcomeScript, RestConfig};
use super::script::TalkScript;
use super::trust::TrustedCa;
use crate::tls::TlsError;

/// Simulates Twilio: inbound calls over Media Streams, load, and the REST API.
#[derive(Debug, Parser)]
#[command(name = "twilio-sim", version)]
pub struct Cli {
    /// Tracing filter, e.g. `info,switchboard_sim=debug`.
    #[arg(long, default_value = "info", global = true)]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A `twilio-sim` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Place one inbound call to a voice webhook and print its record as JSON.
    Call(CallArgs),
    /// Place N concurrent inbound calls on a ramp; print per-call results and a summary.
    Load(LoadArgs),
    /// Serve the fake REST API (create/update calls, conference participants).
    Rest(RestArgs),
}

/// Flags of `call` (and of each call of `load`).
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Voice webhook URL, exactly as configured (it is what the signature covers).
    #[arg(long)]
    pub url: String,
    /// Account SID sent in the webhooks.
    #[arg(long, default_value = "AC00000000000000000000000000000000")]
    pub account_sid: String,
    /// Auth Token signing the webhook and the WebSocket upgrade.
    #[arg(long)]
    pub auth_token: String,
    /// Caller number (`From`).
    #[arg(long, default_value = "+14155550199")]
    pub from: String,
    /// Called number (`To`).
    #[arg(long, default_value = "+14155550100")]
    pub to: String,
    /// What the caller says at once: hello-en, hello-ja, silence:MS, tone:HZ:MS or a file of
    /// raw 8 kHz mono µ-law.
    #[arg(long, default_value = "hello-en")]
    pub audio: String,
    /// Press a key at a time of the stream: MS:DIGIT, e.g. 3000:1 (repeatable).
    #[arg(long = "dtmf", value_parser = parse_dtmf)]
    pub dtmf: Vec<(u64, char)>,
    /// Hang up after this many ms of stream audio; without it, wait for the application.
    #[arg(long)]
    pub hang_up_after_ms: Option<u64>,
    /// Trust only this CA (PEM) on https:// webhooks and wss:// streams, instead of the
    /// public roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Why flags do not make a call.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// `--audio` names nothing playable.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// `--ca-file` is unreadable or holds no certificate.
    #[error("--ca-file: {0}")]
    Tls(#[from] TlsError),
}

/// Flags of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The call each caller places.
    #[command(flatten)]
    pub call: CallArgs,
    /// Number of calls.
    #[arg(long, default_value_t = 10)]
    pub calls: usize,
    /// Calls started per second (the ramp).
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
}

/// Flags of `rest`.
#[derive(Debug, Args)]
pub struct RestArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Account SID clients authenticate as.
    #[arg(long, default_value = "AC00000000000000000000000000000000")]
    pub account_sid: String,
    /// Auth Token: Basic auth password and signing key of status callbacks.
    #[arg(long)]
    pub auth_token: String,
    /// How a number answers: NUMBER=answer|busy|no-answer|failed|canceled, optionally with
    /// a ring time (`+15550001=no-answer@2s`, `busy@500ms`; default 50 ms), or
    /// NUMBER=reject:CODE to refuse creating calls to it with 400 and Twilio's error CODE
    /// (21211 invalid number, 21215 not permitted; `reject` alone is 21211). Repeatable;
    /// other numbers answer.
    #[arg(long = "outcome", value_parser = parse_outcome)]
    pub outcomes: Vec<(String, OutcomeScript)>,
    /// Trust only this CA (PEM) when sending status callbacks to https:// URLs and when
    /// answered calls fetch TwiML and open streams, instead of the public roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

// === impl CallArgs ===

impl CallArgs {
    /// The call these flags describe.
    pub fn to_spec(&self) -> Result<CallSpec, ArgsError> {
        let mut script = TalkScript::saying(AudioSource::from_spec(&self.audio)?);
        for (ms, digit) in &self.dtmf {
            script = script.press_at(Duration::from_millis(*ms), *digit);
        }
        script.hang_up_after = self.hang_up_after_ms.map(Duration::from_millis);
        let spec = CallSpec {
            from: self.from.clone(),
            to: self.to.clone(),
            trusted_ca: trusted_ca(self.ca_file.as_ref())?,
            ..CallSpec::inbound(&self.url, &self.account_sid, &self.auth_token)
        };
        Ok(spec.with_script(script))
    }
}

// === impl LoadArgs ===

impl LoadArgs {
    /// The load these flags describe.
    pub fn to_spec(&self) -> Result<LoadSpec, ArgsError> {
        Ok(LoadSpec {
            template: self.call.to_spec()?,
            calls: self.calls,
            rate_per_sec: self.rate,
        })
    }
}

// === impl RestArgs ===

impl RestArgs {
    /// The fake these flags describe.
    pub fn to_config(&self) -> Result<RestConfig, ArgsError> {
        let mut config = RestConfig::new(&self.account_sid, &self.auth_token);
        for (number, script) in &self.outcomes {
            config.outcomes = config.outcomes.number(number, script.clone());
        }
        config.trusted_ca = trusted_ca(self.ca_file.as_ref())?;
        Ok(config)
    }
}

fn trusted_ca(ca_file: Option<&PathBuf>) -> Result<Option<TrustedCa>, TlsError> {
    ca_file.map(|path| TrustedCa::from_file(path)).transpose()
}

fn parse_outcome(text: &str) -> Result<(String, OutcomeScript), String> {
    let (number, outcome) = text.split_once('=').ok_or("expected NUMBER=OUTCOME")?;
    let script = OutcomeScript::parse(outcome).ok_or(format!("unknown outcome {outcome:?}"))?;
    Ok((number.to_owned(), script))
}

fn parse_dtmf(text: &str) -> Result<(u64, char), String> {
    let (ms, digit) = text.split_once(':').ok_or("expected MS:DIGIT")?;
    let ms = ms.parse().map_err(|_| format!("invalid time {ms:?}"))?;
    match digit.chars().collect::<Vec<_>>().as_slice() {
        [d] if d.is_ascii_digit() || *d == '*' || *d == '#' => Ok((ms, *d)),
        _ => Err(format!("invalid digit {digit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn call_flags_become_a_signed_inbound_call_with_a_script() {
        let cli = Cli::parse_from([
            "twilio-sim",
            "call",
            "--url",
            "http://127.0.0.1:1/voice",
            "--auth-token",
            "secret",
            "--audio",
            "silence:100",
            "--dtmf",
            "300:#",
            "--hang-up-after-ms",
            "2000",
        ]);
        let Command::Call(args) = cli.command else {
            panic!("a call");
        };
        let spec = args.to_spec().expect("valid");
        assert_eq!(spec.auth_token, "secret");
        assert_eq!(spec.script.dtmf[0].digit, '#');
        assert_eq!(spec.script.hang_up_after, Some(Duration::from_secs(2)));
        assert!(Cli::try_parse_from([
            "twilio-sim",
            "call",
            "--url",
            "u",
            "--auth-token",
            "t",
            "--dtmf",
            "1:x"
        ])
        .is_err());
    }

    #[test]
    fn ca_file_makes_calls_and_callbacks_trust_that_ca_only() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca_file = dir.path().join("ca.pem");
        let ca = crate::tls::TestCa::new("cli test CA");
        std::fs::write(&ca_file, ca.ca_pem()).expect("written");
        let ca_path = ca_file.to_str().expect("utf-8");
        let call = [
            "twilio-sim",
            "call",
            "--url",
            "https://h/v",
            "--auth-token",
            "t",
        ];
        let Command::Call(args) =
            Cli::parse_from(call.iter().chain(&["--ca-file", ca_path])).command
        else {
            panic!("a call");
        };
        assert!(args.to_spec().expect("valid").trusted_ca.is_some());
        let Command::Call(args) = Cli::parse_from(call).command else {
            panic!("a call");
        };
        assert!(args.to_spec().expect("valid").trusted_ca.is_none());

        let missing = dir.path().join("missing.pem");
        let rest = Cli::parse_from([
            "twilio-sim",
            "rest",
            "--auth-token",
            "t",
            "--ca-file",
            missing.to_str().expect("utf-8"),
        ]);
        let Command::Rest(args) = rest.command else {
            panic!("rest");
        };
        let err = args.to_config().unwrap_err();
        assert!(
            err.to_string().starts_with("--ca-file: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn rest_flags_script_outcomes_per_number() {
        let cli = Cli::parse_from([
            "twilio-sim",
            "rest",
            "--auth-token",
            "secret",
            "--outcome",
            "+15550001=busy",
        ]);
        let Command::Rest(args) = cli.command else {
            panic!("rest");
        };
        let config = args.to_config().expect("no ca file to read");
        assert_eq!(
            config.outcomes.for_number("+15550001").outcome,
            super::super::rest::Outcome::Busy
        );
    }

    #[test]
    fn rest_flags_reject_numbers_and_set_ring_times() {
        let cli = Cli::parse_from([
            "twilio-sim",
            "rest",
            "--auth-token",
            "secret",
            "--outcome",
            "+15550001=reject:21211",
            "--outcome",
            "+15550002=no-answer@2s",
        ]);
        let Command::Rest(args) = cli.command else {
            panic!("rest");
        };
        let config = args.to_config().expect("no ca file to read");
        assert_eq!(
            config.outcomes.for_number("+15550001").outcome,
            super::super::rest::Outcome::reject(21211)
        );
        assert_eq!(
            config.outcomes.for_number("+15550002").ring,
            Duration::from_secs(2)
        );
        assert!(Cli::try_parse_from([
            "twilio-sim",
            "rest",
            "--auth-token",
            "t",
            "--outcome",
            "+1=reject:abc"
        ])
        .is_err());
    }
}
