//! Barge-in, replayed from the recorded session (the worked example of docs/protocols.md
//! §4.3).

use serde_json::{json, Value};
use switchboard_proto::v1::{ConversationItemKind, ConversationRole};
use switchboard_realtime::Dialect;

use super::*;
use crate::call::EndKind;

const ITEM: &str = "item_CmXvJ8r2kQ";
const RESPONSE: &str = "resp_CmXwAbc";

fn delta(payload: &str) -> String {
    example_with("ga_server", "response.output_audio.delta", |event| {
        event["item_id"] = ITEM.into();
        event["delta"] = payload.into();
    })
}

fn transcript_done() -> String {
    example_with(
        "ga_server",
        "response.output_audio_transcript.done",
        |event| {
            event["item_id"] = ITEM.into();
            event["transcript"] =
                "Hi Jane, this is Ava from Acme. How can I help you today?".into();
        },
    )
}

/// Feeds the recorded session: inbound frames as they are; each recorded outbound `media`
/// as the OpenAI delta that causes it; at the recorded `clear`, the `speech_started` that
/// causes it. Our Twilio output must equal the recorded outbound frames.
#[test]
fn barge_in_truncates_at_audio_the_caller_heard() {
    let mut call = Call::new(agent(), Dialect::Ga);
    call.openai(SESSION_CREATED, 0);
    call.openai(SESSION_UPDATED, 0);
    call.openai(&example("ga_server", "response.created"), 990);
    let mut produced: Vec<Value> = Vec::new();
    let mut expected: Vec<Value> = Vec::new();
    let mut to_openai_at_clear = Vec::new();
    for line in recorded_session() {
        if line.inbound {
            let out = call.twilio(line.frame, line.t_ms);
            produced.extend(frames(&out.to_twilio));
            continue;
        }
        expected.push(json(line.frame));
        match line.event {
            "media" => {
                let payload = json(line.frame)["media"]["payload"]
                    .as_str()
                    .expect("payload")
                    .to_owned();
                let out = call.openai(&delta(&payload), line.t_ms);
                produced.extend(frames(&out.to_twilio));
            }
            "clear" => {
                let speech = example("ga_server", "input_audio_buffer.speech_started");
                let out = call.openai(&speech, line.t_ms);
                produced.extend(frames(&out.to_twilio));
                to_openai_at_clear = frames(&out.to_openai);
                // A delta of the cut response still in flight: dropped, never played.
                let late = call.openai(&delta(&"/".repeat(216)), line.t_ms + 5);
                assert!(
                    late.to_twilio.is_empty(),
                    "late delta replayed cancelled speech"
                );
                // Its transcript arrives after the cut.
                call.openai(&transcript_done(), line.t_ms + 20);
            }
            _ => {}
        }
    }
    assert_eq!(
        produced, expected,
        "our frames equal the recorded outbound frames"
    );
    assert_eq!(
        to_openai_at_clear,
        [
            json!({"type": "response.cancel", "response_id": RESPONSE}),
            json!({"type": "conversation.item.truncate", "item_id": ITEM, "content_index": 0,
                   "audio_end_ms": 285}),
        ]
    );
    let counters = call.core.counters();
    assert_eq!((counters.barge_ins, counters.deltas_dropped), (1, 1));
    assert_eq!(
        counters.marks_echoed, 4,
        "two played, two flushed by the clear"
    );

    let assistant = call
        .logged
        .iter()
        .find(|item| item.role == ConversationRole::Assistant as i32)
        .expect("assistant item");
    assert_eq!(assistant.kind, ConversationItemKind::Message as i32);
    assert_eq!(assistant.provider_item_id, ITEM);
    assert_eq!(
        json(&assistant.payload_json),
        json!({"interrupted": true, "audio_end_ms": 285})
    );
    let dtmf = call
        .logged
        .iter()
        .find(|item| item.kind == ConversationItemKind::Note as i32)
        .expect("dtmf note");
    assert_eq!(dtmf.text, "dtmf 1");
    assert_eq!(call.core.end_kind(), Some(EndKind::CallerHungUp));
}

/// The truncate never claims more audio than was sent, however late the caller speaks.
#[test]
fn a_late_barge_in_truncates_at_most_the_audio_sent() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let media = recorded_session()
        .into_iter()
        .find(|r| !r.inbound && r.event == "media")
        .expect("outbound media");
    let payload = json(media.frame)["media"]["payload"]
        .as_str()
        .expect("payload")
        .to_owned();
    call.openai(&delta(&payload), 1_000);
    let out = call.openai(
        &example("ga_server", "input_audio_buffer.speech_started"),
        60_000,
    );
    let sent = frames(&out.to_openai);
    assert_eq!(sent.len(), 1, "nothing generating: no cancel");
    assert_eq!(sent[0]["audio_end_ms"], 100);
}

#[test]
fn speech_with_nothing_audible_sends_no_clear_and_no_truncate() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let out = call.openai(
        &example("ga_server", "input_audio_buffer.speech_started"),
        100,
    );
    assert!(out.to_twilio.is_empty() && out.to_openai.is_empty());
    assert_eq!(call.core.counters().barge_ins, 0);
}

#[test]
fn an_assistant_transcript_waits_until_its_audio_has_played() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let out = call.openai(&delta(&"/".repeat(216)), 1_000);
    let mark = json(out.to_twilio.get(1).expect("mark"))["mark"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    call.openai(&transcript_done(), 1_010);
    assert!(
        call.logged.is_empty(),
        "held while the caller is still hearing it"
    );
    let echo = format!(
        r#"{{"event":"mark","sequenceNumber":"9","streamSid":"{STREAM_SID}","mark":{{"name":"{mark}"}}}}"#
    );
    call.twilio(&echo, 1_200);
    assert_eq!(call.logged.len(), 1);
    assert_eq!(call.logged[0].payload_json, "", "heard in full");
}
