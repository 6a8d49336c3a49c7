//! Every call ends in the record, whatever dies: a call whose sidecar stream goes away
//! is ended `sidecar_lost` by the orphan sweeper within the orphan timeout, while one
//! whose stream stays open is left alone however long it runs; an answered call whose
//! media stream never comes ends `stream_never_connected`; and with a Twilio account
//! the sweeper asks Twilio first — a call Twilio still carries is sent to the agent's
//! fallback, a placed call that rang out takes Twilio's status.

mod support;

use std::sync::{Arc, Mutex};

#[allow(unused_imports)]
use support::*;

/// Short, so the tests are quick: leases of 750 ms renewed every 250 ms.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(1);
/// Generous: the sweeper first waits a whole timeout of reachable store, then a lease
/// must pass; a loaded machine may take far longer than that.
const PATIENCE: Duration = Duration::from_secs(30);
const ACCOUNT_SID: &str = "AC00000000000000000000000000000009";

/// What the fake Twilio says of each call SID, and the updates it was sent.
#[derive(Debug, Default)]
struct FakeTwilio {
    statuses: HashMap<String, String>,
    updates: Vec<(String, String)>,
}

type Shared = Arc<Mutex<FakeTwilio>>;

/// Twilio's "fetch a call" and "update a call" endpoints, answering from `FakeTwilio`.
async fn fake_twilio_calls() -> (String, Shared) {
    use axum::extract::{Path, State};
    async fn fetch(
        State(fake): State<Shared>,
        Path((_account, call)): Path<(String, String)>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let sid = call.trim_end_matches(".json").to_owned();
        let status = fake.lock().unwrap().statuses.get(&sid).cloned();
        match status {
            Some(status) => {
                axum::Json(serde_json::json!({ "sid": sid, "status": status })).into_response()
            }
            None => (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(
                    serde_json::json!({ "code": 20404, "message": "not found", "status": 404 }),
                ),
            )
                .into_response(),
        }
    }
    async fn update(
        State(fake): State<Shared>,
        Path((_account, call)): Path<(String, String)>,
        body: String,
    ) -> axum::Json<serde_json::Value> {
        let sid = call.trim_end_matches(".json").to_owned();
        let mut fake = fake.lock().unwrap();
        fake.updates.push((sid.clone(), body));
        fake.statuses.insert(sid.clone(), "completed".into());
        axum::Json(serde_json::json!({ "sid": sid, "status": "in-progress" }))
    }
    let fake: Shared = Default::default();
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            axum::routing::get(fetch).post(update),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

async fn server(twilio_url: Option<String>) -> TestServer {
    TestServer::start_with(|c| {
        c.orphan_timeout = ORPHAN_TIMEOUT;
        if let Some(url) = twilio_url {
            c.twilio.account_sid = Some(ACCOUNT_SID.into());
            c.twilio.auth_token = Some(Secret::new("twilio-token"));
            c.twilio.api_url = url;
        }
    })
    .await
}

/// An inbound call to a realtime agent, as a sidecar's voice webhook opens it.
async fn inbound_call(server: &TestServer, number: &str, call_sid: &str) -> pb::CallSession {
    let opened = server
        .calls()
        .open_inbound_call(pb::OpenInboundCallRequest {
            to_number: number.into(),
            from_number: "+815011112222".into(),
            call_sid: call_sid.into(),
            sidecar_id: "sidecar-test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(opened.route, Some(Route::Realtime(_))),
        "{opened:?}"
    );
    opened.session.unwrap()
}

async fn get(server: &TestServer, id: &str) -> pb::CallSession {
    server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// The session once it has ended, within [`PATIENCE`].
async fn ended(server: &TestServer, id: &str) -> pb::CallSession {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = get(server, id).await;
        if s.ended_at.is_some() {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {id} not ended within {PATIENCE:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hello_with(call_id: &str, call_sid: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Hello(pb::Hello {
            call_id: call_id.into(),
            stream_sid: "MZ00000000000000000000000000000009".into(),
            call_sid: call_sid.into(),
            sidecar_id: "sidecar-test".into(),
            resume: false,
        })),
    }
}

#[tokio::test]
async fn a_call_held_by_an_open_stream_lives_on_and_one_whose_stream_went_is_swept() {
    let server = server(None).await;
    let number = unique_number();
    create_agent(&server, agent("Leases", &number)).await;
    let kept = inbound_call(&server, &number, "CA00000000000000000000000000000101").await;
    let lost = inbound_call(&server, &number, "CA00000000000000000000000000000102").await;
    let mut kept_stream = CallStream::open(&server, hello(&kept.id)).await.unwrap();
    assert!(matches!(kept_stream.next().await.unwrap(), Out::Config(_)));
    let mut lost_stream = CallStream::open(&server, hello(&lost.id)).await.unwrap();
    assert!(matches!(lost_stream.next().await.unwrap(), Out::Config(_)));
    // The sidecar carrying `lost` dies: its stream closes.
    drop(lost_stream);

    let lost = ended(&server, &lost.id).await;
    assert_eq!(lost.status, pb::CallStatus::Failed as i32, "{lost:?}");
    assert_eq!(lost.end_reason, "sidecar_lost");
    let error = lost.error.expect("the sweep says why");
    assert_eq!(error.code, "sidecar.lost");

    // Several orphan timeouts later the call whose stream is open is still live.
    tokio::time::sleep(ORPHAN_TIMEOUT * 4).await;
    let kept_now = get(&server, &kept.id).await;
    assert_eq!(
        kept_now.status,
        pb::CallStatus::InProgress as i32,
        "an open stream keeps its call's lease: {kept_now:?}"
    );
    kept_stream
        .send(pb::ConnectRequest {
            message: Some(In::Status(pb::StatusUpdate {
                status: pb::CallStatus::Completed.into(),
                end_reason: "caller_hung_up".into(),
                request_id: "status-1".into(),
                ..Default::default()
            })),
        })
        .await;
    assert!(matches!(kept_stream.next().await.unwrap(), Out::Answer(_)));
    let kept = get(&server, &kept.id).await;
    assert_eq!(
        (kept.status, kept.end_reason.as_str()),
        (pb::CallStatus::Completed as i32, "caller_hung_up")
    );
}

#[tokio::test]
async fn an_answered_call_whose_stream_never_comes_ends_stream_never_connected() {
    let server = server(None).await;
    let number = unique_number();
    create_agent(&server, agent("No stream", &number)).await;
    let call = inbound_call(&server, &number, "CA00000000000000000000000000000201").await;
    assert_eq!(call.status, pb::CallStatus::Ringing as i32);

    let call = ended(&server, &call.id).await;
    assert_eq!(call.status, pb::CallStatus::Failed as i32, "{call:?}");
    assert_eq!(call.end_reason, "stream_never_connected");
    assert_eq!(call.error.unwrap().code, "stream.never_connected");
}

#[tokio::test]
async fn a_lost_call_twilio_still_carries_is_sent_to_the_fallback() {
    let (twilio_url, fake) = fake_twilio_calls().await;
    let server = server(Some(twilio_url)).await;
    let number = unique_number();
    let mut a = agent("Fallback", &number);
    a.fallback = Some(pb::Fallback {
        message: "We lost you for a moment; please call again.".into(),
        action: pb::fallback::Action::HangUp.into(),
    });
    create_agent(&server, a).await;
    let call_sid = "CA00000000000000000000000000000301";
    fake.lock()
        .unwrap()
        .statuses
        .insert(call_sid.into(), "in-progress".into());
    let call = inbound_call(&server, &number, call_sid).await;
    let mut stream = CallStream::open(&server, hello_with(&call.id, call_sid))
        .await
        .unwrap();
    assert!(matches!(stream.next().await.unwrap(), Out::Config(_)));
    drop(stream);

    let call = ended(&server, &call.id).await;
    assert_eq!(
        (call.status, call.end_reason.as_str()),
        (pb::CallStatus::Failed as i32, "sidecar_lost"),
        "{call:?}"
    );
    assert!(
        call.error.as_ref().unwrap().message.contains("in-progress"),
        "the error says what twilio said: {:?}",
        call.error
    );
    let updates = fake.lock().unwrap().updates.clone();
    assert_eq!(updates.len(), 1, "{updates:?}");
    let (sid, body) = &updates[0];
    assert_eq!(sid, call_sid);
    let form: HashMap<String, String> = serde_urlencoded::from_str(body).unwrap();
    let twiml = &form["Twiml"];
    assert!(
        twiml.contains("We lost you for a moment") && twiml.contains("<Hangup"),
        "the caller hears the agent's fallback: {twiml}"
    );
}

#[tokio::test]
async fn a_placed_call_that_never_connected_takes_twilios_status() {
    let (twilio_url, fake) = fake_twilio_calls().await;
    let server = server(Some(twilio_url)).await;
    let a = create_agent(&server, agent("Outbound", &unique_number())).await;
    let (rang_out, rings) = (
        "CA00000000000000000000000000000401",
        "CA00000000000000000000000000000402",
    );
    {
        let mut fake = fake.lock().unwrap();
        fake.statuses.insert(rang_out.into(), "no-answer".into());
        fake.statuses.insert(rings.into(), "ringing".into());
    }
    let create = |sid: &str| pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        twilio_call_sid: sid.into(),
        direction: pb::CallDirection::Outbound.into(),
        ..Default::default()
    };
    let first = server
        .sessions()
        .create_call_session(create(rang_out))
        .await
        .unwrap()
        .into_inner();
    let second = server
        .sessions()
        .create_call_session(create(rings))
        .await
        .unwrap()
        .into_inner();

    let first = ended(&server, &first.id).await;
    assert_eq!(
        (first.status, first.end_reason.as_str()),
        (pb::CallStatus::NoAnswer as i32, "twilio_no_answer"),
        "its lost status callback is made up for: {first:?}"
    );
    // The one that still rings is left alone while Twilio says so.
    tokio::time::sleep(ORPHAN_TIMEOUT * 2).await;
    let still = get(&server, &second.id).await;
    assert_eq!(still.status, pb::CallStatus::Queued as i32, "{still:?}");
    fake.lock()
        .unwrap()
        .statuses
        .insert(rings.into(), "busy".into());
    let second = ended(&server, &second.id).await;
    assert_eq!(
        (second.status, second.end_reason.as_str()),
        (pb::CallStatus::Busy as i32, "twilio_busy")
    );
    assert!(
        fake.lock().unwrap().updates.is_empty(),
        "nothing to hang up or redirect"
    );
}
