//! The link to the control plane: what the core must say waits while the stream is down
//! and goes after the reconnect's `CallConfig`, with the ids copies are recognised by;
//! answers are acted on; the outbox's byte bound; an older control plane.

use switchboard_proto::v1::{fallback, CallStatus, Fallback};
use switchboard_realtime::Dialect;

use super::*;
use crate::call::outbox::OutboxLimits;
use crate::call::EndKind;

fn user_transcript(item_id: &str, text: &str) -> String {
    example_with(
        "ga_server",
        "conversation.item.input_audio_transcription.completed",
        |event| {
            event["item_id"] = item_id.into();
            event["transcript"] = text.into();
        },
    )
}

/// `response.done` calling `transfer_to_human`.
fn transfer_done() -> String {
    example_with("ga_server", "response.done", |event| {
        let call = &mut event["response"]["output"][1];
        call["name"] = "transfer_to_human".into();
        call["arguments"] = r#"{"reason":"wants a person"}"#.into();
    })
}

/// What reached the control plane since `from`, by kind: `items:1,2`, `status-3`, ….
fn sent_since(call: &Call, from: usize) -> Vec<String> {
    call.sent[from..]
        .iter()
        .filter(|message| !matches!(message, connect_request::Message::Usage(_)))
        .map(|message| match message {
            connect_request::Message::Items(batch) => {
                let seqs: Vec<String> = batch.items.iter().map(|i| i.seq.to_string()).collect();
                format!("items:{}", seqs.join(","))
            }
            connect_request::Message::Status(r) => r.request_id.clone(),
            connect_request::Message::Fallback(r) => r.request_id.clone(),
            connect_request::Message::Transfer(r) => r.request_id.clone(),
            connect_request::Message::ToolCall(r) => format!("tool:{}", r.tool_call_id),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn everything_said_while_the_stream_is_down_goes_after_the_reconnects_config() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai(&user_transcript("item_1", "one"), 100);
    assert_eq!(call.logged_seqs(), [1]);

    call.lose_control();
    let before = call.sent.len();
    assert!(call
        .openai(&user_transcript("item_2", "two"), 200)
        .to_control
        .is_empty());
    let out = call.twilio(recorded("stop")[0].frame, 300);
    assert!(out.end.is_some() && out.to_control.is_empty());
    assert!(call.tick(5_000).to_control.is_empty(), "nothing while down");
    assert!(!call.core.is_settled());
    assert_eq!(call.sent.len(), before);

    // A new stream (the control plane restarted): its config says 1 is stored.
    call.reconnect(1, 6_000);
    assert_eq!(
        sent_since(&call, before),
        ["items:2", "status-1"],
        "the missing item, then the final status"
    );
    assert!(call.core.is_settled());
    assert_eq!(call.statuses()[0].end_reason, "caller_hung_up");
}

#[test]
fn a_transfer_asked_while_down_goes_after_the_reconnect_and_copies_keep_its_id() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.lose_control();
    let out = call.openai(&transfer_done(), 1_000);
    assert!(out.to_control.is_empty());
    let before = call.sent.len();
    call.reconnect(0, 2_000);
    assert_eq!(sent_since(&call, before), ["items:1", "transfer-1"]);
    // The stream breaks again before the answer: the same request goes again.
    call.lose_control();
    let before = call.sent.len();
    call.reconnect(1, 3_000);
    assert_eq!(sent_since(&call, before), ["transfer-1"]);
    let out = call.answer("transfer-1", Outcome::Accepted, "", 3_100);
    assert_eq!(
        frames(&out.to_openai)[0]["item"]["type"],
        "function_call_output"
    );
    // A second copy of the answer (to the second copy of the request) changes nothing.
    assert!(call
        .answer("transfer-1", Outcome::Accepted, "", 3_200)
        .to_openai
        .is_empty());
}

#[test]
fn tool_calls_wait_while_down_and_go_again_until_answered() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.lose_control();
    call.openai(&example("ga_server", "response.done"), 1_000);
    let before = call.sent.len();
    call.reconnect(0, 2_000);
    let sent = sent_since(&call, before);
    assert!(
        sent.contains(&"tool:call_Qm3VbXh1sP0aT9e2".to_owned()),
        "{sent:?}"
    );
    call.lose_control();
    let before = call.sent.len();
    call.reconnect(1, 3_000);
    assert!(sent_since(&call, before).contains(&"tool:call_Qm3VbXh1sP0aT9e2".to_owned()));
    let result = connect_response::Message::ToolResult(switchboard_proto::v1::ToolResult {
        tool_call_id: "call_Qm3VbXh1sP0aT9e2".into(),
        output_json: "{}".into(),
        error: None,
    });
    call.control(result, 3_100);
    call.lose_control();
    let before = call.sent.len();
    call.reconnect(2, 4_000);
    assert!(
        !sent_since(&call, before)
            .iter()
            .any(|s| s.starts_with("tool:")),
        "answered: never sent again"
    );
}

#[test]
fn a_fallback_waits_for_the_stream_and_its_refusal_hangs_up_failed() {
    let mut transferring = agent();
    transferring.fallback = Some(Fallback {
        message: "One moment, please.".into(),
        action: fallback::Action::Transfer.into(),
    });
    let mut call = Call::started(transferring, Dialect::Ga);
    call.auto_ack = false;
    call.lose_control();
    let out = call.openai_closed("connection reset", 1_000);
    let end = out.end.clone().expect("ended");
    assert!(end.needs_fallback());
    assert_eq!(end.status, CallStatus::HandedOff);
    assert!(out.to_control.is_empty());

    let before = call.sent.len();
    call.reconnect(0, 2_000);
    assert_eq!(sent_since(&call, before), ["items:1", "fallback-1"]);
    let fallback_request = call
        .sent
        .iter()
        .find_map(|m| match m {
            connect_request::Message::Fallback(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a fallback request");
    assert_eq!(
        fallback_request.error.map(|e| e.code),
        Some("openai.unavailable".into())
    );
    assert!(
        call.ack(1, 2_100).to_control.is_empty(),
        "the status waits for the answer"
    );
    let out = call.answer(
        "fallback-1",
        Outcome::Refused,
        "twilio.redirect_failed",
        2_200,
    );
    assert!(out.close_twilio, "nobody else will end the call");
    let status = &call.statuses()[0];
    assert_eq!(
        status.status,
        CallStatus::Failed as i32,
        "not handed off after all"
    );
    let status_id = status.request_id.clone();
    call.answer(&status_id, Outcome::Accepted, "", 2_300);
    assert!(call.core.is_settled());
}

#[test]
fn an_accepted_fallback_lets_the_status_go_and_leaves_twilio_to_the_redirect() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.auto_ack = false;
    call.openai_closed("connection reset", 1_000);
    call.ack(1, 1_100);
    assert!(call.statuses().is_empty());
    let out = call.answer("fallback-1", Outcome::Accepted, "", 1_200);
    assert!(!out.close_twilio);
    assert_eq!(call.statuses()[0].status, CallStatus::Failed as i32);
}

#[test]
fn a_retry_answer_sends_the_same_request_again_after_a_back_off() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.auto_ack = false;
    call.twilio(recorded("stop")[0].frame, 1_000);
    let id = call.statuses()[0].request_id.clone();
    assert!(call
        .answer(&id, Outcome::Retry, "store.unavailable", 1_100)
        .to_control
        .is_empty());
    assert!(call.tick(1_300).to_control.is_empty());
    call.tick(1_350);
    assert_eq!(call.statuses().len(), 2);
    assert_eq!(call.statuses()[1].request_id, id, "the same id");
    assert!(!call.core.is_settled());
    call.answer(&id, Outcome::Refused, "call.ended", 1_400);
    assert!(call.core.is_settled(), "a refused status is delivered too");
}

#[test]
fn at_the_byte_bound_tool_calls_get_an_error_at_once_and_items_are_counted() {
    let limits = CallLimits {
        outbox: OutboxLimits {
            capacity_bytes: 2_000,
            ..OutboxLimits::default()
        },
        ..untimed()
    };
    let mut call = Call::with_config(config(agent(), 0), Dialect::Ga, limits);
    call.twilio(recorded("start")[0].frame, 2);
    call.openai(SESSION_CREATED, 5);
    call.openai(SESSION_UPDATED, 6);
    call.lose_control();
    let long = "a".repeat(400);
    for n in 0..5 {
        call.openai(&user_transcript(&format!("item_{n}"), &long), 100 + n);
    }
    assert!(call.core.counters().items_overflowed >= 1);
    assert!(call.core.outbox().bytes() <= 2_000);
    // Less than one more transcript fits: a tool call with long arguments does not.
    let big_call = example_with("ga_server", "response.done", |event| {
        let arguments = serde_json::json!({"order_number": "4".repeat(500)}).to_string();
        event["response"]["output"][1]["arguments"] = arguments.into();
    });
    let out = call.openai(&big_call, 1_000);
    let down = frames(&out.to_openai);
    let output = json(down[0]["item"]["output"].as_str().unwrap());
    assert!(
        output["error"]
            .as_str()
            .unwrap()
            .contains("call outbox full"),
        "{output}"
    );
    assert!(out.to_control.is_empty());
    call.reconnect(0, 2_000);
    assert!(!request_ids(&call).contains(&"call_Qm3VbXh1sP0aT9e2".to_owned()));
}

#[test]
fn an_older_control_plane_that_never_answers_counts_requests_done_once_sent() {
    let old = CallConfig {
        answers_requests: false,
        ..config(agent(), 0)
    };
    let mut call = Call::with_config(old, Dialect::Ga, untimed());
    call.auto_ack = false;
    call.twilio(recorded("start")[0].frame, 2);
    call.openai(SESSION_CREATED, 5);
    call.openai(SESSION_UPDATED, 6);
    let out = call.openai(&transfer_done(), 1_000);
    let down = frames(&out.to_openai);
    let output = json(down[0]["item"]["output"].as_str().unwrap());
    assert_eq!(
        output["status"], "transferring",
        "as before answers existed"
    );
    call.ack(3, 1_100);
    let end = call.twilio(recorded("stop")[0].frame, 2_000).end.clone();
    assert_eq!(end.expect("ended").kind, EndKind::HandedOff);
    assert!(call.core.is_settled(), "settled once the status is sent");
}
