//! Unit tests of the playback tracker, with the flaws of the Twilio samples'
//! arithmetic (docs/protocols.md §4.2) as regression cases.

use super::*;

/// `ms` of µ-law silence as base64.
fn audio(ms: usize) -> String {
    let bytes = ms * 8;
    let full = bytes / 3;
    let mut out = "////".repeat(full);
    match bytes % 3 {
        1 => out.push_str("/w=="),
        2 => out.push_str("//8="),
        _ => {}
    }
    out
}

fn send(p: &mut Playback, item: &str, response: &str, ms: usize, now: u64) -> String {
    p.push_chunk(item, response, &audio(ms), now)
        .expect("not muted")
        .to_string()
}

#[test]
fn durations_from_base64() {
    let silence_20ms = format!("{}w==", "/".repeat(213));
    assert_eq!(silence_20ms.len(), 216);
    assert_eq!(base64_decoded_len(&silence_20ms), 160);
    assert_eq!(mulaw_duration_ms(&silence_20ms), 20);
    assert_eq!(mulaw_duration_ms(&audio(100)), 100);
    assert_eq!(audio(100).len(), 1068);
    assert_eq!(base64_decoded_len(""), 0);
    assert_eq!(base64_decoded_len("=="), 0);
    assert_eq!(base64_decoded_len("AAA"), 2);
}

#[test]
fn mark_names_round_trip() {
    let mark = MarkName {
        generation: 7,
        item_id: "item:with:colons",
        end_ms: 1200,
    };
    let name = mark.to_string();
    assert_eq!(name, "g7:item:with:colons:1200");
    assert_eq!(MarkName::parse(&name), Some(mark));
    for foreign in ["responsePart", "", "g", "gx:i:1", "g1:i:", "1:i:2"] {
        assert_eq!(MarkName::parse(foreign), None, "{foreign}");
    }
}

/// The worked example of docs/protocols.md §4.3, replayed from `twilio-media-stream-session.jsonl`:
/// four 100 ms chunks, marks 100 and 200 echoed, clear at t=1335 → 285 ms.
#[test]
fn worked_example_from_the_recorded_session() {
    let session = include_str!("../../tests/fixtures/twilio-media-stream-session.jsonl");
    let mut playback = Playback::new();
    let mut expected_marks = VecDeque::new();
    let mut interruption = None;
    let mut echoes = Vec::new();
    for line in session.lines().skip(1) {
        let entry: serde_json::Value = serde_json::from_str(line).expect("jsonl line");
        let t = entry["t_ms"].as_u64().expect("t_ms");
        let msg = &entry["msg"];
        match (entry["dir"].as_str(), msg["event"].as_str()) {
            (Some("out"), Some("media")) => {
                let payload = msg["media"]["payload"].as_str().expect("payload");
                let mark = playback
                    .push_chunk("item_CmXvJ8r2kQ", "resp_1", payload, t)
                    .expect("not muted");
                expected_marks.push_back(mark.to_string());
            }
            (Some("out"), Some("mark")) => {
                let name = msg["mark"]["name"].as_str().expect("mark name");
                assert_eq!(expected_marks.pop_front().as_deref(), Some(name));
            }
            (Some("out"), Some("clear")) => {
                interruption = playback.barge_in(t, true);
            }
            (Some("in"), Some("mark")) => {
                let name = msg["mark"]["name"].as_str().expect("mark name");
                echoes.push(playback.on_mark(name, t));
            }
            _ => {}
        }
    }
    assert_eq!(
        interruption,
        Some(Interruption {
            item_id: "item_CmXvJ8r2kQ".into(),
            audio_end_ms: 285,
        })
    );
    assert_eq!(
        echoes,
        [
            MarkEcho::Played { played_ms: 100 },
            MarkEcho::Played { played_ms: 200 },
            MarkEcho::Stale,
            MarkEcho::Stale,
        ]
    );
    assert_eq!(playback.generation(), 2);
}

/// Flaw 1: it measured time, not audio. Playback ended long ago for the
/// sent audio, so the estimate stops at what was sent, never beyond.
#[test]
fn never_truncates_beyond_the_audio_sent() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 100, 0);
    let last = send(&mut p, "item_a", "resp_1", 100, 10);
    assert_eq!(
        p.on_mark("g1:item_a:100", 100),
        MarkEcho::Played { played_ms: 100 }
    );
    // The echo of `last` is late (network); the caller talks 5 s later.
    let cut = p.barge_in(5_100, true).expect("a mark is pending");
    assert_eq!(cut.audio_end_ms, 200);
    assert_eq!(last, "g1:item_a:200");
}

/// Flaw 2: the start point was wrong when audio was queued. Item B's first
/// chunk is sent while A still plays; B starts after A's last echo.
#[test]
fn queued_item_starts_after_the_previous_item_finished() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 500, 0);
    send(&mut p, "item_b", "resp_2", 500, 10);
    assert_eq!(
        p.on_mark("g1:item_a:500", 500),
        MarkEcho::Played { played_ms: 500 }
    );
    let cut = p.barge_in(600, true).expect("B is pending");
    assert_eq!(cut.item_id, "item_b");
    assert_eq!(
        cut.audio_end_ms, 100,
        "not 590: B could not play before A ended"
    );
}

/// Flaw 3: a stale start survived a response that finished playing. The
/// next response is measured from its own chunks.
#[test]
fn finished_response_leaves_no_stale_start() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 300, 0);
    p.on_mark("g1:item_a:300", 300);
    p.response_done("resp_1");
    assert_eq!(p.pending_marks(), 0);
    send(&mut p, "item_b", "resp_2", 300, 10_000);
    let cut = p.barge_in(10_050, true).expect("B is pending");
    assert_eq!(
        cut,
        Interruption {
            item_id: "item_b".into(),
            audio_end_ms: 50
        }
    );
}

/// Flaw 4: anonymous marks. Echoes flushed by a clear arrive after a new
/// response started; they must not pop the new response's marks, so the
/// next barge-in is still detected.
#[test]
fn flushed_echoes_do_not_hide_the_next_barge_in() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 100, 0);
    send(&mut p, "item_a", "resp_1", 100, 1);
    assert!(p.barge_in(50, true).is_some());
    let new_mark = send(&mut p, "item_b", "resp_2", 100, 60);
    assert_eq!(new_mark, "g2:item_b:100");
    assert_eq!(p.on_mark("g1:item_a:100", 70), MarkEcho::Stale);
    assert_eq!(p.on_mark("g1:item_a:200", 70), MarkEcho::Stale);
    assert_eq!(p.pending_marks(), 1);
    let cut = p.barge_in(90, true).expect("B still pending");
    assert_eq!(cut.item_id, "item_b");
    assert_eq!(cut.audio_end_ms, 30);
}

/// Flaw 5: late deltas replayed cancelled speech. After the barge-in the
/// interrupted item and response are muted.
#[test]
fn late_deltas_of_the_interrupted_response_are_dropped() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 100, 0);
    p.barge_in(20, true).expect("pending");
    assert!(p.push_chunk("item_a", "resp_1", &audio(20), 30).is_none());
    assert!(p.push_chunk("item_a2", "resp_1", &audio(20), 30).is_none());
    assert!(p.is_muted("item_x", "resp_1"));
    assert!(p.push_chunk("item_b", "resp_2", &audio(20), 40).is_some());
}

/// A response being cancelled while nothing is audible yet is muted too.
#[test]
fn cancelled_response_is_muted_even_when_nothing_was_audible() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 100, 0);
    p.on_mark("g1:item_a:100", 100);
    assert_eq!(p.barge_in(150, true), None);
    assert!(p.push_chunk("item_a", "resp_1", &audio(20), 160).is_none());
    let mut q = Playback::new();
    send(&mut q, "item_a", "resp_1", 100, 0);
    q.on_mark("g1:item_a:100", 100);
    assert_eq!(q.barge_in(150, false), None);
    assert!(q.push_chunk("item_a", "resp_1", &audio(20), 160).is_some());
}

/// Flaw 6: the inbound media clock stalls and lags. The tracker uses only
/// the sender's clock and echoes; Twilio running dry between two chunks of
/// one item does not count as playing.
#[test]
fn playback_gap_within_an_item_is_not_counted() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 1_000, 0);
    p.on_mark("g1:item_a:1000", 1_000);
    // Generation stalls; the next chunk is sent 4 s later.
    send(&mut p, "item_a", "resp_1", 1_000, 5_000);
    let cut = p.barge_in(5_100, true).expect("pending");
    assert_eq!(cut.audio_end_ms, 1_100);
}

/// Flaw 7: nothing pending means nothing audible: no clear, no truncate,
/// and the generation stays.
#[test]
fn nothing_pending_means_no_clear() {
    let mut p = Playback::new();
    assert_eq!(p.barge_in(10, true), None);
    send(&mut p, "item_a", "resp_1", 100, 0);
    p.on_mark("g1:item_a:100", 100);
    assert_eq!(p.barge_in(500, true), None);
    assert_eq!(p.generation(), 1);
}

#[test]
fn foreign_and_out_of_order_marks() {
    let mut p = Playback::new();
    send(&mut p, "item_a", "resp_1", 100, 0);
    send(&mut p, "item_a", "resp_1", 100, 1);
    assert_eq!(p.on_mark("responsePart", 5), MarkEcho::Foreign);
    assert_eq!(p.on_mark("g1:item_zz:100", 5), MarkEcho::Foreign);
    assert_eq!(p.on_mark("g1:item_a:150", 5), MarkEcho::Foreign);
    // The second echo implies the first played.
    assert_eq!(
        p.on_mark("g1:item_a:200", 200),
        MarkEcho::Played { played_ms: 200 }
    );
    assert_eq!(p.pending_marks(), 0);
    assert_eq!(p.on_mark("g1:item_a:100", 201), MarkEcho::Foreign);
}
