//! The fake's router: Basic auth and request recording around every route, the Calls
//! endpoints (with the injected creation faults and per-number rejections), and Twilio's
//! JSON error bodies. Conference participants are in `participants.rs`.
//!
//! axum 0.8 captures whole path segments only, so `{CallSid}.json` is captured as one
//! segment and its `.json` stripped here ([`strip_json`]).

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use switchboard_twilio::rest::{
    CallInstructions, CallResource, CallUpdateStatus, CreateCall, ErrorResponse, RestError,
    UpdateCall, API_VERSION,
};
use switchboard_twilio::vocabulary::{CallDirection, CallStatus, HttpMethod};
use switchboard_twilio::webhooks::form_params;

use super::lifecycle::{self, Callbacks, Control, Lifecycle, OnAnswer};
use super::participants;
use super::{rfc2822_now, unix_ms_now, CreatedCall, FakeTwilio, Outcome, RecordedRequest};
use crate::twilio::caller::TwimlSource;
use crate::twilio::sid;

/// Largest request body read (a 4000-character `Twiml` and its escaping fit easily).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Builds the router.
pub(super) fn router(fake: FakeTwilio) -> Router {
    const ACCOUNT: &str = "/2010-04-01/Accounts/{account}";
    Router::new()
        .route(
            &format!("{ACCOUNT}/Calls.json"),
            post(create_call).get(list_calls),
        )
        .route(
            &format!("{ACCOUNT}/Calls/{{call}}"),
            post(update_call).get(fetch_call),
        )
        .route(
            &format!("{ACCOUNT}/Conferences/{{conference}}"),
            post(participants::update_conference).get(participants::fetch_conference),
        )
        .route(
            &format!("{ACCOUNT}/Conferences/{{conference}}/Participants.json"),
            post(participants::create).get(participants::list),
        )
        .route(
            &format!("{ACCOUNT}/Conferences/{{conference}}/Participants/{{participant}}"),
            post(participants::update)
                .get(participants::fetch)
                .delete(participants::remove),
        )
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(fake.clone(), guard))
        .with_state(fake)
}

/// Checks Basic auth and records the request and its answer.
async fn guard(State(fake): State<FakeTwilio>, request: Request, next: Next) -> Response {
    let at_unix_ms = unix_ms_now();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return twilio_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            20001,
            "request body too large",
        );
    };
    let params = if parts.method == Method::GET {
        form_params(parts.uri.query().unwrap_or_default().as_bytes())
    } else {
        form_params(&bytes)
    };
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let authorized = authorized(&fake, &parts.headers);
    let response = if authorized {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    } else {
        let mut response = twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
        response
    };
    fake.lock().requests.push(RecordedRequest {
        method,
        path,
        params,
        authorized,
        status: response.status().as_u16(),
        at_unix_ms,
    });
    response
}

fn authorized(fake: &FakeTwilio, headers: &HeaderMap) -> bool {
    let Some(credentials) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
    else {
        return false;
    };
    let config = fake.config();
    let expected = format!("{}:{}", config.account_sid, config.auth_token);
    credentials == expected.as_bytes()
}

async fn create_call(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    if account != fake.config().account_sid {
        return not_found(&format!("/{API_VERSION}/Accounts/{account}/Calls.json"));
    }
    if let Some(status) = take_create_fault(&fake) {
        return injected_fault(status);
    }
    let create = match CreateCall::from_form(&form_params(&body)).and_then(|create| {
        create.validate()?;
        Ok(create)
    }) {
        Ok(create) => create,
        Err(err) => return form_error(&err),
    };
    let script = fake.config().outcomes.for_number(&create.to).clone();
    if let Some(refusal) = rejection(&script.outcome, &create.to) {
        return refusal;
    }
    let call_sid = sid::call_sid();
    let resource = call_resource(
        &fake,
        &call_sid,
        &create.from,
        &create.to,
        CallDirection::OutboundApi,
        CallStatus::Queued,
    );
    let control = lifecycle::register(&fake, resource.clone());
    record_creation(&fake, &call_sid, &create.to, &create.from);
    let source = match create.instructions {
        CallInstructions::Url { url, method } => TwimlSource::Url {
            url,
            method: method.unwrap_or(HttpMethod::Post),
        },
        CallInstructions::Twiml(twiml) => TwimlSource::Inline(twiml),
        // TwiML Apps are not simulated: the call is answered by an empty document.
        CallInstructions::ApplicationSid(_) => TwimlSource::Inline("<Response/>".to_owned()),
    };
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
        on_answer: OnAnswer::Run(source),
        control,
        sequence: 0,
        answered_at: None,
    };
    lifecycle.spawn();
    (StatusCode::CREATED, Json(resource)).into_response()
}

/// Counts down the injected creation faults; the status to answer with, if one is due.
fn take_create_fault(fake: &FakeTwilio) -> Option<u16> {
    let mut state = fake.lock();
    let (left, status) = state.failing_creates?;
    state.failing_creates = (left > 1).then_some((left - 1, status));
    Some(status)
}

/// An injected fault as Twilio answers it: `429` with 20429 and `Retry-After: 1`, `503`
/// with 20503, `500` with 20500, another status with 20000 + status.
fn injected_fault(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, message) = match status {
        StatusCode::TOO_MANY_REQUESTS => (20429, "Too Many Requests"),
        StatusCode::SERVICE_UNAVAILABLE => (20503, "Service Unavailable"),
        StatusCode::INTERNAL_SERVER_ERROR => (20500, "Internal Server Error"),
        other => (
            20_000 + u32::from(other.as_u16()),
            other.canonical_reason().unwrap_or("Error"),
        ),
    };
    let mut response = twilio_error(status, code, message);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// The refusal for a number scripted to [`Outcome::Reject`], if it is.
pub(super) fn rejection(outcome: &Outcome, to: &str) -> Option<Response> {
    let Outcome::Reject {
        status,
        code,
        message,
    } = outcome
    else {
        return None;
    };
    let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
    Some(twilio_error(status, *code, &message.replace("{to}", to)))
}

/// Notes a `Calls.json` creation, its time never before the previous one's.
fn record_creation(fake: &FakeTwilio, call_sid: &str, to: &str, from: &str) {
    let mut state = fake.lock();
    let previous = state.created.last().map_or(0, |call| call.at_unix_ms);
    state.created.push(CreatedCall {
        call_sid: call_sid.to_owned(),
        to: to.to_owned(),
        from: from.to_owned(),
        at_unix_ms: unix_ms_now().max(previous),
    });
}

async fn list_calls(State(fake): State<FakeTwilio>, Path(account): Path<String>) -> Response {
    let uri = format!("/{API_VERSION}/Accounts/{account}/Calls.json");
    if account != fake.config().account_sid {
        return not_found(&uri);
    }
    let calls = fake.calls();
    Json(serde_json::json!({
        "calls": calls,
        "page": 0,
        "page_size": 50,
        "start": 0,
        "end": calls.len().saturating_sub(1),
        "uri": uri,
        "first_page_uri": format!("{uri}?PageSize=50&Page=0"),
        "next_page_uri": null,
        "previous_page_uri": null,
    }))
    .into_response()
}

async fn fetch_call(
    State(fake): State<FakeTwilio>,
    Path((account, call)): Path<(String, String)>,
) -> Response {
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls/{call}");
    match strip_json(&call).and_then(|sid| fake.call(sid)) {
        Some(resource) if account == fake.config().account_sid => Json(resource).into_response(),
        _ => not_found(&path),
    }
}

async fn update_call(
    State(fake): State<FakeTwilio>,
    Path((account, call)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls/{call}");
    let Some(call_sid) = strip_json(&call).filter(|_| account == fake.config().account_sid) else {
        return not_found(&path);
    };
    let update = match UpdateCall::from_form(&form_params(&body)).and_then(|update| {
        update.validate()?;
        Ok(update)
    }) {
        Ok(update) => update,
        Err(err) => return form_error(&err),
    };
    let (resource, control) = {
        let state = fake.lock();
        let Some(entry) = state.calls.get(call_sid) else {
            return not_found(&path);
        };
        (entry.resource.clone(), entry.control.clone())
    };
    let status = resource.status.clone().unwrap_or(CallStatus::Queued);
    let command = match (update.status, update.url, update.twiml) {
        (Some(CallUpdateStatus::Completed), _, _) => Some(Control::Complete),
        (Some(CallUpdateStatus::Canceled), _, _) => {
            matches!(status, CallStatus::Queued | CallStatus::Ringing).then_some(Control::Cancel)
        }
        (None, Some(url), _) => Some(Control::Redirect(TwimlSource::Url {
            url,
            method: update.method.unwrap_or(HttpMethod::Post),
        })),
        (None, None, Some(twiml)) => Some(Control::Redirect(TwimlSource::Inline(twiml))),
        (None, None, None) => None,
    };
    if let Some(command) = command {
        let redirect = matches!(command, Control::Redirect(_));
        if status.is_terminal() {
            if redirect {
                return twilio_error(
                    StatusCode::BAD_REQUEST,
                    21220,
                    "Call is not in-progress. Cannot redirect.",
                );
            }
        } else if control.try_send(command).is_err() {
            return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
        }
    }
    Json(resource).into_response()
}

async fn fallback(request: Request) -> Response {
    not_found(request.uri().path())
}

/// A Call resource as Twilio returns it on create.
pub(super) fn call_resource(
    fake: &FakeTwilio,
    call_sid: &str,
    from: &str,
    to: &str,
    direction: CallDirection,
    status: CallStatus,
) -> CallResource {
    let account_sid = &fake.config().account_sid;
    let now = rfc2822_now();
    CallResource {
        sid: Some(call_sid.to_owned()),
        account_sid: Some(account_sid.clone()),
        to: Some(to.to_owned()),
        to_formatted: Some(to.to_owned()),
        from: Some(from.to_owned()),
        from_formatted: Some(from.to_owned()),
        status: Some(status),
        direction: Some(direction),
        date_created: Some(now.clone()),
        date_updated: Some(now),
        price_unit: Some("USD".to_owned()),
        api_version: Some(API_VERSION.to_owned()),
        queue_time: Some("0".to_owned()),
        uri: Some(format!(
            "/{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}.json"
        )),
        ..CallResource::default()
    }
}

/// `CA….json` → `CA…`.
pub(super) fn strip_json(segment: &str) -> Option<&str> {
    segment.strip_suffix(".json")
}

/// Twilio's error body with this HTTP status and code.
pub(super) fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = ErrorResponse {
        code: Some(code),
        message: Some(message.to_owned()),
        more_info: Some(format!("https://www.twilio.com/docs/errors/{code}")),
        status: Some(status.as_u16()),
    };
    (status, Json(body)).into_response()
}

/// `404` with Twilio's 20404.
pub(super) fn not_found(path: &str) -> Response {
    twilio_error(
        StatusCode::NOT_FOUND,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

/// `400` for a form the codec refused, with the code Twilio uses for it.
pub(super) fn form_error(err: &RestError) -> Response {
    let (code, message) = match err {
        RestError::MissingField("To") => (21201, "No 'To' number is specified".to_owned()),
        RestError::MissingField("From") => (21213, "No 'From' number is specified".to_owned()),
        RestError::Instructions => (
            21205,
            "Url parameter is required. Please provide either a Url, Twiml or ApplicationSid"
                .to_owned(),
        ),
        other => (21200, other.to_string()),
    };
    twilio_error(StatusCode::BAD_REQUEST, code, &message)
}
