//! Requests on the call stream that must be acted on once and answered: the model's
//! transfer, the fallback (the AI unavailable, a sidecar's drain), the final status, and tool calls — including
//! copies a sidecar re-sends on a resumed stream after its old one broke, and after the
//! control plane restarted.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[allow(unused_imports)]
use support::*;
use switchboard_proto::v1::request_answer::Outcome;
use tokio::sync::Notify;

const ACCOUNT: &str = "AC00000000000000000000000000000007";

fn with_twilio(url: String) -> impl FnOnce(&mut Config) {
    move |c| {
        c.twilio.account_sid = Some(ACCOUNT.into());
        c.twilio.auth_token = Some(Secret::new("twilio-token"));
        c.twilio.api_url = url;
    }
}

/// A live session of `agent_id` that Twilio knows as `call_sid`.
async fn live_session(server: &TestServer, agent_id: &str, call_sid: &str) -> pb::CallSession {
    let request = pb::CreateCallSessionRequest {
        agent_id: agent_id.into(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        twilio_call_sid: call_sid.into(),
        ..Default::default()
    };
    server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner()
}

fn resumed(call_id: &str) -> pb::ConnectRequest {
    let mut request = hello(call_id);
    if let Some(In::Hello(hello)) = request.message.as_mut() {
        hello.resume = true;
    }
    request
}

fn transfer(request_id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Transfer(pb::TransferRequest {
            target: None,
            reason: "caller asked for a person".into(),
            request_id: request_id.into(),
        })),
    }
}

fn final_status(status: pb::CallStatus, request_id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Status(pb::StatusUpdate {
            status: status.into(),
            end_reason: "caller_hung_up".into(),
            error: None,
            request_id: request_id.into(),
        })),
    }
}

fn tool_call(id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::ToolCall(pb::ToolCall {
            tool_call_id: id.into(),
            name: "lookup_order".into(),
            arguments_json: r#"{"id":"4471"}"#.into(),
        })),
    }
}

/// Opens a stream; returns it once its `CallConfig` has arrived.
async fn connect(server: &TestServer, first: pb::ConnectRequest) -> (CallStream, pb::CallConfig) {
    let mut call = CallStream::open(server, first).await.unwrap();
    let Out::Config(config) = call.next().await.unwrap() else {
        panic!("the first answer is the config");
    };
    (call, config)
}

/// The next `RequestAnswer` on `call` (acks and other messages skipped).
async fn answer(call: &mut CallStream) -> pb::RequestAnswer {
    loop {
        if let Out::Answer(answer) = call.next().await.unwrap() {
            return answer;
        }
    }
}

/// The next `ToolResult` on `call`.
async fn tool_result(call: &mut CallStream) -> pb::ToolResult {
    loop {
        if let Out::ToolResult(result) = call.next().await.unwrap() {
            return result;
        }
    }
}

fn error_code(answer: &pb::RequestAnswer) -> &str {
    answer.error.as_ref().map_or("", |e| e.code.as_str())
}

#[tokio::test]
async fn a_transfer_is_redirected_once_however_often_it_is_resent() {
    let (twilio_url, seen) = fake_twilio().await;
    let server = TestServer::start_with(with_twilio(twilio_url.clone())).await;
    let mut a = agent("Transfers once", &unique_number());
    a.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName("humans".into())),
    });
    let a = create_agent(&server, a).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000101").await;

    let (mut call, config) = connect(&server, hello(&s.id)).await;
    assert!(config.answers_requests);
    call.send(transfer("transfer-1")).await;
    let first = answer(&mut call).await;
    assert_eq!(
        (first.request_id.as_str(), first.outcome()),
        ("transfer-1", Outcome::Accepted),
        "{first:?}"
    );
    let ended = server
        .wait_for_status(&s.id, pb::CallStatus::HandedOff)
        .await;
    assert_eq!(ended.end_reason, "caller asked for a person");

    // The sidecar lost the answer with its stream: it resumes the ended call and sends
    // the same request again.
    drop(call);
    let (mut call, _) = connect(&server, resumed(&s.id)).await;
    call.send(transfer("transfer-1")).await;
    assert_eq!(answer(&mut call).await, first);

    // And again after the control plane restarted (its memory of answers is gone).
    drop(call);
    let server = server.restart_with(with_twilio(twilio_url)).await;
    let (mut call, _) = connect(&server, resumed(&s.id)).await;
    call.send(transfer("transfer-1")).await;
    assert_eq!(answer(&mut call).await, first);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "twilio redirected the call once"
    );
}

#[tokio::test]
async fn a_transfer_without_a_target_is_refused_and_the_call_goes_on() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("No target", &unique_number())).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000102").await;
    let (mut call, _) = connect(&server, hello(&s.id)).await;
    call.send(transfer("transfer-1")).await;
    let refused = answer(&mut call).await;
    assert_eq!(refused.outcome(), Outcome::Refused, "{refused:?}");
    assert_eq!(error_code(&refused), "handoff.no_target");
    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.status, pb::CallStatus::InProgress as i32);
}

#[tokio::test]
async fn a_fallback_twilio_cannot_play_is_refused_and_the_call_ends_failed() {
    // No Twilio account: the fallback cannot be played.
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("No twilio", &unique_number())).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000103").await;
    let (mut call, _) = connect(&server, hello(&s.id)).await;
    let fallback = pb::ConnectRequest {
        message: Some(In::Fallback(pb::FallbackRequest {
            error: Some(pb::CallError {
                code: "openai.unavailable".into(),
                message: "connection refused".into(),
            }),
            request_id: "fallback-1".into(),
            end_reason: String::new(),
        })),
    };
    call.send(fallback.clone()).await;
    let refused = answer(&mut call).await;
    assert_eq!(refused.outcome(), Outcome::Refused, "{refused:?}");
    assert_eq!(error_code(&refused), "twilio.not_configured");
    let ended = server.wait_for_status(&s.id, pb::CallStatus::Failed).await;
    assert_eq!(ended.end_reason, "ai_unavailable");
    assert_eq!(ended.error.unwrap().code, "openai.unavailable");
    // A copy gets the same answer.
    call.send(fallback).await;
    assert_eq!(answer(&mut call).await, refused);
}

/// A sidecar's drain ran out of grace with the call on: a fallback request carrying the
/// `sidecar_drained` end reason and no error of its own.
fn drained(request_id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        message: Some(In::Fallback(pb::FallbackRequest {
            error: None,
            request_id: request_id.into(),
            end_reason: "sidecar_drained".into(),
        })),
    }
}

#[tokio::test]
async fn a_drained_call_is_redirected_to_its_fallback_and_recorded_sidecar_drained() {
    let (twilio_url, seen) = fake_twilio().await;
    let server = TestServer::start_with(with_twilio(twilio_url.clone())).await;
    let mut a = agent("Drained", &unique_number());
    a.fallback = Some(pb::Fallback {
        message: "We have to end this call; please call again.".into(),
        action: pb::fallback::Action::HangUp.into(),
    });
    let a = create_agent(&server, a).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000106").await;
    let (mut call, _) = connect(&server, hello(&s.id)).await;

    call.send(drained("fallback-1")).await;
    let first = answer(&mut call).await;
    assert_eq!(first.outcome(), Outcome::Accepted, "{first:?}");
    let ended = server.wait_for_status(&s.id, pb::CallStatus::Failed).await;
    assert_eq!(ended.end_reason, "sidecar_drained");
    let error = ended.error.expect("the drain is recorded as the error");
    assert_eq!(error.code, "sidecar.drained");
    {
        let requests = seen.lock().unwrap();
        assert_eq!(requests.len(), 1);
        let form: HashMap<String, String> = serde_urlencoded::from_str(&requests[0].2).unwrap();
        let twiml = &form["Twiml"];
        assert!(
            twiml.contains("<Say>We have to end this call; please call again.</Say>")
                && twiml.contains("<Hangup"),
            "the caller hears the agent's fallback: {twiml}"
        );
    }

    // After a control-plane restart (no memory of answers), the session stands in: a
    // copy of the drain's request finds the call ended the way it asked and is
    // accepted, while a fallback for the AI being unavailable is not what happened.
    drop(call);
    let server = server.restart_with(with_twilio(twilio_url)).await;
    let (mut call, _) = connect(&server, resumed(&s.id)).await;
    call.send(drained("fallback-1")).await;
    assert_eq!(answer(&mut call).await, first);
    call.send(pb::ConnectRequest {
        message: Some(In::Fallback(pb::FallbackRequest {
            error: None,
            request_id: "fallback-2".into(),
            end_reason: String::new(),
        })),
    })
    .await;
    let refused = answer(&mut call).await;
    assert_eq!(
        (refused.outcome(), error_code(&refused)),
        (Outcome::Refused, "call.ended")
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "twilio redirected the call once"
    );
}

#[tokio::test]
async fn a_drained_call_whose_fallback_cannot_play_ends_failed_sidecar_drained() {
    // No Twilio account: the fallback cannot be played.
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Drained, no twilio", &unique_number())).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000107").await;
    let (mut call, _) = connect(&server, hello(&s.id)).await;
    let mut request = drained("fallback-1");
    if let Some(In::Fallback(fallback)) = request.message.as_mut() {
        fallback.error = Some(pb::CallError {
            code: "sidecar.drained".into(),
            message: "the sidecar shut down".into(),
        });
    }

    call.send(request).await;
    let refused = answer(&mut call).await;
    assert_eq!(
        (refused.outcome(), error_code(&refused)),
        (Outcome::Refused, "twilio.not_configured")
    );
    let ended = server.wait_for_status(&s.id, pb::CallStatus::Failed).await;
    assert_eq!(ended.end_reason, "sidecar_drained");
    let error = ended.error.expect("the request's error is recorded");
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("sidecar.drained", "the sidecar shut down")
    );
}

#[tokio::test]
async fn a_final_status_is_answered_and_a_repeat_is_harmless() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Status", &unique_number())).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000104").await;
    let (mut call, _) = connect(&server, hello(&s.id)).await;
    call.send(batch(1..=2)).await;
    call.send(final_status(pb::CallStatus::Completed, "status-1"))
        .await;
    let accepted = answer(&mut call).await;
    assert_eq!(
        (accepted.request_id.as_str(), accepted.outcome()),
        ("status-1", Outcome::Accepted)
    );

    // A resumed stream of the ended call gets its config (and can still deliver items);
    // the repeated status is accepted, another final one refused.
    drop(call);
    let refused_plain = CallStream::open(&server, hello(&s.id)).await;
    let refused_plain = match refused_plain {
        Ok(mut call) => call.next().await.unwrap_err(),
        Err(status) => status,
    };
    assert_eq!(refused_plain.code(), Code::FailedPrecondition);
    let (mut call, config) = connect(&server, resumed(&s.id)).await;
    assert_eq!(config.stored_through_seq, 2);
    assert_eq!(
        config.session.unwrap().status,
        pb::CallStatus::Completed as i32
    );
    call.send(batch(3..=3)).await;
    let Out::Ack(ack) = call.next().await.unwrap() else {
        panic!("items of an ended call are still stored");
    };
    assert_eq!(ack.stored_through_seq, 3);
    call.send(final_status(pb::CallStatus::Completed, "status-1"))
        .await;
    assert_eq!(answer(&mut call).await.outcome(), Outcome::Accepted);
    call.send(final_status(pb::CallStatus::Failed, "status-2"))
        .await;
    let refused = answer(&mut call).await;
    assert_eq!(
        (refused.outcome(), error_code(&refused)),
        (Outcome::Refused, "call.ended")
    );
    let stored = server
        .wait_for_status(&s.id, pb::CallStatus::Completed)
        .await;
    assert_eq!(stored.conversation.len(), 3);
}

/// A tool webhook that holds every request until released; counts them.
async fn held_webhook() -> (String, Arc<AtomicUsize>, Arc<Notify>) {
    #[derive(Clone)]
    struct Hook {
        calls: Arc<AtomicUsize>,
        release: Arc<Notify>,
    }
    async fn handle(axum::extract::State(hook): axum::extract::State<Hook>) -> &'static str {
        hook.calls.fetch_add(1, Ordering::SeqCst);
        hook.release.notified().await;
        r#"{"status":"shipped"}"#
    }
    let hook = Hook {
        calls: Arc::default(),
        release: Arc::new(Notify::new()),
    };
    let app = axum::Router::new()
        .route("/order", axum::routing::post(handle))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/order", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hook.calls, hook.release)
}

#[tokio::test]
async fn tool_calls_beyond_the_bound_are_refused_at_once_and_copies_run_once() {
    let (url, calls, release) = held_webhook().await;
    let server = TestServer::start_with(|c| {
        c.tool_limits.per_call = 1;
    })
    .await;
    let mut a = agent("Tools", &unique_number());
    a.tools[0].webhook_url = url;
    let a = create_agent(&server, a).await;
    let s = live_session(&server, &a.id, "CA00000000000000000000000000000105").await;
    let (mut call, _) = connect(&server, hello(&s.id)).await;

    call.send(tool_call("call_1")).await;
    eventually(|| async { (calls.load(Ordering::SeqCst) == 1).then_some(()) }).await;
    call.send(tool_call("call_2")).await;
    let refused = tool_result(&mut call).await;
    assert_eq!(refused.tool_call_id, "call_2");
    let error = refused.error.expect("an error result");
    assert_eq!(error.code, "tool.too_many_in_flight");
    assert!(
        refused
            .output_json
            .contains("too many tool calls in flight"),
        "{}",
        refused.output_json
    );

    // The stream breaks while call_1 runs; the copy on the resumed stream waits for the
    // first run instead of calling the webhook again.
    drop(call);
    let (mut call, _) = connect(&server, resumed(&s.id)).await;
    call.send(tool_call("call_1")).await;
    release.notify_one();
    let result = tool_result(&mut call).await;
    assert_eq!(
        (result.tool_call_id.as_str(), result.output_json.as_str()),
        ("call_1", r#"{"status":"shipped"}"#)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the webhook ran once");
    // A later copy gets the kept result at once.
    call.send(tool_call("call_1")).await;
    assert_eq!(tool_result(&mut call).await, result);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
