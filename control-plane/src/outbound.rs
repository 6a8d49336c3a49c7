//! What the control plane asks Twilio when it places a call: the `Calls.json` create
//! request for an outbound session, and how a failure to place it is recorded.
//!
//! Pure: the REST call itself is `twilio_api.rs`, the orchestration (create the session,
//! place the call, record the SID or the failure) is `Services::place_call` in `grpc.rs`.
//! Twilio fetches TwiML from the sidecar's voice webhook with `?callId=<session id>`,
//! which the sidecar passes on as `OpenInboundCall.call_id`, so the answered call runs
//! with its own session's agent; status callbacks carry the same `callId`, so they find
//! the session even before its call SID is stored.

use reqwest::Url;
use switchboard_twilio::rest::{CallInstructions, CreateCall};
use switchboard_twilio::vocabulary::{CallProgressEvent, HttpMethod};

use crate::domain::{CallError, CallSession, CallStatus, StatusChange};
use crate::twilio_api::TwilioError;

/// The query parameter the sidecar reads the session id from.
pub const CALL_ID_PARAM: &str = "callId";

/// `end_reason` of a session whose call Twilio did not place.
pub const NOT_PLACED: &str = "call_not_placed";

/// The create-call request for `session`: dial `to_number` from `from_number`, run the
/// sidecar's voice webhook once answered, report every call-progress event.
pub fn create_call(session: &CallSession, voice_url: &Url, status_url: &Url) -> CreateCall {
    CreateCall {
        status_callback: Some(with_call_id(status_url, &session.id)),
        status_callback_method: Some(HttpMethod::Post),
        status_callback_events: vec![
            CallProgressEvent::Initiated,
            CallProgressEvent::Ringing,
            CallProgressEvent::Answered,
            CallProgressEvent::Completed,
        ],
        ..CreateCall::new(
            session.to_number.clone(),
            session.from_number.clone(),
            CallInstructions::Url {
                url: with_call_id(voice_url, &session.id),
                method: Some(HttpMethod::Post),
            },
        )
    }
}

/// How a session whose call was not placed ends: `failed`, with Twilio's reason.
pub fn not_placed(error: &TwilioError) -> StatusChange {
    StatusChange {
        end_reason: NOT_PLACED.to_owned(),
        error: Some(CallError {
            code: error_code(error),
            message: error.to_string(),
        }),
        ..StatusChange::to(CallStatus::Failed)
    }
}

/// A stable code for dashboards: `twilio.<Twilio's error code>` as for failed calls
/// Twilio reports, else what kind of failure it was.
fn error_code(error: &TwilioError) -> String {
    match error {
        TwilioError::Rejected {
            code: 0, status, ..
        } => format!("twilio.http_{status}"),
        TwilioError::Rejected { code, .. } => format!("twilio.{code}"),
        TwilioError::Unreachable(_) => "twilio.unreachable".to_owned(),
        TwilioError::Invalid(_) => "twilio.invalid_request".to_owned(),
        TwilioError::Unexpected(_) => "twilio.unexpected_answer".to_owned(),
    }
}

fn with_call_id(url: &Url, call_id: &str) -> String {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair(CALL_ID_PARAM, call_id);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallDirection;

    fn session() -> CallSession {
        CallSession::new(
            CallDirection::Outbound,
            "+14155550100".into(),
            "+14155550123".into(),
            crate::domain::now(),
        )
    }

    #[test]
    fn the_call_runs_the_voice_webhook_of_its_session_and_reports_every_event() {
        let s = session();
        let voice = Url::parse("https://edge.example.com/api/twilio/voice").unwrap();
        let status = Url::parse("https://edge.example.com/api/twilio/status?region=eu").unwrap();
        let form = create_call(&s, &voice, &status).to_form();
        let get = |key: &str| -> Vec<&str> {
            form.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("To"), ["+14155550123"]);
        assert_eq!(get("From"), ["+14155550100"]);
        assert_eq!(
            get("Url"),
            [format!("https://edge.example.com/api/twilio/voice?callId={}", s.id).as_str()]
        );
        assert_eq!(
            get("StatusCallback"),
            [format!(
                "https://edge.example.com/api/twilio/status?region=eu&callId={}",
                s.id
            )
            .as_str()]
        );
        assert_eq!(
            get("StatusCallbackEvent"),
            ["initiated", "ringing", "answered", "completed"]
        );
    }

    #[test]
    fn a_call_not_placed_fails_with_twilios_code() {
        let refused = TwilioError::Rejected {
            status: 400,
            code: 21211,
            message: "Invalid 'To' Phone Number".into(),
        };
        let change = not_placed(&refused);
        assert_eq!(change.status, CallStatus::Failed);
        assert_eq!(change.end_reason, NOT_PLACED);
        let error = change.error.unwrap();
        assert_eq!(error.code, "twilio.21211");
        assert!(error.message.contains("Invalid 'To'"), "{}", error.message);
        let gone = not_placed(&TwilioError::Unreachable("connection refused".into()));
        assert_eq!(gone.error.unwrap().code, "twilio.unreachable");
    }
}
