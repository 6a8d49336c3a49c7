//! Tool calls: up to the control plane, results back to the model, the built-in transfer.

use serde_json::json;
use switchboard_proto::v1::{CallError, CallStatus, ConversationItemKind, ToolCall, ToolResult};
use switchboard_realtime::Dialect;

use super::*;
use crate::call::EndKind;

const CALL_ID: &str = "call_Qm3VbXh1sP0aT9e2";
const OUTPUT: &str = r#"{"status":"shipped","eta":"2026-11-27"}"#;

fn tool_result(output: &str) -> connect_response::Message {
    connect_response::Message::ToolResult(ToolResult {
        tool_call_id: CALL_ID.into(),
        output_json: output.into(),
        error: None,
    })
}

/// `response.done` of a completed response calling `transfer_to_human`.
fn transfer_done() -> String {
    example_with("ga_server", "response.done", |event| {
        let call = &mut event["response"]["output"][1];
        call["name"] = "transfer_to_human".into();
        call["arguments"] = r#"{"reason":"wants a person"}"#.into();
    })
}

#[test]
fn a_tool_call_goes_up_and_its_result_comes_back_to_the_model() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&example("ga_server", "response.created"), 1_000);
    let out = call.openai(&example("ga_server", "response.done"), 2_000);
    let expected_call = ToolCall {
        tool_call_id: CALL_ID.into(),
        name: "lookup_order".into(),
        arguments_json: r#"{"order_number":"4471"}"#.into(),
    };
    let up = control_messages(out);
    assert!(
        up.contains(&connect_request::Message::ToolCall(expected_call)),
        "{up:?}"
    );
    assert!(
        out.to_openai.is_empty(),
        "nothing for the model until the result"
    );
    let out = call.control(tool_result(OUTPUT), 3_000);
    let down = frames(&out.to_openai);
    let expected = json(&example(
        "ga_client",
        "conversation.item.create (function_call_output)",
    ));
    assert_eq!(down, [expected, json!({"type": "response.create"})]);
    let kinds: Vec<i32> = call.logged.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [
            ConversationItemKind::FunctionCall as i32,
            ConversationItemKind::FunctionCallOutput as i32
        ]
    );
    assert_eq!(
        json(&call.logged[0].payload_json),
        json!({"call_id": CALL_ID, "name": "lookup_order", "arguments": {"order_number": "4471"}})
    );
    assert_eq!(call.logged[0].provider_item_id, "item_CmXwC88");
    assert_eq!(
        json(&call.logged[1].payload_json),
        json!({"call_id": CALL_ID, "output": {"status": "shipped", "eta": "2026-11-27"}})
    );
    assert_eq!(call.core.counters().tool_calls, 1);
}

#[test]
fn a_cancelled_response_runs_no_tools() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(
        &example("ga_server", "response.function_call_arguments.done"),
        1_000,
    );
    let cancelled = example_with("ga_server", "response.done", |event| {
        event["response"]["status"] = "cancelled".into();
    });
    let out = call.openai(&cancelled, 1_100);
    assert!(control_messages(out)
        .iter()
        .all(|m| !matches!(m, connect_request::Message::ToolCall(_))));
    assert!(call.logged.is_empty());
}

#[test]
fn a_result_during_another_response_waits_for_it_to_finish() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&example("ga_server", "response.done"), 1_000);
    let next = example_with("ga_server", "response.created", |event| {
        event["response"]["id"] = "resp_next".into();
    });
    call.openai(&next, 1_500);
    let out = call.control(tool_result(OUTPUT), 2_000);
    let down = frames(&out.to_openai);
    assert_eq!(down.len(), 1, "the output only: a response is active");
    assert_eq!(down[0]["type"], "conversation.item.create");
    let done = example_with("ga_server", "response.done", |event| {
        event["response"]["id"] = "resp_next".into();
        event["response"]["output"] = json!([]);
    });
    let out = call.openai(&done, 3_000);
    assert_eq!(frames(&out.to_openai), [json!({"type": "response.create"})]);
}

#[test]
fn an_unanswered_tool_call_times_out_and_a_late_result_is_ignored() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&example("ga_server", "response.done"), 1_000);
    assert!(call.tick(75_999).to_openai.is_empty());
    let out = call.tick(76_000);
    let down = frames(&out.to_openai);
    assert_eq!(down.len(), 2);
    assert_eq!(down[0]["item"]["call_id"], CALL_ID);
    assert_eq!(
        json(down[0]["item"]["output"].as_str().expect("output")),
        json!({"error": "tool lookup_order did not answer in time"})
    );
    assert_eq!(down[1]["type"], "response.create");
    assert_eq!(call.core.counters().tool_timeouts, 1);
    assert!(call
        .control(tool_result(OUTPUT), 80_000)
        .to_openai
        .is_empty());
}

#[test]
fn a_failed_tool_gives_the_model_its_error() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&example("ga_server", "response.done"), 1_000);
    let failed = connect_response::Message::ToolResult(ToolResult {
        tool_call_id: CALL_ID.into(),
        output_json: String::new(),
        error: Some(CallError {
            code: "tool.webhook_failed".into(),
            message: "webhook answered 500".into(),
        }),
    });
    let out = call.control(failed, 2_000);
    let down = frames(&out.to_openai);
    assert_eq!(
        down[0]["item"]["output"],
        r#"{"error":"webhook answered 500"}"#
    );
    let logged = json(&call.logged.last().expect("output item").payload_json);
    assert_eq!(logged["error"]["code"], "tool.webhook_failed");
}

#[test]
fn unanswered_tool_calls_are_sent_again_after_a_reconnect() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&example("ga_server", "response.done"), 1_000);
    let out = call.control(connect_response::Message::Config(config(agent(), 1)), 5_000);
    let resent: Vec<_> = control_messages(out)
        .into_iter()
        .filter_map(|m| match m {
            connect_request::Message::ToolCall(call) => Some(call.tool_call_id),
            _ => None,
        })
        .collect();
    assert_eq!(resent, [CALL_ID]);
}

/// The `TransferRequest`s the control plane received.
fn transfers(call: &Call) -> Vec<switchboard_proto::v1::TransferRequest> {
    call.sent
        .iter()
        .filter_map(|m| match m {
            connect_request::Message::Transfer(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn kinds(call: &Call) -> Vec<i32> {
    call.logged.iter().map(|i| i.kind).collect()
}

#[test]
fn transfer_to_human_waits_for_the_answer_and_stop_then_ends_handed_off() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let out = call.openai(&transfer_done(), 2_000);
    assert!(out.to_openai.is_empty(), "the model waits for the answer");
    assert!(
        control_messages(out)
            .iter()
            .all(|m| !matches!(m, connect_request::Message::ToolCall(_))),
        "the built-in tool is no webhook"
    );
    let [transfer] = transfers(&call).try_into().expect("one transfer request");
    assert_eq!(transfer.reason, "wants a person");
    assert_eq!(transfer.target, agent().handoff_target);
    assert_eq!(transfer.request_id, "transfer-1");

    let out = call.answer("transfer-1", Outcome::Accepted, "", 2_500);
    let down = frames(&out.to_openai);
    assert_eq!(down[0]["item"]["type"], "function_call_output");
    assert_eq!(
        json(down[0]["item"]["output"].as_str().unwrap())["status"],
        "transferring"
    );
    assert_eq!(down[1]["type"], "response.create", "the model says goodbye");
    assert_eq!(
        kinds(&call),
        [
            ConversationItemKind::FunctionCall as i32,
            ConversationItemKind::Handoff as i32,
            ConversationItemKind::FunctionCallOutput as i32,
        ]
    );
    let out = call.twilio(recorded("stop")[0].frame, 9_000);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::HandedOff);
    assert_eq!(end.handoff_target, agent().handoff_target);
    assert_eq!(call.statuses()[0].status, CallStatus::HandedOff as i32);
    assert_eq!(
        call.logged
            .iter()
            .filter(|i| i.kind == ConversationItemKind::Handoff as i32)
            .count(),
        1,
        "logged once"
    );
}

#[test]
fn a_refused_transfer_is_the_models_failed_result_and_the_call_goes_on() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&transfer_done(), 2_000);
    let out = call.answer("transfer-1", Outcome::Refused, "handoff.no_target", 2_400);
    assert_eq!(out.refusals.len(), 1);
    assert_eq!(out.refusals[0].error.code, "handoff.no_target");
    let down = frames(&out.to_openai);
    assert_eq!(down[0]["item"]["call_id"], CALL_ID);
    let output = json(down[0]["item"]["output"].as_str().unwrap());
    assert_eq!(output["status"], "failed");
    assert_eq!(output["error"], "handoff.no_target (test)");
    assert_eq!(
        down[1]["type"], "response.create",
        "the model tells the caller"
    );
    assert!(out.end.is_none());
    let logged = json(&call.logged.last().expect("output item").payload_json);
    assert_eq!(logged["error"]["code"], "handoff.no_target");
    assert_eq!(
        kinds(&call),
        [
            ConversationItemKind::FunctionCall as i32,
            ConversationItemKind::FunctionCallOutput as i32,
        ],
        "no handoff was logged"
    );
    // A stop now is the caller hanging up, not a handoff.
    let end = call.twilio(recorded("stop")[0].frame, 9_000).end.clone();
    assert_eq!(end.expect("ended").kind, EndKind::CallerHungUp);
    // A late copy of the answer changes nothing.
    let late = call.answer("transfer-1", Outcome::Accepted, "", 9_100);
    assert!(late.to_openai.is_empty() && late.end.is_none());
}

#[test]
fn a_transfer_nobody_answers_fails_after_the_tool_timeout() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&transfer_done(), 2_000);
    assert!(call.tick(2_000 + 74_000).to_openai.is_empty());
    let out = call.tick(2_000 + 75_000);
    let output = json(
        frames(&out.to_openai)[0]["item"]["output"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(output["status"], "failed");
    assert_eq!(call.core.counters().tool_timeouts, 1);
    // Its request is dropped: it is not sent again after a reconnect.
    call.lose_control();
    call.reconnect(3, 80_000);
    assert_eq!(transfers(&call).len(), 1);
}

#[test]
fn a_second_transfer_while_one_is_pending_is_answered_at_once() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&transfer_done(), 2_000);
    let again = example_with("ga_server", "response.done", |event| {
        let call = &mut event["response"]["output"][1];
        call["name"] = "transfer_to_human".into();
        call["call_id"] = "call_second".into();
    });
    let out = call.openai(&again, 3_000);
    let down = frames(&out.to_openai);
    assert_eq!(down[0]["item"]["call_id"], "call_second");
    assert_eq!(transfers(&call).len(), 1, "one request");
}

#[test]
fn the_driver_can_carry_out_the_transfer_itself() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&transfer_done(), 2_000);
    call.out.clear();
    call.core
        .hand_off("wants a person", None, 4_000, &mut call.out);
    let end = call.out.end.clone().expect("ended");
    assert_eq!(
        (end.kind, end.status),
        (EndKind::HandedOff, CallStatus::HandedOff)
    );
    assert_eq!(end.handoff_target, agent().handoff_target);
}
