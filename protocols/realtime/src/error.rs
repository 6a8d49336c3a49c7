//! The one error type of the codecs: a frame that could not be decoded.
//!
//! Messages never quote the frame's content (audio, prompts, transcripts): the
//! serde reason is redacted and the event type is cut short.

use crate::wire;

/// A frame that could not be decoded. The connection goes on: callers count
/// the frame as rejected and read the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not a JSON object.
    #[error("invalid json: {reason}")]
    Json {
        /// What serde_json reported, with quoted input removed.
        reason: String,
    },
    /// A JSON object without a string `type`.
    #[error("missing event type")]
    MissingType,
    /// A known event type whose fields do not match the protocol.
    #[error("invalid {event_type} event: {reason}")]
    Invalid {
        /// The event type (cut to 64 bytes).
        event_type: String,
        /// What was wrong, with quoted input removed.
        reason: String,
    },
    /// A field of the other dialect, e.g. a beta `temperature` in a GA
    /// `session.update` (the GA server rejects it).
    #[error("{event_type} event: field `{field}` belongs to the {dialect} dialect")]
    DialectMismatch {
        /// The event type.
        event_type: String,
        /// The offending field.
        field: String,
        /// The dialect the field belongs to.
        dialect: &'static str,
    },
}

impl ParseError {
    pub(crate) fn json(err: &serde_json::Error) -> Self {
        Self::Json {
            reason: wire::redact(err),
        }
    }

    pub(crate) fn invalid(event_type: &str, err: &serde_json::Error) -> Self {
        Self::invalid_reason(event_type, wire::redact(err))
    }

    pub(crate) fn invalid_reason(event_type: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            event_type: wire::truncate(event_type, 64).into_owned(),
            reason: reason.into(),
        }
    }
}
