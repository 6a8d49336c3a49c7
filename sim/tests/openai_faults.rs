//! Fault injection of the OpenAI Realtime simulator, over loopback: each
//! fault, selected each way (configuration, queue, query, path prefix).

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use switchboard_sim::openai::{Fault, SimConfig, Trigger};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

#[path = "support/openai.rs"]
mod support;

use support::{eventually, ga_update, silence, sim, Client, KEY, PATIENCE};

fn bearer() -> String {
    format!("Bearer {KEY}")
}

async fn status_of(url: &str) -> Option<u16> {
    match Client::connect(url, &[("Authorization", &bearer())]).await {
        Err(WsError::Http(response)) => Some(response.status().as_u16()),
        _ => None,
    }
}

#[tokio::test]
async fn refuse_answers_the_upgrade_with_503_or_the_status_asked_for() {
    let sim = sim(SimConfig::for_test()).await;
    let by_query = format!("{}&sim_fault=refuse", sim.url("gpt-realtime"));
    assert_eq!(status_of(&by_query).await, Some(503));
    sim.push_faults(vec![Fault::Refuse { status: 429 }], 1);
    assert_eq!(status_of(&sim.url("gpt-realtime")).await, Some(429));
    assert_eq!(
        status_of(&sim.url("gpt-realtime")).await,
        None,
        "queued for one connection"
    );
    let statuses: Vec<u16> = sim
        .records()
        .rejections()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 429]);
    assert_eq!(sim.records().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_closes_the_connection_before_the_handshake() {
    let sim = sim(SimConfig::for_test()).await;
    sim.push_faults(vec![Fault::Reset], 1);
    let result = Client::connect(&sim.url("gpt-realtime"), &[("Authorization", &bearer())]).await;
    assert!(
        matches!(result, Err(ref e) if !matches!(e, WsError::Http(_))),
        "expected a transport error"
    );
    let mut client = Client::ga(&sim).await;
    assert_eq!(client.next().await["type"], "session.created");
    let reasons: Vec<String> = sim
        .records()
        .rejections()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(reasons, ["reset"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_closes_the_socket_mid_call_without_a_close_frame() {
    let sim = sim(SimConfig::for_test()).await;
    let url = format!(
        "{}/faults/drop@3ev/v1/realtime?model=gpt-realtime",
        sim.base_url()
    );
    let mut client = Client::connect(&url, &[("Authorization", &bearer())])
        .await
        .expect("connects");
    client.next().await;
    client.send(ga_update()).await;
    assert_eq!(client.next().await["type"], "session.updated");
    client.speak(&silence(40)).await;
    let after = tokio::time::timeout(PATIENCE, client.ws.next())
        .await
        .expect("the socket ends within the patience");
    assert!(
        !matches!(
            after,
            Some(Ok(Message::Close(_))) | Some(Ok(Message::Text(_)))
        ),
        "expected an abrupt end, got {after:?}"
    );
    let record = eventually("the session ends", || {
        sim.records().last().filter(|r| r.ended.is_some())
    })
    .await;
    assert_eq!(record.ended.as_deref(), Some("dropped"));
    assert_eq!(record.faults_fired, [Fault::Drop(Trigger::AfterEvents(3))]);
    assert_eq!(record.appends, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn stall_keeps_the_socket_open_and_answers_nothing() {
    let sim = sim(SimConfig::for_test()).await;
    let url = format!("{}&sim_fault=stall@1ev", sim.url("gpt-realtime"));
    let mut client = Client::connect(&url, &[("Authorization", &bearer())])
        .await
        .expect("connects");
    client.next().await;
    client.send(ga_update()).await;
    assert_eq!(
        client.next().await["type"],
        "session.updated",
        "the first event is answered"
    );
    client.send(json!({"type": "response.create"})).await;
    client.send(json!({"type": "response.cancel"})).await;
    eventually("both events are read and ignored", || {
        sim.records().last().filter(|r| r.ignored_events == 2)
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), client.ws.next()).await;
    assert!(quiet.is_err(), "a stalled session sends nothing: {quiet:?}");
    let record = sim.records().last().expect("session");
    assert_eq!(record.ended, None, "the socket stays open");
    assert!(record.responses_created.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_refuses_every_response() {
    let sim = sim(SimConfig::for_test()).await;
    let url = format!("{}&sim_fault=rate-limit", sim.url("gpt-realtime"));
    let mut client = Client::connect(&url, &[("Authorization", &bearer())])
        .await
        .expect("connects");
    client.next().await;
    for _ in 0..2 {
        client
            .send(json!({"type": "response.create", "event_id": "evt_rl"}))
            .await;
        let limits = client.next().await;
        assert_eq!(limits["type"], "rate_limits.updated");
        assert_eq!(limits["rate_limits"][1]["name"], "tokens");
        assert_eq!(limits["rate_limits"][1]["remaining"], 0);
        let error = client.next().await;
        assert_eq!(error["error"]["code"], "rate_limit_exceeded");
        assert_eq!(error["error"]["event_id"], "evt_rl");
    }
    let record = sim.records().last().expect("session");
    assert!(record.responses_created.is_empty());
    assert_eq!(
        record.error_codes(),
        ["rate_limit_exceeded", "rate_limit_exceeded"]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn session_expiry_sends_session_expired_and_closes_with_going_away() {
    let config = SimConfig {
        faults: vec![Fault::Expire(Trigger::AfterMs(50))],
        ..SimConfig::for_test()
    };
    let sim = sim(config).await;
    let mut client = Client::ga(&sim).await;
    assert_eq!(client.next().await["type"], "session.created");
    let error = client.next().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "session_expired");
    let closing = tokio::time::timeout(PATIENCE, client.ws.next())
        .await
        .expect("closed within the patience");
    match closing {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let record = eventually("the session ends", || {
        sim.records().last().filter(|r| r.ended.is_some())
    })
    .await;
    assert_eq!(record.ended.as_deref(), Some("expired"));
    sim.shutdown().await;
}
