//! The fake Twilio REST API on loopback, driven with a real HTTP client as the control plane
//! drives Twilio: Basic auth, form bodies, JSON replies, status callbacks signed and in
//! order per number, answered calls running a simulated caller, live-call updates, and
//! conference participants; refused numbers, injected creation faults and the record of
//! creations a dialler's pacing is checked against. A tiny application receives the callbacks and the answered
//! calls' webhooks and streams, checking every signature.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use switchboard_sim::twilio::record::{CallEnd, StreamEnd};
use switchboard_sim::twilio::{
    FakeTwilio, Outcome, OutcomeScript, Outcomes, RestConfig, TalkScript,
};
use switchboard_twilio::rest::{CallResource, ErrorResponse, ParticipantResource};
use switchboard_twilio::{form_params, parse_inbound, InboundMessage, RequestValidator};

const ACCOUNT: &str = "AC0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const TOKEN: &str = "12345678901234567890123456789012";
const FROM: &str = "+14155550100";
const BUSY: &str = "+15550000001";
const NO_ANSWER: &str = "+15550000002";
const FAILED: &str = "+15550000003";
const ANSWERS: &str = "+15550000004";
const INVALID: &str = "+15550000005";

/// What our application received.
#[derive(Debug, Default)]
struct Received {
    /// `(CallSid, CallStatus, SequenceNumber, signature valid)` per status callback.
    callbacks: Vec<(String, String, u64, bool)>,
    webhooks: Vec<BTreeMap<String, String>>,
    stops: usize,
}

struct Harness {
    fake: FakeTwilio,
    api: String,
    app: String,
    received: Arc<Mutex<Received>>,
    http: reqwest::Client,
}

async fn harness() -> Harness {
    let outcomes = Outcomes::default()
        .number(BUSY, OutcomeScript::after_ring(Outcome::Busy))
        .number(NO_ANSWER, OutcomeScript::after_ring(Outcome::NoAnswer))
        .number(FAILED, OutcomeScript::after_ring(Outcome::Fail))
        .number(ANSWERS, OutcomeScript::answer(TalkScript::silent()))
        .number(INVALID, OutcomeScript::after_ring(Outcome::reject(21211)));
    let fake = FakeTwilio::new(RestConfig {
        outcomes,
        ..RestConfig::new(ACCOUNT, TOKEN)
    });
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = format!("http://{}", api_listener.local_addr().expect("addr"));
    tokio::spawn(fake.clone().serve(api_listener, std::future::pending()));

    let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = app_listener.local_addr().expect("addr").to_string();
    let received = Arc::new(Mutex::new(Received::default()));
    let router = Router::new()
        .route("/status", post(status))
        .route("/voice", post(voice))
        .route("/media", get(media))
        .with_state((app.clone(), received.clone()));
    tokio::spawn(async move { axum::serve(app_listener, router).await });
    Harness {
        fake,
        api,
        app,
        received,
        http: reqwest::Client::new(),
    }
}

type AppState = (String, Arc<Mutex<Received>>);

fn signature(headers: &HeaderMap) -> &str {
    headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn status(
    State((app, received)): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let url = format!("http://{app}/status");
    let valid = RequestValidator::new(TOKEN)
        .validate_form_body(&url, &body, signature(&headers))
        .is_ok();
    let params: BTreeMap<String, String> = form_params(&body).into_iter().collect();
    received.lock().expect("lock").callbacks.push((
        params["CallSid"].clone(),
        params["CallStatus"].clone(),
        params["SequenceNumber"].parse().expect("a number"),
        valid,
    ));
    StatusCode::NO_CONTENT
}

async fn voice(
    State((app, received)): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("http://{app}/voice");
    if RequestValidator::new(TOKEN)
        .validate_form_body(&url, &body, signature(&headers))
        .is_err()
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    let params = form_params(&body).into_iter().collect();
    received.lock().expect("lock").webhooks.push(params);
    let twiml = format!(
        r#"<Response><Connect><Stream url="ws://{app}/media"><Parameter name="token" value="t-9" /></Stream></Connect></Response>"#
    );
    ([("content-type", "text/xml")], twiml).into_response()
}

async fn media(
    State((app, received)): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let url = format!("ws://{app}/media");
    if RequestValidator::new(TOKEN)
        .validate_url(&url, signature(&headers))
        .is_err()
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    upgrade.on_upgrade(move |mut socket| async move {
        while let Some(Ok(Message::Text(text))) = socket.recv().await {
            if let Ok(InboundMessage::Stop(_)) = parse_inbound(&text) {
                received.lock().expect("lock").stops += 1;
            }
        }
    })
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}/2010-04-01/Accounts/{ACCOUNT}/{path}", self.api)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .basic_auth(ACCOUNT, Some(TOKEN))
            .form(form)
            .send()
            .await
            .expect("fake answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create_call(&self, to: &str, events: &[&str]) -> String {
        let callback = format!("http://{}/status", self.app);
        let voice = format!("http://{}/voice", self.app);
        let mut form = vec![("To", to), ("From", FROM), ("Url", voice.as_str())];
        form.push(("StatusCallback", callback.as_str()));
        form.extend(events.iter().map(|event| ("StatusCallbackEvent", *event)));
        let (status, body) = self.post("Calls.json", &form).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let call: CallResource = serde_json::from_value(body).expect("a call resource");
        assert_eq!(call.status.as_ref().map(|s| s.as_str()), Some("queued"));
        assert_eq!(
            call.direction.as_ref().map(|d| d.as_str()),
            Some("outbound-api")
        );
        call.sid.expect("a sid")
    }

    /// A create request for `to` with inline TwiML: the raw response.
    async fn try_create(&self, to: &str) -> reqwest::Response {
        self.http
            .post(self.url("Calls.json"))
            .basic_auth(ACCOUNT, Some(TOKEN))
            .form(&[("To", to), ("From", FROM), ("Twiml", "<Response/>")])
            .send()
            .await
            .expect("fake answers")
    }

    /// The callbacks our application received for `call_sid`, waiting for `count`.
    async fn callbacks(&self, call_sid: &str, count: usize) -> Vec<(String, u64, bool)> {
        eventually(|| {
            let received = self.received.lock().expect("lock");
            let mine: Vec<(String, u64, bool)> = received
                .callbacks
                .iter()
                .filter(|(sid, ..)| sid == call_sid)
                .map(|(_, status, seq, valid)| (status.clone(), *seq, *valid))
                .collect();
            (mine.len() >= count).then_some(mine)
        })
        .await
    }
}

/// Polls `check` every 10 ms for up to 10 s.
async fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = check() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}

#[tokio::test]
async fn requests_without_the_account_credentials_get_twilio_401() {
    let h = harness().await;
    let no_auth = h
        .http
        .post(h.url("Calls.json"))
        .form(&[("To", BUSY), ("From", FROM), ("Twiml", "<Response/>")])
        .send()
        .await
        .expect("answers");
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_auth.json().await.expect("json");
    assert_eq!(body["code"], 20003);
    assert_eq!(body["status"], 401);
    assert_eq!(
        body["more_info"],
        "https://www.twilio.com/docs/errors/20003"
    );

    let wrong = h
        .http
        .get(h.url("Calls.json"))
        .basic_auth(ACCOUNT, Some("wrong"))
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let recorded = h.fake.requests();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| !r.authorized && r.status == 401));
    assert!(h.fake.calls().is_empty(), "nothing was created");
}

#[tokio::test]
async fn create_call_refuses_forms_twilio_refuses() {
    let h = harness().await;
    let (status, body) = h
        .post("Calls.json", &[("From", FROM), ("Twiml", "<Response/>")])
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(21201))
    );
    let (_, body) = h
        .post("Calls.json", &[("To", BUSY), ("Twiml", "<Response/>")])
        .await;
    assert_eq!(body["code"], 21213);
    let (_, body) = h.post("Calls.json", &[("To", BUSY), ("From", FROM)]).await;
    assert_eq!(body["code"], 21205);
    let (status, body) = h
        .post(
            "Calls/CA00000000000000000000000000000000.json",
            &[("Status", "completed")],
        )
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(20404))
    );
    let recorded = h.fake.requests();
    assert_eq!(recorded[0].params[0], ("From".to_owned(), FROM.to_owned()));
}

#[tokio::test]
async fn each_number_gets_the_status_callbacks_of_its_script_signed_and_in_order() {
    let h = harness().await;
    let all = ["initiated", "ringing", "answered", "completed"];
    for (number, last) in [(BUSY, "busy"), (NO_ANSWER, "no-answer"), (FAILED, "failed")] {
        let sid = h.create_call(number, &all).await;
        let callbacks = h.callbacks(&sid, 3).await;
        let expected: Vec<(String, u64, bool)> = [("initiated", 0), ("ringing", 1), (last, 2)]
            .iter()
            .map(|(status, seq)| (status.to_string(), *seq, true))
            .collect();
        assert_eq!(callbacks, expected, "{number}");
        let call = eventually(|| h.fake.call(&sid).filter(|c| c.end_time.is_some())).await;
        assert_eq!(call.status.as_ref().map(|s| s.as_str()), Some(last));
        assert!(h.fake.caller(&sid).is_none(), "never answered");
    }
}

#[tokio::test]
async fn only_completed_is_sent_when_no_events_are_asked_for() {
    let h = harness().await;
    let sid = h.create_call(BUSY, &[]).await;
    let callbacks = h.callbacks(&sid, 1).await;
    assert_eq!(callbacks, [("busy".to_owned(), 0, true)]);
    // The application has the callback before the fake has its answer: wait for it.
    let sent = eventually(|| {
        let sent = h.fake.callbacks_for(&sid);
        sent.first()?.response_status.is_some().then_some(sent)
    })
    .await;
    assert_eq!(sent[0].response_status, Some(204));
    let params: BTreeMap<&str, &str> = sent[0]
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(params["CallbackSource"], "call-progress-events");
    assert_eq!(params["SipResponseCode"], "486");
    assert_eq!(params["CallDuration"], "0");
}

#[tokio::test]
async fn an_answered_call_runs_a_caller_and_completed_hangs_it_up() {
    let h = harness().await;
    let sid = h
        .create_call(ANSWERS, &["initiated", "ringing", "answered", "completed"])
        .await;
    let streaming = eventually(|| {
        h.fake
            .call_record(&sid)
            .filter(|r| r.stream().is_some_and(|s| s.sent.frames > 0))
    })
    .await;
    assert_eq!(
        streaming.stream().expect("stream").custom_parameters["token"],
        "t-9"
    );
    let webhook = h.received.lock().expect("lock").webhooks[0].clone();
    assert_eq!(webhook["CallSid"], sid);
    assert_eq!(webhook["CallStatus"], "in-progress");
    assert_eq!(webhook["Direction"], "outbound-api");
    assert_eq!(
        (webhook["From"].as_str(), webhook["To"].as_str()),
        (FROM, ANSWERS)
    );

    let (status, body) = h
        .post(&format!("Calls/{sid}.json"), &[("Status", "completed")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let callbacks = h.callbacks(&sid, 4).await;
    let statuses: Vec<&str> = callbacks.iter().map(|(s, ..)| s.as_str()).collect();
    assert_eq!(
        statuses,
        ["initiated", "ringing", "in-progress", "completed"]
    );
    assert!(callbacks.iter().all(|(_, _, valid)| *valid));
    let record = h.fake.call_record(&sid).expect("a record");
    assert_eq!(record.end, Some(CallEnd::HungUpByApi));
    assert_eq!(
        record.stream().and_then(|s| s.end.clone()),
        Some(StreamEnd::HungUpByApi)
    );
    assert_eq!(h.received.lock().expect("lock").stops, 1, "stop on hang-up");

    let fetched = h
        .http
        .get(h.url(&format!("Calls/{sid}.json")))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("answers");
    let call: CallResource = fetched.json().await.expect("a call");
    assert_eq!(call.status.as_ref().map(|s| s.as_str()), Some("completed"));
}

#[tokio::test]
async fn an_update_with_twiml_redirects_the_live_call() {
    let h = harness().await;
    let sid = h.create_call(ANSWERS, &["completed"]).await;
    eventually(|| {
        h.fake
            .call_record(&sid)
            .filter(|r| r.stream().is_some_and(|s| s.sent.frames > 0))
    })
    .await;
    let handoff = "<Response><Say>Connecting you to an agent.</Say><Dial><Conference>handoff-1</Conference></Dial></Response>";
    let (status, _) = h
        .post(&format!("Calls/{sid}.json"), &[("Twiml", handoff)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let callbacks = h.callbacks(&sid, 1).await;
    assert_eq!(callbacks, [("completed".to_owned(), 0, true)]);
    let record = h.fake.call_record(&sid).expect("a record");
    assert_eq!(
        record.stream().and_then(|s| s.end.clone()),
        Some(StreamEnd::Redirected)
    );
    assert_eq!(
        record.documents.last().map(|d| d.twiml.as_str()),
        Some(handoff)
    );
    assert_eq!(record.end, Some(CallEnd::Dialed));
    assert_eq!(h.received.lock().expect("lock").stops, 1);

    let (status, body) = h
        .post(&format!("Calls/{sid}.json"), &[("Twiml", handoff)])
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(21220))
    );
}

#[tokio::test]
async fn conference_participants_join_update_and_leave() {
    let h = harness().await;
    let callback = format!("http://{}/status", h.app);
    let (status, body) = h
        .post(
            "Conferences/handoff-1/Participants.json",
            &[
                ("From", FROM),
                ("To", ANSWERS),
                ("Label", "agent"),
                ("EndConferenceOnExit", "true"),
                ("StatusCallback", callback.as_str()),
                ("StatusCallbackEvent", "answered"),
                ("StatusCallbackEvent", "completed"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let participant: ParticipantResource = serde_json::from_value(body).expect("a participant");
    let conference_sid = participant.conference_sid.clone().expect("a conference");
    assert!(conference_sid.starts_with("CF"));
    assert_eq!(participant.end_conference_on_exit, Some(true));
    let call_sid = participant.call_sid.clone().expect("a call");
    let connected = eventually(|| {
        h.fake
            .participants("handoff-1")
            .into_iter()
            .find(|p| p.status.as_ref().is_some_and(|s| s.as_str() == "connected"))
    })
    .await;
    assert_eq!(connected.label.as_deref(), Some("agent"));

    let (status, body) = h
        .post(
            &format!("Conferences/{conference_sid}/Participants/agent.json"),
            &[("Muted", "true")],
        )
        .await;
    assert_eq!(
        (status, body["muted"].as_bool()),
        (StatusCode::OK, Some(true))
    );

    let listed = h
        .http
        .get(h.url(&format!("Conferences/{conference_sid}/Participants.json")))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("answers");
    let listed: Value = listed.json().await.expect("json");
    assert_eq!(listed["participants"].as_array().map(Vec::len), Some(1));

    let kicked = h
        .http
        .delete(h.url(&format!(
            "Conferences/{conference_sid}/Participants/{call_sid}.json"
        )))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .send()
        .await
        .expect("answers");
    assert_eq!(kicked.status(), StatusCode::NO_CONTENT);
    let callbacks = h.callbacks(&call_sid, 2).await;
    let statuses: Vec<&str> = callbacks.iter().map(|(s, ..)| s.as_str()).collect();
    assert_eq!(statuses, ["in-progress", "completed"]);
    let left = eventually(|| {
        h.fake
            .participants(&conference_sid)
            .into_iter()
            .find(|p| p.status.as_ref().is_some_and(|s| s.as_str() == "complete"))
    })
    .await;
    assert_eq!(left.call_sid.as_deref(), Some(call_sid.as_str()));
}

fn unix_ms_now() -> u64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    u64::try_from(since_epoch.as_millis()).expect("fits")
}

#[tokio::test]
async fn a_rejected_number_gets_twilios_error_and_no_call() {
    let h = harness().await;
    let response = h.try_create(INVALID).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: ErrorResponse = response.json().await.expect("Twilio's error body");
    assert_eq!(error.code, Some(21211));
    assert_eq!(error.status, Some(400));
    assert_eq!(
        error.message.as_deref(),
        Some("The 'To' number +15550000005 is not a valid phone number.")
    );
    assert_eq!(
        error.more_info.as_deref(),
        Some("https://www.twilio.com/docs/errors/21211")
    );
    // Conference participants are refused the same way.
    let (status, body) = h
        .post(
            "Conferences/handoff-1/Participants.json",
            &[("From", FROM), ("To", INVALID)],
        )
        .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(21211))
    );
    assert!(h.fake.calls().is_empty(), "nothing was created");
    assert!(h.fake.created_calls().is_empty());
    assert!(h.fake.participants("handoff-1").is_empty());
    let statuses: Vec<u16> = h.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400]);

    // Other numbers are still created.
    assert_eq!(h.try_create(BUSY).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn injected_faults_refuse_the_next_creations_then_calls_are_created_again() {
    let h = harness().await;
    h.fake.fail_next_creates(2, 429);
    for to in [BUSY, NO_ANSWER] {
        let response = h.try_create(to).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after = response.headers().get("retry-after").cloned();
        assert_eq!(
            retry_after.as_ref().and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let error: ErrorResponse = response.json().await.expect("Twilio's error body");
        assert_eq!(
            (error.code, error.status, error.message.as_deref()),
            (Some(20429), Some(429), Some("Too Many Requests"))
        );
    }
    assert!(h.fake.calls().is_empty(), "nothing was created");
    assert_eq!(h.try_create(BUSY).await.status(), StatusCode::CREATED);

    h.fake.fail_next_creates(1, 503);
    let response = h.try_create(NO_ANSWER).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_none());
    let error: ErrorResponse = response.json().await.expect("Twilio's error body");
    assert_eq!((error.code, error.status), (Some(20503), Some(503)));
    assert_eq!(h.try_create(NO_ANSWER).await.status(), StatusCode::CREATED);

    // A fault pending is cleared by n = 0.
    h.fake.fail_next_creates(5, 503);
    h.fake.fail_next_creates(0, 503);
    assert_eq!(h.try_create(FAILED).await.status(), StatusCode::CREATED);

    let statuses: Vec<u16> = h.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 201, 503, 201, 201]);
    let created: Vec<String> = h.fake.created_calls().into_iter().map(|c| c.to).collect();
    assert_eq!(created, [BUSY, NO_ANSWER, FAILED]);
}

#[tokio::test]
async fn created_calls_and_requests_carry_their_wall_clock_times_in_order() {
    let h = harness().await;
    let before = unix_ms_now();
    let mut sids = Vec::new();
    for to in [BUSY, NO_ANSWER, BUSY, FAILED, BUSY] {
        sids.push(h.create_call(to, &[]).await);
    }
    let after = unix_ms_now();
    let created = h.fake.created_calls();
    let created_sids: Vec<&str> = created.iter().map(|c| c.call_sid.as_str()).collect();
    assert_eq!(created_sids, sids);
    assert!(created.iter().all(|c| c.from == FROM));
    let to_busy = created.iter().filter(|c| c.to == BUSY).count();
    assert_eq!(to_busy, 3, "countable per number");
    assert!(
        created
            .windows(2)
            .all(|w| w[0].at_unix_ms <= w[1].at_unix_ms),
        "{created:?}"
    );
    assert!(created
        .iter()
        .all(|c| (before..=after).contains(&c.at_unix_ms)));
    let requests = h.fake.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests
        .iter()
        .all(|r| (before..=after).contains(&r.at_unix_ms)));
    assert!(requests
        .iter()
        .zip(&created)
        .all(|(request, call)| request.at_unix_ms <= call.at_unix_ms));
}
