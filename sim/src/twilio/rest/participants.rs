//! Conference participants (docs/protocols.md §2.3): adding one dials its `To` (a call with its
//! own lifecycle and status callbacks, answered or not per number) into the conference, named
//! by `CF…` SID or, on create, by friendly name (created on first use). Participants are
//! fetched and updated by call SID or label; `DELETE` kicks one; `Status=completed` on the
//! conference ends it and hangs up everyone.
//!
//! Conference status callbacks (`ConferenceStatusCallback`) are not sent; the requests are
//! recorded like all others.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_twilio::rest::{
    ConferenceResource, CreateParticipant, ParticipantList, ParticipantResource, UpdateConference,
    UpdateParticipant, API_VERSION,
};
use switchboard_twilio::vocabulary::{
    CallDirection, CallStatus, ConferenceStatus, HttpMethod, ParticipantStatus,
};
use switchboard_twilio::webhooks::form_params;

use super::lifecycle::{self, Callbacks, Control, Lifecycle, OnAnswer};
use super::routes::{call_resource, form_error, not_found, rejection, strip_json};
use super::{rfc2822_now, ConferenceEntry, FakeTwilio, RestState};
use crate::twilio::sid;

/// The SID of the conference `key` names: a known `CF…` SID or friendly name.
pub(super) fn find_conference(state: &RestState, key: &str) -> Option<String> {
    if state.conferences.contains_key(key) {
        return Some(key.to_owned());
    }
    state
        .conferences
        .iter()
        .find(|(_, entry)| entry.resource.friendly_name.as_deref() == Some(key))
        .map(|(sid, _)| sid.clone())
}

pub(super) async fn create(
    State(fake): State<FakeTwilio>,
    Path((account, conference)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path =
        format!("/{API_VERSION}/Accounts/{account}/Conferences/{conference}/Participants.json");
    if account != fake.config().account_sid {
        return not_found(&path);
    }
    let create = match CreateParticipant::from_form(&form_params(&body)) {
        Ok(create) => create,
        Err(err) => return form_error(&err),
    };
    let script = fake.config().outcomes.for_number(&create.to).clone();
    if let Some(refusal) = rejection(&script.outcome, &create.to) {
        return refusal;
    }
    let Some(conference_sid) = conference_for_create(&fake, &conference) else {
        return not_found(&path);
    };
    let call_sid = sid::call_sid();
    let now = rfc2822_now();
    let participant = ParticipantResource {
        account_sid: Some(account.clone()),
        call_sid: Some(call_sid.clone()),
        conference_sid: Some(conference_sid.clone()),
        label: create.label.clone(),
        status: Some(ParticipantStatus::Queued),
        muted: Some(create.muted.unwrap_or(false)),
        hold: Some(false),
        coaching: Some(create.coaching.unwrap_or(false)),
        call_sid_to_coach: create.call_sid_to_coach.clone(),
        start_conference_on_enter: Some(create.start_conference_on_enter.unwrap_or(true)),
        end_conference_on_exit: Some(create.end_conference_on_exit.unwrap_or(false)),
        queue_time: Some("0".to_owned()),
        date_created: Some(now.clone()),
        date_updated: Some(now),
        uri: Some(format!(
            "/{API_VERSION}/Accounts/{account}/Conferences/{conference_sid}/Participants/{call_sid}.json"
        )),
    };
    let resource = call_resource(
        &fake,
        &call_sid,
        &create.from,
        &create.to,
        CallDirection::OutboundApi,
        CallStatus::Queued,
    );
    let control = lifecycle::register(&fake, resource);
    if let Some(entry) = fake.lock().conferences.get_mut(&conference_sid) {
        entry.participants.push(participant.clone());
        entry.resource.status = Some(ConferenceStatus::InProgress);
    }
    let lifecycle = Lifecycle {
        script,
        callbacks: create.status_callback.map(|url| Callbacks {
            url,
            method: create.status_callback_method.unwrap_or(HttpMethod::Post),
            events: create.status_callback_events,
        }),
        fake,
        call_sid,
        from: create.from,
        to: create.to,
        on_answer: OnAnswer::Join(conference_sid),
        control,
        sequence: 0,
        answered_at: None,
    };
    lifecycle.spawn();
    (StatusCode::CREATED, Json(participant)).into_response()
}

pub(super) async fn list(
    State(fake): State<FakeTwilio>,
    Path((account, conference)): Path<(String, String)>,
) -> Response {
    let uri =
        format!("/{API_VERSION}/Accounts/{account}/Conferences/{conference}/Participants.json");
    let state = fake.lock();
    let Some(sid) =
        find_conference(&state, &conference).filter(|_| account == fake.config().account_sid)
    else {
        return not_found(&uri);
    };
    let participants: Vec<ParticipantResource> = state
        .conferences
        .get(&sid)
        .map(|entry| {
            entry
                .participants
                .iter()
                .filter(|p| is_active(p))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let end = participants.len().saturating_sub(1) as u64;
    Json(ParticipantList {
        participants,
        page: Some(0),
        page_size: Some(50),
        start: Some(0),
        end: Some(end),
        first_page_uri: Some(format!("{uri}?PageSize=50&Page=0")),
        uri: Some(uri),
        next_page_uri: None,
        previous_page_uri: None,
    })
    .into_response()
}

pub(super) async fn fetch(
    State(fake): State<FakeTwilio>,
    Path((account, conference, participant)): Path<(String, String, String)>,
) -> Response {
    with_participant(&fake, &account, &conference, &participant, |p| p.clone()).map_or_else(
        || not_found(&participant_path(&account, &conference, &participant)),
        |p| Json(p).into_response(),
    )
}

pub(super) async fn update(
    State(fake): State<FakeTwilio>,
    Path((account, conference, participant)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let update = match UpdateParticipant::from_form(&form_params(&body)) {
        Ok(update) => update,
        Err(err) => return form_error(&err),
    };
    with_participant(&fake, &account, &conference, &participant, |p| {
        p.muted = update.muted.or(p.muted);
        p.hold = update.hold.or(p.hold);
        p.coaching = update.coaching.or(p.coaching);
        p.end_conference_on_exit = update.end_conference_on_exit.or(p.end_conference_on_exit);
        p.call_sid_to_coach = update.call_sid_to_coach.or(p.call_sid_to_coach.take());
        p.date_updated = Some(rfc2822_now());
        p.clone()
    })
    .map_or_else(
        || not_found(&participant_path(&account, &conference, &participant)),
        |p| Json(p).into_response(),
    )
}

pub(super) async fn remove(
    State(fake): State<FakeTwilio>,
    Path((account, conference, participant)): Path<(String, String, String)>,
) -> Response {
    match with_participant(&fake, &account, &conference, &participant, |p| {
        p.call_sid.clone()
    }) {
        Some(call_sid) => {
            hang_up(&fake, call_sid.as_slice());
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(&participant_path(&account, &conference, &participant)),
    }
}

pub(super) async fn fetch_conference(
    State(fake): State<FakeTwilio>,
    Path((account, conference)): Path<(String, String)>,
) -> Response {
    let path = format!("/{API_VERSION}/Accounts/{account}/Conferences/{conference}");
    let state = fake.lock();
    match strip_json(&conference)
        .and_then(|sid| state.conferences.get(sid))
        .filter(|_| account == fake.config().account_sid)
    {
        Some(entry) => Json(entry.resource.clone()).into_response(),
        None => not_found(&path),
    }
}

pub(super) async fn update_conference(
    State(fake): State<FakeTwilio>,
    Path((account, conference)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/{API_VERSION}/Accounts/{account}/Conferences/{conference}");
    let update = match UpdateConference::from_form(&form_params(&body)) {
        Ok(update) => update,
        Err(err) => return form_error(&err),
    };
    let (resource, members) = {
        let mut state = fake.lock();
        let Some(entry) = strip_json(&conference)
            .and_then(|sid| state.conferences.get_mut(sid))
            .filter(|_| account == fake.config().account_sid)
        else {
            return not_found(&path);
        };
        if update.end {
            entry.resource.status = Some(ConferenceStatus::Completed);
            entry.resource.reason_conference_ended = Some("conference-ended-via-api".to_owned());
        }
        let members: Vec<String> = entry
            .participants
            .iter()
            .filter_map(|p| p.call_sid.clone())
            .collect();
        (entry.resource.clone(), members)
    };
    if update.end {
        hang_up(&fake, &members);
    }
    Json(resource).into_response()
}

/// The conference's SID, creating it when `key` is a new friendly name.
fn conference_for_create(fake: &FakeTwilio, key: &str) -> Option<String> {
    let mut state = fake.lock();
    if let Some(sid) = find_conference(&state, key) {
        return Some(sid);
    }
    if key.starts_with("CF") && key.len() == 34 {
        return None;
    }
    let sid = sid::conference_sid();
    let account_sid = fake.config().account_sid.clone();
    let now = rfc2822_now();
    let resource = ConferenceResource {
        sid: Some(sid.clone()),
        account_sid: Some(account_sid.clone()),
        friendly_name: Some(key.to_owned()),
        status: Some(ConferenceStatus::Init),
        api_version: Some(API_VERSION.to_owned()),
        date_created: Some(now.clone()),
        date_updated: Some(now),
        uri: Some(format!(
            "/{API_VERSION}/Accounts/{account_sid}/Conferences/{sid}.json"
        )),
        ..ConferenceResource::default()
    };
    state.conferences.insert(
        sid.clone(),
        ConferenceEntry {
            resource,
            participants: Vec::new(),
        },
    );
    Some(sid)
}

/// Runs `act` on the participant named by call SID or label, if there is one.
fn with_participant<R>(
    fake: &FakeTwilio,
    account: &str,
    conference: &str,
    participant: &str,
    act: impl FnOnce(&mut ParticipantResource) -> R,
) -> Option<R> {
    let key = strip_json(participant)?;
    let mut state = fake.lock();
    let sid =
        find_conference(&state, conference).filter(|_| account == fake.config().account_sid)?;
    let entry = state.conferences.get_mut(&sid)?;
    entry
        .participants
        .iter_mut()
        .find(|p| p.call_sid.as_deref() == Some(key) || p.label.as_deref() == Some(key))
        .map(act)
}

fn participant_path(account: &str, conference: &str, participant: &str) -> String {
    format!("/{API_VERSION}/Accounts/{account}/Conferences/{conference}/Participants/{participant}")
}

/// Hangs up these calls (their lifecycles send the final callbacks).
fn hang_up(fake: &FakeTwilio, call_sids: &[String]) {
    let state = fake.lock();
    for sid in call_sids {
        if let Some(entry) = state.calls.get(sid) {
            // A full or closed channel means the call is ending anyway.
            let _ = entry.control.try_send(Control::Complete);
        }
    }
}

fn is_active(participant: &ParticipantResource) -> bool {
    !matches!(
        participant.status,
        Some(ParticipantStatus::Complete | ParticipantStatus::Failed)
    )
}
