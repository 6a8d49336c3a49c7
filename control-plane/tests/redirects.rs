//! Redirects of live calls through Twilio's REST API: the AI-unavailable fallback and HandoffService.

mod support;

#[allow(unused_imports)]
use support::*;

#[tokio::test]
async fn when_the_ai_is_unavailable_the_call_is_redirected_to_the_agents_fallback() {
    let (twilio_url, seen) = fake_twilio().await;
    let server = TestServer::start_with(|c| {
        c.twilio.account_sid = Some("AC00000000000000000000000000000007".into());
        c.twilio.auth_token = Some(Secret::new("twilio-token"));
        c.twilio.api_url = twilio_url;
    })
    .await;
    let mut a = agent("Fallback", &unique_number());
    a.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName("humans".into())),
    });
    a.fallback = Some(pb::Fallback {
        message: "Connecting you to a person.".into(),
        action: pb::fallback::Action::Transfer.into(),
    });
    let a = create_agent(&server, a).await;
    let request = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        twilio_call_sid: "CA00000000000000000000000000000077".into(),
        ..Default::default()
    };
    let s = server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner();
    let mut watch = server
        .sessions()
        .watch_call_events(pb::WatchCallEventsRequest {
            call_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    call.next().await.unwrap();
    call.send(pb::ConnectRequest {
        message: Some(In::Fallback(pb::FallbackRequest {
            error: Some(pb::CallError {
                code: "openai.unavailable".into(),
                message: "connection refused".into(),
            }),
            request_id: String::new(),
            end_reason: String::new(),
        })),
    })
    .await;

    let ended = server
        .wait_for_status(&s.id, pb::CallStatus::HandedOff)
        .await;
    assert_eq!(ended.end_reason, "ai_unavailable");
    assert_eq!(ended.error.unwrap().code, "openai.unavailable");

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (path, auth, body) = &requests[0];
    assert_eq!(
        path,
        "AC00000000000000000000000000000007/CA00000000000000000000000000000077.json"
    );
    assert!(auth.starts_with("Basic "), "{auth}");
    let form: HashMap<String, String> = serde_urlencoded::from_str(body).unwrap();
    let twiml = &form["Twiml"];
    assert!(
        twiml.contains("<Say>Connecting you to a person.</Say>")
            && twiml.contains("<Conference>humans</Conference>"),
        "{twiml}"
    );

    let mut saw_handoff = false;
    while !saw_handoff {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        saw_handoff = matches!(event.event, Some(pb::call_event::Event::Handoff(_)));
    }
}

#[tokio::test]
async fn a_handoff_redirects_the_live_call_to_humans_and_ends_the_session() {
    use switchboard_proto::v1::handoff_service_client::HandoffServiceClient;
    let (twilio_url, seen) = fake_twilio().await;
    let server = TestServer::start_with(|c| {
        c.twilio.account_sid = Some("AC00000000000000000000000000000007".into());
        c.twilio.auth_token = Some(Secret::new("twilio-token"));
        c.twilio.api_url = twilio_url;
    })
    .await;
    let mut a = agent("Handoff", &unique_number());
    a.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName("support".into())),
    });
    let a = create_agent(&server, a).await;
    let request = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        twilio_call_sid: "CA000000000000000000000000000000bb".into(),
        ..Default::default()
    };
    let s = server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner();
    let mut handoff = HandoffServiceClient::new(server.channel.clone());

    let bad = pb::RequestHandoffRequest {
        call_id: s.id.clone(),
        target: Some(pb::HandoffTarget {
            target: Some(pb::handoff_target::Target::PhoneNumber("0312345678".into())),
        }),
        ..Default::default()
    };
    let status = handoff.request_handoff(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("target.phone_number"),
        "{}",
        status.message()
    );
    let unknown = pb::RequestHandoffRequest {
        call_id: "no-such-call".into(),
        ..Default::default()
    };
    assert_eq!(
        handoff.request_handoff(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "refused requests call nobody"
    );

    let request = pb::RequestHandoffRequest {
        call_id: s.id.clone(),
        reason: "caller asked".into(),
        say: "One moment please.".into(),
        ..Default::default()
    };
    let ended = handoff
        .request_handoff(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.status, pb::CallStatus::HandedOff as i32);
    assert_eq!(ended.end_reason, "caller asked");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let form: HashMap<String, String> = serde_urlencoded::from_str(&requests[0].2).unwrap();
    assert!(
        form["Twiml"].contains("<Say>One moment please.</Say>")
            && form["Twiml"].contains("<Conference>support</Conference>"),
        "{}",
        form["Twiml"]
    );

    let again = handoff.request_handoff(request).await.unwrap_err();
    assert_eq!(
        again.code(),
        Code::FailedPrecondition,
        "an ended call cannot be handed off"
    );
}

#[tokio::test]
async fn a_handoff_without_any_target_is_refused_and_the_call_goes_on() {
    use switchboard_proto::v1::handoff_service_client::HandoffServiceClient;
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("No target", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let status = HandoffServiceClient::new(server.channel.clone())
        .request_handoff(pb::RequestHandoffRequest {
            call_id: s.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.status, pb::CallStatus::Queued as i32);
}
