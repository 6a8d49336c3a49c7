//! CallSessionService: bad input, the status machine, and Twilio status callbacks.

mod support;

#[allow(unused_imports)]
use support::*;

#[tokio::test]
async fn call_sessions_reject_bad_input_and_unknown_agents() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Outbound", &unique_number())).await;
    let base = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        ..Default::default()
    };
    let bad = [
        (
            "to_number",
            pb::CreateCallSessionRequest {
                to_number: "12345".into(),
                ..base.clone()
            },
        ),
        (
            "from_number",
            pb::CreateCallSessionRequest {
                from_number: String::new(),
                ..base.clone()
            },
        ),
        (
            "agent_id",
            pb::CreateCallSessionRequest {
                agent_id: String::new(),
                ..base.clone()
            },
        ),
        (
            "direction",
            pb::CreateCallSessionRequest {
                direction: 9,
                ..base.clone()
            },
        ),
    ];
    for (field, request) in bad {
        let status = server
            .sessions()
            .create_call_session(request)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let unknown = pb::CreateCallSessionRequest {
        agent_id: "no-such-agent".into(),
        ..base
    };
    assert_eq!(
        server
            .sessions()
            .create_call_session(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let missing = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let token = pb::ListCallSessionsRequest {
        page_token: "garbage".into(),
        ..Default::default()
    };
    let status = server
        .sessions()
        .list_call_sessions(token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("page_token"));
}

#[tokio::test]
async fn a_final_status_cannot_be_left() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Status", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    assert_eq!(s.status, pb::CallStatus::Queued as i32);
    let update = |status: pb::CallStatus| pb::UpdateCallStatusRequest {
        id: s.id.clone(),
        status: status.into(),
        ..Default::default()
    };
    server
        .sessions()
        .update_call_status(update(pb::CallStatus::Ringing))
        .await
        .unwrap();
    let done = server
        .sessions()
        .update_call_status(update(pb::CallStatus::NoAnswer))
        .await
        .unwrap()
        .into_inner();
    assert!(done.ended_at.is_some());
    let status = server
        .sessions()
        .update_call_status(update(pb::CallStatus::InProgress))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("no-answer") && status.message().contains("in-progress"),
        "{}",
        status.message()
    );
    let unspecified = server
        .sessions()
        .update_call_status(update(pb::CallStatus::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn twilio_status_callbacks_move_the_call_and_stale_ones_change_nothing() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Callbacks", &unique_number())).await;
    let mut request = pb::CreateCallSessionRequest {
        agent_id: a.id.clone(),
        from_number: "+815011112222".into(),
        to_number: "+819012345678".into(),
        ..Default::default()
    };
    request.twilio_call_sid = "CA00000000000000000000000000000042".into();
    let s = server
        .sessions()
        .create_call_session(request)
        .await
        .unwrap()
        .into_inner();
    let report = |status: &str, seq: u32| pb::ReportTwilioStatusRequest {
        call_sid: "CA00000000000000000000000000000042".into(),
        call_status: status.into(),
        sequence_number: seq,
        ..Default::default()
    };
    let mut calls = server.calls();
    let ringing = calls
        .report_twilio_status(report("ringing", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(ringing.applied);
    let answered = calls
        .report_twilio_status(report("in-progress", 2))
        .await
        .unwrap()
        .into_inner();
    assert!(answered.applied);
    // A late "ringing" after "in-progress": ignored, not an error.
    let stale = calls
        .report_twilio_status(report("ringing", 1))
        .await
        .unwrap()
        .into_inner();
    assert!(!stale.applied);
    assert_eq!(
        stale.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );
    let busy = pb::ReportTwilioStatusRequest {
        call_id: s.id.clone(),
        error_code: "31005".into(),
        error_message: "connection error".into(),
        ..report("failed", 3)
    };
    let failed = calls
        .report_twilio_status(busy)
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(failed.status, pb::CallStatus::Failed as i32);
    assert_eq!(failed.end_reason, "twilio_failed");
    assert_eq!(failed.error.unwrap().code, "twilio.31005");

    let unknown = pb::ReportTwilioStatusRequest {
        call_sid: "CAffffffffffffffffffffffffffffffff".into(),
        ..report("completed", 4)
    };
    assert_eq!(
        calls
            .report_twilio_status(unknown)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let bad = calls
        .report_twilio_status(report("exploded", 5))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("call_status"));
}

#[tokio::test]
async fn a_media_stream_that_fails_before_a_sidecar_takes_the_call_ends_its_session() {
    let server = TestServer::start().await;
    let number = unique_number();
    let a = create_agent(&server, agent("Streams", &number)).await;
    let mut calls = server.calls();
    let session = |sid: &'static str| {
        let mut sessions = server.sessions();
        let agent_id = a.id.clone();
        let to_number = number.clone();
        async move {
            sessions
                .create_call_session(pb::CreateCallSessionRequest {
                    agent_id,
                    from_number: "+815011112222".into(),
                    to_number,
                    twilio_call_sid: sid.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let stream = |call_id: &str, event: &str| pb::ReportTwilioStatusRequest {
        call_id: call_id.into(),
        stream_sid: "MZ00000000000000000000000000000001".into(),
        stream_event: event.into(),
        stream_error: if event == "stream-error" {
            "handshake failed".into()
        } else {
            String::new()
        },
        ..Default::default()
    };

    // Queued, never reached by a sidecar: the stream's failure ends it.
    let unclaimed = session("CA00000000000000000000000000000051").await;
    let started = calls
        .report_twilio_status(stream(&unclaimed.id, "stream-started"))
        .await
        .unwrap()
        .into_inner();
    assert!(!started.applied, "a started stream changes nothing");
    let failed = calls
        .report_twilio_status(stream(&unclaimed.id, "stream-error"))
        .await
        .unwrap()
        .into_inner();
    assert!(failed.applied);
    let failed = failed.session.unwrap();
    assert_eq!(failed.status, pb::CallStatus::Failed as i32);
    assert_eq!(failed.end_reason, "twilio_stream_error");
    let error = failed.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("twilio.stream_error", "handshake failed")
    );
    let again = calls
        .report_twilio_status(stream(&unclaimed.id, "stream-stopped"))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.applied, "already final");

    // In progress: the sidecar holding the call reports its end, not the callback.
    let live = session("CA00000000000000000000000000000052").await;
    server
        .sessions()
        .update_call_status(pb::UpdateCallStatusRequest {
            id: live.id.clone(),
            status: pb::CallStatus::InProgress as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let stopped = calls
        .report_twilio_status(stream(&live.id, "stream-stopped"))
        .await
        .unwrap()
        .into_inner();
    assert!(!stopped.applied);
    assert_eq!(
        stopped.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );

    let bad = calls
        .report_twilio_status(stream(&live.id, "stream-exploded"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("stream_event"), "{bad:?}");
}

/// Streams `items` through a call's channel, one batch each, and waits for each ack.
async fn stream_items(server: &TestServer, call_id: &str, items: Vec<pb::ConversationItem>) {
    let mut call = CallStream::open(server, hello(call_id)).await.unwrap();
    let Out::Config(_) = call.next().await.unwrap() else {
        panic!("config first")
    };
    for item in items {
        let seq = item.seq;
        call.send(pb::ConnectRequest {
            message: Some(In::Items(pb::ConversationBatch { items: vec![item] })),
        })
        .await;
        assert_eq!(
            call.next().await.unwrap(),
            Out::Ack(pb::Ack {
                stored_through_seq: seq
            })
        );
    }
}

fn list_items(call_id: &str, page_size: u32, page_token: &str) -> pb::ListConversationItemsRequest {
    pb::ListConversationItemsRequest {
        call_id: call_id.into(),
        page_size,
        page_token: page_token.into(),
    }
}

#[tokio::test]
async fn conversation_pages_refuse_bad_input_naming_the_field() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Pages", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    stream_items(&server, &s.id, (1..=5).map(|n| item(n, "hi")).collect()).await;

    let mut sessions = server.sessions();
    let unknown = sessions
        .list_conversation_items(list_items("no-such-call", 0, ""))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = [
        ("call_id", list_items("", 0, "")),
        ("page_size", list_items(&s.id, 1001, "")),
        ("page_token", list_items(&s.id, 0, "garbage")),
        ("page_token", list_items(&s.id, 0, "-1")),
        // A token this RPC never gave: beyond the last seq.
        ("page_token", list_items(&s.id, 0, "99")),
    ];
    for (field, request) in bad {
        let status = sessions.list_conversation_items(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }

    // And the good ones: pages of 2, then the default size.
    let mut seqs = Vec::new();
    let mut token = String::new();
    loop {
        let page = sessions
            .list_conversation_items(list_items(&s.id, 2, &token))
            .await
            .unwrap()
            .into_inner();
        assert!(page.items.len() <= 2);
        assert_eq!(page.last_seq, 5);
        seqs.extend(page.items.iter().map(|i| i.seq));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let whole = sessions
        .list_conversation_items(list_items(&s.id, 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((whole.items.len(), whole.next_page_token.as_str()), (5, ""));
}

#[tokio::test]
async fn a_long_conversation_is_cut_in_get_call_session_and_read_on_in_pages() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Long", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    // 40 items of 100 kB: 4 MB, more than one reply may carry.
    let text = |seq: u64| format!("{seq}:{}", "x".repeat(100_000));
    stream_items(
        &server,
        &s.id,
        (1..=40).map(|n| item(n, &text(n))).collect(),
    )
    .await;

    // The default client limit (4 MiB) holds the reply.
    let mut sessions = server.sessions();
    let got = sessions
        .get_call_session(pb::GetCallSessionRequest { id: s.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.last_seq, 40);
    assert!(got.conversation_truncated);
    let shown = got.conversation.len() as u64;
    assert!((20..40).contains(&shown), "{shown} items in the reply");
    assert!(got
        .conversation
        .iter()
        .zip(1..)
        .all(|(i, seq)| i.seq == seq));

    let mut seqs: Vec<u64> = got.conversation.iter().map(|i| i.seq).collect();
    let mut token = got.conversation_next_page_token;
    while !token.is_empty() {
        let page = sessions
            .list_conversation_items(list_items(&s.id, 1000, &token))
            .await
            .unwrap()
            .into_inner();
        for i in &page.items {
            assert_eq!(i.text, text(i.seq));
        }
        seqs.extend(page.items.iter().map(|i| i.seq));
        token = page.next_page_token;
    }
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());

    // A short conversation comes whole, and says so.
    let short = create_session(&server, &a.id).await;
    stream_items(&server, &short.id, vec![item(1, "only")]).await;
    let got = sessions
        .get_call_session(pb::GetCallSessionRequest { id: short.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.conversation.len(), 1);
    assert!(!got.conversation_truncated && got.conversation_next_page_token.is_empty());
}
