//! How calls end, errors, usage, and frames that are rejected.

use switchboard_proto::v1::{fallback, CallStatus, ConversationItemKind, Fallback, Usage};
use switchboard_realtime::Dialect;

use super::*;
use crate::call::{EndKind, RejectReason};

fn usage_reports(call: &Call) -> Vec<Usage> {
    call.sent
        .iter()
        .filter_map(|message| match message {
            connect_request::Message::Usage(report) => report.usage,
            _ => None,
        })
        .collect()
}

#[test]
fn stop_ends_the_call_completed_once_the_log_is_stored() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.auto_ack = false;
    call.openai(
        &example(
            "ga_server",
            "conversation.item.input_audio_transcription.completed",
        ),
        500,
    );
    let out = call.twilio(recorded("stop")[0].frame, 1_540);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::CallerHungUp);
    assert_eq!(
        (end.status, end.end_reason.as_str()),
        (CallStatus::Completed, "caller_hung_up")
    );
    assert!(!end.close_twilio() && !end.needs_fallback());
    assert!(
        call.statuses().is_empty(),
        "held until the item is acknowledged"
    );
    assert!(!call.core.is_settled());
    call.ack(1, 1_600);
    let status = call.statuses()[0].clone();
    assert_eq!(status.status, CallStatus::Completed as i32);
    assert_eq!(status.end_reason, "caller_hung_up");
    assert!(
        !call.core.is_settled(),
        "settled once the control plane answers"
    );
    call.answer(&status.request_id, Outcome::Accepted, "", 1_650);
    assert!(call.core.is_settled());
}

#[test]
fn finish_sends_the_final_status_when_the_log_cannot_be_stored() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.auto_ack = false;
    call.twilio(recorded("dtmf")[0].frame, 500);
    call.twilio(recorded("stop")[0].frame, 600);
    assert!(call.statuses().is_empty());
    call.out.clear();
    call.core.finish(700, &mut call.out);
    let [ConnectRequest {
        message: Some(connect_request::Message::Status(status)),
    }] = call.out.to_control.as_slice()
    else {
        panic!("the status alone: {:?}", call.out.to_control);
    };
    let request_id = status.request_id.clone();
    assert!(!call.core.is_settled());
    call.answer(&request_id, Outcome::Accepted, "", 800);
    assert!(call.core.is_settled());
    assert_eq!(
        call.core.outbox().unacknowledged(),
        1,
        "the item stays counted"
    );
}

#[test]
fn an_openai_drop_ends_the_call_failed_with_the_fallback() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let out = call.openai_closed("connection reset", 3_000);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::OpenAiUnavailable);
    assert_eq!(end.status, CallStatus::Failed);
    assert!(end.needs_fallback() && end.close_twilio());
    let error = end.error.clone().expect("error");
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("openai.unavailable", "connection reset")
    );
    let note = &call.logged[0];
    assert_eq!(note.kind, ConversationItemKind::Note as i32);
    assert_eq!(note.text, "fallback: openai_unavailable");
    let status = &call.statuses()[0];
    assert_eq!(status.status, CallStatus::Failed as i32);
    assert_eq!(
        status.error.as_ref().map(|e| e.code.as_str()),
        Some("openai.unavailable")
    );
    // A second close changes nothing: the call ends once.
    assert!(call.openai_closed("closed", 3_100).end.is_none());
}

#[test]
fn an_agent_whose_fallback_transfers_ends_handed_off() {
    let mut transferring = agent();
    transferring.fallback = Some(Fallback {
        message: "One moment, please.".into(),
        action: fallback::Action::Transfer.into(),
    });
    let mut call = Call::started(transferring, Dialect::Ga);
    let end = call
        .openai_closed("refused", 10)
        .end
        .clone()
        .expect("ended");
    assert_eq!(end.status, CallStatus::HandedOff);
    assert_eq!(end.handoff_target, agent().handoff_target);
    assert_eq!(
        end.fallback.map(|f| f.message),
        Some("One moment, please.".into())
    );
}

#[test]
fn errors_are_returned_for_logging_and_only_fatal_ones_end_the_call() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let out = call.openai(&example("ga_server", "error"), 1_000);
    let error = &out.openai_errors[0];
    assert_eq!(
        error.code.as_deref(),
        Some("conversation_already_has_active_response")
    );
    assert!(!error.fatal && out.end.is_none());
    let benign = example_with("ga_server", "error", |event| {
        event["error"]["code"] = "response_cancel_not_active".into();
    });
    assert!(
        call.openai(&benign, 1_100).openai_errors.is_empty(),
        "expected after a barge-in"
    );
    let expired = example_with("ga_server", "error", |event| {
        event["error"]["code"] = "session_expired".into();
        event["error"]["message"] = "Your session hit the maximum duration of 60 minutes.".into();
    });
    let out = call.openai(&expired, 3_600_000);
    assert!(out.openai_errors[0].fatal);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::OpenAiFailed);
    assert_eq!(
        end.error.map(|e| e.code),
        Some("openai.session_expired".into())
    );
    assert_eq!(call.core.counters().openai_errors, 2);
}

#[test]
fn a_refused_session_update_ends_the_call() {
    let mut call = Call::new(agent(), Dialect::Ga);
    call.openai(SESSION_CREATED, 0);
    let refused = example_with("ga_server", "error", |event| {
        event["error"]["code"] = "invalid_value".into();
        event["error"]["event_id"] = "sb_session_update".into();
    });
    let end = call.openai(&refused, 10).end.clone().expect("ended");
    assert_eq!(
        end.error.map(|e| e.code),
        Some("openai.session_rejected".into())
    );
}

#[test]
fn the_call_ends_at_the_agents_max_duration_after_the_goodbye() {
    let mut limited = agent();
    limited.max_call_duration = Some(Default::default());
    if let Some(duration) = limited.max_call_duration.as_mut() {
        duration.seconds = 60;
    }
    let mut call = Call::started(limited, Dialect::Ga);
    assert!(call.tick(59_999).end.is_none());
    let out = call.tick(60_000);
    assert!(out.end.is_none(), "the goodbye first");
    assert_eq!(frames(&out.to_openai)[0]["event_id"], "sb_goodbye");
    let end = call.tick(70_000).end.clone().expect("ended");
    assert_eq!(
        (end.kind, end.end_reason.as_str()),
        (EndKind::MaxDuration, "max_duration")
    );
    assert!(end.close_twilio());
}

#[test]
fn usage_is_cumulative_and_reported_at_most_once_per_interval() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.twilio(recorded("media")[0].frame, 100);
    let done = example("ga_server", "response.done (cancelled by barge-in)");
    call.openai(&done, 1_000);
    call.openai(&done, 2_000);
    let reports = usage_reports(&call);
    assert_eq!(reports.len(), 1, "the second waits for the interval");
    assert_eq!(reports[0].total_tokens, 1406);
    assert_eq!(reports[0].caller_audio_ms, 20);
    call.tick(6_000);
    let reports = usage_reports(&call);
    assert_eq!(reports.len(), 2);
    let usage = reports[1];
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total_tokens),
        (2 * 1187, 2 * 219, 2 * 1406)
    );
    assert_eq!(
        (usage.input_audio_tokens, usage.output_audio_tokens),
        (2 * 276, 2 * 167)
    );
    assert!(
        call.tick(20_000).to_control.is_empty(),
        "nothing new, nothing sent"
    );
    call.twilio(recorded("stop")[0].frame, 21_000);
    assert_eq!(usage_reports(&call).len(), 3, "the final report at the end");
}

#[test]
fn malformed_twilio_frames_are_counted_and_skipped() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let media = recorded("media")[0].frame;
    let foreign = media.replace(STREAM_SID, "MZ00000000000000000000000000000000");
    let oversized = format!(r#"{{"event":"media","pad":"{}"}}"#, "x".repeat(70_000));
    let frames = [
        "not json",
        r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1"}"#,
        r#"{"event":"media","sequenceNumber":"x","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"/w=="}}"#,
        r#"{"event":"hologram","streamSid":"MZ1"}"#,
        r#"{"sequenceNumber":"2"}"#,
        oversized.as_str(),
        foreign.as_str(),
    ];
    for frame in frames {
        let out = call.twilio(frame, 100);
        assert!(out.is_empty(), "{frame:.60}");
    }
    let rejected = &call.core.counters().twilio_rejected;
    for (reason, count) in [
        (RejectReason::InvalidJson, 1),
        (RejectReason::MissingField, 2),
        (RejectReason::InvalidField, 1),
        (RejectReason::UnknownEvent, 1),
        (RejectReason::TooLarge, 1),
        (RejectReason::WrongStream, 1),
    ] {
        assert_eq!(rejected.get(reason), count, "{reason}");
    }
    assert_eq!(
        call.twilio(media, 120).to_openai.len(),
        1,
        "the call goes on"
    );
}

#[test]
fn twilio_frames_out_of_the_streams_order_are_counted_and_skipped() {
    let mut call = Call::new(agent(), Dialect::Ga);
    call.openai(SESSION_CREATED, 0);
    let media = recorded("media")[0].frame;
    let start = recorded("start")[0].frame;
    let connected = recorded("connected")[0].frame;
    let stop = recorded("stop")[0].frame;
    // Before `start`: only `connected` belongs.
    assert!(call.twilio(connected, 1).is_empty());
    for frame in [media, stop] {
        assert!(call.twilio(frame, 2).is_empty(), "{frame:.60}");
    }
    assert!(!call.core.is_ended(), "a stop before start ends nothing");
    call.twilio(start, 3);
    let other_start = start.replace(STREAM_SID, "MZ00000000000000000000000000000000");
    for frame in [start, other_start.as_str(), connected] {
        assert!(call.twilio(frame, 4).is_empty(), "{frame:.60}");
    }
    let rejected = &call.core.counters().twilio_rejected;
    assert_eq!(rejected.get(RejectReason::Unexpected), 4, "{rejected:?}");
    assert_eq!(
        rejected.total(),
        4 + 1,
        "the foreign start is also another stream's"
    );
    assert_eq!(call.core.stream_sid(), STREAM_SID, "the first start holds");
    assert_eq!(
        call.twilio(media, 20).to_openai.len(),
        1,
        "the call goes on"
    );
    assert_eq!(
        call.core.counters().caller_frames,
        1,
        "the early frame was not relayed"
    );
}

#[test]
fn unknown_and_malformed_openai_events_are_counted_and_skipped() {
    let mut call = Call::started(agent(), Dialect::Ga);
    for event in [
        r#"{"type":"output_audio_buffer.started","event_id":"e1","response_id":"r1"}"#,
        r#"{"type":"mcp_list_tools.completed","event_id":"e2","item_id":"i1"}"#,
        r#"{"type":"response.output_audio.delta","event_id":"e3"}"#,
        r#"{"event_id":"e4"}"#,
        "[1,2",
    ] {
        assert!(call.openai(event, 100).is_empty(), "{event}");
    }
    let rejected = &call.core.counters().openai_rejected;
    assert_eq!(rejected.get(RejectReason::UnknownEvent), 2);
    assert_eq!(rejected.get(RejectReason::InvalidField), 1);
    assert_eq!(rejected.get(RejectReason::MissingField), 1);
    assert_eq!(rejected.get(RejectReason::InvalidJson), 1);
    let known = call.openai(&example("ga_server", "rate_limits.updated"), 200);
    assert!(known.is_empty());
    assert_eq!(rejected_total(&call), 5, "known events are not counted");
}

#[test]
fn nothing_is_relayed_after_the_end() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.twilio(recorded("stop")[0].frame, 1_000);
    assert!(call.twilio(recorded("media")[0].frame, 1_010).is_empty());
    let delta = example("ga_server", "response.output_audio.delta");
    assert!(call.openai(&delta, 1_020).is_empty());
    assert!(
        call.twilio(recorded("stop")[0].frame, 1_030).end.is_none(),
        "ends once"
    );
}

#[test]
fn a_twilio_socket_closed_without_stop_fails_the_call() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.out.clear();
    call.core
        .on_twilio_closed("connection reset", 1_000, &mut call.out);
    let end = call.out.end.clone().expect("ended");
    assert_eq!(
        (end.kind, end.status),
        (EndKind::TwilioClosed, CallStatus::Failed)
    );
    assert_eq!(
        end.error.map(|e| e.code),
        Some("twilio.stream_closed".into())
    );
}

#[test]
fn hello_carries_the_stream_from_start() {
    let call = Call::started(agent(), Dialect::Ga);
    let hello = call.core.hello("sidecar-1");
    let Some(connect_request::Message::Hello(hello)) = hello.message else {
        panic!("a hello");
    };
    assert_eq!(hello.stream_sid, STREAM_SID);
    assert_eq!(hello.call_sid, "CA5f2e9c1b7a3d48e6b0c4f1a2d3e4b5c6");
    assert_eq!(hello.call_id, "65a9f001c2b3d4e5f6a7b8c9");
    assert!(hello.resume, "the core's hello reopens a running call");
    assert_eq!(
        call.core
            .custom_parameters()
            .get("callId")
            .map(String::as_str),
        Some("65a9f001c2b3d4e5f6a7b8c9")
    );
}

fn rejected_total(call: &Call) -> u64 {
    call.core.counters().openai_rejected.total()
}
