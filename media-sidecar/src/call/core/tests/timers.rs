//! Ends that come with time: a quiet Twilio socket, and the longest call with its goodbye.

use serde_json::json;
use switchboard_proto::v1::CallStatus;
use switchboard_realtime::Dialect;

use super::*;
use crate::call::{EndKind, DEFAULT_GOODBYE};

const MINUTE: u64 = 60_000;
const GOODBYE_RESPONSE: &str = "resp_goodbye";

fn limits(idle_ms: u64, default_max_ms: u64) -> CallLimits {
    CallLimits {
        twilio_idle_timeout_ms: idle_ms,
        default_max_call_ms: default_max_ms,
        goodbye_wait_ms: 10_000,
        ..CallLimits::default()
    }
}

/// A started call of `agent` with `limits`.
fn started_with(agent: AgentSettings, limits: CallLimits) -> Call {
    let mut call = Call::with_config(config(agent, 0), Dialect::Ga, limits);
    call.twilio(recorded("start")[0].frame, 2);
    call.openai(SESSION_CREATED, 5);
    call.openai(SESSION_UPDATED, 6);
    call
}

fn response_created(id: &str) -> String {
    example_with("ga_server", "response.created", |event| {
        event["response"]["id"] = id.into();
    })
}

fn response_done(id: &str) -> String {
    example_with("ga_server", "response.done", |event| {
        event["response"]["id"] = id.into();
        event["response"]["output"] = json!([]);
    })
}

fn delta(response_id: &str) -> String {
    example_with("ga_server", "response.output_audio.delta", |event| {
        event["response_id"] = response_id.into();
        event["item_id"] = "item_bye".into();
    })
}

/// Twilio echoing the mark `name`.
fn mark_echo(name: &str) -> String {
    json!({"event": "mark", "sequenceNumber": "900", "streamSid": STREAM_SID, "mark": {"name": name}})
        .to_string()
}

#[test]
fn a_quiet_twilio_socket_ends_the_call_failed_after_the_idle_timeout() {
    let mut call = started_with(agent(), limits(15_000, 0));
    let media = recorded("media")[0].frame;
    call.twilio(media, 10_000);
    assert!(
        call.tick(24_999).end.is_none(),
        "a frame keeps the socket alive"
    );
    let out = call.tick(25_000);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::TwilioIdle);
    assert_eq!(
        (end.status, end.end_reason.as_str()),
        (CallStatus::Failed, "twilio_idle")
    );
    assert!(end.close_twilio() && !end.needs_fallback());
    assert_eq!(end.error.map(|e| e.code), Some("twilio.idle".into()));
    let status = &call.statuses()[0];
    assert_eq!(status.end_reason, "twilio_idle");
    assert!(call.core.is_settled());
}

#[test]
fn at_the_default_longest_call_the_model_says_the_goodbye_then_the_call_ends() {
    let mut bye = agent();
    bye.goodbye = "Thanks for calling Acme, goodbye!".into();
    let mut call = started_with(bye, limits(0, 60 * MINUTE));
    assert!(call.tick(60 * MINUTE - 1).to_openai.is_empty());
    let out = call.tick(60 * MINUTE);
    assert!(out.end.is_none(), "not before the goodbye");
    let [create] = frames(&out.to_openai).try_into().expect("one event");
    assert_eq!(create["type"], "response.create");
    assert_eq!(create["event_id"], "sb_goodbye");
    assert_eq!(create["response"]["tool_choice"], "none");
    let instructions = create["response"]["instructions"].as_str().unwrap();
    assert!(
        instructions.starts_with("You are Ava")
            && instructions.ends_with("Thanks for calling Acme, goodbye!"),
        "{instructions}"
    );

    // The caller is not relayed meanwhile, so nothing interrupts the goodbye.
    let out = call.twilio(recorded("media")[0].frame, 60 * MINUTE + 20);
    assert!(out.to_openai.is_empty());
    let speech = example("ga_server", "input_audio_buffer.speech_started");
    assert!(call.openai(&speech, 60 * MINUTE + 30).to_twilio.is_empty());

    call.openai(&response_created(GOODBYE_RESPONSE), 60 * MINUTE + 100);
    let out = call.openai(&delta(GOODBYE_RESPONSE), 60 * MINUTE + 200);
    let mark = frames(&out.to_twilio)[1]["mark"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = call.openai(&response_done(GOODBYE_RESPONSE), 60 * MINUTE + 300);
    assert!(out.end.is_none(), "its audio has not played yet");
    let out = call.twilio(&mark_echo(&mark), 60 * MINUTE + 2_000);
    let end = out.end.clone().expect("ended once the goodbye played");
    assert_eq!(end.kind, EndKind::MaxDuration);
    assert_eq!(
        (end.status, end.end_reason.as_str()),
        (CallStatus::Completed, "max_duration")
    );
    assert!(end.close_twilio());
}

#[test]
fn a_goodbye_that_does_not_finish_is_cut_at_the_wait_and_the_default_line_is_used() {
    let mut call = started_with(agent(), limits(0, MINUTE));
    let out = call.tick(MINUTE);
    let create = &frames(&out.to_openai)[0];
    let instructions = create["response"]["instructions"].as_str().unwrap();
    assert!(instructions.ends_with(DEFAULT_GOODBYE), "{instructions}");
    assert!(call.tick(MINUTE + 9_999).end.is_none());
    let end = call
        .tick(MINUTE + 10_000)
        .end
        .clone()
        .expect("hung up anyway");
    assert_eq!(end.kind, EndKind::MaxDuration);
}

#[test]
fn the_agents_own_limit_wins_and_a_response_in_progress_is_cancelled_first() {
    let mut short = agent();
    short.max_call_duration = Some(prost_types::Duration {
        seconds: 30,
        nanos: 0,
    });
    let mut call = started_with(short, limits(0, 60 * MINUTE));
    call.openai(&response_created("resp_talking"), 29_000);
    let out = call.tick(30_000);
    let [cancel] = frames(&out.to_openai).try_into().expect("one event");
    assert_eq!(cancel["type"], "response.cancel");
    assert_eq!(cancel["response_id"], "resp_talking");
    let out = call.openai(&response_done("resp_talking"), 30_100);
    let create = &frames(&out.to_openai)[0];
    assert_eq!(
        create["event_id"], "sb_goodbye",
        "asked once the response ended"
    );
}

#[test]
fn without_the_model_the_call_ends_at_once_at_the_limit() {
    let mut call = Call::with_config(config(agent(), 0), Dialect::Ga, limits(0, MINUTE));
    call.twilio(recorded("start")[0].frame, 2);
    let end = call.tick(MINUTE).end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::MaxDuration);
}

#[test]
fn zero_means_no_default_limit() {
    let mut call = started_with(agent(), limits(0, 0));
    let out = call.tick(24 * 60 * MINUTE);
    assert!(out.end.is_none() && out.to_openai.is_empty());
}

#[test]
fn a_tool_result_during_the_goodbye_asks_for_no_other_response() {
    let mut call = started_with(agent(), limits(0, MINUTE));
    call.openai(&example("ga_server", "response.done"), 1_000);
    call.tick(MINUTE);
    let result = connect_response::Message::ToolResult(switchboard_proto::v1::ToolResult {
        tool_call_id: "call_Qm3VbXh1sP0aT9e2".into(),
        output_json: "{}".into(),
        error: None,
    });
    let out = call.control(result, MINUTE + 100);
    let types: Vec<_> = frames(&out.to_openai)
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        ["conversation.item.create"],
        "the goodbye stays the last response"
    );
}
