//! Per-frame cost of relaying audio, both ways: the codecs alone, then through the real
//! [`CallCore`] of a started call.
//!
//! Run: `cargo bench -p switchboard-media-sidecar --bench relay_frame`
//!
//! - `codec/twilio_media_to_append`: parse a real Twilio `media` frame (216-char payload,
//!   20 ms of µ-law) and write `input_audio_buffer.append` into a reused `String`.
//! - `codec/delta_to_media_mark`: parse a GA `response.output_audio.delta` carrying the same
//!   20 ms, format the mark name and write Twilio `media` + `mark` into reused `String`s.
//! - `core/twilio_media`: `CallCore::on_twilio_text(media)` with the `Actions` cleared and
//!   reused, as the driver does (counters, usage, the append).
//! - `core/openai_delta`: `CallCore::on_openai_text(delta)` likewise (playback tracking, the
//!   mark name, media + mark). Twilio's mark echo is fed outside the timing every 50 frames
//!   (1 s of audio) so the pending marks stay bounded, as on a real call.
//! - `core/openai_delta_and_mark_echo`: the delta and its echo, both timed: everything the
//!   core does for one frame of the model's audio.
//!
//! Target (issue): ≤ 1 µs per frame each way. Measured 2026-11-28 on the project's 2-core
//! shared machine (rustc 1.95, `[profile.bench]`, criterion 0.8; criterion's mean over two
//! runs, while another build kept the load average near 3 — expect less on a quiet core):
//!
//! | path | per frame |
//! |---|---|
//! | codec: Twilio media → append | 610–660 ns |
//! | codec: delta → media + mark | 800–820 ns |
//! | core: `on_twilio_text(media)` | 610–650 ns |
//! | core: `on_openai_text(delta)` | 830–850 ns |
//! | core: delta + its mark echo (two inputs) | 1.46–1.47 µs |
//!
//! Both ways are within the target, and the core adds little to the codecs (it writes
//! into the reused frame buffers). Only the model's direction counted
//! with Twilio's mark echo — two inputs, and building the echo text inside the timing —
//! passes 1 µs. Where its time goes (`perf record -g` on this bench): scanning the 216-char
//! base64 byte by byte — serde_json's string scan when parsing (`skip_to_escape` +
//! `parse_str`, ~23 %) and our JSON-escape check when writing (`push_json_str` of the
//! Twilio codec, ~19 %) — then `memmove` (~9 %) and serde field matching. A word-at-a-time
//! escape check in the codecs' `push_json_str` is the lever if it ever matters;
//! a relay's cost is in the kernel's sockets, not here (docs/media-sidecar.md, "What a call
//! costs").

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard_media_sidecar::call::{Actions, CallCore, CallLimits};
use switchboard_proto::v1::{AgentSettings, CallConfig, CallSession};
use switchboard_realtime::{
    encode_audio_append, parse_server_event, Dialect, MarkName, ServerEvent,
};
use switchboard_twilio::media_stream::{
    encode_mark, encode_media, parse_inbound, parse_outbound, InboundMessage, OutboundMessage,
};

const STREAM_SID: &str = "MZ18ad3ab5b1d2c4e7f8091a2b3c4d5e6f";

/// `from_twilio.start` of protocols/twilio/tests/fixtures/twilio-media-stream-examples.json.
const TWILIO_START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC0a1b2c3d4e5f60718293a4b5c6d7e8f9","streamSid":"MZ18ad3ab5b1d2c4e7f8091a2b3c4d5e6f","callSid":"CA5f2e9c1b7a3d48e6b0c4f1a2d3e4b5c6","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"token":"v1.eyJjYWxsSWQiOiI2NWE5ZjAwMSJ9.c2lnbmF0dXJl","callId":"65a9f001c2b3d4e5f6a7b8c9"}},"streamSid":"MZ18ad3ab5b1d2c4e7f8091a2b3c4d5e6f"}"#;

/// `from_twilio.media_later` of the same file: a mid-call 20 ms frame (216-char payload,
/// a 440 Hz tone).
const TWILIO_MEDIA: &str = r#"{"event":"media","sequenceNumber":"153","media":{"track":"inbound","chunk":"150","timestamp":"2980","payload":"/7+xq6ioqq+960AyKygoKi88YMOzrKioqq672kY0LCgoKS45VMm1rKmoqa24z0w3LSkoKS03TM+4ramoqay1yVQ5LikoKCw0Rtq7rqqoqKyzw2A8LyooKCsyQOu9r6qoqKuxv/8/MSsoKCovPWvAsquoqKqvvOBDMywoKCouOlrGtKyoqKmuudRJNSwpKCktOE/Mt62pqKmtt8xPOC0pKA=="},"streamSid":"MZ18ad3ab5b1d2c4e7f8091a2b3c4d5e6f"}"#;

/// `ga_server["response.output_audio.delta"]` of
/// protocols/realtime/tests/fixtures/openai-realtime-examples.json
/// with its `delta` cut to one 20 ms frame (160 bytes, the payload above).
const OPENAI_DELTA: &str = r#"{"type":"response.output_audio.delta","event_id":"event_CmXw09","response_id":"resp_CmXwAbc","item_id":"item_CmXwB77","output_index":0,"content_index":0,"delta":"/7+xq6ioqq+960AyKygoKi88YMOzrKioqq672kY0LCgoKS45VMm1rKmoqa24z0w3LSkoKS03TM+4ramoqay1yVQ5LikoKCw0Rtq7rqqoqKyzw2A8LyooKCsyQOu9r6qoqKuxv/8/MSsoKCovPWvAsquoqKqvvOBDMywoKCouOlrGtKyoqKmuudRJNSwpKCktOE/Mt62pqKmtt8xPOC0pKA=="}"#;

/// `session.created` / `session.updated`, as the core's own tests feed them.
const SESSION_CREATED: &str = r#"{"type":"session.created","event_id":"event_S1","session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime","output_modalities":["audio"],"instructions":"","tools":[],"tool_choice":"auto","max_output_tokens":"inf"}}"#;
const SESSION_UPDATED: &str = r#"{"type":"session.updated","event_id":"event_S2","session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime"}}"#;

/// Deltas between two untimed mark echoes in `core/openai_delta` (1 s of audio).
const ECHO_EVERY: u64 = 50;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");

    let mut append = String::new();
    group.bench_function("twilio_media_to_append", |b| {
        b.iter(|| {
            let Ok(InboundMessage::Media(media)) = parse_inbound(black_box(TWILIO_MEDIA)) else {
                unreachable!("a media frame");
            };
            append.clear();
            encode_audio_append(&media.payload, &mut append);
            black_box(append.as_str());
        });
    });

    let (mut media, mut mark, mut name) = (String::new(), String::new(), String::new());
    let mut end_ms = 0_u64;
    group.bench_function("delta_to_media_mark", |b| {
        b.iter(|| {
            let Ok(ServerEvent::ResponseOutputAudioDelta(delta)) =
                parse_server_event(black_box(OPENAI_DELTA))
            else {
                unreachable!("an audio delta");
            };
            end_ms += 20;
            name.clear();
            let mark_name = MarkName {
                generation: 0,
                item_id: &delta.item_id,
                end_ms,
            };
            let _ = write!(name, "{mark_name}");
            media.clear();
            encode_media(STREAM_SID, &delta.delta, &mut media);
            mark.clear();
            encode_mark(STREAM_SID, &name, &mut mark);
            black_box((media.as_str(), mark.as_str()));
        });
    });

    group.finish();
}

/// A core whose Twilio stream has started and whose OpenAI session is configured (no
/// greeting, no tools), as `Call::started` in the core's tests.
fn started_call() -> (CallCore, Actions) {
    let agent = AgentSettings {
        id: "agent_1".into(),
        name: "Ava".into(),
        model: "gpt-realtime".into(),
        voice: "marin".into(),
        instructions: "You are Ava, a friendly phone agent for Acme.".into(),
        ..AgentSettings::default()
    };
    let config = CallConfig {
        session: Some(CallSession {
            id: "65a9f001c2b3d4e5f6a7b8c9".into(),
            agent_id: agent.id.clone(),
            ..CallSession::default()
        }),
        agent_settings: Some(agent),
        stored_through_seq: 0,
        answers_requests: true,
    };
    let mut core = CallCore::new(config, Dialect::Ga, CallLimits::default(), 0);
    let mut out = Actions::new();
    core.on_twilio_text(TWILIO_START, 2, &mut out);
    out.clear();
    core.on_openai_text(SESSION_CREATED, 5, &mut out);
    out.clear();
    core.on_openai_text(SESSION_UPDATED, 6, &mut out);
    out.clear();
    // Warm up the frame buffers and check both paths relay.
    core.on_twilio_text(TWILIO_MEDIA, 10, &mut out);
    assert_eq!(out.to_openai.len(), 1, "the media frame is appended");
    out.clear();
    core.on_openai_text(OPENAI_DELTA, 11, &mut out);
    assert_eq!(
        out.to_twilio.len(),
        2,
        "the delta is relayed as media + mark"
    );
    let echo = mark_echo(&out, 1);
    out.clear();
    core.on_twilio_text(&echo, 12, &mut out);
    out.clear();
    (core, out)
}

/// Twilio's echo of the mark in `out` (its second Twilio frame).
fn mark_echo(out: &Actions, sequence_number: u64) -> String {
    let frame = out.to_twilio.get(1).expect("a mark frame");
    let Ok(OutboundMessage::Mark { name, .. }) = parse_outbound(frame) else {
        unreachable!("the second frame is the mark: {frame}");
    };
    format!(
        r#"{{"event":"mark","sequenceNumber":"{sequence_number}","streamSid":"{STREAM_SID}","mark":{{"name":"{name}"}}}}"#
    )
}

fn core(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");

    let (mut core, mut out) = started_call();
    let mut now = 1_000_u64;
    group.bench_function("twilio_media", |b| {
        b.iter(|| {
            now += 1;
            out.clear();
            core.on_twilio_text(black_box(TWILIO_MEDIA), now, &mut out);
            black_box(out.to_openai.get(0));
        });
    });

    let (mut core, mut out) = started_call();
    let mut now = 1_000_u64;
    let mut seq = 1_u64;
    group.bench_function("openai_delta", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let batch = left.min(ECHO_EVERY);
                let start = Instant::now();
                for _ in 0..batch {
                    now += 1;
                    out.clear();
                    core.on_openai_text(black_box(OPENAI_DELTA), now, &mut out);
                    black_box(out.to_twilio.get(1));
                }
                timed += start.elapsed();
                left -= batch;
                // Twilio echoes the batch's last mark: everything before it has played.
                seq += 1;
                let echo = mark_echo(&out, seq);
                out.clear();
                core.on_twilio_text(&echo, now, &mut out);
            }
            timed
        });
    });

    let (mut core, mut out) = started_call();
    let mut now = 1_000_u64;
    let mut seq = 1_u64;
    let mut echo = String::new();
    group.bench_function("openai_delta_and_mark_echo", |b| {
        b.iter(|| {
            now += 1;
            out.clear();
            core.on_openai_text(black_box(OPENAI_DELTA), now, &mut out);
            // Only the name was formatted here, into a reused buffer: the echo Twilio sends.
            let frame = out.to_twilio.get(1).unwrap_or_default();
            let name_at = frame.rfind(r#""name":""#).map_or(0, |i| i + 8);
            let name = frame[name_at..].trim_end_matches("\"}}");
            seq += 1;
            echo.clear();
            let _ = write!(
                echo,
                r#"{{"event":"mark","sequenceNumber":"{seq}","streamSid":"{STREAM_SID}","mark":{{"name":"{name}"}}}}"#
            );
            out.clear();
            core.on_twilio_text(black_box(&echo), now, &mut out);
            black_box(&out);
        });
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = codec, core
}
criterion_main!(benches);
