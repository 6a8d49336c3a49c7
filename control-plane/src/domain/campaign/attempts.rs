//! What becomes of a target as its calls go: the rules the dispatcher and the stores
//! apply to one target, kept pure so they are tested without either.
//!
//! A target is *due* while pending or waiting for a retry whose time has come. The
//! dispatcher *takes* a due target ([`TargetTake`]) by an atomic change that names the
//! attempts it saw: to dial it (attempt `attempts + 1`, with the session id of the call
//! it is about to place), to skip it (do-not-call), or to defer it (its calling window is
//! closed). Two dispatchers, or one restarted, cannot both take the same attempt: the
//! second finds the attempts or the state changed.
//!
//! Once taken for a call, the target follows its session ([`after_call`]): in-call when
//! answered; done when the call ends answered; else retried as the campaign's policy says
//! or failed with the reason. Each change names the call it is about, so a late status
//! of an earlier attempt changes nothing.

use super::{CampaignTarget, RetryPolicy, TargetState};
use crate::domain::{CallError, CallSession, CallStatus, Timestamp};

/// What a dispatcher does with a due target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetTake {
    /// Dial it: the next attempt, placed as the session `call_id`.
    Dial { call_id: String },
    /// Never dial it: it ends skipped with `error` (e.g. `campaign.do_not_call`).
    Skip { error: CallError },
    /// Not before `until` (its window is closed); it stays due-later in its state.
    Defer { until: Timestamp },
}

/// A change to a target that is being called, recorded only while its current call is
/// the one it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUpdate {
    pub state: TargetState,
    /// Attempts used after the change (a placement Twilio refused without acting gives
    /// its attempt back).
    pub attempts: u32,
    pub last_call_status: Option<CallStatus>,
    pub last_error: Option<CallError>,
    pub next_attempt_at: Option<Timestamp>,
}

/// The skip reason of a number on the do-not-call list.
pub const DO_NOT_CALL: &str = "campaign.do_not_call";

impl TargetState {
    /// True once nothing more happens to the target.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TargetState::Done | TargetState::Failed | TargetState::Canceled | TargetState::Skipped
        )
    }

    /// The states a dispatcher may take a target from.
    pub fn is_due_state(self) -> bool {
        matches!(self, TargetState::Pending | TargetState::RetryWait)
    }

    /// The states that hold one of the campaign's concurrency slots.
    pub fn holds_slot(self) -> bool {
        matches!(self, TargetState::Dialing | TargetState::InCall)
    }
}

/// What a target on attempt `attempts` becomes now that its call `session` is in its
/// current status; `None` when the status changes nothing for the target (queued,
/// ringing).
pub fn after_call(
    attempts: u32,
    policy: &RetryPolicy,
    session: &CallSession,
    now: Timestamp,
) -> Option<TargetUpdate> {
    let status = session.status;
    let update = |state| TargetUpdate {
        state,
        attempts,
        last_call_status: Some(status),
        last_error: None,
        next_attempt_at: None,
    };
    match status {
        CallStatus::Queued | CallStatus::Ringing => None,
        CallStatus::InProgress => Some(update(TargetState::InCall)),
        // Answered: whoever picked up talked to the agent (or was handed to a human).
        CallStatus::Completed | CallStatus::HandedOff => Some(update(TargetState::Done)),
        CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Failed | CallStatus::Canceled => {
            let error = Some(session.error.clone().unwrap_or_else(|| CallError {
                code: format!("call.{}", status.as_str().replace('-', "_")),
                message: format!("the call ended {status}"),
            }));
            let retried = policy.retry_on.contains(&status) && attempts < policy.max_attempts;
            Some(if retried {
                TargetUpdate {
                    last_error: error,
                    next_attempt_at: Some(now + policy.backoff()),
                    ..update(TargetState::RetryWait)
                }
            } else {
                TargetUpdate {
                    last_error: error,
                    ..update(TargetState::Failed)
                }
            })
        }
    }
}

/// `target` once `take` is applied at `now` (the caller checked it was due).
pub fn apply_take(target: &CampaignTarget, take: &TargetTake, now: Timestamp) -> CampaignTarget {
    let mut after = target.clone();
    after.updated_at = now;
    match take {
        TargetTake::Dial { call_id } => {
            after.state = TargetState::Dialing;
            after.attempts = target.attempts.saturating_add(1);
            after.last_call_id.clone_from(call_id);
            after.last_call_status = None;
            after.next_attempt_at = None;
        }
        TargetTake::Skip { error } => {
            after.state = TargetState::Skipped;
            after.last_error = Some(error.clone());
            after.next_attempt_at = None;
        }
        TargetTake::Defer { until } => after.next_attempt_at = Some(*until),
    }
    after
}

/// `target` once `update` is recorded at `now`.
pub fn apply_update(
    target: &CampaignTarget,
    update: &TargetUpdate,
    now: Timestamp,
) -> CampaignTarget {
    let mut after = target.clone();
    after.state = update.state;
    after.attempts = update.attempts;
    if update.last_call_status.is_some() {
        after.last_call_status = update.last_call_status;
    }
    if update.last_error.is_some() {
        after.last_error.clone_from(&update.last_error);
    }
    after.next_attempt_at = update.next_attempt_at;
    after.updated_at = now;
    after
}

impl RetryPolicy {
    /// The wait before a retried attempt.
    pub fn backoff(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(i64::try_from(self.backoff_ms).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallDirection;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            retry_on: vec![CallStatus::Busy, CallStatus::NoAnswer],
            backoff_ms: 30_000,
        }
    }

    fn ended(status: CallStatus) -> CallSession {
        let mut s = CallSession::new(
            CallDirection::Outbound,
            "+14155550100".into(),
            "+14155550123".into(),
            crate::domain::now(),
        );
        s.status = status;
        s
    }

    #[test]
    fn an_answered_call_is_in_call_then_done() {
        let now = crate::domain::now();
        let live = after_call(1, &policy(), &ended(CallStatus::InProgress), now).unwrap();
        assert_eq!(live.state, TargetState::InCall);
        let done = after_call(1, &policy(), &ended(CallStatus::Completed), now).unwrap();
        assert_eq!(done.state, TargetState::Done);
        assert_eq!(done.last_call_status, Some(CallStatus::Completed));
        assert_eq!(
            after_call(1, &policy(), &ended(CallStatus::Ringing), now),
            None
        );
    }

    #[test]
    fn a_retried_status_waits_the_backoff_until_the_attempts_are_used() {
        let now = crate::domain::now();
        let busy = after_call(1, &policy(), &ended(CallStatus::Busy), now).unwrap();
        assert_eq!(busy.state, TargetState::RetryWait);
        assert_eq!(
            busy.next_attempt_at,
            Some(now + chrono::Duration::seconds(30))
        );
        assert_eq!(busy.last_error.unwrap().code, "call.busy");
        let last = after_call(3, &policy(), &ended(CallStatus::NoAnswer), now).unwrap();
        assert_eq!(last.state, TargetState::Failed);
        assert_eq!(last.last_error.unwrap().code, "call.no_answer");
    }

    #[test]
    fn a_status_the_policy_does_not_retry_fails_with_the_calls_own_error() {
        let now = crate::domain::now();
        let mut failed = ended(CallStatus::Failed);
        failed.error = Some(CallError {
            code: "twilio.21211".into(),
            message: "Invalid 'To' Phone Number".into(),
        });
        let update = after_call(1, &policy(), &failed, now).unwrap();
        assert_eq!(update.state, TargetState::Failed);
        assert_eq!(update.last_error.unwrap().code, "twilio.21211");
        assert_eq!(update.attempts, 1);
    }

    #[test]
    fn final_states_and_slots() {
        for state in TargetState::ALL {
            assert!(
                !(state.is_final() && state.holds_slot()),
                "{state:?} both final and holding a slot"
            );
            assert!(!(state.is_final() && state.is_due_state()), "{state:?}");
        }
        assert!(TargetState::Dialing.holds_slot() && TargetState::InCall.holds_slot());
    }
}
