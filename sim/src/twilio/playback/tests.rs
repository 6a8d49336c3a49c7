use super::*;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// `ms` milliseconds of µ-law, every byte `value`.
fn audio(ms: u64, value: u8) -> Vec<u8> {
    vec![value; (ms * 8) as usize]
}

fn names(echoes: &[MarkEcho]) -> Vec<&str> {
    echoes.iter().map(|echo| echo.name.as_str()).collect()
}

#[test]
fn a_mark_with_nothing_queued_is_echoed_at_once() {
    let mut playback = Playback::new(false);
    playback.push_mark(ms(5), "m0");
    let ready = playback.take_ready();
    assert_eq!(names(&ready), ["m0"]);
    assert_eq!(ready[0].echoed_at, ms(5));
    assert_eq!(ready[0].audio_ahead, Duration::ZERO);
    assert!(!ready[0].by_clear);
    assert!(playback.take_ready().is_empty(), "handed out once");
}

#[test]
fn a_mark_waits_until_the_audio_before_it_has_played() {
    let mut playback = Playback::new(false);
    playback.push_audio(ms(100), &audio(200, 1)).expect("room");
    playback.push_mark(ms(100), "m1");
    assert_eq!(playback.next_due(), Some(ms(300)));

    playback.advance(ms(299));
    assert!(
        playback.take_ready().is_empty(),
        "1 ms of audio is still queued"
    );
    assert_eq!(playback.pending_marks(), ["m1"]);

    playback.advance(ms(300));
    let ready = playback.take_ready();
    assert_eq!(names(&ready), ["m1"]);
    let echo = &ready[0];
    assert_eq!(echo.echoed_at, ms(300));
    assert!(echo.echoed_at >= echo.enqueued_at + echo.audio_ahead);
    assert_eq!(echo.audio_ahead, ms(200));
    assert_eq!(echo.heard_bytes, 1600, "all 200 ms were heard first");
    assert_eq!(playback.next_due(), None);
}

#[test]
fn a_late_tick_echoes_at_the_tick_never_before_the_audio_ended() {
    let mut playback = Playback::new(false);
    playback.push_audio(ms(0), &audio(40, 1)).expect("room");
    playback.push_mark(ms(10), "late");
    playback.advance(ms(75));
    let ready = playback.take_ready();
    assert_eq!(ready[0].echoed_at, ms(75));
    assert_eq!(
        ready[0].audio_ahead,
        ms(30),
        "10 ms had played when it arrived"
    );
}

#[test]
fn marks_between_chunks_are_echoed_one_by_one_as_each_chunk_ends() {
    let mut playback = Playback::new(false);
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        playback
            .push_audio(ms(i as u64), &audio(100, 1))
            .expect("room");
        playback.push_mark(ms(i as u64), name);
    }
    playback.advance(ms(150));
    assert_eq!(names(&playback.take_ready()), ["a"]);
    assert_eq!(playback.next_due(), Some(ms(200)));
    playback.advance(ms(400));
    let ready = playback.take_ready();
    assert_eq!(names(&ready), ["b", "c"]);
    assert_eq!(
        ready
            .iter()
            .map(|echo| echo.heard_bytes)
            .collect::<Vec<_>>(),
        [1600, 2400]
    );
}

#[test]
fn clear_drops_queued_audio_and_echoes_every_pending_mark_at_once() {
    let mut playback = Playback::new(true);
    playback.push_audio(ms(0), &audio(100, 1)).expect("room");
    playback.push_mark(ms(0), "m100");
    playback.push_audio(ms(0), &audio(100, 2)).expect("room");
    playback.push_mark(ms(0), "m200");
    playback.push_audio(ms(0), &audio(100, 3)).expect("room");
    playback.push_mark(ms(0), "m300");

    playback.clear(ms(150));
    let ready = playback.take_ready();
    assert_eq!(names(&ready), ["m100", "m200", "m300"]);
    assert!(!ready[0].by_clear, "m100's audio had played by 150 ms");
    assert_eq!(ready[0].echoed_at, ms(150));
    assert!(ready[1].by_clear && ready[2].by_clear);
    assert!(ready[1..].iter().all(|echo| echo.echoed_at == ms(150)));

    assert_eq!(playback.queued_bytes(), 0);
    assert_eq!(playback.next_due(), None);
    assert_eq!(
        playback.clears(),
        [ClearRecord {
            at: ms(150),
            dropped_bytes: 1200,
            flushed_marks: 2
        }]
    );
    let heard = playback.heard().concat();
    assert_eq!(heard.len(), 1200, "150 ms heard, the rest never");
    assert!(heard[..800].iter().all(|&b| b == 1) && heard[800..].iter().all(|&b| b == 2));
}

#[test]
fn after_a_clear_new_audio_plays_from_its_arrival() {
    let mut playback = Playback::new(false);
    playback.push_audio(ms(0), &audio(500, 1)).expect("room");
    playback.clear(ms(100));
    playback.push_audio(ms(120), &audio(40, 2)).expect("room");
    playback.push_mark(ms(120), "next");
    assert_eq!(playback.next_due(), Some(ms(160)));
    playback.advance(ms(160));
    assert_eq!(names(&playback.take_ready()), ["next"]);
    let spans = &playback.heard().spans;
    assert_eq!(spans.len(), 2, "a gap between the clear and the new audio");
    assert_eq!((spans[0].start, spans[0].len), (ms(0), 800));
    assert_eq!((spans[1].start, spans[1].len), (ms(120), 320));
}

#[test]
fn audio_arriving_while_playing_continues_without_a_gap() {
    let mut playback = Playback::new(true);
    playback.push_audio(ms(0), &audio(20, 1)).expect("room");
    playback.push_audio(ms(10), &audio(20, 2)).expect("room");
    playback.advance(ms(100));
    let heard = playback.heard();
    assert_eq!(heard.spans.len(), 1);
    assert_eq!(heard.total_bytes, 320);
    assert_eq!(heard.duration(), ms(40));
    let bytes = heard.concat();
    assert!(bytes[..160].iter().all(|&b| b == 1) && bytes[160..].iter().all(|&b| b == 2));
}

#[test]
fn an_idle_line_does_not_bank_time() {
    let mut playback = Playback::new(false);
    playback.advance(ms(1000));
    playback.push_audio(ms(1000), &audio(20, 1)).expect("room");
    playback.push_mark(ms(1000), "m");
    playback.advance(ms(1019));
    assert!(
        playback.take_ready().is_empty(),
        "silence before does not count as playing"
    );
    playback.advance(ms(1020));
    assert_eq!(names(&playback.take_ready()), ["m"]);
}

#[test]
fn partial_bytes_of_time_carry_over() {
    let mut playback = Playback::new(false);
    playback.push_audio(Duration::ZERO, &[7; 3]).expect("room");
    playback.push_mark(Duration::ZERO, "m");
    // 3 bytes = 375 µs; advancing 100 µs at a time plays a byte every 125 µs.
    for step in 1..=3u64 {
        playback.advance(Duration::from_micros(step * 100));
    }
    assert!(playback.take_ready().is_empty());
    playback.advance(Duration::from_micros(375));
    assert_eq!(names(&playback.take_ready()), ["m"]);
}

#[test]
fn more_than_ten_minutes_queued_is_refused() {
    let mut playback = Playback::new(false);
    let minute = audio(60_000, 1);
    for _ in 0..10 {
        playback.push_audio(Duration::ZERO, &minute).expect("room");
    }
    let err = playback
        .push_audio(Duration::ZERO, &audio(20, 1))
        .expect_err("full");
    assert_eq!(err.refused_bytes, 160);
    assert_eq!(playback.queued_bytes(), MAX_QUEUED_BYTES);
}

/// The worked example of docs/protocols.md §4.3 (`twilio-media-stream-session.jsonl`), as
/// Twilio sees it with 25 ms of network delay: four 100 ms chunks, each with a mark, arrive
/// from ~1025 ms; the clear arrives at 1360 ms, when the caller has heard ~335 ms. (The
/// recorded session echoes the third mark with the clear; by its own arithmetic that audio had
/// finished at ~1325 ms, which is when this model echoes it.)
#[test]
fn the_recorded_barge_in_session_plays_out_as_twilio_did() {
    let mut playback = Playback::new(false);
    for (arrival, name) in [
        (1025, "g1:item:100"),
        (1040, "g1:item:200"),
        (1055, "g1:item:300"),
        (1070, "g1:item:400"),
    ] {
        playback
            .push_audio(ms(arrival), &audio(100, 1))
            .expect("room");
        playback.push_mark(ms(arrival), name);
    }
    playback.advance(ms(1124));
    assert!(playback.take_ready().is_empty());
    playback.advance(ms(1125));
    assert_eq!(names(&playback.take_ready()), ["g1:item:100"]);
    playback.advance(ms(1225));
    assert_eq!(names(&playback.take_ready()), ["g1:item:200"]);
    playback.advance(ms(1325));
    assert_eq!(names(&playback.take_ready()), ["g1:item:300"]);
    playback.clear(ms(1360));
    let flushed = playback.take_ready();
    assert_eq!(names(&flushed), ["g1:item:400"]);
    assert!(flushed[0].by_clear);
    assert_eq!(
        playback.heard().duration(),
        ms(335),
        "the caller heard 335 ms"
    );
    assert_eq!(playback.clears()[0].dropped_bytes, 65 * 8);
}
