//! Every example of `openai-realtime-examples.json` decodes to a known event
//! and re-encodes, in its own dialect, to the same JSON (with `null` members
//! dropped: every nullable field of the schemas defaults to `null`, and the
//! codecs omit them).

#[path = "support/fixtures.rs"]
mod fixtures;

use std::borrow::Cow;

use serde_json::Value;
use switchboard_realtime::{
    parse_client_event, parse_server_event, ClientEvent, ContentType, Dialect, ItemType,
    OutputModality, ParseError, ResponseStatus, Role, ServerEvent, TurnDetectionMode,
};

fn reencoded(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("encoder wrote bad json ({e}): {text}"))
}

#[test]
fn client_examples_parse_and_round_trip() {
    let mut seen = 0;
    for (section, dialect) in fixtures::CLIENT_SECTIONS {
        for (name, original) in fixtures::examples(section) {
            let text = original.to_string();
            let event = parse_client_event(&text, dialect)
                .unwrap_or_else(|e| panic!("{section}/{name}: {e}"));
            assert!(
                !matches!(event, ClientEvent::Unknown { .. }),
                "{section}/{name} decoded as unknown"
            );
            assert_eq!(event.event_type(), original["type"], "{section}/{name}");
            let encoded = event.encode(dialect);
            assert_eq!(
                fixtures::strip_nulls(&reencoded(&encoded)),
                fixtures::strip_nulls(&original),
                "{section}/{name}"
            );
            assert_eq!(
                parse_client_event(&encoded, dialect).as_ref(),
                Ok(&event),
                "{section}/{name}: decode(encode(x)) != x"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 13, "all client examples visited");
}

#[test]
fn server_examples_parse_and_round_trip() {
    let mut seen = 0;
    for (section, dialect) in fixtures::SERVER_SECTIONS {
        for (name, original) in fixtures::examples(section) {
            let text = original.to_string();
            let event =
                parse_server_event(&text).unwrap_or_else(|e| panic!("{section}/{name}: {e}"));
            assert!(
                !matches!(event, ServerEvent::Unknown { .. }),
                "{section}/{name} decoded as unknown"
            );
            assert_eq!(
                event.type_in(dialect),
                original["type"].as_str(),
                "{section}/{name}"
            );
            let encoded = event.encode(dialect);
            assert_eq!(
                fixtures::strip_nulls(&reencoded(&encoded)),
                fixtures::strip_nulls(&original),
                "{section}/{name}"
            );
            assert_eq!(
                parse_server_event(&encoded).map(ServerEvent::into_owned),
                Ok(event.clone().into_owned()),
                "{section}/{name}: decode(encode(x)) != x"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 23, "all server examples visited");
}

fn server_example(section: &str, name: &str) -> String {
    fixtures::examples(section)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no example {section}/{name}"))
        .1
        .to_string()
}

#[test]
fn audio_deltas_of_both_dialects_borrow_the_payload() {
    for (section, name) in [
        ("ga_server", "response.output_audio.delta"),
        ("beta_server", "response.audio.delta"),
    ] {
        let text = server_example(section, name);
        let Ok(ServerEvent::ResponseOutputAudioDelta(delta)) = parse_server_event(&text) else {
            panic!("{name} is not an audio delta");
        };
        assert!(
            matches!(delta.delta, Cow::Borrowed(_)),
            "{name}: delta copied"
        );
        assert!(
            matches!(delta.item_id, Cow::Borrowed(_)),
            "{name}: item_id copied"
        );
        assert_eq!(switchboard_realtime::mulaw_duration_ms(&delta.delta), 40);
    }
}

#[test]
fn the_fields_the_sidecar_uses() {
    let speech = server_example("ga_server", "input_audio_buffer.speech_started");
    let Ok(ServerEvent::InputAudioBufferSpeechStarted(speech)) = parse_server_event(&speech) else {
        panic!("speech_started");
    };
    assert_eq!(
        (speech.audio_start_ms, speech.item_id.as_str()),
        (4820, "item_CmXw9aPq")
    );

    let done = server_example("ga_server", "response.done");
    let Ok(ServerEvent::ResponseDone(done)) = parse_server_event(&done) else {
        panic!("response.done");
    };
    let response = done.response;
    assert_eq!(response.id.as_deref(), Some("resp_CmXwAbc"));
    assert_eq!(response.status, Some(ResponseStatus::Completed));
    let usage = response.usage.as_ref().expect("usage");
    assert_eq!(
        (usage.total_tokens, usage.input_tokens, usage.output_tokens),
        (Some(1406), Some(1187), Some(219))
    );
    let input = usage.input_token_details.as_ref().expect("input details");
    assert_eq!(
        (input.audio_tokens, input.cached_tokens),
        (Some(276), Some(832))
    );
    let output = usage.output_token_details.as_ref().expect("output details");
    assert_eq!(output.audio_tokens, Some(167));
    let calls: Vec<_> = response.function_calls().collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name.as_deref(), Some("lookup_order"));
    assert_eq!(calls[0].call_id.as_deref(), Some("call_Qm3VbXh1sP0aT9e2"));
    assert_eq!(
        response.output.as_ref().expect("output")[0].transcript(),
        Some("Let me check that for you.")
    );

    let cancelled = server_example("ga_server", "response.done (cancelled by barge-in)");
    let Ok(ServerEvent::ResponseDone(cancelled)) = parse_server_event(&cancelled) else {
        panic!("cancelled response.done");
    };
    assert_eq!(cancelled.response.status, Some(ResponseStatus::Cancelled));
    let details = cancelled.response.status_details.expect("status details");
    assert_eq!(details.reason.as_deref(), Some("turn_detected"));

    let error = server_example("ga_server", "error");
    let Ok(ServerEvent::Error(error)) = parse_server_event(&error) else {
        panic!("error");
    };
    assert_eq!(
        error.error.code.as_deref(),
        Some("conversation_already_has_active_response")
    );
    assert_eq!(error.error.event_id.as_deref(), Some("evt_cli_0042"));
    assert_eq!(error.error.kind, "invalid_request_error");
}

#[test]
fn beta_aliases_are_absorbed() {
    let args = server_example("beta_server", "response.function_call_arguments.done");
    let Ok(ServerEvent::ResponseFunctionCallArgumentsDone(args)) = parse_server_event(&args) else {
        panic!("function_call_arguments.done");
    };
    assert_eq!(args.name, None, "beta omits the name");
    assert_eq!(args.call_id, "call_B9");

    let ga_args = server_example("ga_server", "response.function_call_arguments.done");
    let Ok(event) = parse_server_event(&ga_args) else {
        panic!("ga function_call_arguments.done");
    };
    let ServerEvent::ResponseFunctionCallArgumentsDone(ga) = &event else {
        panic!("wrong variant");
    };
    assert_eq!(ga.name.as_deref(), Some("lookup_order"));
    assert!(!event.encode(Dialect::Beta).contains("\"name\""));

    let transcript = server_example("beta_server", "response.audio_transcript.done");
    assert!(matches!(
        parse_server_event(&transcript),
        Ok(ServerEvent::ResponseOutputAudioTranscriptDone(ref t)) if t.transcript == "Let me check that for you."
    ));

    // GA assistant `output_audio` is beta `audio`, and back.
    let item_done = server_example("ga_server", "conversation.item.done (assistant)");
    let Ok(event) = parse_server_event(&item_done) else {
        panic!("item done");
    };
    let ServerEvent::ConversationItemDone(done) = &event else {
        panic!("wrong variant");
    };
    assert_eq!(done.item.role, Some(Role::Assistant));
    let part = &done.item.content.as_ref().expect("content")[0];
    assert_eq!(part.kind, ContentType::OutputAudio);
    let added = ServerEvent::ConversationItemAdded(done.clone());
    let beta: Value = serde_json::from_str(&added.encode(Dialect::Beta)).expect("json");
    assert_eq!(beta["type"], "conversation.item.created");
    assert_eq!(beta["item"]["content"][0]["type"], "audio");
    let Ok(ServerEvent::ConversationItemCreated(back)) = parse_server_event(&beta.to_string())
    else {
        panic!("beta created");
    };
    assert_eq!(back.item, done.item);
}

#[test]
fn client_examples_carry_what_the_simulator_reads() {
    let examples = fixtures::examples("ga_client");
    let get = |name: &str| {
        examples
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
            .to_string()
    };
    let update = get("session.update");
    let Ok(ClientEvent::SessionUpdate { event_id, session }) =
        parse_client_event(&update, Dialect::Ga)
    else {
        panic!("session.update");
    };
    assert_eq!(event_id.as_deref(), Some("evt_cli_0001"));
    assert_eq!(session.voice.as_deref(), Some("marin"));
    assert_eq!(session.output_modalities, Some(OutputModality::Audio));
    let vad = session.turn_detection.as_ref().expect("turn detection");
    assert_eq!(vad.mode, TurnDetectionMode::ServerVad);
    assert_eq!(vad.interrupt_response, Some(true));
    assert_eq!(session.tools.len(), 2);
    assert_eq!(session.temperature, None);

    let output = get("conversation.item.create (function_call_output)");
    let Ok(ClientEvent::ConversationItemCreate { item, .. }) =
        parse_client_event(&output, Dialect::Ga)
    else {
        panic!("item create");
    };
    assert_eq!(item.kind, ItemType::FunctionCallOutput);
    assert_eq!(item.call_id.as_deref(), Some("call_Qm3VbXh1sP0aT9e2"));

    // The GA session.update is not a beta one, and vice versa.
    assert!(matches!(
        parse_client_event(&update, Dialect::Beta),
        Err(ParseError::DialectMismatch { .. })
    ));
    let beta_update = fixtures::examples("beta_client")
        .into_iter()
        .find(|(n, _)| n == "session.update")
        .expect("beta session.update")
        .1
        .to_string();
    let Ok(ClientEvent::SessionUpdate { session, .. }) =
        parse_client_event(&beta_update, Dialect::Beta)
    else {
        panic!("beta session.update");
    };
    assert_eq!(session.temperature, Some(0.8));
    assert!(matches!(
        parse_client_event(&beta_update, Dialect::Ga),
        Err(ParseError::DialectMismatch { .. })
    ));
}

#[test]
fn unknown_types_decode_to_unknown() {
    for server in [
        r#"{"type":"output_audio_buffer.started","event_id":"e","response_id":"r"}"#,
        r#"{"type":"mcp_list_tools.completed","event_id":"e","item_id":"i"}"#,
        r#"{"type":"transcription_session.updated","event_id":"e","session":{}}"#,
        r#"{"type":"conversation.created","event_id":"e","conversation":{"id":"c"}}"#,
        r#"{"type":"something.new","payload":[1,2,{"x":null}]}"#,
    ] {
        let event = parse_server_event(server).unwrap_or_else(|e| panic!("{server}: {e}"));
        let ServerEvent::Unknown { event_type } = &event else {
            panic!("{server} decoded as {event:?}");
        };
        let original: Value = serde_json::from_str(server).expect("json");
        assert_eq!(original["type"], **event_type);
        assert_eq!(
            event.encode(Dialect::Ga),
            format!(r#"{{"type":"{event_type}"}}"#)
        );
    }
    for client in [
        r#"{"type":"transcription_session.update","session":{}}"#,
        r#"{"type":"input_audio_buffer.flush"}"#,
    ] {
        for dialect in [Dialect::Ga, Dialect::Beta] {
            assert!(
                matches!(
                    parse_client_event(client, dialect),
                    Ok(ClientEvent::Unknown { .. })
                ),
                "{client}"
            );
        }
    }
}
