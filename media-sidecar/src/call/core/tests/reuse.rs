//! The audio path reuses its buffers: once a call has warmed up, relaying a frame writes
//! into the same `String`s as the frame before (no per-frame allocation on the
//! audio path).

use switchboard_realtime::Dialect;

use super::*;

#[test]
fn relaying_audio_reuses_the_frame_buffers() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let media = recorded("media");
    let delta = example("ga_server", "response.output_audio.delta");
    let mut appends = Vec::new();
    let mut relayed = Vec::new();
    for (n, frame) in media.iter().take(30).enumerate() {
        let t = 1_000 + 20 * n as u64;
        let out = call.twilio(frame.frame, t);
        appends.push(out.to_openai.get(0).expect("append").as_ptr());
        let out = call.openai(&delta, t + 1);
        let media_ptr = out.to_twilio.get(0).expect("media").as_ptr();
        let mark_ptr = out.to_twilio.get(1).expect("mark").as_ptr();
        relayed.push((media_ptr, mark_ptr));
    }
    assert!(
        appends.windows(2).all(|w| w[0] == w[1]),
        "one append buffer"
    );
    // A mark name grows by a digit now and then (`…:990` → `…:1090`); past that the
    // buffers have room and stay put.
    let warm = &relayed[10..];
    assert!(
        warm.windows(2).all(|w| w[0] == w[1]),
        "one media and one mark buffer"
    );
}

#[test]
fn drained_frames_move_out_without_copying() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.out.clear();
    let delta = example("ga_server", "response.output_audio.delta");
    call.core.on_openai_text(&delta, 1_000, &mut call.out);
    let borrowed: Vec<String> = call.out.to_twilio.iter().map(str::to_owned).collect();
    let moved: Vec<String> = call.out.to_twilio.drain().collect();
    assert_eq!(moved, borrowed);
    assert!(call.out.to_twilio.is_empty());
}
