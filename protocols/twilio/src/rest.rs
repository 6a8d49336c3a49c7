//! Shapes of the Twilio REST calls the control plane makes, after Twilio's
//! OpenAPI description of the 2010-04-01 API (`tests/fixtures/twilio-api-v2010-calls.json`).
//!
//! Requests are form-encoded with PascalCase names, booleans `true`/`false` and list values
//! as repeated keys: each request type has `path(…)` and `to_form()`, and `from_form(…)` so
//! the simulator's fake REST endpoints can read what the control plane sends. Responses are
//! JSON with snake_case names, read leniently (every field optional, as the spec marks them
//! nullable; unknown fields ignored). There is no HTTP client here: that lives in
//! `control-plane/src/twilio_api.rs`.
//!
//! Calls are in `rest/calls.rs`, conferences in `rest/conferences.rs`, the JSON resources in
//! `rest/resources.rs` and form reading/writing in `rest/form.rs`.

mod calls;
mod conferences;
mod form;
mod resources;

pub use calls::{CallInstructions, CallUpdateStatus, CreateCall, UpdateCall};
pub use conferences::{CreateParticipant, UpdateConference, UpdateParticipant};
pub use resources::{
    CallResource, ConferenceResource, ErrorResponse, ParticipantList, ParticipantResource,
};

/// Where the API lives.
pub const API_BASE_URL: &str = "https://api.twilio.com";

/// The API version in every path.
pub const API_VERSION: &str = "2010-04-01";

/// Longest `Twiml` parameter Twilio accepts, in characters.
pub const TWIML_MAX_CHARS: usize = 4000;

/// Why a request would be refused, or a form could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// `Twiml` is longer than [`TWIML_MAX_CHARS`].
    #[error("twiml of {chars} characters exceeds twilio's limit of 4000")]
    TwimlTooLong {
        /// Characters in the document.
        chars: usize,
    },
    /// A required form field is absent.
    #[error("missing form field {0}")]
    MissingField(&'static str),
    /// A form field's value is not of its type.
    #[error("form field {0} has an invalid value")]
    InvalidField(&'static str),
    /// A create-call form carries none of `Url`, `Twiml`, `ApplicationSid`.
    #[error("form has none of Url, Twiml, ApplicationSid")]
    Instructions,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::CallProgressEvent;

    #[test]
    fn paths_follow_the_api_and_escape_segments() {
        assert_eq!(
            CreateCall::path("AC1"),
            "/2010-04-01/Accounts/AC1/Calls.json"
        );
        assert_eq!(
            UpdateCall::path("AC1", "CA2"),
            "/2010-04-01/Accounts/AC1/Calls/CA2.json"
        );
        assert_eq!(
            CreateParticipant::path("AC1", "handoff 1/é"),
            "/2010-04-01/Accounts/AC1/Conferences/handoff%201%2F%C3%A9/Participants.json"
        );
        assert_eq!(
            UpdateParticipant::path("AC1", "CF3", "customer"),
            "/2010-04-01/Accounts/AC1/Conferences/CF3/Participants/customer.json"
        );
        assert_eq!(
            UpdateConference::path("AC1", "CF3"),
            "/2010-04-01/Accounts/AC1/Conferences/CF3.json"
        );
    }

    #[test]
    fn status_callback_events_are_repeated_keys() {
        let call = CreateCall {
            status_callback_events: vec![
                CallProgressEvent::Initiated,
                CallProgressEvent::Ringing,
                CallProgressEvent::Answered,
                CallProgressEvent::Completed,
            ],
            ..CreateCall::new(
                "+14155550123",
                "+14155550100",
                CallInstructions::Twiml("<Response/>".into()),
            )
        };
        let form = call.to_form();
        let events: Vec<&str> = form
            .iter()
            .filter(|(k, _)| k == "StatusCallbackEvent")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(events, ["initiated", "ringing", "answered", "completed"]);
    }

    #[test]
    fn twiml_over_4000_characters_is_refused() {
        let call = |n| CreateCall::new("a", "b", CallInstructions::Twiml("é".repeat(n)));
        assert_eq!(call(4000).validate(), Ok(()));
        assert_eq!(
            call(4001).validate(),
            Err(RestError::TwimlTooLong { chars: 4001 })
        );
        assert_eq!(
            UpdateCall::redirect_twiml("x".repeat(4001)).validate(),
            Err(RestError::TwimlTooLong { chars: 4001 })
        );
    }

    #[test]
    fn hang_up_is_status_completed() {
        assert_eq!(
            UpdateCall::hang_up().to_form(),
            [("Status".to_owned(), "completed".to_owned())]
        );
        assert_eq!(
            UpdateConference::end().to_form(),
            [("Status".to_owned(), "completed".to_owned())]
        );
    }

    #[test]
    fn url_wins_over_twiml_as_on_twilio() {
        let both = [
            ("To".to_owned(), "a".to_owned()),
            ("From".to_owned(), "b".to_owned()),
            ("Twiml".to_owned(), "<Response/>".to_owned()),
            ("Url".to_owned(), "https://x".to_owned()),
        ];
        let call = CreateCall::from_form(&both).expect("valid");
        assert_eq!(
            call.instructions,
            CallInstructions::Url {
                url: "https://x".to_owned(),
                method: None
            }
        );
        assert_eq!(
            CreateCall::from_form(&both[..2]),
            Err(RestError::Instructions)
        );
    }
}
