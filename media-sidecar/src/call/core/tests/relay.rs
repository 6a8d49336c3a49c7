//! Audio both ways, the session set-up and the greeting.

use serde_json::json;
use switchboard_realtime::{mulaw_duration_ms, Dialect};
use switchboard_twilio::media_stream::{parse_outbound, OutboundMessage};

use super::*;

#[test]
fn caller_media_is_appended_with_the_identical_payload() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let media = recorded("media");
    assert!(media.len() > 70);
    for frame in &media {
        let payload = json(frame.frame)["media"]["payload"]
            .as_str()
            .expect("payload")
            .to_owned();
        let out = call.twilio(frame.frame, frame.t_ms);
        let expected = format!(r#"{{"type":"input_audio_buffer.append","audio":"{payload}"}}"#);
        assert_eq!(
            out.to_openai.iter().collect::<Vec<_>>(),
            [expected.as_str()]
        );
        assert!(out.to_twilio.is_empty() && out.to_control.is_empty());
    }
    assert_eq!(call.core.counters().caller_frames, media.len() as u64);
    assert_eq!(call.core.counters().twilio_rejected.total(), 0);
}

#[test]
fn caller_audio_waits_for_the_session_update_and_follows_it_in_order() {
    let mut call = Call::new(agent(), Dialect::Ga);
    call.twilio(recorded("start")[0].frame, 2);
    let media = recorded("media");
    for frame in &media[..3] {
        let out = call.twilio(frame.frame, frame.t_ms);
        assert!(
            out.to_openai.is_empty(),
            "never append before session.update"
        );
    }
    let out = call.openai(SESSION_CREATED, 100);
    let sent = frames(&out.to_openai);
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0]["type"], "session.update");
    assert_eq!(sent[0]["event_id"], "sb_session_update");
    assert_eq!(sent[0]["session"]["type"], "realtime");
    assert_eq!(
        sent[0]["session"]["audio"]["input"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(sent[0]["session"]["audio"]["output"]["voice"], "marin");
    for (append, frame) in sent[1..].iter().zip(&media[..3]) {
        assert_eq!(append["type"], "input_audio_buffer.append");
        assert_eq!(append["audio"], json(frame.frame)["media"]["payload"]);
    }
    // Later frames go straight through; a second session.created changes nothing.
    assert_eq!(call.twilio(media[3].frame, 120).to_openai.len(), 1);
    assert!(call.openai(SESSION_CREATED, 130).to_openai.is_empty());
}

#[test]
fn the_start_up_buffer_is_bounded_and_counts_what_it_drops() {
    let limits = CallLimits {
        pre_session_frames: 2,
        ..CallLimits::default()
    };
    let mut call = Call::with_config(config(agent(), 0), Dialect::Ga, limits);
    call.twilio(recorded("start")[0].frame, 2);
    let media = recorded("media");
    for frame in &media[..3] {
        call.twilio(frame.frame, frame.t_ms);
    }
    let out = call.openai(SESSION_CREATED, 100);
    assert_eq!(
        out.to_openai.len(),
        3,
        "session.update and the two newest frames"
    );
    assert_eq!(call.core.counters().caller_frames_dropped, 1);
}

#[test]
fn the_start_up_buffer_is_bounded_in_bytes_too() {
    let media = recorded("media");
    let payload_len = json(media[0].frame)["media"]["payload"]
        .as_str()
        .expect("payload")
        .len();
    let limits = CallLimits {
        pre_session_bytes: 2 * payload_len + 1,
        ..CallLimits::default()
    };
    let mut call = Call::with_config(config(agent(), 0), Dialect::Ga, limits);
    call.twilio(recorded("start")[0].frame, 2);
    for frame in &media[..3] {
        call.twilio(frame.frame, frame.t_ms);
    }
    let out = call.openai(SESSION_CREATED, 100);
    assert_eq!(
        out.to_openai.len(),
        3,
        "session.update and the two newest frames"
    );
    assert_eq!(call.core.counters().caller_frames_dropped, 1);
}

#[test]
fn an_assistant_delta_becomes_media_and_mark_with_the_identical_payload() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let delta = example("ga_server", "response.output_audio.delta");
    let payload = json(&delta)["delta"].as_str().expect("delta").to_owned();
    let out = call.openai(&delta, 1_000);
    assert!(out.to_openai.is_empty());
    let twilio: Vec<&str> = out.to_twilio.iter().collect();
    assert_eq!(twilio.len(), 2, "media, then its mark, adjacent");
    assert_eq!(
        twilio[0],
        format!(
            r#"{{"event":"media","streamSid":"{STREAM_SID}","media":{{"payload":"{payload}"}}}}"#
        )
    );
    let sent_ms = mulaw_duration_ms(&payload);
    assert_eq!(
        parse_outbound(twilio[1]).expect("mark"),
        OutboundMessage::Mark {
            stream_sid: STREAM_SID.into(),
            name: format!("g1:item_CmXwB77:{sent_ms}").into(),
        }
    );
    assert_eq!(call.core.counters().assistant_frames, 1);
}

#[test]
fn a_beta_audio_delta_is_relayed_like_a_ga_one() {
    let mut call = Call::started(agent(), Dialect::Beta);
    let delta = example("beta_server", "response.audio.delta");
    let payload = json(&delta)["delta"].as_str().expect("delta").to_owned();
    let out = call.openai(&delta, 1_000);
    let twilio: Vec<&str> = out.to_twilio.iter().collect();
    assert_eq!(twilio.len(), 2);
    assert_eq!(
        parse_outbound(twilio[0]).expect("media"),
        OutboundMessage::Media {
            stream_sid: STREAM_SID.into(),
            payload: payload.as_str().into(),
        }
    );
    assert_eq!(json(twilio[1])["event"], "mark");
}

#[test]
fn the_beta_session_update_is_flat() {
    let mut call = Call::new(agent(), Dialect::Beta);
    let out = call.openai(SESSION_CREATED, 0);
    let update = json(out.to_openai.get(0).expect("session.update"));
    assert_eq!(update["session"]["input_audio_format"], "g711_ulaw");
    assert_eq!(update["session"]["output_audio_format"], "g711_ulaw");
    assert_eq!(update["session"]["voice"], "marin");
    assert!(update["session"].get("audio").is_none());
}

#[test]
fn deltas_before_twilio_start_are_dropped_and_counted() {
    let mut call = Call::new(agent(), Dialect::Ga);
    call.openai(SESSION_CREATED, 0);
    let out = call.openai(&example("ga_server", "response.output_audio.delta"), 10);
    assert!(
        out.to_twilio.is_empty(),
        "nothing may reach Twilio before start"
    );
    assert_eq!(call.core.counters().deltas_dropped, 1);
}

#[test]
fn the_greeting_is_asked_for_once_the_session_is_updated() {
    let mut greeter = agent();
    greeter.greeting = "Hi, this is Ava from Acme. How can I help?".into();
    let mut call = Call::new(greeter, Dialect::Ga);
    let created = call.openai(SESSION_CREATED, 0);
    assert_eq!(
        created.to_openai.len(),
        1,
        "only session.update before updated"
    );
    let out = call.openai(SESSION_UPDATED, 50);
    let sent = frames(&out.to_openai);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "response.create");
    assert_eq!(sent[0]["event_id"], "sb_greeting");
    let instructions = sent[0]["response"]["instructions"].as_str().expect("text");
    assert!(instructions.starts_with("You are Ava"), "keeps the persona");
    assert!(instructions.ends_with("Hi, this is Ava from Acme. How can I help?"));
    assert!(
        call.openai(SESSION_UPDATED, 60).to_openai.is_empty(),
        "once"
    );
}

#[test]
fn an_agent_without_greeting_waits_for_the_caller() {
    let mut call = Call::new(agent(), Dialect::Ga);
    call.openai(SESSION_CREATED, 0);
    assert!(call.openai(SESSION_UPDATED, 50).to_openai.is_empty());
}
