//! CallChannelService.OpenInboundCall: routing by number, the default agent, placed calls.

mod support;

#[allow(unused_imports)]
use support::*;

#[tokio::test]
async fn inbound_calls_are_routed_by_the_dialled_number() {
    let server = TestServer::start().await;
    let realtime_number = unique_number();
    let mut a = agent("Realtime", &realtime_number);
    a.greeting = "Hello!".into();
    create_agent(&server, a).await;
    let conference_number = unique_number();
    let mut c = agent("Humans", &conference_number);
    c.mode = pb::AgentMode::Conference.into();
    c.handoff_target = Some(pb::HandoffTarget {
        target: Some(pb::handoff_target::Target::ConferenceName(
            "support-desk".into(),
        )),
    });
    create_agent(&server, c).await;

    let open = |to: &str, sid: &str| pb::OpenInboundCallRequest {
        to_number: to.into(),
        from_number: "+14155550123".into(),
        call_sid: sid.into(),
        sidecar_id: "sidecar-1".into(),
        call_id: String::new(),
    };
    let first = server
        .calls()
        .open_inbound_call(open(&realtime_number, "CA0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.route,
        Some(Route::Realtime(pb::RealtimeRoute {
            greeting: "Hello!".into()
        }))
    );
    let session = first.session.unwrap();
    assert_eq!(session.direction, pb::CallDirection::Inbound as i32);
    assert_eq!(session.status, pb::CallStatus::Ringing as i32);
    assert_eq!(session.customer.unwrap().phone, "+14155550123");

    // Twilio retries the webhook: same session.
    let retry = server
        .calls()
        .open_inbound_call(open(&realtime_number, "CA0001"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.session.unwrap().id, session.id);

    let humans = server
        .calls()
        .open_inbound_call(open(&conference_number, "CA0002"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        humans.route,
        Some(Route::Conference(pb::ConferenceRoute {
            conference_name: "support-desk".into(),
            say: String::new()
        }))
    );
    assert_eq!(
        humans.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );

    let nobody = server
        .calls()
        .open_inbound_call(open(&unique_number(), "CA0003"))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(nobody.route, Some(Route::Reject(_))));
    let failed = nobody.session.unwrap();
    assert_eq!(failed.status, pb::CallStatus::Failed as i32);
    assert_eq!(failed.error.unwrap().code, "agent.not_found");

    let bad = server
        .calls()
        .open_inbound_call(open("not-a-number", "CA0004"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("to_number"));
}

#[tokio::test]
async fn the_default_agent_answers_unknown_numbers_and_data_survives_a_restart() {
    let server =
        TestServer::start_with(|c| c.default_agent_id = Some("not-created-yet".into())).await;
    let open = |sid: &str| pb::OpenInboundCallRequest {
        to_number: unique_number(),
        from_number: "+14155550123".into(),
        call_sid: sid.into(),
        sidecar_id: String::new(),
        call_id: String::new(),
    };
    // A default agent that does not exist: the call is refused politely, not crashed.
    let refused = server
        .calls()
        .open_inbound_call(open("CA0100"))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(refused.route, Some(Route::Reject(_))));

    let fallback = create_agent(&server, agent("Default", &unique_number())).await;
    let id = fallback.id.clone();
    let server = server
        .restart_with(move |c| c.default_agent_id = Some(id))
        .await;
    let answered = server
        .calls()
        .open_inbound_call(open("CA0101"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(answered.route, Some(Route::Realtime(_))),
        "{:?}",
        answered.route
    );
    assert_eq!(answered.session.unwrap().agent_id, fallback.id);
    // The session refused before the restart is still on record.
    let before = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest {
            id: refused.session.unwrap().id,
        })
        .await
        .unwrap();
    assert_eq!(before.into_inner().status, pb::CallStatus::Failed as i32);
}

#[tokio::test]
async fn a_placed_call_is_answered_by_its_own_agent_and_learns_its_call_sid() {
    let server = TestServer::start().await;
    let mut greeter = agent("Outbound", &unique_number());
    greeter.greeting = "Hello from the outbound agent".into();
    let outbound = create_agent(&server, greeter).await;
    let other_number = unique_number();
    create_agent(&server, agent("Owner of the number", &other_number)).await;
    let placed = create_session(&server, &outbound.id).await;

    let request = pb::OpenInboundCallRequest {
        to_number: other_number.clone(),
        from_number: "+815011112222".into(),
        call_sid: "CA000000000000000000000000000000aa".into(),
        sidecar_id: "sidecar-1".into(),
        call_id: placed.id.clone(),
    };
    let answer = server
        .calls()
        .open_inbound_call(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.route,
        Some(Route::Realtime(pb::RealtimeRoute {
            greeting: "Hello from the outbound agent".into()
        }))
    );
    let session = answer.session.unwrap();
    assert_eq!(session.id, placed.id);
    assert_eq!(
        session.twilio_call_sid,
        "CA000000000000000000000000000000aa"
    );

    let unknown = pb::OpenInboundCallRequest {
        call_id: "no-such-call".into(),
        ..request
    };
    assert_eq!(
        server
            .calls()
            .open_inbound_call(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}
