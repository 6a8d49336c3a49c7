//! The OpenAI Realtime simulator serving `wss://`: a session runs end to end for a
//! client that trusts the simulator's CA, a client that does not (or that speaks plain
//! text to the TLS port) fails its handshake without taking the server down, and the
//! model chosen in the URL cannot be changed over the wire, in either dialect.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_sim::openai::{OpenAiSim, SimConfig};
use switchboard_sim::tls::{self, ConnectError, TestCa, WEBSOCKET_ALPN};

#[path = "support/openai.rs"]
mod support;

use support::{audio_of, eventually, ga_update, silence, sim, speech, types, Client, KEY};

/// A simulator serving `wss://` with a loopback certificate of `ca`.
async fn tls_sim(ca: &TestCa) -> OpenAiSim {
    let issued = ca.issue_for_loopback();
    let server = tls::server_config(&issued.cert_pem, &issued.key_pem, WEBSOCKET_ALPN)
        .expect("a server config");
    sim(SimConfig {
        tls: Some(server),
        ..SimConfig::for_test()
    })
    .await
}

fn trusting(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    tls::client_config(&ca.ca_pem()).expect("a client config")
}

async fn connect(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    extra: &[(&'static str, &str)],
) -> Result<Client<tls::ClientStream>, ConnectError> {
    let bearer = format!("Bearer {KEY}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    Client::connect_tls(url, &headers, tls).await
}

#[tokio::test]
async fn a_session_runs_end_to_end_over_wss_for_a_client_trusting_the_ca() {
    let ca = TestCa::new("openai tls test CA");
    let sim = tls_sim(&ca).await;
    let url = sim.url("gpt-realtime");
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    assert!(sim.base_url().starts_with("wss://"));

    let mut client = connect(&url, &trusting(&ca), &[])
        .await
        .expect("a client trusting the CA connects");
    assert_eq!(client.next().await["type"], "session.created");
    client.send(ga_update()).await;
    client.until("session.updated").await;
    client.speak(&silence(600)).await;
    client.speak(&speech(1_200)).await;
    client.speak(&silence(800)).await;
    let events = client.until("response.done").await;
    assert!(types(&events).contains(&"input_audio_buffer.committed"));
    let (audio_ms, _) = audio_of(&events, "response.output_audio.delta");
    assert!(audio_ms > 0, "the answer was spoken over tls");

    let record = sim.records().last().expect("a session");
    assert_eq!(record.user_turns.len(), 1);
    assert!(sim.records().rejections().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_fails_and_the_next_one_is_served() {
    let ca = TestCa::new("the simulator's CA");
    let sim = tls_sim(&ca).await;
    let url = sim.url("gpt-realtime");

    let stranger = TestCa::new("some other CA");
    let refused = connect(&url, &trusting(&stranger), &[]).await;
    match refused {
        Err(ConnectError::Tls { host, source }) => {
            assert_eq!(host, "127.0.0.1");
            assert!(
                source.to_string().to_lowercase().contains("certificate"),
                "{source}"
            );
        }
        Err(other) => panic!("expected a tls error, got {other}"),
        Ok(_) => panic!("a client that does not trust the CA connected"),
    }
    let public = connect(&url, &tls::public_client_config(), &[]).await;
    assert!(matches!(public, Err(ConnectError::Tls { .. })));
    // Plain text to the TLS port is a failed handshake too, not a session.
    let plain = Client::connect(&url.replacen("wss://", "ws://", 1), &[]).await;
    assert!(
        plain.is_err(),
        "a ws:// client got a session on a wss:// port"
    );

    let rejections = eventually("three tls failures recorded", || {
        let rejections = sim.records().rejections();
        (rejections.len() == 3).then_some(rejections)
    })
    .await;
    for rejection in &rejections {
        assert!(
            rejection.reason.starts_with("tls handshake failed: "),
            "{rejection:?}"
        );
        assert_eq!(rejection.status, 0);
    }

    let mut client = connect(&url, &trusting(&ca), &[])
        .await
        .expect("the server still serves");
    assert_eq!(client.next().await["type"], "session.created");
    assert_eq!(
        sim.records().len(),
        1,
        "only the trusting client got a session"
    );
    sim.shutdown().await;
}

/// A `session.update` naming `model`, in the dialect of `beta`.
fn model_update(model: &str, beta: bool) -> Value {
    let mut session = json!({"model": model, "instructions": "Be brief."});
    if !beta {
        session["type"] = json!("realtime");
    }
    json!({"type": "session.update", "event_id": "evt_model", "session": session})
}

#[tokio::test]
async fn the_model_of_the_url_cannot_be_changed_by_session_update_in_either_dialect() {
    let ca = TestCa::new("model test CA");
    let sim = tls_sim(&ca).await;
    let tls = trusting(&ca);
    for beta in [false, true] {
        let extra: &[(&'static str, &str)] = if beta {
            &[("OpenAI-Beta", "realtime=v1")]
        } else {
            &[]
        };
        let mut client = connect(&sim.url("gpt-realtime"), &tls, extra)
            .await
            .expect("connects");
        assert_eq!(client.next().await["type"], "session.created");

        client
            .send(model_update("gpt-4o-realtime-preview", beta))
            .await;
        let error = client.next().await;
        assert_eq!(error["type"], "error", "beta={beta}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["param"], "session.model");
        assert_eq!(error["error"]["event_id"], "evt_model");

        // The same model is no change: accepted, and only now are the instructions set.
        client.send(model_update("gpt-realtime", beta)).await;
        let updated = client.next().await;
        assert_eq!(updated["type"], "session.updated", "beta={beta}: {updated}");
        assert_eq!(updated["session"]["model"], "gpt-realtime");
        assert_eq!(updated["session"]["instructions"], "Be brief.");
        let record = sim.records().last().expect("a session");
        assert_eq!(
            record.session_updates, 1,
            "beta={beta}: the refused one is not applied"
        );
    }
    sim.shutdown().await;
}
