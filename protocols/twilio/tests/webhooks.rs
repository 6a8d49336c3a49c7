//! Webhook bodies against `fixtures/twilio-webhook-examples.json`.

use std::collections::BTreeMap;

use serde_json::Value;
use switchboard_twilio::vocabulary::{
    AnsweredBy, CallDirection, CallStatus, ConferenceCallbackEvent, StreamEvent,
};
use switchboard_twilio::webhooks::{
    form_params, AmdStatusCallback, CallStatusCallback, ConferenceStatusCallback,
    StreamStatusCallback, VoiceWebhook,
};

const EXAMPLES: &str = include_str!("fixtures/twilio-webhook-examples.json");

/// (example name, its parameters, the body Twilio sends for them).
fn examples() -> Vec<(String, BTreeMap<String, String>, String)> {
    let file: Value = serde_json::from_str(EXAMPLES).expect("examples are json");
    file.as_object()
        .expect("object")
        .iter()
        .filter(|(name, _)| !name.starts_with('_'))
        .map(|(name, params)| {
            let params: BTreeMap<String, String> =
                serde_json::from_value(params.clone()).expect("every value is a string");
            let body = serde_urlencoded::to_string(&params).expect("form encodes");
            (name.clone(), params, body)
        })
        .collect()
}

fn as_map(body: &str) -> BTreeMap<String, String> {
    form_params(body.as_bytes()).into_iter().collect()
}

#[test]
fn every_example_parses_and_keeps_every_parameter() {
    let examples = examples();
    assert_eq!(examples.len(), 14);
    for (name, params, body) in &examples {
        let body = body.as_bytes();
        // Written back, the parsed value must give the same parameters: nothing dropped.
        let written = if name.starts_with("voice_webhook") {
            VoiceWebhook::parse(body).map(|w| w.to_form_body())
        } else if name.starts_with("call_status_callback") {
            CallStatusCallback::parse(body).map(|w| w.to_form_body())
        } else if name.starts_with("async_amd") {
            AmdStatusCallback::parse(body).map(|w| w.to_form_body())
        } else if name.starts_with("stream_status_callback") {
            StreamStatusCallback::parse(body).map(|w| w.to_form_body())
        } else if name.starts_with("conference_status_callback") {
            ConferenceStatusCallback::parse(body).map(|w| w.to_form_body())
        } else {
            panic!("example {name} has no parser");
        };
        let written = written.unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(&as_map(&written), params, "{name}");
    }
}

fn body_of(name: &str) -> String {
    examples()
        .into_iter()
        .find(|(n, _, _)| n.starts_with(name))
        .map(|(_, _, body)| body)
        .unwrap_or_else(|| panic!("no example {name}"))
}

#[test]
fn inbound_voice_webhook_has_its_values() {
    let hook = VoiceWebhook::parse(body_of("voice_webhook_inbound").as_bytes()).expect("parses");
    assert_eq!(hook.call_sid, "CA5f2e9c1b7a3d48e6b0c4f1a2d3e4b5c6");
    assert_eq!(hook.from, "+14155550199");
    assert_eq!(hook.to, "+14155550100");
    assert_eq!(hook.call_status, CallStatus::Ringing);
    assert_eq!(hook.direction, CallDirection::Inbound);
    assert_eq!(hook.stir_verstat.as_deref(), Some("TN-Validation-Passed-A"));
    // CallToken is URL-decoded once; its value is itself percent-encoded JSON.
    assert_eq!(
        hook.call_token.as_deref(),
        Some("%7B%22parentCallInfoToken%22%3A%22eyJ...%22%7D")
    );
    let outbound =
        VoiceWebhook::parse(body_of("voice_webhook_outbound").as_bytes()).expect("parses");
    assert_eq!(outbound.call_status, CallStatus::InProgress);
    assert_eq!(outbound.direction, CallDirection::OutboundApi);
    assert_eq!(outbound.answered_by, Some(AnsweredBy::Human));
}

#[test]
fn status_callbacks_carry_ordering_and_outcome() {
    let completed = CallStatusCallback::parse(body_of("call_status_callback_completed").as_bytes())
        .expect("parses");
    assert_eq!(completed.call.call_status, CallStatus::Completed);
    assert!(completed.call.call_status.is_terminal());
    assert_eq!(completed.progress.sequence_number, Some(3));
    assert_eq!(completed.progress.call_duration, Some(47));
    assert_eq!(completed.progress.duration, Some(1));
    assert_eq!(completed.progress.sip_response_code, Some(200));
    assert_eq!(
        completed.progress.callback_source.as_deref(),
        Some("call-progress-events")
    );
    let no_answer = CallStatusCallback::parse(body_of("call_status_callback_no_answer").as_bytes())
        .expect("parses");
    assert_eq!(no_answer.call.call_status, CallStatus::NoAnswer);
    assert_eq!(no_answer.progress.sip_response_code, Some(487));
    let ringing = CallStatusCallback::parse(body_of("call_status_callback_ringing").as_bytes())
        .expect("parses");
    assert!(ringing.progress.sequence_number < completed.progress.sequence_number);
    assert_eq!(ringing.progress.call_duration, None);
}

#[test]
fn amd_stream_and_conference_callbacks_have_their_values() {
    let amd = AmdStatusCallback::parse(body_of("async_amd").as_bytes()).expect("parses");
    assert_eq!(amd.answered_by, AnsweredBy::MachineEndBeep);
    assert_eq!(amd.machine_detection_duration, Some(4210));

    let error = StreamStatusCallback::parse(body_of("stream_status_callback_error").as_bytes())
        .expect("parses");
    assert_eq!(error.stream_event, StreamEvent::Error);
    assert_eq!(
        error.stream_error.as_deref(),
        Some("Stream - WebSocket - Handshake Error")
    );
    assert_eq!(error.stream_name.as_deref(), Some("ai"));

    let leave = ConferenceStatusCallback::parse(
        body_of("conference_status_callback_participant_leave").as_bytes(),
    )
    .expect("parses");
    assert_eq!(
        leave.status_callback_event,
        ConferenceCallbackEvent::ParticipantLeave
    );
    assert_eq!(leave.participant_call_status, Some(CallStatus::Completed));
    assert_eq!(
        leave.reason_participant_left.as_deref(),
        Some("participant_hung_up")
    );
    assert_eq!(leave.end_conference_on_exit, Some(true));
    assert_eq!(leave.muted, Some(false));

    let end = ConferenceStatusCallback::parse(
        body_of("conference_status_callback_conference_end").as_bytes(),
    )
    .expect("parses");
    assert_eq!(
        end.status_callback_event,
        ConferenceCallbackEvent::ConferenceEnd
    );
    assert_eq!(
        end.friendly_name.as_deref(),
        Some("handoff-65a9f001c2b3d4e5f6a7b8c9")
    );
    assert_eq!(end.call_sid, None);
    assert_eq!(end.sequence_number, Some(6));
}

#[test]
fn unknown_parameters_and_values_are_tolerated() {
    let mut body = body_of("voice_webhook_inbound");
    body = body.replace("CallStatus=ringing", "CallStatus=paused");
    body.push_str("&NewTwilioParam=1&Direction2=x");
    let hook = VoiceWebhook::parse(body.as_bytes()).expect("lenient");
    assert_eq!(hook.call_status, CallStatus::Unknown("paused".to_owned()));
}

#[test]
fn missing_required_or_malformed_parameters_are_errors() {
    let body = body_of("voice_webhook_inbound");
    let without_sid: String = body
        .split('&')
        .filter(|pair| !pair.starts_with("CallSid="))
        .collect::<Vec<_>>()
        .join("&");
    assert!(VoiceWebhook::parse(without_sid.as_bytes()).is_err());
    let bad_sequence =
        body_of("call_status_callback_completed").replace("SequenceNumber=3", "SequenceNumber=x");
    assert!(CallStatusCallback::parse(bad_sequence.as_bytes()).is_err());
    let bad_bool = body_of("conference_status_callback_participant_join")
        .replace("Muted=false", "Muted=maybe");
    assert!(ConferenceStatusCallback::parse(bad_bool.as_bytes()).is_err());
}
