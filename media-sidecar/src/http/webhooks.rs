//! Twilio's form-encoded webhooks: the voice webhook and the two status callbacks.
//!
//! Every request's `X-Twilio-Signature` is checked against `SWITCHBOARD_PUBLIC_URL` plus
//! the path and query the router saw (403 on failure; nothing is forwarded). With no
//! `TWILIO_AUTH_TOKEN` the check is skipped (local use; warned about at start-up).
//!
//! **Voice** (`POST /api/twilio/voice`): while draining or at `SWITCHBOARD_MAX_CALLS` the
//! call gets the sidecar's own fallback TwiML; otherwise `OpenInboundCall` decides the
//! route and the answer is `<Connect><Stream>` (with a signed stream token), `<Dial>` to a
//! conference or a number, or `<Say>` + `<Hangup/>`. If the control plane fails or times
//! out, or answers without a usable route, the caller also hears the fallback: a call is
//! never dropped silently. Calls the control plane placed arrive with `?callId=…`, which
//! is passed on as `OpenInboundCall.call_id`: that session is answered by its own agent
//! and learns its `CallSid` (a different session in the answer is logged). A call
//! answered with a stream is registered with the drain as expected (for the stream
//! token's TTL, at most [`EXPECT_STREAM_WITHIN`]), so that its media socket is admitted
//! and waited for even if SIGTERM comes between the answer and the socket.
//!
//! **Status callbacks** (`/status`, `/stream-status`) answer 204 whatever happens next:
//! Twilio does not redeliver them, so a 5xx would only add an alert in Twilio's console.
//! Call statuses are forwarded with `ReportTwilioStatus` within the request deadline; a
//! failure is logged at warn and counted in the control-plane error metric. Stream
//! statuses are logged (`stream-error` at warn, with the call id) and forwarded the same
//! way: the control plane ends a session whose stream failed before a sidecar took the
//! call; after that the stream's lifecycle reaches it through the call driver.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchboard_proto::v1::open_inbound_call_response::Route;
use switchboard_proto::v1::{
    OpenInboundCallRequest, OpenInboundCallResponse, ReportTwilioStatusRequest,
};
use switchboard_twilio::signature::HEADER as SIGNATURE_HEADER;
use switchboard_twilio::twiml::{self, Conference, Dial, Number, Stream};
use switchboard_twilio::vocabulary::{HttpMethod, StreamEvent};
use switchboard_twilio::webhooks::{
    form_params, CallStatusCallback, StreamStatusCallback, VoiceWebhook,
};

use super::media_socket::is_valid_call_id;
use super::router::{MEDIA_STREAM_PATH_PREFIX, STREAM_STATUS_PATH};
use super::AppState;
use crate::config::FallbackConfig;
use crate::metrics::{FallbackReason, WebhookRoute};

/// The query parameter carrying our call id on callbacks and on calls we placed.
const CALL_ID_PARAM: &str = "callId";
/// The longest a call answered with a stream is waited for by a drain before its media
/// socket arrives (the stream token's TTL, if shorter, bounds it too). Twilio opens the
/// socket within about a second of the answer.
const EXPECT_STREAM_WITHIN: Duration = Duration::from_secs(30);
/// The answer when even the fallback document cannot be written.
const HANGUP_TWIML: &str =
    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>"#;

/// `POST /api/twilio/voice`.
pub(super) async fn voice(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = answer_voice(&state, &uri, &headers, &body).await;
    state
        .metrics
        .webhook_request(WebhookRoute::Voice, response.status().as_u16());
    response
}

/// `POST /api/twilio/status`.
pub(super) async fn call_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = forward_call_status(&state, &uri, &headers, &body).await;
    state
        .metrics
        .webhook_request(WebhookRoute::CallStatus, response.status().as_u16());
    response
}

/// `POST /api/twilio/stream-status`.
pub(super) async fn stream_status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = forward_stream_status(&state, &uri, &headers, &body).await;
    state
        .metrics
        .webhook_request(WebhookRoute::StreamStatus, response.status().as_u16());
    response
}

/// What a caller hears when no agent can take the call: the message, then the fallback
/// number or a hang-up.
pub fn fallback_twiml(fallback: &FallbackConfig) -> String {
    let document = twiml::Response::new().say(fallback.message.as_str());
    let document = match &fallback.number {
        Some(number) => document.dial(Dial::number(Number::new(number))),
        None => document.hangup(),
    };
    document.to_xml().unwrap_or_else(|error| {
        tracing::error!(%error, "fallback twiml cannot be written; hanging up");
        HANGUP_TWIML.to_owned()
    })
}

async fn answer_voice(state: &AppState, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let params = form_params(body);
    if let Err(forbidden) = check_signature(state, uri, headers, &params, WebhookRoute::Voice) {
        return forbidden.into_response();
    }
    let webhook = match VoiceWebhook::parse(body) {
        Ok(webhook) => webhook,
        Err(error) => {
            tracing::warn!(%error, "voice webhook unreadable");
            return (StatusCode::BAD_REQUEST, "unreadable voice webhook").into_response();
        }
    };
    let call_sid = webhook.call_sid.as_str();
    if state.drain.is_draining() {
        return fallback(state, FallbackReason::Draining, call_sid);
    }
    if state.drain.at_capacity() {
        return fallback(state, FallbackReason::AtCapacity, call_sid);
    }
    let request = OpenInboundCallRequest {
        to_number: webhook.to.clone(),
        from_number: webhook.from.clone(),
        call_sid: webhook.call_sid.clone(),
        sidecar_id: state.config.sidecar_id.clone(),
        call_id: query_param(uri, CALL_ID_PARAM).unwrap_or_default(),
    };
    let answer = match state.control.open_inbound_call(request).await {
        Ok(answer) => answer,
        Err(status) => {
            state
                .metrics
                .control_plane_error("open_inbound_call", status.code());
            tracing::warn!(call_sid, code = ?status.code(), message = status.message(), "open inbound call failed");
            return fallback(state, FallbackReason::ControlPlaneUnavailable, call_sid);
        }
    };
    let session_id = answer.session.as_ref().map_or("", |s| s.id.as_str());
    if let Some(expected) = query_param(uri, CALL_ID_PARAM) {
        if expected != session_id {
            tracing::warn!(call_sid, call_id = %expected, session_id, "the control plane answered with another session than the callId of the webhook url");
        }
    }
    match route_twiml(state, &answer) {
        Ok(xml) => {
            if matches!(answer.route, Some(Route::Realtime(_))) {
                // `route_twiml` streams only to a valid session id: the one in the TwiML.
                let within = state.config.stream_token.ttl.min(EXPECT_STREAM_WITHIN);
                state.drain.expect(session_id, within);
            }
            tracing::info!(
                call_sid,
                call_id = session_id,
                direction = webhook.direction.as_str(),
                "call answered"
            );
            twiml_response(xml)
        }
        Err(reason) => {
            tracing::warn!(
                call_sid,
                call_id = session_id,
                reason,
                "unusable route from the control plane"
            );
            fallback(state, FallbackReason::InvalidRoute, call_sid)
        }
    }
}

/// The TwiML for the control plane's route, or why there is none.
fn route_twiml(state: &AppState, answer: &OpenInboundCallResponse) -> Result<String, String> {
    let say_first = |say: &str| {
        let document = twiml::Response::new();
        if say.trim().is_empty() {
            document
        } else {
            document.say(say)
        }
    };
    let document = match &answer.route {
        Some(Route::Realtime(_)) => {
            let call_id = answer
                .session
                .as_ref()
                .map(|s| s.id.as_str())
                .filter(|id| is_valid_call_id(id))
                .ok_or("realtime route without a usable session id")?;
            twiml::Response::new().connect_stream(media_stream(state, call_id))
        }
        Some(Route::Conference(route)) if !route.conference_name.is_empty() => {
            say_first(&route.say).dial(Dial::conference(Conference::new(&route.conference_name)))
        }
        Some(Route::Dial(route)) if !route.phone_number.is_empty() => {
            say_first(&route.say).dial(Dial::number(Number::new(&route.phone_number)))
        }
        Some(Route::Reject(route)) if !route.say.trim().is_empty() => {
            twiml::Response::new().say(route.say.as_str()).hangup()
        }
        Some(Route::Reject(_)) => twiml::Response::new()
            .say(state.config.fallback.message.as_str())
            .hangup(),
        Some(Route::Conference(_)) => return Err("conference route without a room".into()),
        Some(Route::Dial(_)) => return Err("dial route without a number".into()),
        None => return Err("no route".into()),
    };
    document.to_xml().map_err(|e| e.to_string())
}

/// `<Stream>` to this deployment's media socket for `call_id`, with its token.
fn media_stream(state: &AppState, call_id: &str) -> Stream {
    let public = &state.config.public_url;
    let token = state.tokens.issue(call_id, SystemTime::now());
    Stream::new(public.stream_url(&format!("{MEDIA_STREAM_PATH_PREFIX}{call_id}")))
        .status_callback(
            public.http_url(&format!("{STREAM_STATUS_PATH}?{CALL_ID_PARAM}={call_id}")),
        )
        .status_callback_method(HttpMethod::Post)
        .parameter("token", token)
        .parameter(CALL_ID_PARAM, call_id)
}

fn fallback(state: &AppState, reason: FallbackReason, call_sid: &str) -> Response {
    state.metrics.fallback_answer(reason);
    tracing::warn!(
        call_sid,
        reason = reason.as_str(),
        "answering with the fallback"
    );
    twiml_response(fallback_twiml(&state.config.fallback))
}

fn twiml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], xml).into_response()
}

async fn forward_call_status(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let params = form_params(body);
    if let Err(forbidden) = check_signature(state, uri, headers, &params, WebhookRoute::CallStatus)
    {
        return forbidden.into_response();
    }
    let callback = match CallStatusCallback::parse(body) {
        Ok(callback) => callback,
        Err(error) => {
            tracing::warn!(%error, "call status callback unreadable");
            return (StatusCode::BAD_REQUEST, "unreadable status callback").into_response();
        }
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let progress = &callback.progress;
    let request = ReportTwilioStatusRequest {
        call_id: query_param(uri, CALL_ID_PARAM).unwrap_or_default(),
        call_sid: callback.call.call_sid.clone(),
        call_status: callback.call.call_status.as_str().to_owned(),
        sequence_number: saturating_u32(progress.sequence_number),
        call_duration_seconds: saturating_u32(progress.call_duration),
        sip_response_code: progress
            .sip_response_code
            .map(|code| code.to_string())
            .unwrap_or_default(),
        answered_by: callback
            .call
            .answered_by
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        error_code: param("ErrorCode"),
        error_message: param("ErrorMessage"),
        ..ReportTwilioStatusRequest::default()
    };
    let call_sid = request.call_sid.clone();
    let call_status = request.call_status.clone();
    match state.control.report_twilio_status(request).await {
        Ok(reply) => {
            tracing::debug!(%call_sid, %call_status, applied = reply.applied, "call status forwarded");
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            tracing::info!(%call_sid, %call_status, "call status for a call no session knows");
        }
        Err(status) => {
            state
                .metrics
                .control_plane_error("report_twilio_status", status.code());
            tracing::warn!(%call_sid, %call_status, code = ?status.code(), message = status.message(), "call status not forwarded");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Checks a Media Stream status callback and forwards it to the control plane (which
/// ends a session whose stream failed before any sidecar took it); answered 204 whatever
/// the control plane says, like call status callbacks.
async fn forward_stream_status(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let params = form_params(body);
    if let Err(forbidden) =
        check_signature(state, uri, headers, &params, WebhookRoute::StreamStatus)
    {
        return forbidden.into_response();
    }
    let callback = match StreamStatusCallback::parse(body) {
        Ok(callback) => callback,
        Err(error) => {
            tracing::warn!(%error, "stream status callback unreadable");
            return (StatusCode::BAD_REQUEST, "unreadable stream status callback").into_response();
        }
    };
    let call_id = query_param(uri, CALL_ID_PARAM).unwrap_or_default();
    let call_sid = callback.call_sid.as_str();
    let stream_sid = callback.stream_sid.as_str();
    let stream_error = callback.stream_error.clone().unwrap_or_default();
    match &callback.stream_event {
        StreamEvent::Error => {
            tracing::warn!(%call_id, call_sid, stream_sid, error = %stream_error, "twilio reports a media stream error");
        }
        event => {
            tracing::info!(%call_id, call_sid, stream_sid, event = event.as_str(), "media stream status");
        }
    }
    let request = ReportTwilioStatusRequest {
        call_id,
        call_sid: callback.call_sid.clone(),
        stream_event: callback.stream_event.as_str().to_owned(),
        stream_sid: callback.stream_sid.clone(),
        stream_error,
        ..ReportTwilioStatusRequest::default()
    };
    match state.control.report_twilio_status(request).await {
        Ok(reply) => {
            tracing::debug!(
                call_sid,
                stream_sid,
                applied = reply.applied,
                "stream status forwarded"
            );
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            tracing::info!(
                call_sid,
                stream_sid,
                "stream status for a call no session knows"
            );
        }
        Err(status) => {
            state
                .metrics
                .control_plane_error("report_twilio_status", status.code());
            tracing::warn!(call_sid, stream_sid, code = ?status.code(), message = status.message(), "stream status not forwarded");
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Checks `X-Twilio-Signature` of a form request.
fn check_signature(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
    route: WebhookRoute,
) -> Result<(), Forbidden> {
    let Some(validator) = state.validator() else {
        return Ok(());
    };
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let url = state.config.public_url.http_url(path_and_query);
    let verdict = match headers.get(SIGNATURE_HEADER).map(|v| v.to_str()) {
        Some(Ok(signature)) => validator
            .validate(&url, params, signature)
            .map_err(|e| e.to_string()),
        Some(Err(_)) => Err("signature header is not text".to_owned()),
        None => Err("no signature header".to_owned()),
    };
    verdict.map_err(|reason| {
        tracing::warn!(route = route.as_str(), %url, reason, "twilio signature refused");
        Forbidden
    })
}

/// A request whose signature was refused: answered 403, nothing forwarded.
#[derive(Debug)]
struct Forbidden;

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        (StatusCode::FORBIDDEN, "forbidden").into_response()
    }
}

/// The first value of a query parameter, URL-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    form_params(uri.query()?.as_bytes())
        .into_iter()
        .find(|(key, value)| key == name && !value.is_empty())
        .map(|(_, value)| value)
}

fn saturating_u32(value: Option<u64>) -> u32 {
    value.map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_says_its_message_then_dials_or_hangs_up() {
        let mut fallback = FallbackConfig {
            message: "Sorry & goodbye.".into(),
            number: None,
        };
        let xml = fallback_twiml(&fallback);
        assert!(
            xml.ends_with("<Response><Say>Sorry &amp; goodbye.</Say><Hangup /></Response>"),
            "{xml}"
        );
        fallback.number = Some("+14155550100".into());
        let xml = fallback_twiml(&fallback);
        assert!(
            xml.contains("<Dial><Number>+14155550100</Number></Dial>") && !xml.contains("Hangup"),
            "{xml}"
        );
        fallback.message = "bad \u{1}".into();
        assert_eq!(fallback_twiml(&fallback), HANGUP_TWIML);
    }

    #[test]
    fn query_params_are_decoded_and_empty_ones_ignored() {
        let uri: Uri = "/api/twilio/status?callId=c%2D1&x=y".parse().unwrap();
        assert_eq!(query_param(&uri, "callId").as_deref(), Some("c-1"));
        let uri: Uri = "/api/twilio/status?callId=".parse().unwrap();
        assert_eq!(query_param(&uri, "callId"), None);
        let uri: Uri = "/api/twilio/status".parse().unwrap();
        assert_eq!(query_param(&uri, "callId"), None);
    }
}
