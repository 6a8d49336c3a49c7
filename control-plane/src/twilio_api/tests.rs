//! `HttpTwilioApi` against a scripted Twilio on loopback: authentication, and which
//! failures are retried. Delays are a millisecond so nothing waits; no test reads the
//! clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use switchboard_twilio::rest::{CallInstructions, CreateCall, UpdateCall};

use super::*;
use crate::config::{ApiKey, Secret, TwilioConfig};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const KEY: &str = "SK0123456789abcdef0123456789abcdef";
const CREATED: &str = r#"{"sid":"CA0123456789abcdef0123456789abcdef","status":"queued"}"#;

/// One scripted answer: status, `Retry-After`, JSON body.
type Answer = (u16, Option<&'static str>, &'static str);

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    /// Path and `authorization` header of each request received.
    seen: Vec<(String, String)>,
}

/// A Twilio that answers `answers` in order (the last one repeats).
async fn twilio(answers: &[Answer]) -> (String, Arc<Mutex<Script>>) {
    let script = Arc::new(Mutex::new(Script {
        answers: answers.iter().copied().collect(),
        seen: Vec::new(),
    }));
    let state = script.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let state = state.clone();
        async move {
            let mut script = state.lock().unwrap();
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            script.seen.push((uri.path().to_owned(), auth));
            let (status, retry_after, body) = if script.answers.len() > 1 {
                script.answers.pop_front().unwrap()
            } else {
                script.answers[0]
            };
            let mut response: Response = (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", value.parse().unwrap());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, script)
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        budget: Duration::from_secs(60),
    }
}

fn api(url: &str, api_key: Option<ApiKey>) -> HttpTwilioApi {
    let config = TwilioConfig {
        account_sid: Some(ACCOUNT.to_owned()),
        auth_token: Some(Secret::new("auth-token")),
        api_key,
        api_url: url.to_owned(),
        ca: None,
        max_cps: 1,
    };
    HttpTwilioApi::from_config(&config, reqwest::Client::new())
        .unwrap()
        .with_retry(quick())
}

fn call() -> CreateCall {
    CreateCall::new(
        "+14155550123",
        "+14155550100",
        CallInstructions::Url {
            url: "https://calls.example.com/api/twilio/voice".into(),
            method: None,
        },
    )
}

fn requests(script: &Arc<Mutex<Script>>) -> usize {
    script.lock().unwrap().seen.len()
}

const BUSY: Answer = (
    429,
    None,
    r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
);
const DOWN: Answer = (
    503,
    None,
    r#"{"code":20503,"message":"Service Unavailable"}"#,
);

#[tokio::test]
async fn an_api_key_authenticates_as_the_key_on_the_accounts_path() {
    let (url, script) = twilio(&[(201, None, CREATED)]).await;
    let key = ApiKey {
        sid: KEY.to_owned(),
        secret: Secret::new("key-secret"),
    };
    api(&url, Some(key)).create_call(&call()).await.unwrap();
    let (path, auth) = script.lock().unwrap().seen[0].clone();
    assert_eq!(path, format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json"));
    // base64("SK0123…:key-secret")
    let expected = format!(
        "Basic {}",
        base64_encode(format!("{KEY}:key-secret").as_bytes())
    );
    assert_eq!(auth, expected);

    let (url, script) = twilio(&[(201, None, CREATED)]).await;
    api(&url, None).create_call(&call()).await.unwrap();
    let (_, auth) = script.lock().unwrap().seen[0].clone();
    assert_eq!(
        auth,
        format!(
            "Basic {}",
            base64_encode(format!("{ACCOUNT}:auth-token").as_bytes())
        )
    );
}

#[tokio::test]
async fn a_throttled_call_is_placed_once_twilio_accepts_it() {
    let (url, script) = twilio(&[BUSY, (429, Some("0"), "{}"), (201, None, CREATED)]).await;
    let created = api(&url, None).create_call(&call()).await.unwrap();
    assert_eq!(
        created.sid.as_deref(),
        Some("CA0123456789abcdef0123456789abcdef")
    );
    assert_eq!(requests(&script), 3);
}

#[tokio::test]
async fn a_server_error_on_create_is_not_retried_since_the_call_may_exist() {
    let (url, script) = twilio(&[(500, None, "{}"), (201, None, CREATED)]).await;
    let err = api(&url, None).create_call(&call()).await.unwrap_err();
    assert!(
        matches!(err, TwilioError::Rejected { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(
        requests(&script),
        1,
        "a second POST could place a second call"
    );
}

#[tokio::test]
async fn a_redirect_is_retried_through_server_errors() {
    let (url, script) = twilio(&[DOWN, (502, None, ""), (200, None, CREATED)]).await;
    api(&url, None)
        .update_call("CA1", &UpdateCall::hang_up())
        .await
        .unwrap();
    assert_eq!(requests(&script), 3);
}

#[tokio::test]
async fn retries_end_after_the_attempt_limit_with_twilios_last_answer() {
    let (url, script) = twilio(&[DOWN]).await;
    let err = api(&url, None)
        .update_call("CA1", &UpdateCall::hang_up())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TwilioError::Rejected {
            status: 503,
            code: 20503,
            message: "Service Unavailable".into()
        }
    );
    assert_eq!(requests(&script), quick().max_attempts as usize);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_ends_the_retries_at_once() {
    let (url, script) = twilio(&[(429, Some("3600"), BUSY.2), (201, None, CREATED)]).await;
    let err = api(&url, None).create_call(&call()).await.unwrap_err();
    assert!(
        matches!(
            err,
            TwilioError::Rejected {
                code: TOO_MANY_REQUESTS,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests(&script), 1);
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let (url, script) = twilio(&[(
        400,
        None,
        r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#,
    )])
    .await;
    let err = api(&url, None).create_call(&call()).await.unwrap_err();
    assert!(
        matches!(err, TwilioError::Rejected { code: 21211, .. }),
        "{err:?}"
    );
    assert_eq!(requests(&script), 1);
}

#[tokio::test]
async fn a_twilio_that_cannot_be_connected_to_is_tried_again_then_unreachable() {
    // A port that was free a moment ago: nothing listens, nothing is ever sent, so even
    // creation may be repeated.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = api(&format!("http://127.0.0.1:{port}"), None)
        .create_call(&call())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TwilioError::Unreachable(m) if m.contains("onnect")),
        "{err:?}"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
