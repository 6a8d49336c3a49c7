//! Form-encoded requests Twilio makes to us (docs/protocols.md §2.1–2.4): the voice webhook, call
//! status callbacks, the asynchronous AMD callback, `<Stream>` status callbacks and
//! conference status callbacks; plus [`form_params`], the body reader signature checks use.
//!
//! Reading is lenient: unknown parameters are ignored (Twilio adds some over time), open
//! value sets fall back to an `Unknown`/`Other` variant, and only the parameters we cannot act
//! without are required. A GET webhook's query string parses the same way. Signatures are
//! checked in [`signature`](crate::signature); the TwiML answer is built with
//! [`twiml`](crate::twiml). Each type also writes its body (`to_form_body`), for the
//! simulator that plays Twilio.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::vocabulary::{
    AnsweredBy, CallDirection, CallStatus, ConferenceCallbackEvent, StreamEvent,
};

/// The voice webhook: Twilio asks what to do with a call and expects TwiML back (docs/protocols.md §2.2).
/// Also the part of a call status callback that describes the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceWebhook {
    /// `CallSid` (`CA…`).
    pub call_sid: String,
    /// `AccountSid` (`AC…`).
    pub account_sid: String,
    /// `From`: the caller, E.164 (or a client/SIP identity).
    pub from: String,
    /// `To`: the called number.
    pub to: String,
    /// `CallStatus`: `ringing` on an inbound call's first request, `in-progress` when an
    /// answered outbound call fetches its `Url`.
    pub call_status: CallStatus,
    /// `Direction`.
    pub direction: CallDirection,
    /// `ApiVersion`, `2010-04-01`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Caller`.
    #[serde(default)]
    pub caller: Option<String>,
    /// `Called`.
    #[serde(default)]
    pub called: Option<String>,
    /// `ForwardedFrom`.
    #[serde(default)]
    pub forwarded_from: Option<String>,
    /// `CallerName` (CNAM lookup, when enabled).
    #[serde(default)]
    pub caller_name: Option<String>,
    /// `ParentCallSid`, for a child leg.
    #[serde(default)]
    pub parent_call_sid: Option<String>,
    /// `CallToken`: lets a `<Dial>`/REST call forward the caller ID (already URL-decoded once;
    /// the value is itself percent-encoded JSON).
    #[serde(default)]
    pub call_token: Option<String>,
    /// `StirVerstat`: SHAKEN/STIR attestation of the caller ID.
    #[serde(default)]
    pub stir_verstat: Option<String>,
    /// `AnsweredBy`, with synchronous answering-machine detection.
    #[serde(default)]
    pub answered_by: Option<AnsweredBy>,
    /// `FromCity`.
    #[serde(default)]
    pub from_city: Option<String>,
    /// `FromState`.
    #[serde(default)]
    pub from_state: Option<String>,
    /// `FromZip`.
    #[serde(default)]
    pub from_zip: Option<String>,
    /// `FromCountry`.
    #[serde(default)]
    pub from_country: Option<String>,
    /// `ToCity`.
    #[serde(default)]
    pub to_city: Option<String>,
    /// `ToState`.
    #[serde(default)]
    pub to_state: Option<String>,
    /// `ToZip`.
    #[serde(default)]
    pub to_zip: Option<String>,
    /// `ToCountry`.
    #[serde(default)]
    pub to_country: Option<String>,
}

/// A call status callback (docs/protocols.md §2.4): the call's parameters plus the progress-event fields.
/// Callbacks may arrive out of order: order them by `sequence_number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatusCallback {
    /// Everything a voice webhook carries; `call.call_status` is the new status.
    pub call: VoiceWebhook,
    /// The progress-event fields.
    pub progress: CallProgress,
}

/// The fields a call status callback adds to the voice webhook's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallProgress {
    /// `CallbackSource`, `call-progress-events`.
    #[serde(default)]
    pub callback_source: Option<String>,
    /// `SequenceNumber`: 0 for the call's first callback, +1 per callback.
    #[serde(default)]
    pub sequence_number: Option<u64>,
    /// `Timestamp` (RFC 2822), as sent.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `CallDuration` in seconds, on the final event.
    #[serde(default)]
    pub call_duration: Option<u64>,
    /// `Duration`: billed minutes, rounded up, on the final event.
    #[serde(default)]
    pub duration: Option<u64>,
    /// `SipResponseCode`, on the final event (e.g. 200, 487).
    #[serde(default)]
    pub sip_response_code: Option<u16>,
    /// `RecordingUrl`, if the call was recorded.
    #[serde(default)]
    pub recording_url: Option<String>,
    /// `RecordingSid`.
    #[serde(default)]
    pub recording_sid: Option<String>,
    /// `RecordingDuration` in seconds.
    #[serde(default)]
    pub recording_duration: Option<u64>,
}

/// The asynchronous answering-machine detection result (`AsyncAmdStatusCallback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AmdStatusCallback {
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`.
    pub call_sid: String,
    /// `AnsweredBy`.
    pub answered_by: AnsweredBy,
    /// `MachineDetectionDuration` in milliseconds.
    #[serde(default)]
    pub machine_detection_duration: Option<u64>,
}

/// A `<Stream statusCallback>` request: the only place a handshake failure's reason shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamStatusCallback {
    /// `AccountSid`.
    pub account_sid: String,
    /// `CallSid`.
    pub call_sid: String,
    /// `StreamSid` (`MZ…`).
    pub stream_sid: String,
    /// `StreamEvent`.
    pub stream_event: StreamEvent,
    /// `StreamName`: the `<Stream name>`, if set.
    #[serde(default)]
    pub stream_name: Option<String>,
    /// `StreamError`, on `stream-error`.
    #[serde(default)]
    pub stream_error: Option<String>,
    /// `Timestamp` (ISO 8601), as sent.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// A `<Conference statusCallback>` request (docs/protocols.md §2.1). Participant events carry the
/// participant's fields; `conference-end` carries the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConferenceStatusCallback {
    /// `ConferenceSid` (`CF…`).
    pub conference_sid: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `StatusCallbackEvent`.
    pub status_callback_event: ConferenceCallbackEvent,
    /// `FriendlyName`: the room name of `<Conference>`.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// `SequenceNumber`, to order callbacks.
    #[serde(default)]
    pub sequence_number: Option<u64>,
    /// `Timestamp` (RFC 2822), as sent.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `CallSid` of the participant (participant events).
    #[serde(default)]
    pub call_sid: Option<String>,
    /// `ParticipantLabel`.
    #[serde(default)]
    pub participant_label: Option<String>,
    /// `Muted`.
    #[serde(default)]
    pub muted: Option<bool>,
    /// `Hold`.
    #[serde(default)]
    pub hold: Option<bool>,
    /// `Coaching`.
    #[serde(default)]
    pub coaching: Option<bool>,
    /// `EndConferenceOnExit`.
    #[serde(default)]
    pub end_conference_on_exit: Option<bool>,
    /// `StartConferenceOnEnter`.
    #[serde(default)]
    pub start_conference_on_enter: Option<bool>,
    /// `ParticipantCallStatus` (`participant-leave`).
    #[serde(default)]
    pub participant_call_status: Option<CallStatus>,
    /// `ReasonParticipantLeft` (`participant-leave`), e.g. `participant_hung_up`.
    #[serde(default)]
    pub reason_participant_left: Option<String>,
    /// `ReasonConferenceEnded` (`conference-end`), e.g. `last-participant-left`.
    #[serde(default)]
    pub reason_conference_ended: Option<String>,
    /// `CallSidEndingConference` (`conference-end`).
    #[serde(default)]
    pub call_sid_ending_conference: Option<String>,
    /// `ParticipantLabelEndingConference` (`conference-end`).
    #[serde(default)]
    pub participant_label_ending_conference: Option<String>,
}

/// Why a webhook body was not read: a required parameter is missing, a number or boolean
/// is malformed, or a parameter is repeated. Messages name parameters, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid webhook body: {0}")]
pub struct WebhookError(String);

// === parsing ===

/// Reads an `application/x-www-form-urlencoded` body (or query string) into its parameters,
/// in order, repeated names kept: `+` is a space, `%XX` a byte, invalid UTF-8 replaced.
/// Never fails: this is what Twilio's signature is computed over.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            (form_decode(name), form_decode(value))
        })
        .collect()
}

impl VoiceWebhook {
    /// Reads a voice webhook body (or a GET webhook's query string).
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        from_form(body)
    }

    /// Writes the body Twilio would send (the simulator's side); unset fields omitted.
    pub fn to_form_body(&self) -> String {
        to_form(self)
    }
}

impl CallStatusCallback {
    /// Reads a call status callback body.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        Ok(Self {
            call: from_form(body)?,
            progress: from_form(body)?,
        })
    }

    /// Writes the body Twilio would send (the simulator's side); unset fields omitted.
    pub fn to_form_body(&self) -> String {
        let call = to_form(&self.call);
        let progress = to_form(&self.progress);
        if progress.is_empty() {
            call
        } else {
            format!("{call}&{progress}")
        }
    }
}

impl AmdStatusCallback {
    /// Reads an asynchronous AMD callback body.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        from_form(body)
    }

    /// Writes the body Twilio would send (the simulator's side); unset fields omitted.
    pub fn to_form_body(&self) -> String {
        to_form(self)
    }
}

impl StreamStatusCallback {
    /// Reads a `<Stream>` status callback body.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        from_form(body)
    }

    /// Writes the body Twilio would send (the simulator's side); unset fields omitted.
    pub fn to_form_body(&self) -> String {
        to_form(self)
    }
}

impl ConferenceStatusCallback {
    /// Reads a conference status callback body.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        from_form(body)
    }

    /// Writes the body Twilio would send (the simulator's side); unset fields omitted.
    pub fn to_form_body(&self) -> String {
        to_form(self)
    }
}

fn from_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, WebhookError> {
    serde_urlencoded::from_bytes(body).map_err(|err| WebhookError(err.to_string()))
}

fn to_form<T: Serialize>(value: &T) -> String {
    serde_urlencoded::to_string(value)
        .expect("a flat struct of strings, numbers and booleans always encodes")
}

fn form_decode(input: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        rest = tail;
        match first {
            b'+' => bytes.push(b' '),
            b'%' => match (tail.first().and_then(hex), tail.get(1).and_then(hex)) {
                (Some(high), Some(low)) => {
                    bytes.push((high << 4) | low);
                    rest = &tail[2..];
                }
                _ => bytes.push(b'%'),
            },
            other => bytes.push(other),
        }
    }
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

fn hex(digit: &u8) -> Option<u8> {
    char::from(*digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_params_decode_like_form_urlencoded() {
        assert_eq!(
            form_params(
                b"From=%2B14155550199&Name=a+b&Empty=&Bare&&Tag=b&Tag=a&Bad=%zz%4&U=%C3%A9%FF"
            ),
            [
                ("From", "+14155550199"),
                ("Name", "a b"),
                ("Empty", ""),
                ("Bare", ""),
                ("Tag", "b"),
                ("Tag", "a"),
                ("Bad", "%zz%4"),
                ("U", "é\u{FFFD}"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(form_params(b"").is_empty());
    }

    #[test]
    fn errors_name_the_parameter_not_the_value() {
        let err = VoiceWebhook::parse(b"AccountSid=AC1&From=secret").expect_err("no CallSid");
        assert!(err.to_string().contains("CallSid"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = CallStatusCallback::parse(
            b"CallSid=CA1&AccountSid=AC1&From=a&To=b&CallStatus=completed&Direction=inbound&CallDuration=secret",
        )
        .expect_err("bad number");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
