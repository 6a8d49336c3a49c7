//! A simulated phone call, placed the way Twilio places it, with a handle to steer and
//! observe it.
//!
//! [`Caller::start`] spawns the call: it fetches TwiML (the signed voice webhook, or the
//! document given inline), runs its verbs (`caller/flow.rs`), and for `<Connect><Stream>`
//! runs a Media Stream (`caller/stream.rs`): signed upgrade, `connected`, `start`, µ-law at
//! a real-time 20 ms cadence from the [`TalkScript`], playback of what
//! the application sends (marks echoed when their audio has played, all at once on
//! `clear`), DTMF, and `stop` on hang-up. Messages Twilio would warn about are recorded
//! (`caller/inbox.rs`).
//!
//! The handle is cheap to clone. [`Caller::record`] is a live snapshot of the
//! [`CallRecord`]; [`Caller::finished`] waits for the end. [`Caller::hang_up`],
//! [`Caller::complete`] and [`Caller::redirect`] act like the caller hanging up and like
//! the REST API's `Status=completed` and `Twiml`/`Url` updates; the fake REST API
//! ([`rest`](super::rest)) uses them.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use switchboard_twilio::vocabulary::{CallDirection, CallStatus, HttpMethod};
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

use super::playback::Playback;
use super::record::{CallRecord, StreamRecord};
use super::script::TalkScript;
use super::sid;
use super::trust::{self, TrustedCa};

mod flow;
mod inbox;
mod stream;

/// How long Twilio waits for a webhook's answer.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything needed to place one call. `Debug` hides the Auth Token.
#[derive(Clone)]
pub struct CallSpec {
    /// `AccountSid` (`AC…`).
    pub account_sid: String,
    /// The account's Auth Token: signs every request and the WebSocket upgrade.
    pub auth_token: String,
    /// `CallSid` (`CA…`).
    pub call_sid: String,
    /// `From`: the caller.
    pub from: String,
    /// `To`: the called number.
    pub to: String,
    /// `Direction` in the webhooks: `inbound` for a call to one of our numbers,
    /// `outbound-api` for a call created through the REST API.
    pub direction: CallDirection,
    /// Where the first TwiML comes from.
    pub twiml: TwimlSource,
    /// What the caller says and does.
    pub script: TalkScript,
    /// Keep the bytes the caller heard (not just their amount), for tests and recordings.
    pub keep_audio: bool,
    /// How long to wait for a webhook's answer or a WebSocket handshake.
    pub http_timeout: Duration,
    /// The CA trusted on `https://` and `wss://` instead of the public roots (`None`:
    /// the public roots, as real Twilio).
    pub trusted_ca: Option<TrustedCa>,
}

/// Where TwiML comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwimlSource {
    /// Fetched with a signed request, like the voice webhook or a call's `Url`.
    Url {
        /// The URL, exactly as configured (it is what the signature covers).
        url: String,
        /// `POST` (form body) or `GET` (query string).
        method: HttpMethod,
    },
    /// Given as is, like a call's `Twiml` parameter.
    Inline(String),
}

/// A running (or finished) simulated call. Clones share the call.
#[derive(Debug, Clone)]
pub struct Caller {
    call_sid: String,
    state: Arc<Mutex<CallState>>,
    commands: mpsc::Sender<Command>,
    done: watch::Receiver<bool>,
}

/// Why a command did not reach the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The call has ended.
    #[error("call {0} has ended")]
    Ended(String),
    /// Commands are arriving faster than the call takes them.
    #[error("call {0} has too many commands pending")]
    Busy(String),
}

/// What a handle asks of the running call.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// End the call: `stop` and close any stream. `by_api` tells a REST hang-up from the
    /// caller's own.
    HangUp { by_api: bool },
    /// Replace whatever runs with new TwiML (ends a running stream with `stop`).
    Redirect(TwimlSource),
}

/// The record being written, plus the live stream's playout queue.
#[derive(Debug)]
pub(crate) struct CallState {
    pub(crate) record: CallRecord,
    pub(crate) started: Instant,
    /// The playout queue of the stream in progress, merged into snapshots.
    pub(crate) playback: Option<Playback>,
}

// === impl CallSpec ===

impl CallSpec {
    /// An inbound call to `webhook_url` (POST), from `+14155550199` to `+14155550100`, with a
    /// new call SID, a silent caller and the bytes it hears kept.
    pub fn inbound(
        webhook_url: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
    ) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            call_sid: sid::call_sid(),
            from: "+14155550199".to_owned(),
            to: "+14155550100".to_owned(),
            direction: CallDirection::Inbound,
            twiml: TwimlSource::Url {
                url: webhook_url.into(),
                method: HttpMethod::Post,
            },
            script: TalkScript::silent(),
            keep_audio: true,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            trusted_ca: None,
        }
    }

    /// The same call, trusting `ca` instead of the public roots.
    pub fn trusting(mut self, ca: TrustedCa) -> Self {
        self.trusted_ca = Some(ca);
        self
    }

    /// The same call with this script.
    pub fn with_script(mut self, script: TalkScript) -> Self {
        self.script = script;
        self
    }

    /// `CallStatus` of the first request: `ringing` for an inbound call, `in-progress` for an
    /// answered outbound one (docs/protocols.md §2.2).
    pub(crate) fn first_status(&self) -> CallStatus {
        match self.direction {
            CallDirection::Inbound => CallStatus::Ringing,
            _ => CallStatus::InProgress,
        }
    }
}

impl fmt::Debug for CallSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallSpec")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"****")
            .field("call_sid", &self.call_sid)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("direction", &self.direction)
            .field("twiml", &self.twiml)
            .field("script", &self.script)
            .field("keep_audio", &self.keep_audio)
            .field("http_timeout", &self.http_timeout)
            .field("trusted_ca", &self.trusted_ca)
            .finish()
    }
}

// === impl Caller ===

impl Caller {
    /// Places the call on a task of the current runtime, with an HTTP client trusting
    /// what `spec.trusted_ca` says.
    pub fn start(spec: CallSpec) -> Self {
        let client = trust::http_client(spec.trusted_ca.as_ref());
        Self::start_with_client(spec, client)
    }

    /// Places the call, sharing `client` (load tests place many calls). `client` must
    /// trust what `spec.trusted_ca` names ([`trust::http_client`]); the Media Stream
    /// uses `spec.trusted_ca` itself.
    pub fn start_with_client(spec: CallSpec, client: reqwest::Client) -> Self {
        let record = CallRecord {
            call_sid: spec.call_sid.clone(),
            from: spec.from.clone(),
            to: spec.to.clone(),
            direction: spec.direction.as_str().to_owned(),
            ..CallRecord::default()
        };
        let state = Arc::new(Mutex::new(CallState {
            record,
            started: Instant::now(),
            playback: None,
        }));
        let (commands, command_rx) = mpsc::channel(16);
        let (done_tx, done) = watch::channel(false);
        let call_sid = spec.call_sid.clone();
        let span = tracing::info_span!("sim_call", %call_sid);
        let call = flow::run(spec, client, Arc::clone(&state), command_rx, done_tx);
        tokio::spawn(call.instrument(span));
        Self {
            call_sid,
            state,
            commands,
            done,
        }
    }

    /// The call's SID.
    pub fn call_sid(&self) -> &str {
        &self.call_sid
    }

    /// The caller hangs up: `stop` on a running stream, then the call ends.
    pub fn hang_up(&self) -> Result<(), ControlError> {
        self.command(Command::HangUp { by_api: false })
    }

    /// The call is ended from outside, as by the REST API's `Status=completed`.
    pub fn complete(&self) -> Result<(), ControlError> {
        self.command(Command::HangUp { by_api: true })
    }

    /// The call is redirected to new TwiML, as by the REST API's `Twiml`/`Url` update: a
    /// running stream gets `stop` and closes, then the new document runs.
    pub fn redirect(&self, twiml: TwimlSource) -> Result<(), ControlError> {
        self.command(Command::Redirect(twiml))
    }

    /// A snapshot of the record so far (including the live stream's playback).
    pub fn record(&self) -> CallRecord {
        lock(&self.state).snapshot()
    }

    /// Whether the call has ended.
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }

    /// Waits for the call to end and returns its record.
    pub async fn finished(&self) -> CallRecord {
        let mut done = self.done.clone();
        // An error means the task is gone, which only happens once it has finished.
        let _ = done.wait_for(|finished| *finished).await;
        self.record()
    }

    fn command(&self, command: Command) -> Result<(), ControlError> {
        if self.is_finished() {
            return Err(ControlError::Ended(self.call_sid.clone()));
        }
        self.commands.try_send(command).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => ControlError::Busy(self.call_sid.clone()),
            mpsc::error::TrySendError::Closed(_) => ControlError::Ended(self.call_sid.clone()),
        })
    }
}

/// Places a call and waits for it to end.
pub async fn place_call(spec: CallSpec) -> CallRecord {
    Caller::start(spec).finished().await
}

// === impl CallState ===

impl CallState {
    /// The record with the live stream's playback merged in and the duration so far.
    pub(crate) fn snapshot(&self) -> CallRecord {
        let mut record = self.record.clone();
        if record.end.is_none() {
            record.duration = self.started.elapsed();
        }
        if let (Some(playback), Some(stream)) = (&self.playback, record.streams.last_mut()) {
            merge_playback(playback, stream);
        }
        record
    }
}

/// Copies what the playout queue knows (heard audio, echoes, clears, leftovers) into the
/// stream's record.
pub(crate) fn merge_playback(playback: &Playback, stream: &mut StreamRecord) {
    stream.heard = playback.heard().clone();
    stream.marks = playback.echoes().to_vec();
    stream.clears = playback.clears().to_vec();
    stream.unplayed_bytes = playback.queued_bytes();
    stream.unechoed_marks = playback.pending_marks();
}

/// Locks the call state; a panic elsewhere leaves a usable record, so poisoning is ignored.
pub(crate) fn lock(state: &Mutex<CallState>) -> MutexGuard<'_, CallState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
