//! The system-of-record model: agents, call sessions, their status machine and their
//! conversation log, campaigns, with the rules that keep them right.
//!
//! Nothing here knows about gRPC, BSON or files: `grpc::convert` maps the wire types to
//! these, and every `Store` implementation persists them. Read `call_session` first.

pub mod agent_settings;
pub mod call_session;
pub mod campaign;
pub mod conversation;
pub mod template;

use chrono::{DateTime, SubsecRound, Utc};

pub use agent_settings::{
    AgentMode, AgentSettings, Fallback, FallbackAction, HandoffTarget, InputTranscription,
    RealtimeProvider, Tool, TurnDetection, TurnDetectionType,
};
pub use call_session::{
    CallDirection, CallError, CallSession, CallStatus, Customer, StatusChange, TransitionError,
    Usage,
};
pub use campaign::{
    CallWindow, Campaign, CampaignAction, CampaignLimits, CampaignProgress, CampaignState,
    CampaignTarget, CampaignTransitionError, DoNotCallEntry, Pacing, RetryPolicy, TargetOutcome,
    TargetState, TargetTake, TargetUpdate,
};
pub use conversation::{AppendError, AppendPlan, ConversationItem, ItemKind, Role};

/// Timestamps are kept at millisecond precision, the precision MongoDB stores, so a
/// value reads back exactly as it was written from every store.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to milliseconds.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

/// A new identifier: a UUIDv7, so identifiers sort by creation time and "newest first"
/// is a reverse key order in every store.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A rejected field value: the field's path in the API and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    /// Path of the field, e.g. `agent_settings.tools[0].parameters_json_schema`.
    pub field: String,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Checks an E.164 number: `+`, a non-zero country digit, 8 to 15 digits in all.
pub fn validate_e164(field: &str, number: &str) -> Result<(), InvalidField> {
    let digits = number.strip_prefix('+').ok_or_else(|| {
        InvalidField::new(
            field,
            format!("{number:?} is not E.164: it must start with '+'"),
        )
    })?;
    let well_formed = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if well_formed {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!("{number:?} is not E.164: '+' then 8 to 15 digits, not starting with 0"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_real_numbers_and_names_the_field_otherwise() {
        for ok in ["+81312345678", "+14155550123", "+442071838750"] {
            assert_eq!(validate_e164("to", ok), Ok(()));
        }
        for bad in [
            "",
            "81312345678",
            "+0312345678",
            "+1415-555-0123",
            "+1234567",
            "+1234567890123456",
        ] {
            let err = validate_e164("phone_numbers[0]", bad).unwrap_err();
            assert_eq!(err.field, "phone_numbers[0]", "{bad}");
        }
    }

    #[test]
    fn ids_sort_by_creation() {
        let ids: Vec<String> = (0..100).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
