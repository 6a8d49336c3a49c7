//! `<Dial>` with its nouns `<Conference>` and `<Number>`: hand-off to human agents.

use super::element::{space_separated, Element};
use super::{TwimlError, PARTICIPANT_LABEL_MAX_CHARS};
use crate::vocabulary::{Beep, CallProgressEvent, ConferenceEvent, HttpMethod};

/// `<Dial>` to one `<Conference>` or one `<Number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    target: DialTarget,
    action: Option<String>,
    method: Option<HttpMethod>,
    timeout_secs: Option<u32>,
    caller_id: Option<String>,
    time_limit_secs: Option<u32>,
    answer_on_bridge: Option<bool>,
    record: Option<String>,
}

/// `<Conference>`: the body is the room name (account-scoped; keep PII out of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    room: String,
    muted: Option<bool>,
    beep: Option<Beep>,
    start_conference_on_enter: Option<bool>,
    end_conference_on_exit: Option<bool>,
    wait_url: Option<String>,
    wait_method: Option<HttpMethod>,
    max_participants: Option<u32>,
    participant_label: Option<String>,
    status_callback: Option<String>,
    status_callback_events: Vec<ConferenceEvent>,
    status_callback_method: Option<HttpMethod>,
}

/// `<Number>`: a phone number to dial, E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    number: String,
    send_digits: Option<String>,
    url: Option<String>,
    method: Option<HttpMethod>,
    status_callback: Option<String>,
    status_callback_events: Vec<CallProgressEvent>,
    status_callback_method: Option<HttpMethod>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DialTarget {
    Conference(Conference),
    Number(Number),
}

// === impl Dial ===

impl Dial {
    /// `<Dial><Conference>…</Conference></Dial>`.
    pub fn conference(conference: Conference) -> Self {
        Self::to(DialTarget::Conference(conference))
    }

    /// `<Dial><Number>…</Number></Dial>`.
    pub fn number(number: Number) -> Self {
        Self::to(DialTarget::Number(number))
    }

    fn to(target: DialTarget) -> Self {
        Self {
            target,
            action: None,
            method: None,
            timeout_secs: None,
            caller_id: None,
            time_limit_secs: None,
            answer_on_bridge: None,
            record: None,
        }
    }

    /// `action`: URL requested when the dial ends; without it the next verb runs.
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.action = Some(url.into());
        self
    }

    /// `method` for `action`.
    pub fn method(mut self, method: HttpMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// `timeout`: seconds to ring.
    pub fn timeout_secs(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// `callerId`: the number shown to the callee.
    pub fn caller_id(mut self, number: impl Into<String>) -> Self {
        self.caller_id = Some(number.into());
        self
    }

    /// `timeLimit`: longest the dialled call may last, in seconds.
    pub fn time_limit_secs(mut self, secs: u32) -> Self {
        self.time_limit_secs = Some(secs);
        self
    }

    /// `answerOnBridge`: keep the caller ringing until the callee answers.
    pub fn answer_on_bridge(mut self, on: bool) -> Self {
        self.answer_on_bridge = Some(on);
        self
    }

    /// `record`, e.g. `record-from-answer`.
    pub fn record(mut self, mode: impl Into<String>) -> Self {
        self.record = Some(mode.into());
        self
    }

    pub(super) fn element(&self) -> Result<Element<'_>, TwimlError> {
        let target = match &self.target {
            DialTarget::Conference(conference) => conference.element()?,
            DialTarget::Number(number) => number.element(),
        };
        Ok(Element::new("Dial")
            .attr("action", self.action.as_deref())
            .attr("method", self.method.map(HttpMethod::as_str))
            .attr_num("timeout", self.timeout_secs)
            .attr("callerId", self.caller_id.as_deref())
            .attr_num("timeLimit", self.time_limit_secs)
            .attr_bool("answerOnBridge", self.answer_on_bridge)
            .attr("record", self.record.as_deref())
            .child(target))
    }
}

// === impl Conference ===

impl Conference {
    /// `<Conference>` in the room named `room`.
    pub fn new(room: impl Into<String>) -> Self {
        Self {
            room: room.into(),
            muted: None,
            beep: None,
            start_conference_on_enter: None,
            end_conference_on_exit: None,
            wait_url: None,
            wait_method: None,
            max_participants: None,
            participant_label: None,
            status_callback: None,
            status_callback_events: Vec::new(),
            status_callback_method: None,
        }
    }

    /// `muted` (default false).
    pub fn muted(mut self, muted: bool) -> Self {
        self.muted = Some(muted);
        self
    }

    /// `beep` (default `true`).
    pub fn beep(mut self, beep: Beep) -> Self {
        self.beep = Some(beep);
        self
    }

    /// `startConferenceOnEnter` (default true).
    pub fn start_conference_on_enter(mut self, on: bool) -> Self {
        self.start_conference_on_enter = Some(on);
        self
    }

    /// `endConferenceOnExit` (default false).
    pub fn end_conference_on_exit(mut self, on: bool) -> Self {
        self.end_conference_on_exit = Some(on);
        self
    }

    /// `waitUrl`: what waiting participants hear; `""` is silence, unset is hold music.
    pub fn wait_url(mut self, url: impl Into<String>) -> Self {
        self.wait_url = Some(url.into());
        self
    }

    /// `waitMethod` (default POST).
    pub fn wait_method(mut self, method: HttpMethod) -> Self {
        self.wait_method = Some(method);
        self
    }

    /// `maxParticipants` (default 250).
    pub fn max_participants(mut self, max: u32) -> Self {
        self.max_participants = Some(max);
        self
    }

    /// `participantLabel`: unique in the conference, at most
    /// [`PARTICIPANT_LABEL_MAX_CHARS`] characters.
    pub fn participant_label(mut self, label: impl Into<String>) -> Self {
        self.participant_label = Some(label.into());
        self
    }

    /// `statusCallback`: receives the conference events subscribed to.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// `statusCallbackEvent`, written space-separated. Only the first participant's
    /// subscription counts for the conference.
    pub fn status_callback_events(
        mut self,
        events: impl IntoIterator<Item = ConferenceEvent>,
    ) -> Self {
        self.status_callback_events = events.into_iter().collect();
        self
    }

    /// `statusCallbackMethod`.
    pub fn status_callback_method(mut self, method: HttpMethod) -> Self {
        self.status_callback_method = Some(method);
        self
    }

    pub(super) fn element(&self) -> Result<Element<'_>, TwimlError> {
        if let Some(label) = &self.participant_label {
            let chars = label.chars().count();
            if chars > PARTICIPANT_LABEL_MAX_CHARS {
                return Err(TwimlError::ParticipantLabelTooLong { chars });
            }
        }
        Ok(Element::new("Conference")
            .attr_bool("muted", self.muted)
            .attr("beep", self.beep.as_ref().map(Beep::as_str))
            .attr_bool("startConferenceOnEnter", self.start_conference_on_enter)
            .attr_bool("endConferenceOnExit", self.end_conference_on_exit)
            .attr("waitUrl", self.wait_url.as_deref())
            .attr("waitMethod", self.wait_method.map(HttpMethod::as_str))
            .attr_num("maxParticipants", self.max_participants)
            .attr("participantLabel", self.participant_label.as_deref())
            .attr("statusCallback", self.status_callback.as_deref())
            .attr_owned(
                "statusCallbackEvent",
                space_separated(&self.status_callback_events, ConferenceEvent::as_str),
            )
            .attr(
                "statusCallbackMethod",
                self.status_callback_method.map(HttpMethod::as_str),
            )
            .text(&self.room))
    }
}

// === impl Number ===

impl Number {
    /// `<Number>` dialling `number` (E.164).
    pub fn new(number: impl Into<String>) -> Self {
        Self {
            number: number.into(),
            send_digits: None,
            url: None,
            method: None,
            status_callback: None,
            status_callback_events: Vec::new(),
            status_callback_method: None,
        }
    }

    /// `sendDigits`: DTMF to play once answered (`w` = half-second pause).
    pub fn send_digits(mut self, digits: impl Into<String>) -> Self {
        self.send_digits = Some(digits.into());
        self
    }

    /// `url`: TwiML run on the callee's leg before bridging (a whisper).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// `method` for `url`.
    pub fn method(mut self, method: HttpMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// `statusCallback`: receives the call-progress events subscribed to.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// `statusCallbackEvent`, written space-separated.
    pub fn status_callback_events(
        mut self,
        events: impl IntoIterator<Item = CallProgressEvent>,
    ) -> Self {
        self.status_callback_events = events.into_iter().collect();
        self
    }

    /// `statusCallbackMethod`.
    pub fn status_callback_method(mut self, method: HttpMethod) -> Self {
        self.status_callback_method = Some(method);
        self
    }

    pub(super) fn element(&self) -> Element<'_> {
        Element::new("Number")
            .attr("sendDigits", self.send_digits.as_deref())
            .attr("url", self.url.as_deref())
            .attr("method", self.method.map(HttpMethod::as_str))
            .attr("statusCallback", self.status_callback.as_deref())
            .attr_owned(
                "statusCallbackEvent",
                space_separated(&self.status_callback_events, CallProgressEvent::as_str),
            )
            .attr(
                "statusCallbackMethod",
                self.status_callback_method.map(HttpMethod::as_str),
            )
            .text(&self.number)
    }
}
