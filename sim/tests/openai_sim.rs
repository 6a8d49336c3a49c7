//! The OpenAI Realtime simulator over real loopback sockets, driven by a
//! plain tokio-tungstenite client and checked on the raw JSON (not through
//! the codec the simulator itself uses).

use std::sync::Arc;

use base64::Engine as _;
use futures::StreamExt as _;
use serde_json::json;
use switchboard_realtime::{Dialect, SessionConfig};
use switchboard_sim::openai::{AudioPace, Reply, Script, SimConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

#[path = "support/openai.rs"]
mod support;

use support::{
    audio_of, beta_update, ga_update, silence, sim, speech, types, Client, KEY, PATIENCE,
};

#[tokio::test]
async fn ga_handshake_sends_session_created_then_echoes_the_update() {
    let sim = sim(SimConfig::for_test()).await;
    let mut client = Client::ga(&sim).await;
    let created = client.next().await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["type"], "realtime");
    assert_eq!(created["session"]["model"], "gpt-realtime");
    let sent = ga_update();
    client.send(sent.clone()).await;
    let updated = client.next().await;
    assert_eq!(updated["type"], "session.updated");
    let effective = SessionConfig::from_json(&updated["session"], Dialect::Ga).expect("ga session");
    let requested = SessionConfig::from_json(&sent["session"], Dialect::Ga).expect("ga session");
    assert_eq!(effective.instructions, requested.instructions);
    assert_eq!(effective.input_audio_format, requested.input_audio_format);
    assert_eq!(effective.output_audio_format, requested.output_audio_format);
    assert_eq!(effective.turn_detection, requested.turn_detection);
    assert_eq!(effective.transcription, requested.transcription);
    assert_eq!(effective.voice.as_deref(), Some("marin"));
    assert_eq!(effective.tools, requested.tools);
    let record = sim.records().last().expect("a session");
    assert_eq!(record.dialect, Dialect::Ga);
    assert_eq!(record.session_updates, 1);
    assert_eq!(record.client_events, ["session.update"]);
    assert_eq!(record.session_config, effective);
    sim.shutdown().await;
}

#[tokio::test]
async fn beta_handshakes_speak_the_beta_shapes() {
    let sim = sim(SimConfig::for_test()).await;
    let bearer = format!("Bearer {KEY}");
    let openai_beta = [
        ("Authorization", bearer.as_str()),
        ("OpenAI-Beta", "realtime=v1"),
    ];
    let azure_preview = format!(
        "{}/openai/realtime?api-version=2025-04-01-preview&deployment=rt-deploy",
        sim.base_url()
    );
    let urls = [
        (sim.url("gpt-4o-realtime-preview"), &openai_beta[..]),
        (azure_preview, &[("api-key", KEY)][..]),
    ];
    for (url, headers) in urls {
        let mut client = Client::connect(&url, headers).await.expect("beta connects");
        let created = client.next().await;
        assert_eq!(created["type"], "session.created");
        assert!(
            created["session"].get("type").is_none(),
            "beta sessions are flat"
        );
        client.send(beta_update()).await;
        let updated = client.next().await;
        assert_eq!(updated["type"], "session.updated");
        assert_eq!(updated["session"]["input_audio_format"], "g711_ulaw");
        assert_eq!(
            updated["session"]["turn_detection"]["silence_duration_ms"],
            400
        );
        assert_eq!(updated["session"]["turn_detection"]["threshold"], 0.5);
        assert_eq!(updated["session"]["temperature"], 0.8);
    }
    let records = sim.records().sessions();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.dialect, r.model.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Dialect::Beta, "gpt-4o-realtime-preview"),
            (Dialect::Beta, "rt-deploy")
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_handshake_refuses_bad_keys_missing_models_and_unknown_paths() {
    let sim = sim(SimConfig::for_test()).await;
    let bearer = format!("Bearer {KEY}");
    let cases = [
        (sim.url("gpt-realtime"), "Bearer wrong", 401),
        (
            format!("{}/v1/realtime", sim.base_url()),
            bearer.as_str(),
            400,
        ),
        (
            format!("{}/v1/chat?model=m", sim.base_url()),
            bearer.as_str(),
            404,
        ),
    ];
    for (url, auth, status) in cases {
        let result = Client::connect(&url, &[("Authorization", auth)]).await;
        match result {
            Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), status),
            Err(other) => panic!("{url}: expected http {status}, got {other}"),
            Ok(_) => panic!("{url}: expected http {status}, got a session"),
        }
    }
    let statuses: Vec<u16> = sim
        .records()
        .rejections()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 400, 404]);
    assert!(sim.records().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_caller_turn_gets_vad_events_a_transcript_and_a_spoken_answer_with_a_tool_call() {
    let sim = sim(SimConfig::for_test()).await;
    let mut client = Client::ga(&sim).await;
    client.next().await;
    client.send(ga_update()).await;
    client.until("session.updated").await;
    client.speak(&silence(600)).await;
    client.speak(&speech(1_200)).await;
    client.speak(&silence(800)).await;

    let events = client.until("response.done").await;
    let names = types(&events);
    let position = |name: &str| names.iter().position(|n| *n == name).expect(name);
    let order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.done",
    ];
    let positions: Vec<usize> = order.iter().map(|n| position(n)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{names:?}");

    let started = &events[position("input_audio_buffer.speech_started")];
    assert_eq!(
        started["audio_start_ms"], 300,
        "600 ms of silence minus 300 ms padding"
    );
    let stopped = &events[position("input_audio_buffer.speech_stopped")];
    assert_eq!(
        stopped["audio_end_ms"], 2_300,
        "speech ends at 1800, plus 500 ms silence"
    );
    let committed = &events[position("input_audio_buffer.committed")];
    assert_eq!(committed["item_id"], started["item_id"]);
    let transcript = &events[position("conversation.item.input_audio_transcription.completed")];
    assert_eq!(transcript["transcript"], "Hi, where is my order 4471?");

    let (audio_ms, rms) = audio_of(&events, "response.output_audio.delta");
    assert_eq!(
        audio_ms,
        Reply::new("Let me check that for you.").duration_ms()
    );
    assert!(rms > 3_000.0, "the assistant tone is audible: {rms}");
    let spoken = &events[position("response.output_audio_transcript.done")];
    assert_eq!(spoken["transcript"], "Let me check that for you.");
    let call = &events[position("response.function_call_arguments.done")];
    assert_eq!(call["name"], "lookup_order");
    assert_eq!(call["arguments"], r#"{"order_number":"4471"}"#);
    let done = events.last().expect("response.done");
    assert_eq!(done["response"]["status"], "completed");
    assert!(done["response"]["usage"]["total_tokens"].as_u64() > Some(0));
    assert!(done["response"]["usage"]["output_token_details"]["audio_tokens"].as_u64() > Some(0));

    let output = json!({"type": "function_call_output", "call_id": call["call_id"],
                        "output": r#"{"status":"shipped"}"#});
    client
        .send(json!({"type": "conversation.item.create", "item": output}))
        .await;
    client.send(json!({"type": "response.create"})).await;
    let answer = client.until("response.done").await;
    let spoken = answer
        .iter()
        .find(|e| e["type"] == "response.output_audio_transcript.done")
        .expect("a spoken answer");
    assert_eq!(
        spoken["transcript"],
        "Your order 4471 has shipped and arrives tomorrow."
    );

    let record = sim.records().last().expect("session");
    assert_eq!(record.user_turns.len(), 1);
    assert_eq!(record.audio_bytes_appended, 2_600 * 8);
    assert_eq!(record.responses_created.len(), 2);
    assert_eq!(record.function_outputs.len(), 1);
    assert!(record.errors_sent.is_empty(), "{:?}", record.errors_sent);
    sim.shutdown().await;
}

#[tokio::test]
async fn truncate_within_the_generated_audio_is_acked_and_beyond_it_is_refused() {
    let sim = sim(SimConfig::for_test()).await;
    let mut client = Client::ga(&sim).await;
    client.next().await;
    client.send(ga_update()).await;
    client.until("session.updated").await;
    client.send(json!({"type": "response.create"})).await;
    let greeting = client.until("response.done").await;
    let (audio_ms, _) = audio_of(&greeting, "response.output_audio.delta");
    let item_id = greeting
        .iter()
        .find(|e| e["type"] == "response.output_audio.delta")
        .map(|e| e["item_id"].clone())
        .expect("audio");

    let beyond = audio_ms + 60;
    client
        .send(
            json!({"type": "conversation.item.truncate", "event_id": "evt_trunc",
                     "item_id": item_id, "content_index": 0, "audio_end_ms": beyond}),
        )
        .await;
    let error = client.next().await;
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["error"]["message"],
        format!("Audio content of {audio_ms}ms is already shorter than {beyond}ms")
    );
    assert_eq!(error["error"]["event_id"], "evt_trunc");

    client
        .send(json!({"type": "conversation.item.truncate",
                     "item_id": item_id, "content_index": 0, "audio_end_ms": 500}))
        .await;
    let truncated = client.next().await;
    assert_eq!(truncated["type"], "conversation.item.truncated");
    assert_eq!(truncated["audio_end_ms"], 500);

    let record = sim.records().last().expect("session");
    let seen: Vec<_> = record
        .truncations
        .iter()
        .map(|t| (t.audio_end_ms, t.accepted))
        .collect();
    assert_eq!(seen, [(beyond, false), (500, true)]);
    sim.shutdown().await;
}

#[tokio::test]
async fn response_cancel_stops_a_speaking_response_and_is_refused_when_idle() {
    let script = Script {
        greeting: Reply {
            text: "A very long greeting.".to_owned(),
            audio_ms: Some(60_000),
        },
        ..Script::default()
    };
    let config = SimConfig {
        script: Arc::new(script),
        audio_pace: AudioPace::Realtime,
        ..SimConfig::for_test()
    };
    let sim = sim(config).await;
    let mut client = Client::ga(&sim).await;
    client.next().await;
    client.send(ga_update()).await;
    client.until("session.updated").await;
    client.send(json!({"type": "response.create"})).await;
    client.until("response.output_audio.delta").await;
    client.send(json!({"type": "response.cancel"})).await;
    let events = client.until("response.done").await;
    let done = events.last().expect("response.done");
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "client_cancelled"
    );
    let item = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .expect("the item is closed");
    assert_eq!(item["item"]["status"], "incomplete");

    client
        .send(json!({"type": "response.cancel", "event_id": "evt_c2"}))
        .await;
    let error = client.next().await;
    assert_eq!(error["error"]["code"], "response_cancel_not_active");
    assert_eq!(error["error"]["event_id"], "evt_c2");
    let record = sim.records().last().expect("session");
    assert_eq!(record.responses_cancelled, record.responses_created);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_events_and_malformed_json_get_errors_and_the_session_goes_on() {
    let sim = sim(SimConfig::for_test()).await;
    let mut client = Client::ga(&sim).await;
    client.next().await;
    client
        .send_text("{\"type\": \"session.update\", ".to_owned())
        .await;
    client
        .send(json!({"type": "response.dance", "event_id": "evt_x"}))
        .await;
    client
        .send(json!({"type": "input_audio_buffer.append", "audio": "not base64!"}))
        .await;
    client
        .send(
            json!({"type": "conversation.item.truncate", "item_id": "item_nope",
                       "content_index": 0, "audio_end_ms": 10}),
        )
        .await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let event = client.next().await;
        assert_eq!(event["type"], "error");
        assert_eq!(event["error"]["type"], "invalid_request_error");
        codes.push(
            event["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        codes,
        [
            "invalid_json",
            "invalid_value",
            "invalid_value",
            "invalid_value"
        ]
    );
    client.send(ga_update()).await;
    assert_eq!(client.next().await["type"], "session.updated");
    let record = sim.records().last().expect("session");
    assert_eq!(record.errors_sent.len(), 4);
    assert_eq!(record.client_events[0], "<invalid>");
    assert_eq!(record.client_events[1], "response.dance");
    sim.shutdown().await;
}

#[tokio::test]
async fn echo_mode_answers_each_append_with_the_same_payload() {
    let sim = sim(SimConfig::echo()).await;
    let bearer = format!("Bearer {KEY}");
    let dialects = [
        (
            vec![("Authorization", bearer.as_str())],
            "response.output_audio.delta",
        ),
        (
            vec![
                ("Authorization", bearer.as_str()),
                ("OpenAI-Beta", "realtime=v1"),
            ],
            "response.audio.delta",
        ),
    ];
    for (headers, delta_type) in dialects {
        let mut client = Client::connect(&sim.url("gpt-realtime"), &headers)
            .await
            .expect("connects");
        assert_eq!(client.next().await["type"], "session.created");
        let payloads: Vec<String> = speech(100)
            .chunks(160)
            .map(|frame| base64::engine::general_purpose::STANDARD.encode(frame))
            .collect();
        for payload in &payloads {
            client
                .send(json!({"type": "input_audio_buffer.append", "audio": payload}))
                .await;
        }
        for payload in &payloads {
            let delta = client.next().await;
            assert_eq!(delta["type"], delta_type);
            assert_eq!(delta["delta"].as_str(), Some(payload.as_str()));
        }
    }
    let record = sim.records().last().expect("session");
    assert_eq!(record.appends, 5);
    assert_eq!(record.audio_bytes_appended, 800);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_sessions_with_going_away() {
    let sim = sim(SimConfig::for_test()).await;
    let mut client = Client::ga(&sim).await;
    client.next().await;
    let records = sim.records();
    sim.shutdown().await;
    let closing = tokio::time::timeout(PATIENCE, client.ws.next())
        .await
        .expect("closed within the patience");
    match closing {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(
        records.last().and_then(|r| r.ended).as_deref(),
        Some("shutdown")
    );
}
