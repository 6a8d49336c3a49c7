//! A fake of the Twilio REST endpoints the control plane calls (docs/protocols.md §2.3–2.5),
//! served by axum on a loopback port: point `SWITCHBOARD_TWILIO_API_URL` at it.
//!
//! - `POST/GET /2010-04-01/Accounts/{AccountSid}/Calls.json`: create (form body, `201` +
//!   the Call resource as JSON) and list calls.
//! - `GET/POST …/Calls/{CallSid}.json`: fetch; update with `Twiml`/`Url` (redirects a live
//!   call: its stream gets `stop`) or `Status=completed|canceled`.
//! - `POST/GET …/Conferences/{Sid or FriendlyName}/Participants.json`, `GET/POST/DELETE
//!   …/Participants/{CallSid or Label}.json`, `GET/POST …/Conferences/{Sid}.json`
//!   (`Status=completed` ends it).
//!
//! Every request needs HTTP Basic auth with the account SID and Auth Token (else `401` with
//! Twilio's error 20003) and is recorded with the wall-clock time it arrived
//! ([`RecordedRequest`]). Bodies are read with the codec's `from_form`; errors come back as
//! Twilio's JSON error body (21201 no `To`, 21213 no `From`, 21205 no `Url`/`Twiml`, 20404
//! unknown resource).
//!
//! A created call rings, then ends as its number's [`OutcomeScript`] says; each step sends
//! the requested status callbacks, signed, in order (`rest/lifecycle.rs`). An answered call
//! runs a simulated [`Caller`] on its `Url` or `Twiml`; an answered conference participant
//! just stays connected. Handlers are in `rest/routes.rs` and `rest/participants.rs`.
//!
//! For tests of a dialler's pacing and retries:
//!
//! - [`FakeTwilio::created_calls`] lists the calls created through `Calls.json`, in order,
//!   each with its creation time in Unix ms (never decreasing), so a test can count
//!   creations per second and per number.
//! - [`Outcome::Reject`] refuses creation for a number as Twilio refuses an invalid or
//!   unauthorised one (`400`, e.g. 21211 "The 'To' number … is not a valid phone number");
//!   no call exists afterwards.
//! - [`FakeTwilio::fail_next_creates`] answers the next N `Calls.json` creations, whatever
//!   the number, with a fault: `429` (20429, `Retry-After: 1`) or `503` (20503), as
//!   Twilio does when over its rate limit or unavailable; nothing is created.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use switchboard_twilio::rest::{CallResource, ConferenceResource, ParticipantResource};
use switchboard_twilio::signature::RequestValidator;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::caller::{CallSpec, Caller};
use super::record::CallRecord;
use super::script::TalkScript;
use super::trust::{self, TrustedCa};

mod lifecycle;
mod participants;
mod routes;

pub use lifecycle::CallbackRecord;

/// The fake's account and how numbers answer. `Debug` hides the Auth Token.
#[derive(Clone)]
pub struct RestConfig {
    /// The only account the fake knows (`AC…`).
    pub account_sid: String,
    /// Its Auth Token: Basic auth password and the key every callback is signed with.
    pub auth_token: String,
    /// How each dialled number answers.
    pub outcomes: Outcomes,
    /// Keep the bytes answered calls hear (for tests); off for long load runs.
    pub keep_audio: bool,
    /// The CA trusted by status callbacks and by answered calls' webhooks and streams
    /// (`None`: the public roots).
    pub trusted_ca: Option<TrustedCa>,
}

/// How dialled numbers answer: per number, else a default.
#[derive(Debug, Clone)]
pub struct Outcomes {
    by_number: HashMap<String, OutcomeScript>,
    default: OutcomeScript,
}

/// What happens to a call to one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeScript {
    /// How long it rings before the outcome.
    pub ring: Duration,
    /// The outcome.
    pub outcome: Outcome,
}

/// How a dialled call ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered by a simulated caller following this script.
    Answer(TalkScript),
    /// `busy`.
    Busy,
    /// `no-answer`.
    NoAnswer,
    /// `failed`.
    Fail,
    /// `canceled` while ringing.
    Cancel,
    /// Creation refused: the create request is answered with this HTTP status and
    /// Twilio's JSON error body, and no call is created (as for an invalid `To`, 21211,
    /// or a destination the account may not call, 21215). `{to}` in the message is
    /// replaced by the dialled number. The ring time does not apply.
    Reject {
        /// HTTP status, e.g. 400.
        status: u16,
        /// Twilio's error code, e.g. 21211.
        code: u32,
        /// Twilio's message.
        message: String,
    },
}

/// One call created through `Calls.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedCall {
    /// Its `CA…` SID.
    pub call_sid: String,
    /// The dialled number.
    pub to: String,
    /// The caller id.
    pub from: String,
    /// When it was created, Unix ms (wall clock; never before the previous creation's).
    pub at_unix_ms: u64,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path, e.g. `/2010-04-01/Accounts/AC…/Calls.json`.
    pub path: String,
    /// Form (or query) parameters, in order, repeated keys kept.
    pub params: Vec<(String, String)>,
    /// Whether Basic auth was accepted.
    pub authorized: bool,
    /// The status answered.
    pub status: u16,
    /// When it arrived, Unix ms (wall clock).
    pub at_unix_ms: u64,
}

/// The fake Twilio REST API. Clones share state.
#[derive(Debug, Clone)]
pub struct FakeTwilio {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RestConfig,
    validator: RequestValidator,
    client: reqwest::Client,
    state: Mutex<RestState>,
}

#[derive(Debug, Default)]
struct RestState {
    requests: Vec<RecordedRequest>,
    callbacks: Vec<CallbackRecord>,
    calls: HashMap<String, CallEntry>,
    call_order: Vec<String>,
    /// Calls created through `Calls.json`, in order.
    created: Vec<CreatedCall>,
    /// Creations still to be refused, and with which status.
    failing_creates: Option<(usize, u16)>,
    conferences: HashMap<String, ConferenceEntry>,
}

#[derive(Debug)]
struct CallEntry {
    resource: CallResource,
    control: mpsc::Sender<lifecycle::Control>,
    caller: Option<Caller>,
}

#[derive(Debug)]
struct ConferenceEntry {
    resource: ConferenceResource,
    participants: Vec<ParticipantResource>,
}

// === impl Outcomes ===

impl Outcomes {
    /// Every number answers at once with `script`.
    pub fn answer_all(script: TalkScript) -> Self {
        Self {
            by_number: HashMap::new(),
            default: OutcomeScript::answer(script),
        }
    }

    /// Calls to `number` end as `script` says.
    pub fn number(mut self, number: impl Into<String>, script: OutcomeScript) -> Self {
        self.by_number.insert(number.into(), script);
        self
    }

    /// What a call to `number` does.
    pub fn for_number(&self, number: &str) -> &OutcomeScript {
        self.by_number.get(number).unwrap_or(&self.default)
    }
}

impl Default for Outcomes {
    /// Every number answers at once and waits, silent, for the call to be ended.
    fn default() -> Self {
        Self::answer_all(TalkScript::silent())
    }
}

// === impl OutcomeScript ===

impl OutcomeScript {
    /// Rings 50 ms, then is answered by a caller following `script`.
    pub fn answer(script: TalkScript) -> Self {
        Self::after_ring(Outcome::Answer(script))
    }

    /// Rings 50 ms, then `outcome`.
    pub fn after_ring(outcome: Outcome) -> Self {
        Self {
            ring: Duration::from_millis(50),
            outcome,
        }
    }

    /// Reads a command-line outcome: `answer`, `busy`, `no-answer`, `failed`, `canceled`,
    /// or `reject:CODE` ([`Outcome::reject`]; `reject` alone is 21211), optionally with a
    /// ring time: `no-answer@2s`, `busy@500ms` (else 50 ms).
    pub fn parse(text: &str) -> Option<Self> {
        let (name, ring) = match text.split_once('@') {
            Some((name, ring)) => (name, Some(parse_ring(ring)?)),
            None => (text, None),
        };
        let outcome = match name {
            "answer" | "answered" | "in-progress" => Outcome::Answer(TalkScript::silent()),
            "busy" => Outcome::Busy,
            "no-answer" => Outcome::NoAnswer,
            "failed" | "fail" => Outcome::Fail,
            "canceled" | "cancel" => Outcome::Cancel,
            "reject" => Outcome::reject(21211),
            _ => Outcome::reject(name.strip_prefix("reject:")?.parse().ok()?),
        };
        let mut script = Self::after_ring(outcome);
        if let Some(ring) = ring {
            script.ring = ring;
        }
        Some(script)
    }
}

/// `2s`, `1.5s` or `500ms`.
fn parse_ring(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

// === impl Outcome ===

impl Outcome {
    /// Creation refused with `400` and Twilio's error `code`: 21211 (invalid `To`) and
    /// 21215 (geographic permissions) get Twilio's messages, other codes a generic one.
    pub fn reject(code: u32) -> Self {
        let message = match code {
            21211 => "The 'To' number {to} is not a valid phone number.",
            21215 => {
                "Account not authorized to call {to}. Perhaps you need to enable some \
                 international permissions: \
                 https://www.twilio.com/console/voice/calls/geo-permissions/low-risk"
            }
            _ => "The call to {to} was refused.",
        };
        Outcome::Reject {
            status: 400,
            code,
            message: message.to_owned(),
        }
    }
}

// === impl RestConfig ===

impl RestConfig {
    /// An account whose numbers all answer at once, silent.
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            outcomes: Outcomes::default(),
            keep_audio: true,
            trusted_ca: None,
        }
    }
}

impl fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"****")
            .field("outcomes", &self.outcomes)
            .field("keep_audio", &self.keep_audio)
            .field("trusted_ca", &self.trusted_ca)
            .finish()
    }
}

// === impl FakeTwilio ===

impl FakeTwilio {
    /// A fake with no calls yet.
    pub fn new(config: RestConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                validator: RequestValidator::new(&config.auth_token),
                client: trust::http_client(config.trusted_ca.as_ref()),
                config,
                state: Mutex::new(RestState::default()),
            }),
        }
    }

    /// The axum router serving the fake endpoints.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Places an inbound call (as [`Caller::start`]) and registers it, so REST updates and
    /// fetches reach it like any other call. Its webhooks are signed with `spec.auth_token`.
    pub fn place_inbound_call(&self, spec: CallSpec) -> Caller {
        lifecycle::start_inbound(self, spec)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every status callback sent, in order.
    pub fn callbacks(&self) -> Vec<CallbackRecord> {
        self.lock().callbacks.clone()
    }

    /// The calls created through `Calls.json` (not conference participants, not inbound
    /// calls), in creation order, with their creation times.
    pub fn created_calls(&self) -> Vec<CreatedCall> {
        self.lock().created.clone()
    }

    /// Answers the next `n` `Calls.json` create requests, whatever their number, with
    /// `status` and Twilio's error body, creating nothing; they are recorded like any
    /// request. `429` is 20429 "Too Many Requests" with `Retry-After: 1`; `503` is 20503
    /// "Service Unavailable"; `500` is 20500; another status gets code 20000 + status
    /// (one that is not an HTTP status becomes `500`). Replaces any faults still pending;
    /// `n = 0` clears them.
    pub fn fail_next_creates(&self, n: usize, status: u16) {
        self.lock().failing_creates = (n > 0).then_some((n, status));
    }

    /// The status callbacks sent for one call, in order.
    pub fn callbacks_for(&self, call_sid: &str) -> Vec<CallbackRecord> {
        self.lock()
            .callbacks
            .iter()
            .filter(|callback| callback.call_sid == call_sid)
            .cloned()
            .collect()
    }

    /// The Call resource as the API would return it now.
    pub fn call(&self, call_sid: &str) -> Option<CallResource> {
        self.lock()
            .calls
            .get(call_sid)
            .map(|entry| entry.resource.clone())
    }

    /// Every call, in creation order.
    pub fn calls(&self) -> Vec<CallResource> {
        let state = self.lock();
        state
            .call_order
            .iter()
            .filter_map(|sid| state.calls.get(sid).map(|entry| entry.resource.clone()))
            .collect()
    }

    /// The simulated caller of an answered call, if it has one.
    pub fn caller(&self, call_sid: &str) -> Option<Caller> {
        self.lock()
            .calls
            .get(call_sid)
            .and_then(|entry| entry.caller.clone())
    }

    /// The record of an answered call's simulated caller (a live snapshot while it runs).
    pub fn call_record(&self, call_sid: &str) -> Option<CallRecord> {
        self.caller(call_sid).map(|caller| caller.record())
    }

    /// The participants of a conference (by SID or friendly name), in join order.
    pub fn participants(&self, conference: &str) -> Vec<ParticipantResource> {
        let state = self.lock();
        participants::find_conference(&state, conference)
            .and_then(|sid| state.conferences.get(&sid))
            .map(|entry| entry.participants.clone())
            .unwrap_or_default()
    }

    fn config(&self) -> &RestConfig {
        &self.inner.config
    }

    /// Changes a call's resource in place (no-op for an unknown call).
    fn update_call(&self, call_sid: &str, change: impl FnOnce(&mut CallResource)) {
        if let Some(entry) = self.lock().calls.get_mut(call_sid) {
            change(&mut entry.resource);
        }
    }

    /// Changes a participant's resource in place (no-op if unknown).
    fn update_participant(
        &self,
        conference_sid: &str,
        call_sid: &str,
        change: impl FnOnce(&mut ParticipantResource),
    ) {
        let mut state = self.lock();
        let Some(conference) = state.conferences.get_mut(conference_sid) else {
            return;
        };
        let participant = conference
            .participants
            .iter_mut()
            .find(|p| p.call_sid.as_deref() == Some(call_sid));
        if let Some(participant) = participant {
            change(participant);
            participant.date_updated = Some(rfc2822_now());
        }
    }

    fn lock(&self) -> MutexGuard<'_, RestState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Milliseconds since the Unix epoch, now (wall clock).
fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The time now as RFC 2822 (`Tue, 28 Nov 2023 08:51:00 +0000`), as Twilio writes dates.
fn rfc2822_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    rfc2822(secs)
}

fn rfc2822(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let (hour, minute, second) = (
        unix_secs % 86_400 / 3600,
        unix_secs % 3600 / 60,
        unix_secs % 60,
    );
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {hour:02}:{minute:02}:{second:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822_in_utc() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc2822(1_701_161_460), "Tue, 28 Nov 2023 08:51:00 +0000");
    }

    #[test]
    fn outcomes_are_per_number_with_a_default() {
        let outcomes =
            Outcomes::default().number("+15550001", OutcomeScript::after_ring(Outcome::Busy));
        assert_eq!(outcomes.for_number("+15550001").outcome, Outcome::Busy);
        assert!(matches!(
            outcomes.for_number("+15550002").outcome,
            Outcome::Answer(_)
        ));
        assert_eq!(
            OutcomeScript::parse("no-answer").map(|s| s.outcome),
            Some(Outcome::NoAnswer)
        );
        assert_eq!(OutcomeScript::parse("maybe"), None);
    }

    #[test]
    fn outcomes_parse_rejections_and_ring_times() {
        let reject = OutcomeScript::parse("reject:21215").expect("valid");
        assert!(matches!(
            reject.outcome,
            Outcome::Reject {
                status: 400,
                code: 21215,
                ..
            }
        ));
        assert_eq!(
            OutcomeScript::parse("reject").map(|s| s.outcome),
            Some(Outcome::reject(21211))
        );
        assert_eq!(OutcomeScript::parse("reject:x"), None);
        let slow = OutcomeScript::parse("no-answer@2s").expect("valid");
        assert_eq!(
            (slow.outcome, slow.ring),
            (Outcome::NoAnswer, Duration::from_secs(2))
        );
        let quick = OutcomeScript::parse("busy@250ms").expect("valid");
        assert_eq!(quick.ring, Duration::from_millis(250));
        assert_eq!(OutcomeScript::parse("busy@soon"), None);
        assert_eq!(OutcomeScript::parse("busy@-1s"), None);
    }
}
