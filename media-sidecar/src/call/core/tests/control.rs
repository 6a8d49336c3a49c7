//! The conversation log on the control stream: items, sequence numbers, acks, nacks,
//! reconnects, commands.

use switchboard_proto::v1::{
    command, CallStatus, Command, ConversationItemKind, ConversationRole, HandOff, HangUp, Nack,
};
use switchboard_realtime::Dialect;

use super::*;
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

#[test]
fn transcripts_become_items_with_contiguous_seq_after_what_is_stored() {
    let mut call = Call::with_config(config(agent(), 4), Dialect::Ga, untimed());
    call.twilio(recorded("start")[0].frame, 2);
    call.openai(SESSION_CREATED, 5);
    call.openai(
        &example(
            "ga_server",
            "conversation.item.input_audio_transcription.completed",
        ),
        6_200,
    );
    call.openai(
        &example("ga_server", "response.output_audio_transcript.done"),
        7_000,
    );
    call.twilio(recorded("dtmf")[0].frame, 7_100);
    assert_eq!(call.logged_seqs(), [5, 6, 7]);
    let [user, assistant, dtmf] = &call.logged[..] else {
        panic!("three items: {:?}", call.logged);
    };
    assert_eq!(user.role, ConversationRole::User as i32);
    assert_eq!(user.kind, ConversationItemKind::Message as i32);
    assert_eq!(user.text, "Where is my order 4471?");
    assert_eq!(user.provider_item_id, "item_CmXw9aPq");
    assert_eq!(assistant.role, ConversationRole::Assistant as i32);
    assert_eq!(assistant.text, "Let me check that for you.");
    assert_eq!(assistant.provider_item_id, "item_CmXwB77");
    assert_eq!(dtmf.kind, ConversationItemKind::Note as i32);
    assert_eq!(json(&dtmf.payload_json), serde_json::json!({"dtmf": "1"}));
    let created_at = user.created_at.as_ref().expect("created_at");
    assert_eq!((created_at.seconds, created_at.nanos), (6, 200_000_000));
    assert_eq!(call.core.counters().items_logged, 3);
}

#[test]
fn the_outbox_resends_after_a_reconnect_without_duplicates() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.auto_ack = false;
    let out = call.openai(&user_transcript("item_1", "one"), 100);
    assert_eq!(items_of(out), [1], "idle: sent at once");
    let out = call.openai(&user_transcript("item_2", "two"), 200);
    assert!(items_of(out).is_empty(), "accumulates while 1 is in flight");
    call.openai(&user_transcript("item_3", "three"), 300);
    let out = call.ack(1, 400);
    assert_eq!(items_of(out), [2, 3]);
    // The control plane restarts before acking; its new CallConfig says 2 is stored.
    let reconnect = connect_response::Message::Config(config(agent(), 2));
    let out = call.control(reconnect, 5_000);
    assert_eq!(items_of(out), [3], "only what is not stored, once");
    let out = call.ack(3, 5_100);
    assert!(out.to_control.is_empty());
    assert!(call.core.outbox().is_drained());
    let texts: Vec<&str> = call.logged.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(
        texts,
        ["one", "two", "three", "three"],
        "re-sent, never renumbered"
    );
    assert_eq!(call.logged_seqs(), [1, 2, 3, 3]);
}

#[test]
fn a_nack_is_retried_after_a_back_off_on_tick() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.auto_ack = false;
    call.openai(&user_transcript("item_1", "one"), 100);
    let nack = Nack {
        expected_seq: 1,
        reason: "store unavailable".into(),
    };
    let out = call.control(connect_response::Message::Nack(nack), 200);
    assert!(out.to_control.is_empty(), "no immediate re-send");
    assert!(items_of(call.tick(300)).is_empty());
    assert_eq!(items_of(call.tick(450)), [1]);
}

#[test]
fn a_hang_up_command_ends_the_call_completed() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let hang_up = Command {
        command: Some(command::Command::HangUp(HangUp {
            reason: "supervisor".into(),
        })),
    };
    let out = call.control(connect_response::Message::Command(hang_up), 1_000);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::HungUp);
    assert_eq!(end.status, CallStatus::Completed);
    assert_eq!(end.end_reason, "supervisor");
    assert!(end.close_twilio());
    assert_eq!(call.statuses()[0].status, CallStatus::Completed as i32);
    assert!(call.core.is_settled());
}

#[test]
fn a_hand_off_command_ends_the_call_handed_off_and_logs_it() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let target = HandoffTarget {
        target: Some(handoff_target::Target::PhoneNumber("+81312345678".into())),
    };
    let hand_off = Command {
        command: Some(command::Command::HandOff(HandOff {
            target: Some(target.clone()),
            reason: "vip caller".into(),
        })),
    };
    let out = call.control(connect_response::Message::Command(hand_off), 1_000);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::HandedOff);
    assert_eq!(end.status, CallStatus::HandedOff);
    assert_eq!(end.handoff_target, Some(target));
    assert!(!end.close_twilio(), "the redirect ends the stream");
    let handoff = &call.logged[0];
    assert_eq!(handoff.kind, ConversationItemKind::Handoff as i32);
    assert_eq!(
        json(&handoff.payload_json),
        serde_json::json!({"requested_by": "control_plane", "reason": "vip caller",
                           "target": {"phone_number": "+81312345678"}})
    );
    assert_eq!(call.statuses()[0].end_reason, "handed_off");
}

fn items_of(out: &Actions) -> Vec<u64> {
    out.to_control
        .iter()
        .filter_map(|request| match &request.message {
            Some(connect_request::Message::Items(batch)) => Some(batch.items.iter().map(|i| i.seq)),
            _ => None,
        })
        .flatten()
        .collect()
}
