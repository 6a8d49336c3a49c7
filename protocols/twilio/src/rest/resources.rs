//! The JSON Twilio answers with: Call, Conference and Participant resources, a page of
//! participants, and the error body. Every field is optional and unknown fields are ignored;
//! they serialize too, for the simulator's fake endpoints.

use serde::{Deserialize, Serialize};

use crate::vocabulary::{
    AnsweredBy, CallDirection, CallStatus, ConferenceStatus, ParticipantStatus,
};

/// The Call resource (JSON, snake_case). Every field is optional, as the spec allows null.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallResource {
    /// `sid` (`CA…`).
    pub sid: Option<String>,
    /// `account_sid`.
    pub account_sid: Option<String>,
    /// `parent_call_sid`.
    pub parent_call_sid: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `to_formatted`.
    pub to_formatted: Option<String>,
    /// `from`.
    pub from: Option<String>,
    /// `from_formatted`.
    pub from_formatted: Option<String>,
    /// `phone_number_sid`.
    pub phone_number_sid: Option<String>,
    /// `status`.
    pub status: Option<CallStatus>,
    /// `direction`.
    pub direction: Option<CallDirection>,
    /// `answered_by`.
    pub answered_by: Option<AnsweredBy>,
    /// `date_created` (RFC 2822).
    pub date_created: Option<String>,
    /// `date_updated` (RFC 2822).
    pub date_updated: Option<String>,
    /// `start_time` (RFC 2822).
    pub start_time: Option<String>,
    /// `end_time` (RFC 2822).
    pub end_time: Option<String>,
    /// `duration`: seconds, as a string.
    pub duration: Option<String>,
    /// `price`, as a decimal string.
    pub price: Option<String>,
    /// `price_unit`, e.g. `USD`.
    pub price_unit: Option<String>,
    /// `api_version`.
    pub api_version: Option<String>,
    /// `forwarded_from`.
    pub forwarded_from: Option<String>,
    /// `group_sid`.
    pub group_sid: Option<String>,
    /// `caller_name`.
    pub caller_name: Option<String>,
    /// `queue_time`: estimated ms in Twilio's CPS queue, as a string.
    pub queue_time: Option<String>,
    /// `trunk_sid`.
    pub trunk_sid: Option<String>,
    /// `uri`.
    pub uri: Option<String>,
}

/// The Conference Participant resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParticipantResource {
    /// `account_sid`.
    pub account_sid: Option<String>,
    /// `call_sid`: the participant's call.
    pub call_sid: Option<String>,
    /// `conference_sid`.
    pub conference_sid: Option<String>,
    /// `label`.
    pub label: Option<String>,
    /// `status`.
    pub status: Option<ParticipantStatus>,
    /// `muted`.
    pub muted: Option<bool>,
    /// `hold`.
    pub hold: Option<bool>,
    /// `coaching`.
    pub coaching: Option<bool>,
    /// `call_sid_to_coach`.
    pub call_sid_to_coach: Option<String>,
    /// `start_conference_on_enter`.
    pub start_conference_on_enter: Option<bool>,
    /// `end_conference_on_exit`.
    pub end_conference_on_exit: Option<bool>,
    /// `queue_time`.
    pub queue_time: Option<String>,
    /// `date_created` (RFC 2822).
    pub date_created: Option<String>,
    /// `date_updated` (RFC 2822).
    pub date_updated: Option<String>,
    /// `uri`.
    pub uri: Option<String>,
}

/// A page of `GET …/Conferences/{ConferenceSid}/Participants.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParticipantList {
    /// `participants`.
    pub participants: Vec<ParticipantResource>,
    /// `page`.
    pub page: Option<u64>,
    /// `page_size`.
    pub page_size: Option<u64>,
    /// `start`.
    pub start: Option<u64>,
    /// `end`.
    pub end: Option<u64>,
    /// `uri`.
    pub uri: Option<String>,
    /// `first_page_uri`.
    pub first_page_uri: Option<String>,
    /// `next_page_uri`: null on the last page.
    pub next_page_uri: Option<String>,
    /// `previous_page_uri`.
    pub previous_page_uri: Option<String>,
}

/// The Conference resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConferenceResource {
    /// `sid` (`CF…`).
    pub sid: Option<String>,
    /// `account_sid`.
    pub account_sid: Option<String>,
    /// `friendly_name`: the room name.
    pub friendly_name: Option<String>,
    /// `status`.
    pub status: Option<ConferenceStatus>,
    /// `reason_conference_ended`.
    pub reason_conference_ended: Option<String>,
    /// `call_sid_ending_conference`.
    pub call_sid_ending_conference: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `api_version`.
    pub api_version: Option<String>,
    /// `date_created` (RFC 2822).
    pub date_created: Option<String>,
    /// `date_updated` (RFC 2822).
    pub date_updated: Option<String>,
    /// `uri`.
    pub uri: Option<String>,
}

/// Twilio's error body: `{"code":21211,"message":"…","more_info":"https://…","status":400}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// `code`: Twilio's error code (e.g. 21211 invalid `To`, 20429 too many requests).
    pub code: Option<u32>,
    /// `message`: human-readable; may contain phone numbers.
    pub message: Option<String>,
    /// `more_info`: link to the error's documentation.
    pub more_info: Option<String>,
    /// `status`: the HTTP status, repeated.
    pub status: Option<u16>,
}
