//! A call session and its status machine.
//!
//! queued → ringing → in-progress → completed | failed | busy | no-answer | canceled |
//! handed-off. A call may skip intermediate states (an inbound call is answered before
//! we hear of it, so it starts in-progress) but never goes back, and nothing leaves a
//! final state. Twilio repeats callbacks, so a transition to the current state is
//! accepted and changes nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Failed,
    Busy,
    NoAnswer,
    Canceled,
    HandedOff,
}

impl CallStatus {
    /// Every status, in machine order.
    pub const ALL: [CallStatus; 9] = [
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Failed,
        CallStatus::Busy,
        CallStatus::NoAnswer,
        CallStatus::Canceled,
        CallStatus::HandedOff,
    ];

    /// The name Twilio and our records use (`in-progress`, `no-answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
            CallStatus::HandedOff => "handed-off",
        }
    }

    /// Parses the name [`as_str`](Self::as_str) gives.
    pub fn parse(name: &str) -> Option<CallStatus> {
        CallStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True once the call is over.
    pub fn is_final(self) -> bool {
        self.live_rank().is_none()
    }

    /// Position among the live states; `None` for final states.
    fn live_rank(self) -> Option<u8> {
        match self {
            CallStatus::Queued => Some(0),
            CallStatus::Ringing => Some(1),
            CallStatus::InProgress => Some(2),
            _ => None,
        }
    }

    /// Whether the machine allows `self → to` (a repeat of the current state is allowed
    /// and is a no-op).
    pub fn check_transition(self, to: CallStatus) -> Result<(), TransitionError> {
        if self == to {
            return Ok(());
        }
        let allowed = match (self.live_rank(), to.live_rank()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(from), Some(next)) => next > from,
        };
        if allowed {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused status change, naming both states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("call status cannot change from {from} to {to}{}", if from.is_final() { format!(": {from} is final") } else { String::new() })]
pub struct TransitionError {
    pub from: CallStatus,
    pub to: CallStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// The person on the other end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub phone: String,
    pub name: String,
    pub variables: BTreeMap<String, String>,
}

/// A machine-readable failure: a stable code a dashboard can group by, and detail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    pub code: String,
    pub message: String,
}

/// Token and audio usage over a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub input_audio_tokens: u64,
    pub output_audio_tokens: u64,
    pub total_tokens: u64,
    pub caller_audio_ms: u64,
    pub assistant_audio_ms: u64,
}

/// One call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSession {
    pub id: String,
    /// Empty when no agent could be found for the call.
    pub agent_id: String,
    pub direction: CallDirection,
    pub from_number: String,
    pub to_number: String,
    pub customer: Customer,
    pub variables: BTreeMap<String, String>,
    pub status: CallStatus,
    pub twilio_call_sid: String,
    pub twilio_stream_sid: String,
    pub campaign_id: String,
    /// The campaign target this call is an attempt for (with `campaign_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign_target_id: String,
    /// Highest stored `seq`, 0 when the conversation is empty. The items themselves
    /// are read apart from the session (`Store::list_items`): a long call's
    /// conversation is far larger than the rest of its record.
    pub last_seq: u64,
    pub end_reason: String,
    pub error: Option<CallError>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub usage: Usage,
    pub sidecar_id: String,
    /// Until when a live call is known to be carried (see `crate::liveness`): a media
    /// stream's control-plane replica renews it; once it has passed, the sweeper ends
    /// the session. `None` for calls nobody carries a stream for (conference and dial
    /// routes, which only Twilio's callbacks end) and for sessions stored before leases
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
}

/// A requested status change with what it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: CallStatus,
    /// Recorded when the new status is final.
    pub end_reason: String,
    pub error: Option<CallError>,
    /// Recorded when not empty and not known yet.
    pub twilio_call_sid: String,
}

impl StatusChange {
    pub fn to(status: CallStatus) -> Self {
        Self {
            status,
            end_reason: String::new(),
            error: None,
            twilio_call_sid: String::new(),
        }
    }
}

impl CallSession {
    /// A new session in `status` (queued for outbound calls, in-progress for inbound
    /// calls, which Twilio has answered by the time we hear of them).
    pub fn new(
        direction: CallDirection,
        from_number: String,
        to_number: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id: super::new_id(),
            agent_id: String::new(),
            direction,
            from_number,
            to_number,
            customer: Customer::default(),
            variables: BTreeMap::new(),
            status: CallStatus::Queued,
            twilio_call_sid: String::new(),
            twilio_stream_sid: String::new(),
            campaign_id: String::new(),
            campaign_target_id: String::new(),
            last_seq: 0,
            end_reason: String::new(),
            error: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
            usage: Usage::default(),
            sidecar_id: String::new(),
            lease_expires_at: None,
        }
    }

    /// Applies `change` at `now`. Returns the previous status when the status changed,
    /// `None` for a repeat of the current state (which records nothing).
    pub fn apply_status(
        &mut self,
        change: &StatusChange,
        now: Timestamp,
    ) -> Result<Option<CallStatus>, TransitionError> {
        self.status.check_transition(change.status)?;
        if self.twilio_call_sid.is_empty() && !change.twilio_call_sid.is_empty() {
            self.twilio_call_sid.clone_from(&change.twilio_call_sid);
            self.updated_at = now;
        }
        if self.status == change.status {
            return Ok(None);
        }
        let previous = self.status;
        self.status = change.status;
        self.updated_at = now;
        if change.status == CallStatus::InProgress && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if change.status.is_final() {
            self.ended_at = Some(now);
            self.end_reason.clone_from(&change.end_reason);
            if change.error.is_some() {
                self.error.clone_from(&change.error);
            }
        }
        Ok(Some(previous))
    }

    /// True while the call can still carry audio.
    pub fn is_live(&self) -> bool {
        !self.status.is_final()
    }

    /// True once a media stream was attached to the call (a sidecar took it).
    pub fn had_stream(&self) -> bool {
        !self.twilio_stream_sid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CallStatus::*;

    #[test]
    fn status_names_round_trip() {
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(CallStatus::parse("in_progress"), None);
    }

    #[test]
    fn live_states_move_forward_and_may_skip() {
        assert!(Queued.check_transition(Ringing).is_ok());
        assert!(Queued.check_transition(InProgress).is_ok());
        assert!(Queued.check_transition(Canceled).is_ok());
        assert!(Ringing.check_transition(NoAnswer).is_ok());
        assert!(InProgress.check_transition(HandedOff).is_ok());
        assert!(InProgress.check_transition(Ringing).is_err());
        assert!(Ringing.check_transition(Queued).is_err());
    }

    #[test]
    fn nothing_leaves_a_final_state_and_the_error_names_both_states() {
        for from in CallStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for to in CallStatus::ALL.into_iter().filter(|&s| s != from) {
                let err = from.check_transition(to).unwrap_err();
                let text = err.to_string();
                assert!(
                    text.contains(from.as_str()) && text.contains(to.as_str()),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn a_repeated_state_is_accepted_and_records_nothing() {
        let now = crate::domain::now();
        let mut session = CallSession::new(
            CallDirection::Outbound,
            "+14155550100".into(),
            "+14155550101".into(),
            now,
        );
        assert_eq!(
            session.apply_status(&StatusChange::to(InProgress), now),
            Ok(Some(Queued))
        );
        assert_eq!(
            session.apply_status(&StatusChange::to(InProgress), now),
            Ok(None)
        );
        let done = StatusChange {
            end_reason: "caller_hung_up".into(),
            ..StatusChange::to(Completed)
        };
        assert_eq!(session.apply_status(&done, now), Ok(Some(InProgress)));
        assert_eq!(session.apply_status(&done, now), Ok(None));
        assert_eq!(session.end_reason, "caller_hung_up");
        assert_eq!(session.started_at, Some(now));
        assert_eq!(session.ended_at, Some(now));
    }
}
