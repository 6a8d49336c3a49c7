//! Outbound calls: `CreateCallSession` with `place_call` dials the callee through
//! Twilio's REST API (the simulator's fake, a real HTTP server), records the call SID, and
//! fails honestly when it cannot.

mod support;

#[allow(unused_imports)]
use support::*;
use switchboard_sim::twilio::{FakeTwilio, RestConfig};

const ACCOUNT_SID: &str = "AC0000000000000000000000000000a0b1";
const AUTH_TOKEN: &str = "twilio-token";

/// The fake Twilio REST API on `127.0.0.1:0`; its base URL.
async fn serve_fake(fake: &FakeTwilio) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake.clone().serve(listener, std::future::pending()));
    url
}

/// What a sidecar's webhooks received: (path and query, form body).
type Hits = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A stand-in for the sidecar's webhooks: the voice webhook answers `<Hangup/>`, the
/// status webhook 204; both record what they were sent. Its voice webhook URL.
async fn serve_webhooks() -> (String, Hits) {
    use axum::extract::State;
    use axum::http::Uri;
    async fn voice(State(hits): State<Hits>, uri: Uri, body: String) -> &'static str {
        hits.lock().unwrap().push((uri.to_string(), body));
        "<Response><Hangup/></Response>"
    }
    async fn status(State(hits): State<Hits>, uri: Uri, body: String) -> axum::http::StatusCode {
        hits.lock().unwrap().push((uri.to_string(), body));
        axum::http::StatusCode::NO_CONTENT
    }
    let hits = Hits::default();
    let app = axum::Router::new()
        .route("/api/twilio/voice", axum::routing::post(voice))
        .route("/api/twilio/status", axum::routing::post(status))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/twilio/voice", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// A control plane whose Twilio account is the fake's (with `auth_token`) and whose
/// voice webhook is `voice_url`.
async fn placing_server(twilio_url: String, auth_token: &str, voice_url: &str) -> TestServer {
    let auth_token = auth_token.to_owned();
    let voice_url = reqwest::Url::parse(voice_url).unwrap();
    TestServer::start_with(move |c| {
        c.twilio.account_sid = Some(ACCOUNT_SID.into());
        c.twilio.auth_token = Some(Secret::new(auth_token));
        c.twilio.api_url = twilio_url;
        let mut status_url = voice_url.clone();
        status_url.set_path("/api/twilio/status");
        c.webhooks.voice_url = Some(voice_url);
        c.webhooks.status_url = Some(status_url);
    })
    .await
}

fn outbound_request(agent_id: &str) -> pb::CreateCallSessionRequest {
    pb::CreateCallSessionRequest {
        agent_id: agent_id.into(),
        from_number: "+14155550100".into(),
        to_number: "+14155550123".into(),
        place_call: true,
        ..Default::default()
    }
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn a_placed_call_is_dialled_through_twilio_with_the_sidecars_webhooks_and_its_sid_is_stored()
{
    let fake = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, AUTH_TOKEN));
    let twilio_url = serve_fake(&fake).await;
    let (voice_url, hits) = serve_webhooks().await;
    let server = placing_server(twilio_url, AUTH_TOKEN, &voice_url).await;
    let a = create_agent(&server, agent("Caller", &unique_number())).await;

    let session = server
        .sessions()
        .create_call_session(outbound_request(&a.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.direction, pb::CallDirection::Outbound as i32);
    assert!(session.twilio_call_sid.starts_with("CA"), "{session:?}");

    // Twilio was asked once, authenticated, with the session's webhooks.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let create = &requests[0];
    assert_eq!(
        create.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json")
    );
    assert!(create.authorized);
    assert_eq!(create.status, 201);
    assert_eq!(param(&create.params, "To"), ["+14155550123"]);
    assert_eq!(param(&create.params, "From"), ["+14155550100"]);
    let call_id_query = format!("callId={}", session.id);
    assert_eq!(
        param(&create.params, "Url"),
        [format!("{voice_url}?{call_id_query}").as_str()]
    );
    let status_callback = param(&create.params, "StatusCallback");
    assert!(
        status_callback.len() == 1
            && status_callback[0].ends_with(&format!("/api/twilio/status?{call_id_query}")),
        "{status_callback:?}"
    );
    assert_eq!(
        param(&create.params, "StatusCallbackEvent"),
        ["initiated", "ringing", "answered", "completed"]
    );
    let stored = fake
        .call(&session.twilio_call_sid)
        .expect("twilio knows the call");
    assert_eq!(stored.to.as_deref(), Some("+14155550123"));

    // Twilio dialled, the callee answered, and the voice webhook was fetched for the
    // session; the status webhook heard the call's progress, all naming the session.
    let hits = eventually(|| {
        let hits = hits.clone();
        let call_id_query = call_id_query.clone();
        async move {
            let hits = hits.lock().unwrap().clone();
            let voice = hits
                .iter()
                .any(|(uri, _)| uri == &format!("/api/twilio/voice?{call_id_query}"));
            let completed = hits.iter().any(|(uri, body)| {
                uri.starts_with("/api/twilio/status?") && body.contains("CallStatus=completed")
            });
            (voice && completed).then_some(hits)
        }
    })
    .await;
    assert!(
        hits.iter().all(|(uri, _)| uri.ends_with(&call_id_query)),
        "{hits:?}"
    );
}

#[tokio::test]
async fn placing_a_call_without_a_twilio_account_or_a_voice_webhook_names_the_missing_setting() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Caller", &unique_number())).await;
    let status = server
        .sessions()
        .create_call_session(outbound_request(&a.id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("TWILIO_ACCOUNT_SID"),
        "{}",
        status.message()
    );

    let server = TestServer::start_with(|c| {
        c.twilio.account_sid = Some(ACCOUNT_SID.into());
        c.twilio.auth_token = Some(Secret::new(AUTH_TOKEN));
    })
    .await;
    let a = create_agent(&server, agent("Caller", &unique_number())).await;
    let status = server
        .sessions()
        .create_call_session(outbound_request(&a.id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("SWITCHBOARD_VOICE_WEBHOOK_URL"),
        "{}",
        status.message()
    );

    let inbound = pb::CreateCallSessionRequest {
        direction: pb::CallDirection::Inbound.into(),
        ..outbound_request(&a.id)
    };
    let status = server
        .sessions()
        .create_call_session(inbound)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("place_call"),
        "{}",
        status.message()
    );

    // Nothing was stored by the refused requests.
    let listed = server
        .sessions()
        .list_call_sessions(pb::ListCallSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.call_sessions.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn a_call_twilio_refuses_fails_with_twilios_code_and_message() {
    let fake = FakeTwilio::new(RestConfig::new(ACCOUNT_SID, AUTH_TOKEN));
    let twilio_url = serve_fake(&fake).await;
    let (voice_url, hits) = serve_webhooks().await;
    // Twilio refuses a wrong Auth Token: 401, error 20003.
    let server = placing_server(twilio_url, "not-the-auth-token", &voice_url).await;
    let a = create_agent(&server, agent("Caller", &unique_number())).await;

    let status = server
        .sessions()
        .create_call_session(outbound_request(&a.id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let message = status.message();
    assert!(
        message.contains("twilio did not place the call")
            && message.contains("20003")
            && message.contains("Authenticate"),
        "{message}"
    );

    let listed = server
        .sessions()
        .list_call_sessions(pb::ListCallSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.call_sessions.len(), 1, "{listed:?}");
    let failed = &listed.call_sessions[0];
    assert!(
        message.contains(&failed.id),
        "the error names the session: {message}"
    );
    assert_eq!(failed.status, pb::CallStatus::Failed as i32);
    assert_eq!(failed.end_reason, "call_not_placed");
    let error = failed.error.clone().unwrap();
    assert_eq!(error.code, "twilio.20003");
    assert!(error.message.contains("Authenticate"), "{error:?}");
    assert!(failed.twilio_call_sid.is_empty());
    assert!(fake.calls().is_empty() && hits.lock().unwrap().is_empty());
}
