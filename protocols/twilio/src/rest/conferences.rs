//! Conference participants and conferences: `POST …/Conferences/{ConferenceSid}/
//! Participants.json`, `POST …/Participants/{CallSid}.json`, `POST …/Conferences/{Sid}.json`.

use super::form::{account_path, segment, FormReader, FormWriter};
use super::{ParticipantList, RestError};
use crate::vocabulary::{Beep, CallProgressEvent, ConferenceEvent, HttpMethod, MachineDetection};

/// `POST /2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json`
/// → `201` + [`ParticipantResource`](super::ParticipantResource): dial someone into a
/// conference. Build with [`CreateParticipant::new`] and struct update syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateParticipant {
    /// `From`.
    pub from: String,
    /// `To`.
    pub to: String,
    /// `Label`: a name for the participant, usable instead of its CallSid.
    pub label: Option<String>,
    /// `StartConferenceOnEnter`.
    pub start_conference_on_enter: Option<bool>,
    /// `EndConferenceOnExit`.
    pub end_conference_on_exit: Option<bool>,
    /// `Beep`.
    pub beep: Option<Beep>,
    /// `Muted`.
    pub muted: Option<bool>,
    /// `EarlyMedia`.
    pub early_media: Option<bool>,
    /// `Record`.
    pub record: Option<bool>,
    /// `Timeout`: seconds to ring.
    pub timeout_secs: Option<u32>,
    /// `TimeLimit`, seconds.
    pub time_limit_secs: Option<u32>,
    /// `MaxParticipants`.
    pub max_participants: Option<u32>,
    /// `CallerId`.
    pub caller_id: Option<String>,
    /// `WaitUrl`: what to play while waiting (`""` for silence).
    pub wait_url: Option<String>,
    /// `WaitMethod`.
    pub wait_method: Option<HttpMethod>,
    /// `StatusCallback`: the participant's call-progress events.
    pub status_callback: Option<String>,
    /// `StatusCallbackMethod`.
    pub status_callback_method: Option<HttpMethod>,
    /// `StatusCallbackEvent`, one key per event.
    pub status_callback_events: Vec<CallProgressEvent>,
    /// `ConferenceStatusCallback`: the conference's events (first participant's counts).
    pub conference_status_callback: Option<String>,
    /// `ConferenceStatusCallbackMethod`.
    pub conference_status_callback_method: Option<HttpMethod>,
    /// `ConferenceStatusCallbackEvent`, one key per event.
    pub conference_status_callback_events: Vec<ConferenceEvent>,
    /// `MachineDetection`.
    pub machine_detection: Option<MachineDetection>,
    /// `Coaching`: hear the call without being heard by `call_sid_to_coach`.
    pub coaching: Option<bool>,
    /// `CallSidToCoach`.
    pub call_sid_to_coach: Option<String>,
}

/// `POST …/Conferences/{ConferenceSid}/Participants/{CallSid or Label}.json` → `200` +
/// [`ParticipantResource`](super::ParticipantResource). (`DELETE` on the same path removes the
/// participant.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateParticipant {
    /// `Muted`.
    pub muted: Option<bool>,
    /// `Hold`.
    pub hold: Option<bool>,
    /// `HoldUrl`.
    pub hold_url: Option<String>,
    /// `HoldMethod`.
    pub hold_method: Option<HttpMethod>,
    /// `AnnounceUrl`.
    pub announce_url: Option<String>,
    /// `AnnounceMethod`.
    pub announce_method: Option<HttpMethod>,
    /// `WaitUrl`.
    pub wait_url: Option<String>,
    /// `WaitMethod`.
    pub wait_method: Option<HttpMethod>,
    /// `BeepOnExit`.
    pub beep_on_exit: Option<bool>,
    /// `EndConferenceOnExit`.
    pub end_conference_on_exit: Option<bool>,
    /// `Coaching`.
    pub coaching: Option<bool>,
    /// `CallSidToCoach`.
    pub call_sid_to_coach: Option<String>,
}

/// `POST …/Conferences/{Sid}.json` → `200` + [`ConferenceResource`](super::ConferenceResource):
/// end a conference or play an announcement to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateConference {
    /// `Status=completed` when true: end the conference, disconnecting everyone.
    pub end: bool,
    /// `AnnounceUrl`.
    pub announce_url: Option<String>,
    /// `AnnounceMethod`.
    pub announce_method: Option<HttpMethod>,
}

// === impl CreateParticipant ===

impl CreateParticipant {
    /// Dial `to` from `from` into the conference, everything else left to Twilio.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: to.into(),
            label: None,
            start_conference_on_enter: None,
            end_conference_on_exit: None,
            beep: None,
            muted: None,
            early_media: None,
            record: None,
            timeout_secs: None,
            time_limit_secs: None,
            max_participants: None,
            caller_id: None,
            wait_url: None,
            wait_method: None,
            status_callback: None,
            status_callback_method: None,
            status_callback_events: Vec::new(),
            conference_status_callback: None,
            conference_status_callback_method: None,
            conference_status_callback_events: Vec::new(),
            machine_detection: None,
            coaching: None,
            call_sid_to_coach: None,
        }
    }

    /// `/2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json`;
    /// `conference` is a `CF…` SID or, on create, the conference's friendly name.
    pub fn path(account_sid: &str, conference: &str) -> String {
        format!(
            "{}/Conferences/{}/Participants.json",
            account_path(account_sid),
            segment(conference)
        )
    }

    /// The form body, repeated keys for lists, unset fields omitted.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = FormWriter(Vec::new());
        form.put("From", &self.from);
        form.put("To", &self.to);
        form.opt("Label", self.label.as_deref());
        form.bool("StartConferenceOnEnter", self.start_conference_on_enter);
        form.bool("EndConferenceOnExit", self.end_conference_on_exit);
        form.opt("Beep", self.beep.as_ref().map(Beep::as_str));
        form.bool("Muted", self.muted);
        form.bool("EarlyMedia", self.early_media);
        form.bool("Record", self.record);
        form.num("Timeout", self.timeout_secs);
        form.num("TimeLimit", self.time_limit_secs);
        form.num("MaxParticipants", self.max_participants);
        form.opt("CallerId", self.caller_id.as_deref());
        form.opt("WaitUrl", self.wait_url.as_deref());
        form.method("WaitMethod", self.wait_method);
        form.opt("StatusCallback", self.status_callback.as_deref());
        form.method("StatusCallbackMethod", self.status_callback_method);
        form.repeated(
            "StatusCallbackEvent",
            &self.status_callback_events,
            CallProgressEvent::as_str,
        );
        form.opt(
            "ConferenceStatusCallback",
            self.conference_status_callback.as_deref(),
        );
        form.method(
            "ConferenceStatusCallbackMethod",
            self.conference_status_callback_method,
        );
        form.repeated(
            "ConferenceStatusCallbackEvent",
            &self.conference_status_callback_events,
            ConferenceEvent::as_str,
        );
        form.opt(
            "MachineDetection",
            self.machine_detection
                .as_ref()
                .map(MachineDetection::as_str),
        );
        form.bool("Coaching", self.coaching);
        form.opt("CallSidToCoach", self.call_sid_to_coach.as_deref());
        form.0
    }

    /// Reads a form written by [`CreateParticipant::to_form`].
    pub fn from_form(params: &[(String, String)]) -> Result<Self, RestError> {
        let form = FormReader(params);
        Ok(Self {
            from: form.required("From")?,
            to: form.required("To")?,
            label: form.string("Label"),
            start_conference_on_enter: form.bool("StartConferenceOnEnter")?,
            end_conference_on_exit: form.bool("EndConferenceOnExit")?,
            beep: form.string("Beep").map(Beep::from),
            muted: form.bool("Muted")?,
            early_media: form.bool("EarlyMedia")?,
            record: form.bool("Record")?,
            timeout_secs: form.num("Timeout")?,
            time_limit_secs: form.num("TimeLimit")?,
            max_participants: form.num("MaxParticipants")?,
            caller_id: form.string("CallerId"),
            wait_url: form.string("WaitUrl"),
            wait_method: form.method("WaitMethod")?,
            status_callback: form.string("StatusCallback"),
            status_callback_method: form.method("StatusCallbackMethod")?,
            status_callback_events: form.repeated("StatusCallbackEvent"),
            conference_status_callback: form.string("ConferenceStatusCallback"),
            conference_status_callback_method: form.method("ConferenceStatusCallbackMethod")?,
            conference_status_callback_events: form.repeated("ConferenceStatusCallbackEvent"),
            machine_detection: form.string("MachineDetection").map(MachineDetection::from),
            coaching: form.bool("Coaching")?,
            call_sid_to_coach: form.string("CallSidToCoach"),
        })
    }
}

// === impl UpdateParticipant ===

impl UpdateParticipant {
    /// `/2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants/{CallSid}.json`;
    /// `participant` is the participant's CallSid or its label.
    pub fn path(account_sid: &str, conference_sid: &str, participant: &str) -> String {
        format!(
            "{}/Conferences/{}/Participants/{}.json",
            account_path(account_sid),
            segment(conference_sid),
            segment(participant)
        )
    }

    /// The form body, unset fields omitted.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = FormWriter(Vec::new());
        form.bool("Muted", self.muted);
        form.bool("Hold", self.hold);
        form.opt("HoldUrl", self.hold_url.as_deref());
        form.method("HoldMethod", self.hold_method);
        form.opt("AnnounceUrl", self.announce_url.as_deref());
        form.method("AnnounceMethod", self.announce_method);
        form.opt("WaitUrl", self.wait_url.as_deref());
        form.method("WaitMethod", self.wait_method);
        form.bool("BeepOnExit", self.beep_on_exit);
        form.bool("EndConferenceOnExit", self.end_conference_on_exit);
        form.bool("Coaching", self.coaching);
        form.opt("CallSidToCoach", self.call_sid_to_coach.as_deref());
        form.0
    }

    /// Reads a form written by [`UpdateParticipant::to_form`].
    pub fn from_form(params: &[(String, String)]) -> Result<Self, RestError> {
        let form = FormReader(params);
        Ok(Self {
            muted: form.bool("Muted")?,
            hold: form.bool("Hold")?,
            hold_url: form.string("HoldUrl"),
            hold_method: form.method("HoldMethod")?,
            announce_url: form.string("AnnounceUrl"),
            announce_method: form.method("AnnounceMethod")?,
            wait_url: form.string("WaitUrl"),
            wait_method: form.method("WaitMethod")?,
            beep_on_exit: form.bool("BeepOnExit")?,
            end_conference_on_exit: form.bool("EndConferenceOnExit")?,
            coaching: form.bool("Coaching")?,
            call_sid_to_coach: form.string("CallSidToCoach"),
        })
    }
}

// === impl ParticipantList ===

impl ParticipantList {
    /// `GET /2010-04-01/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json`.
    pub fn path(account_sid: &str, conference_sid: &str) -> String {
        CreateParticipant::path(account_sid, conference_sid)
    }
}

// === impl UpdateConference ===

impl UpdateConference {
    /// End the conference (`Status=completed`).
    pub fn end() -> Self {
        Self {
            end: true,
            ..Self::default()
        }
    }

    /// `/2010-04-01/Accounts/{AccountSid}/Conferences/{Sid}.json`.
    pub fn path(account_sid: &str, conference_sid: &str) -> String {
        format!(
            "{}/Conferences/{}.json",
            account_path(account_sid),
            segment(conference_sid)
        )
    }

    /// The form body, unset fields omitted.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = FormWriter(Vec::new());
        if self.end {
            form.put("Status", "completed");
        }
        form.opt("AnnounceUrl", self.announce_url.as_deref());
        form.method("AnnounceMethod", self.announce_method);
        form.0
    }

    /// Reads a form written by [`UpdateConference::to_form`].
    pub fn from_form(params: &[(String, String)]) -> Result<Self, RestError> {
        let form = FormReader(params);
        let end = match form.string("Status").as_deref() {
            None => false,
            Some("completed") => true,
            Some(_) => return Err(RestError::InvalidField("Status")),
        };
        Ok(Self {
            end,
            announce_url: form.string("AnnounceUrl"),
            announce_method: form.method("AnnounceMethod")?,
        })
    }
}
