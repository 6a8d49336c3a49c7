//! CallChannelService.Connect: Hello → CallConfig, acks and nacks, resends, refusals, status on the stream.

mod support;

#[allow(unused_imports)]
use support::*;

#[tokio::test]
async fn a_call_stream_acks_items_idempotently_and_nacks_gaps() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Stream", &unique_number())).await;
    let s = create_session(&server, &a.id).await;

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
    let Out::Config(config) = call.next().await.unwrap() else {
        panic!("config first")
    };
    assert_eq!(config.stored_through_seq, 0);
    let settings = config.agent_settings.unwrap();
    assert_eq!(
        settings.instructions,
        "You are speaking with Yamada about plan premium."
    );
    assert_eq!(
        config.session.unwrap().status,
        pb::CallStatus::InProgress as i32
    );

    call.send(batch(1..=3)).await;
    assert_eq!(
        call.next().await.unwrap(),
        Out::Ack(pb::Ack {
            stored_through_seq: 3
        })
    );
    call.send(batch(1..=3)).await;
    assert_eq!(
        call.next().await.unwrap(),
        Out::Ack(pb::Ack {
            stored_through_seq: 3
        })
    );
    call.send(batch(6..=7)).await;
    let Out::Nack(nack) = call.next().await.unwrap() else {
        panic!("nack on a gap")
    };
    assert_eq!(nack.expected_seq, 4);
    call.send(batch(3..=5)).await;
    assert_eq!(
        call.next().await.unwrap(),
        Out::Ack(pb::Ack {
            stored_through_seq: 5
        })
    );

    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        stored.twilio_stream_sid,
        "MZ00000000000000000000000000000001"
    );

    let mut seen_items = Vec::new();
    let mut saw_in_progress = false;
    while seen_items.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event.event.unwrap() {
            pb::call_event::Event::ItemStored(stored) => seen_items.push(stored.item.unwrap().seq),
            pb::call_event::Event::StatusChanged(change) => {
                saw_in_progress |= change.current == pb::CallStatus::InProgress as i32;
            }
            other => panic!("unexpected event {other:?}"),
        }
        assert_eq!(event.call_id, s.id);
    }
    assert_eq!(seen_items, vec![1, 2, 3, 4, 5]);
    assert!(saw_in_progress);

    // A reconnect (after a control-plane restart, say) learns what is stored.
    let mut again = CallStream::open(&server, hello(&s.id)).await.unwrap();
    let Out::Config(config) = again.next().await.unwrap() else {
        panic!("config first")
    };
    assert_eq!(config.stored_through_seq, 5);
}

#[tokio::test]
async fn a_stream_for_an_unknown_or_ended_call_is_refused() {
    let server = TestServer::start().await;
    let unknown = CallStream::open(&server, hello("no-such-call"))
        .await
        .err()
        .expect("refused");
    assert_eq!(unknown.code(), Code::NotFound);

    let a = create_agent(&server, agent("Ended", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let done = pb::UpdateCallStatusRequest {
        id: s.id.clone(),
        status: pb::CallStatus::Completed.into(),
        ..Default::default()
    };
    server.sessions().update_call_status(done).await.unwrap();
    let ended = CallStream::open(&server, hello(&s.id))
        .await
        .err()
        .expect("refused");
    assert_eq!(ended.code(), Code::FailedPrecondition);
    assert!(ended.message().contains("completed"));

    let not_hello = CallStream::open(&server, batch(1..=1))
        .await
        .err()
        .expect("refused");
    assert_eq!(not_hello.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn status_updates_on_the_stream_end_the_call() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Status stream", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    call.next().await.unwrap();
    call.send(pb::ConnectRequest {
        message: Some(In::Status(pb::StatusUpdate {
            status: pb::CallStatus::Failed.into(),
            end_reason: "openai_unavailable".into(),
            error: Some(pb::CallError {
                code: "openai.unavailable".into(),
                message: "connection refused".into(),
            }),
            request_id: String::new(),
        })),
    })
    .await;
    let ended = server.wait_for_status(&s.id, pb::CallStatus::Failed).await;
    assert_eq!(ended.end_reason, "openai_unavailable");
    assert_eq!(ended.error.unwrap().code, "openai.unavailable");
}

#[tokio::test]
async fn batches_sent_together_are_stored_in_order_and_acknowledged_cumulatively() {
    let server = TestServer::start().await;
    let a = create_agent(&server, agent("Burst", &unique_number())).await;
    let s = create_session(&server, &a.id).await;
    let mut call = CallStream::open(&server, hello(&s.id)).await.unwrap();
    call.next().await.unwrap();
    // Twenty batches without waiting for acks, one of them a re-send and one a gap.
    for start in (1..=100).step_by(5) {
        call.send(batch(start..=start + 4)).await;
        if start == 51 {
            call.send(batch(46..=55)).await;
        }
    }
    call.send(batch(200..=201)).await;
    let mut last_ack = 0;
    let mut nacks = Vec::new();
    while last_ack < 100 || nacks.is_empty() {
        match call.next().await.unwrap() {
            Out::Ack(ack) => {
                assert!(ack.stored_through_seq >= last_ack, "acks never go back");
                last_ack = ack.stored_through_seq;
            }
            Out::Nack(nack) => nacks.push(nack.expected_seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(nacks, vec![101]);
    let stored = server
        .sessions()
        .get_call_session(pb::GetCallSessionRequest { id: s.id })
        .await
        .unwrap()
        .into_inner();
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    assert!(stored
        .conversation
        .iter()
        .all(|i| i.text == format!("item {}", i.seq)));
}
