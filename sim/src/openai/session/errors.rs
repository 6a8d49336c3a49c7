//! The `error` events the simulator sends, in one place: type, code,
//! message and param as the real API words them where known (docs/protocols.md
//! §3.1 and §3.3, and the public issue threads its sources name), plausible
//! otherwise.

use switchboard_realtime::server_event::{ErrorDetails, ErrorEvent};
use switchboard_realtime::{ParseError, ServerEvent};

/// Client event types the server accepts, listed in the unknown-type error.
const SUPPORTED_TYPES: &str = "'session.update', 'input_audio_buffer.append', \
'input_audio_buffer.commit', 'input_audio_buffer.clear', 'conversation.item.create', \
'conversation.item.truncate', 'conversation.item.delete', 'conversation.item.retrieve', \
'response.create', 'response.cancel', 'output_audio_buffer.clear'";

/// An `error` event before it gets its server event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) kind: &'static str,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    /// The client's `event_id`, echoed.
    pub(crate) event_id: Option<String>,
}

impl ApiError {
    fn invalid(code: &'static str, message: String, param: Option<&str>) -> Self {
        Self {
            kind: "invalid_request_error",
            code,
            message,
            param: param.map(str::to_owned),
            event_id: None,
        }
    }

    /// Echoes the client event id.
    pub(crate) fn for_event(mut self, event_id: Option<String>) -> Self {
        self.event_id = event_id;
        self
    }

    /// The wire event.
    pub(crate) fn into_event(self, server_event_id: String) -> ServerEvent<'static> {
        ServerEvent::Error(ErrorEvent {
            event_id: server_event_id,
            error: ErrorDetails {
                kind: self.kind.to_owned(),
                code: Some(self.code.to_owned()),
                message: self.message,
                param: self.param,
                event_id: self.event_id,
            },
        })
    }

    /// A frame the codec could not decode.
    pub(crate) fn from_parse(err: &ParseError) -> Self {
        match err {
            ParseError::Json { reason } => Self::invalid(
                "invalid_json",
                format!("The event could not be parsed as JSON: {reason}"),
                None,
            ),
            ParseError::MissingType => Self::missing("type"),
            ParseError::Invalid { event_type, reason } => match missing_field(reason) {
                Some(field) => Self::missing(field),
                None => Self::invalid(
                    "invalid_value",
                    format!("Invalid '{event_type}' event: {reason}"),
                    None,
                ),
            },
            ParseError::DialectMismatch { field, .. } => Self::invalid(
                "unknown_parameter",
                format!("Unknown parameter: '{field}'."),
                Some(field),
            ),
        }
    }

    pub(crate) fn missing(param: &str) -> Self {
        Self::invalid(
            "missing_required_parameter",
            format!("Missing required parameter: '{param}'."),
            Some(param),
        )
    }

    pub(crate) fn binary_frame() -> Self {
        Self::invalid(
            "invalid_json",
            "Binary frames are not supported; send events as JSON text".to_owned(),
            None,
        )
    }

    pub(crate) fn unknown_type(event_type: &str) -> Self {
        let shown: String = event_type.chars().take(64).collect();
        Self::invalid(
            "invalid_value",
            format!("Invalid value: '{shown}'. Supported values are: {SUPPORTED_TYPES}."),
            Some("type"),
        )
    }

    pub(crate) fn invalid_value(message: String, param: &str) -> Self {
        Self::invalid("invalid_value", message, Some(param))
    }

    pub(crate) fn bad_audio() -> Self {
        Self::invalid_value(
            "Invalid 'audio'. Expected base64-encoded audio bytes.".to_owned(),
            "audio",
        )
    }

    pub(crate) fn commit_empty(buffered_ms: u64) -> Self {
        Self::invalid(
            "input_audio_buffer_commit_empty",
            format!(
                "Error committing input audio buffer: buffer too small. Expected at least \
                 100ms of audio, but buffer only has {buffered_ms}.00ms of audio."
            ),
            None,
        )
    }

    pub(crate) fn item_not_found(item_id: &str, param: &str) -> Self {
        Self::invalid_value(format!("Item with item_id not found: {item_id}"), param)
    }

    pub(crate) fn not_truncatable() -> Self {
        Self::invalid_value(
            "Only model output audio messages can be truncated".to_owned(),
            "item_id",
        )
    }

    /// The error the Twilio samples run into (docs/protocols.md §4.2).
    pub(crate) fn already_shorter(audio_ms: u64, audio_end_ms: u64) -> Self {
        Self::invalid_value(
            format!("Audio content of {audio_ms}ms is already shorter than {audio_end_ms}ms"),
            "audio_end_ms",
        )
    }

    pub(crate) fn active_response(response_id: &str) -> Self {
        Self::invalid(
            "conversation_already_has_active_response",
            format!(
                "Conversation already has an active response in progress: {response_id}. \
                 Wait until the response is finished before creating a new one."
            ),
            None,
        )
    }

    pub(crate) fn cancel_not_active() -> Self {
        Self::invalid(
            "response_cancel_not_active",
            "Cancellation failed: no active response found".to_owned(),
            None,
        )
    }

    pub(crate) fn voice_locked() -> Self {
        Self::invalid(
            "cannot_update_voice",
            "Cannot update a conversation's voice if assistant audio is present.".to_owned(),
            Some("session.voice"),
        )
    }

    /// A `session.update` naming another model than the session's: the model is
    /// chosen in the connection URL and cannot be updated. The code is by analogy
    /// with `cannot_update_voice`.
    pub(crate) fn model_locked(current: &str, requested: &str) -> Self {
        let shown: String = requested.chars().take(64).collect();
        Self::invalid(
            "cannot_update_model",
            format!(
                "Cannot update a session's model: this session runs '{current}', chosen \
                 when connecting, and cannot switch to '{shown}'. Open a new session to use \
                 another model."
            ),
            Some("session.model"),
        )
    }

    pub(crate) fn websocket_only(event_type: &str) -> Self {
        Self::invalid_value(
            format!("'{event_type}' is only supported for WebRTC and SIP sessions"),
            "type",
        )
    }

    pub(crate) fn rate_limited(model: &str) -> Self {
        Self {
            kind: "tokens",
            code: "rate_limit_exceeded",
            message: format!(
                "Rate limit reached for {model} in organization org-sim on tokens per min \
                 (TPM): Limit 40000, Used 40000, Requested 1200. Please try again in 20s."
            ),
            param: None,
            event_id: None,
        }
    }

    /// The 60-minute limit (docs/protocols.md §3.1); the socket closes with 1001.
    pub(crate) fn session_expired() -> Self {
        Self::invalid(
            "session_expired",
            "Your session hit the maximum duration of 60 minutes.".to_owned(),
            None,
        )
    }
}

/// `missing field `x`` in a serde reason → `x`.
fn missing_field(reason: &str) -> Option<&str> {
    let rest = reason.split("missing field `").nth(1)?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_missing_fields_become_missing_parameters() {
        let err = ParseError::Invalid {
            event_type: "conversation.item.truncate".into(),
            reason: "missing field `item_id` at line 1 column 40".into(),
        };
        let api = ApiError::from_parse(&err);
        assert_eq!(api.code, "missing_required_parameter");
        assert_eq!(api.param.as_deref(), Some("item_id"));
    }

    #[test]
    fn the_already_shorter_message_matches_the_real_api() {
        let api = ApiError::already_shorter(9250, 57340);
        assert_eq!(
            api.message,
            "Audio content of 9250ms is already shorter than 57340ms"
        );
    }
}
