//! Campaigns: bulk outbound calls to a list of targets, paced, inside a calling window,
//! retried on the failures worth retrying, never to a number on the do-not-call list.
//!
//! This module holds the model and its rules: what a valid campaign and a valid target
//! are ([`Campaign::validate`], [`CampaignTarget::validate`], each refusing with an
//! [`InvalidField`] that names the field) and the campaign state machine
//! ([`CampaignState::apply`]). Stores persist these types as they are (their serde form
//! is camelCase, ids under `_id` and times in epoch milliseconds, so one form serves
//! the embedded store's JSON and MongoDB's documents, and times sort as numbers).
//!
//! `attempts` holds what happens to one target as it is dialled, `window` when a
//! callee may be called; the dispatcher that applies them is `crate::campaigns`.

pub mod attempts;
pub mod window;

pub use attempts::{after_call, apply_take, apply_update, TargetTake, TargetUpdate, DO_NOT_CALL};

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{validate_e164, CallError, CallStatus, InvalidField, Timestamp};

/// Most targets one request may carry (create or upload).
pub const MAX_TARGETS_PER_REQUEST: usize = 10_000;
/// Longest accepted `target_key`.
pub const MAX_TARGET_KEY_CHARS: usize = 200;
const MAX_NAME_CHARS: usize = 200;
/// Most caller ids in a campaign's pool.
pub const MAX_FROM_NUMBERS: usize = 100;
/// Minutes in a day: the latest a window may end.
pub const MINUTES_PER_DAY: u32 = 24 * 60;
/// Most attempts per target a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 10;

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Waiting for `start_at`.
    Scheduled,
    Running,
    Paused,
    /// Every target reached a final state.
    Completed,
    Canceled,
}

/// A change of a campaign's state asked for through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignAction {
    Pause,
    Resume,
    Cancel,
}

impl CampaignAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignAction::Pause => "pause",
            CampaignAction::Resume => "resume",
            CampaignAction::Cancel => "cancel",
        }
    }
}

/// A state change the machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a {} campaign", action.as_str(), from.as_str())]
pub struct CampaignTransitionError {
    pub from: CampaignState,
    pub action: CampaignAction,
}

impl CampaignState {
    pub const ALL: [CampaignState; 5] = [
        CampaignState::Scheduled,
        CampaignState::Running,
        CampaignState::Paused,
        CampaignState::Completed,
        CampaignState::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Scheduled => "scheduled",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Canceled => "canceled",
        }
    }

    /// True once nothing more happens to the campaign.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignState::Completed | CampaignState::Canceled)
    }

    /// The state a new campaign starts in: scheduled until `start_at`, else running.
    pub fn initial(start_at: Option<Timestamp>, now: Timestamp) -> CampaignState {
        match start_at {
            Some(at) if at > now => CampaignState::Scheduled,
            _ => CampaignState::Running,
        }
    }

    /// The state after `action` at `now`: pause only a running or scheduled campaign,
    /// resume only a paused one (to scheduled while `start_at` is ahead), cancel any
    /// campaign that is not final. Canceling a canceled campaign is a repeat and keeps
    /// it canceled, so a cancel interrupted half-way can be sent again.
    pub fn apply(
        self,
        action: CampaignAction,
        start_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<CampaignState, CampaignTransitionError> {
        let refused = CampaignTransitionError { from: self, action };
        match (action, self) {
            (CampaignAction::Pause, CampaignState::Running | CampaignState::Scheduled) => {
                Ok(CampaignState::Paused)
            }
            (CampaignAction::Resume, CampaignState::Paused) => {
                Ok(CampaignState::initial(start_at, now))
            }
            (CampaignAction::Cancel, CampaignState::Canceled) => Ok(CampaignState::Canceled),
            (CampaignAction::Cancel, state) if !state.is_final() => Ok(CampaignState::Canceled),
            _ => Err(refused),
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    Pending,
    Dialing,
    InCall,
    RetryWait,
    Done,
    Failed,
    Canceled,
    Skipped,
}

impl TargetState {
    pub const ALL: [TargetState; 8] = [
        TargetState::Pending,
        TargetState::Dialing,
        TargetState::InCall,
        TargetState::RetryWait,
        TargetState::Done,
        TargetState::Failed,
        TargetState::Canceled,
        TargetState::Skipped,
    ];

    /// The name the stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Pending => "pending",
            TargetState::Dialing => "dialing",
            TargetState::InCall => "in_call",
            TargetState::RetryWait => "retry_wait",
            TargetState::Done => "done",
            TargetState::Failed => "failed",
            TargetState::Canceled => "canceled",
            TargetState::Skipped => "skipped",
        }
    }

    /// The states a cancel ends: those of targets not being called right now.
    pub fn cancelable(self) -> bool {
        matches!(self, TargetState::Pending | TargetState::RetryWait)
    }
}

/// How fast a campaign places calls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pacing {
    /// New calls per second, above 0 and at most the account's limit.
    pub calls_per_second: f64,
    /// Calls of the campaign live at once, at least 1.
    pub max_concurrent_calls: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            calls_per_second: 1.0,
            max_concurrent_calls: 10,
        }
    }
}

/// When calls may be placed, in the callee's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallWindow {
    /// IANA zone; a target's own zone wins.
    pub time_zone: String,
    /// Minutes after local midnight: `[start_minute, end_minute)`.
    pub start_minute: u32,
    pub end_minute: u32,
    /// ISO weekdays (1 = Monday); empty means every day.
    pub weekdays: Vec<u32>,
}

/// Which failed calls are tried again, how often, how soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts per target including the first.
    pub max_attempts: u32,
    /// Final failure statuses that are retried.
    pub retry_on: Vec<CallStatus>,
    pub backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            retry_on: Vec::new(),
            backoff_ms: 0,
        }
    }
}

/// The final statuses a retry policy may retry: the call did not reach anyone.
pub const RETRYABLE_STATUSES: [CallStatus; 3] =
    [CallStatus::Busy, CallStatus::NoAnswer, CallStatus::Failed];

/// A campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub agent_id: String,
    /// The caller-id pool, E.164, at least one.
    pub from_numbers: Vec<String>,
    pub pacing: Pacing,
    pub window: Option<CallWindow>,
    pub retry: RetryPolicy,
    /// Variables for every target (a target's own win).
    pub variables: BTreeMap<String, String>,
    #[serde(with = "chrono::serde::ts_milliseconds_option", default)]
    pub start_at: Option<Timestamp>,
    pub state: CampaignState,
    pub version: i64,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub created_at: Timestamp,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub updated_at: Timestamp,
}

/// Account-wide limits a campaign is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CampaignLimits {
    /// The account's calls per second (`SWITCHBOARD_TWILIO_MAX_CPS`).
    pub max_calls_per_second: f64,
}

impl Campaign {
    /// Checks the campaign's own fields (not its targets, not whether its agent exists).
    pub fn validate(&self, limits: &CampaignLimits) -> Result<(), InvalidField> {
        if self.name.trim().is_empty() {
            return Err(InvalidField::new("name", "is required"));
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidField::new(
                "name",
                format!("is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        if self.agent_id.is_empty() {
            return Err(InvalidField::new("agent_id", "is required"));
        }
        if self.from_numbers.is_empty() {
            return Err(InvalidField::new(
                "from_numbers",
                "at least one caller id is required",
            ));
        }
        if self.from_numbers.len() > MAX_FROM_NUMBERS {
            return Err(InvalidField::new(
                "from_numbers",
                format!("at most {MAX_FROM_NUMBERS} caller ids"),
            ));
        }
        for (i, number) in self.from_numbers.iter().enumerate() {
            validate_e164(&format!("from_numbers[{i}]"), number)?;
        }
        self.pacing.validate(limits)?;
        if let Some(window) = &self.window {
            window.validate()?;
        }
        self.retry.validate()
    }
}

impl Pacing {
    fn validate(&self, limits: &CampaignLimits) -> Result<(), InvalidField> {
        let cps = self.calls_per_second;
        if !cps.is_finite() || cps <= 0.0 {
            return Err(InvalidField::new(
                "pacing.calls_per_second",
                format!("{cps} is not above 0"),
            ));
        }
        if cps > limits.max_calls_per_second {
            return Err(InvalidField::new(
                "pacing.calls_per_second",
                format!(
                    "{cps} is above the account's limit of {} calls per second \
                     (SWITCHBOARD_TWILIO_MAX_CPS)",
                    limits.max_calls_per_second
                ),
            ));
        }
        if self.max_concurrent_calls < 1 {
            return Err(InvalidField::new(
                "pacing.max_concurrent_calls",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl CallWindow {
    fn validate(&self) -> Result<(), InvalidField> {
        validate_time_zone("window.time_zone", &self.time_zone)?;
        if self.end_minute > MINUTES_PER_DAY {
            return Err(InvalidField::new(
                "window.end_minute",
                format!(
                    "{} is past the end of the day ({MINUTES_PER_DAY})",
                    self.end_minute
                ),
            ));
        }
        if self.end_minute <= self.start_minute {
            return Err(InvalidField::new(
                "window.end_minute",
                format!(
                    "{} is not after start_minute {}",
                    self.end_minute, self.start_minute
                ),
            ));
        }
        for (i, day) in self.weekdays.iter().enumerate() {
            if !(1..=7).contains(day) {
                return Err(InvalidField::new(
                    format!("window.weekdays[{i}]"),
                    format!("{day} is not an ISO weekday (1 = Monday … 7 = Sunday)"),
                ));
            }
        }
        Ok(())
    }
}

impl RetryPolicy {
    fn validate(&self) -> Result<(), InvalidField> {
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(InvalidField::new(
                "retry.max_attempts",
                format!("{} is not between 1 and {MAX_ATTEMPTS}", self.max_attempts),
            ));
        }
        for (i, status) in self.retry_on.iter().enumerate() {
            if !RETRYABLE_STATUSES.contains(status) {
                return Err(InvalidField::new(
                    format!("retry.retry_on[{i}]"),
                    format!("{status} is not a final failure status (busy, no-answer, failed)"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks an IANA zone name, e.g. `Asia/Tokyo`.
pub fn validate_time_zone(field: &str, zone: &str) -> Result<(), InvalidField> {
    if zone.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    zone.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| InvalidField::new(field, format!("{zone:?} is not an IANA time zone")))
}

/// One person a campaign calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignTarget {
    #[serde(rename = "_id")]
    pub id: String,
    pub campaign_id: String,
    /// Unique within the campaign; uploads are idempotent by it.
    pub target_key: String,
    pub phone: String,
    pub name: String,
    pub variables: BTreeMap<String, String>,
    /// IANA zone of the callee; empty means the window's.
    pub time_zone: String,
    pub state: TargetState,
    pub attempts: u32,
    pub last_call_id: String,
    pub last_call_status: Option<CallStatus>,
    pub last_error: Option<CallError>,
    #[serde(with = "chrono::serde::ts_milliseconds_option", default)]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub created_at: Timestamp,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub updated_at: Timestamp,
}

impl CampaignTarget {
    /// A pending target of `campaign_id`; an empty key becomes the phone number.
    pub fn new(
        id: String,
        campaign_id: String,
        target_key: String,
        phone: String,
        now: Timestamp,
    ) -> Self {
        let target_key = if target_key.is_empty() {
            phone.clone()
        } else {
            target_key
        };
        Self {
            id,
            campaign_id,
            target_key,
            phone,
            name: String::new(),
            variables: BTreeMap::new(),
            time_zone: String::new(),
            state: TargetState::Pending,
            attempts: 0,
            last_call_id: String::new(),
            last_call_status: None,
            last_error: None,
            next_attempt_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Checks what the caller supplies; `prefix` is the target's path (`targets[3]`).
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidField> {
        validate_e164(&format!("{prefix}.phone"), &self.phone)?;
        if self.target_key.chars().count() > MAX_TARGET_KEY_CHARS {
            return Err(InvalidField::new(
                format!("{prefix}.target_key"),
                format!("is longer than {MAX_TARGET_KEY_CHARS} characters"),
            ));
        }
        if self.name.chars().count() > MAX_NAME_CHARS {
            return Err(InvalidField::new(
                format!("{prefix}.name"),
                format!("is longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        if !self.time_zone.is_empty() {
            validate_time_zone(&format!("{prefix}.time_zone"), &self.time_zone)?;
        }
        Ok(())
    }
}

/// What became of one target a store was asked to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetOutcome {
    /// Stored under this id.
    Accepted(String),
    /// The campaign held its key already, under this id.
    Duplicate(String),
}

/// How many of a campaign's targets are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignProgress {
    pub pending: u64,
    pub dialing: u64,
    pub in_call: u64,
    pub retry_wait: u64,
    pub done: u64,
    pub failed: u64,
    pub canceled: u64,
    pub skipped: u64,
}

impl CampaignProgress {
    /// Counts `n` more targets in `state`.
    pub fn add(&mut self, state: TargetState, n: u64) {
        let slot = match state {
            TargetState::Pending => &mut self.pending,
            TargetState::Dialing => &mut self.dialing,
            TargetState::InCall => &mut self.in_call,
            TargetState::RetryWait => &mut self.retry_wait,
            TargetState::Done => &mut self.done,
            TargetState::Failed => &mut self.failed,
            TargetState::Canceled => &mut self.canceled,
            TargetState::Skipped => &mut self.skipped,
        };
        *slot += n;
    }

    pub fn total(&self) -> u64 {
        self.pending
            + self.dialing
            + self.in_call
            + self.retry_wait
            + self.done
            + self.failed
            + self.canceled
            + self.skipped
    }
}

/// A number no campaign may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoNotCallEntry {
    /// E.164; unique.
    #[serde(rename = "_id")]
    pub phone: String,
    pub reason: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub created_at: Timestamp,
}

/// Normalises a number for the do-not-call list: surrounding blanks and the usual
/// separators (space, `-`, `.`, `(`, `)`) are dropped, then it must be E.164.
pub fn normalize_phone(field: &str, number: &str) -> Result<String, InvalidField> {
    let compact: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    validate_e164(field, &compact)?;
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    const LIMITS: CampaignLimits = CampaignLimits {
        max_calls_per_second: 5.0,
    };

    fn campaign() -> Campaign {
        let now = crate::domain::now();
        Campaign {
            id: "c1".into(),
            name: "Renewals".into(),
            agent_id: "a1".into(),
            from_numbers: vec!["+14155550100".into(), "+14155550101".into()],
            pacing: Pacing::default(),
            window: Some(CallWindow {
                time_zone: "Asia/Tokyo".into(),
                start_minute: 9 * 60,
                end_minute: 18 * 60,
                weekdays: vec![1, 2, 3, 4, 5],
            }),
            retry: RetryPolicy {
                max_attempts: 3,
                retry_on: vec![CallStatus::Busy, CallStatus::NoAnswer],
                backoff_ms: 60_000,
            },
            variables: BTreeMap::new(),
            start_at: None,
            state: CampaignState::Running,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn refused(change: impl FnOnce(&mut Campaign)) -> InvalidField {
        let mut c = campaign();
        change(&mut c);
        c.validate(&LIMITS).unwrap_err()
    }

    #[test]
    fn a_sound_campaign_is_valid() {
        assert_eq!(campaign().validate(&LIMITS), Ok(()));
        let mut no_window = campaign();
        no_window.window = None;
        assert_eq!(no_window.validate(&LIMITS), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn FnOnce(&mut Campaign)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|c| c.name = " ".into())),
            ("agent_id", Box::new(|c| c.agent_id.clear())),
            ("from_numbers", Box::new(|c| c.from_numbers.clear())),
            (
                "from_numbers[1]",
                Box::new(|c| c.from_numbers[1] = "4155550101".into()),
            ),
            (
                "pacing.calls_per_second",
                Box::new(|c| c.pacing.calls_per_second = 0.0),
            ),
            (
                "pacing.calls_per_second",
                Box::new(|c| c.pacing.calls_per_second = -1.0),
            ),
            (
                "pacing.calls_per_second",
                Box::new(|c| c.pacing.calls_per_second = f64::NAN),
            ),
            (
                "pacing.calls_per_second",
                Box::new(|c| c.pacing.calls_per_second = 5.5),
            ),
            (
                "pacing.max_concurrent_calls",
                Box::new(|c| c.pacing.max_concurrent_calls = 0),
            ),
            (
                "window.end_minute",
                Box::new(|c| {
                    let w = c.window.as_mut().unwrap();
                    w.end_minute = w.start_minute;
                }),
            ),
            (
                "window.end_minute",
                Box::new(|c| c.window.as_mut().unwrap().end_minute = 1441),
            ),
            (
                "window.time_zone",
                Box::new(|c| c.window.as_mut().unwrap().time_zone = "Mars/Olympus".into()),
            ),
            (
                "window.time_zone",
                Box::new(|c| c.window.as_mut().unwrap().time_zone.clear()),
            ),
            (
                "window.weekdays[1]",
                Box::new(|c| c.window.as_mut().unwrap().weekdays = vec![1, 8]),
            ),
            (
                "window.weekdays[0]",
                Box::new(|c| c.window.as_mut().unwrap().weekdays = vec![0]),
            ),
            ("retry.max_attempts", Box::new(|c| c.retry.max_attempts = 0)),
            (
                "retry.retry_on[1]",
                Box::new(|c| c.retry.retry_on = vec![CallStatus::Busy, CallStatus::Completed]),
            ),
            (
                "retry.retry_on[0]",
                Box::new(|c| c.retry.retry_on = vec![CallStatus::InProgress]),
            ),
        ];
        for (field, change) in cases {
            assert_eq!(refused(change).field, field);
        }
    }

    #[test]
    fn the_account_limit_bounds_the_pace() {
        let mut c = campaign();
        c.pacing.calls_per_second = 5.0;
        assert_eq!(c.validate(&LIMITS), Ok(()));
        let err = c
            .validate(&CampaignLimits {
                max_calls_per_second: 1.0,
            })
            .unwrap_err();
        assert!(err.reason.contains("SWITCHBOARD_TWILIO_MAX_CPS"), "{err}");
    }

    #[test]
    fn targets_are_checked_field_by_field() {
        let now = crate::domain::now();
        let target = |phone: &str| {
            CampaignTarget::new("t".into(), "c".into(), String::new(), phone.into(), now)
        };
        let ok = target("+819012345678");
        assert_eq!(ok.validate("targets[0]"), Ok(()));
        assert_eq!(
            ok.target_key, "+819012345678",
            "the key defaults to the phone"
        );
        assert_eq!(
            target("090-1234-5678")
                .validate("targets[2]")
                .unwrap_err()
                .field,
            "targets[2].phone"
        );
        let mut long_key = ok.clone();
        long_key.target_key = "k".repeat(MAX_TARGET_KEY_CHARS + 1);
        assert_eq!(
            long_key.validate("targets[0]").unwrap_err().field,
            "targets[0].target_key"
        );
        let mut zone = ok.clone();
        zone.time_zone = "Asia/Tokio".into();
        assert_eq!(
            zone.validate("targets[0]").unwrap_err().field,
            "targets[0].time_zone"
        );
        zone.time_zone = "America/New_York".into();
        assert_eq!(zone.validate("targets[0]"), Ok(()));
    }

    #[test]
    fn the_state_machine_allows_only_the_documented_changes() {
        use CampaignAction::*;
        use CampaignState::*;
        let now = crate::domain::now();
        let later = Some(now + Duration::hours(1));
        assert_eq!(Running.apply(Pause, None, now), Ok(Paused));
        assert_eq!(Scheduled.apply(Pause, later, now), Ok(Paused));
        assert_eq!(Paused.apply(Resume, None, now), Ok(Running));
        assert_eq!(Paused.apply(Resume, later, now), Ok(Scheduled));
        for from in [Scheduled, Running, Paused, Canceled] {
            assert_eq!(from.apply(Cancel, None, now), Ok(Canceled), "{from}");
        }
        for (from, action) in [
            (Paused, Pause),
            (Completed, Pause),
            (Canceled, Pause),
            (Running, Resume),
            (Scheduled, Resume),
            (Completed, Resume),
            (Canceled, Resume),
            (Completed, Cancel),
        ] {
            let err = from.apply(action, None, now).unwrap_err();
            assert_eq!(err, CampaignTransitionError { from, action });
        }
        assert_eq!(
            Completed.apply(Pause, None, now).unwrap_err().to_string(),
            "cannot pause a completed campaign"
        );
    }

    #[test]
    fn a_future_start_schedules_the_campaign() {
        let now = crate::domain::now();
        assert_eq!(CampaignState::initial(None, now), CampaignState::Running);
        assert_eq!(
            CampaignState::initial(Some(now), now),
            CampaignState::Running
        );
        assert_eq!(
            CampaignState::initial(Some(now + Duration::seconds(1)), now),
            CampaignState::Scheduled
        );
    }

    #[test]
    fn do_not_call_numbers_are_normalised() {
        assert_eq!(
            normalize_phone("phones[0]", " +1 (415) 555-0123 ").as_deref(),
            Ok("+14155550123")
        );
        assert_eq!(
            normalize_phone("phones[1]", "4155550123")
                .unwrap_err()
                .field,
            "phones[1]"
        );
    }

    #[test]
    fn progress_counts_every_state() {
        let mut progress = CampaignProgress::default();
        for (i, state) in TargetState::ALL.into_iter().enumerate() {
            progress.add(state, i as u64 + 1);
        }
        assert_eq!(progress.total(), (1..=8).sum::<u64>());
        assert_eq!(progress.skipped, 8);
    }

    #[test]
    fn the_stored_form_is_camel_case_with_times_in_milliseconds() {
        let c = campaign();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["_id"], "c1");
        assert_eq!(json["fromNumbers"][0], "+14155550100");
        assert_eq!(json["createdAt"], c.created_at.timestamp_millis());
        let back: Campaign = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
