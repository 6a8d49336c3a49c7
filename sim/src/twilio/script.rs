//! What the simulated caller does, on the call's own audio clock: what it says and when,
//! which keys it presses, and when it hangs up.
//!
//! The clock starts when the call's first Media Stream starts and is measured in audio sent
//! (one 20 ms frame per tick of real time), so a script plays the same way on a fast or a
//! loaded machine. Between utterances, and after the last one, the caller sends silence, as a
//! phone line does: Twilio streams the caller's audio continuously. `Timeline` turns a
//! script into the bytes of each frame; it is pure and unit-tested.

use std::sync::Arc;
use std::time::Duration;

use switchboard_twilio::media_stream::{ULAW_BYTES_PER_MS, ULAW_SILENCE_BYTE};

use super::audio::AudioSource;

/// A caller's behaviour, on the call's audio clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TalkScript {
    /// What the caller says. Each utterance starts at its `at`, or when the one before it
    /// ends if that is later: utterances never overlap.
    pub utterances: Vec<Utterance>,
    /// Keys pressed, each sent as a `dtmf` message when the audio clock reaches its `at`.
    pub dtmf: Vec<DtmfPress>,
    /// Hang up (send `stop` and close) when the audio clock reaches this; `None` waits for
    /// the application to end the stream or for the call to be ended through its handle.
    pub hang_up_after: Option<Duration>,
}

/// One thing the caller says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// When to start saying it, from the start of the first stream.
    pub at: Duration,
    /// What to say.
    pub audio: AudioSource,
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPress {
    /// When, from the start of the first stream.
    pub at: Duration,
    /// `0`–`9`, `*` or `#`.
    pub digit: char,
}

/// A script rendered to bytes: what to put in each 20 ms frame, and the key presses in
/// time order.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// `(first byte on the audio clock, µ-law bytes)`, in order, not overlapping.
    segments: Vec<(u64, Arc<[u8]>)>,
    dtmf: Vec<DtmfPress>,
    hang_up_after: Option<Duration>,
}

// === impl TalkScript ===

impl TalkScript {
    /// A caller who says nothing and waits for the other side to end the call.
    pub fn silent() -> Self {
        Self::default()
    }

    /// A caller who says `audio` at once, then stays silent.
    pub fn saying(audio: AudioSource) -> Self {
        Self::silent().say_at(Duration::ZERO, audio)
    }

    /// Adds an utterance at `at`.
    pub fn say_at(mut self, at: Duration, audio: AudioSource) -> Self {
        self.utterances.push(Utterance { at, audio });
        self
    }

    /// Adds a key press at `at`.
    pub fn press_at(mut self, at: Duration, digit: char) -> Self {
        self.dtmf.push(DtmfPress { at, digit });
        self
    }

    /// Hangs up when the audio clock reaches `after`.
    pub fn hang_up_after(mut self, after: Duration) -> Self {
        self.hang_up_after = Some(after);
        self
    }

    /// The first key press that is not `0`–`9`, `*` or `#`, if any.
    pub fn invalid_digit(&self) -> Option<char> {
        self.dtmf
            .iter()
            .map(|press| press.digit)
            .find(|digit| !(digit.is_ascii_digit() || *digit == '*' || *digit == '#'))
    }

    pub(crate) fn timeline(&self) -> Timeline {
        let mut segments = Vec::with_capacity(self.utterances.len());
        let mut free_from = 0u64;
        for utterance in &self.utterances {
            let bytes = utterance.audio.render();
            let wanted = duration_bytes(utterance.at);
            let start = wanted.max(free_from);
            free_from = start + bytes.len() as u64;
            segments.push((start, bytes));
        }
        let mut dtmf = self.dtmf.clone();
        dtmf.sort_by_key(|press| press.at);
        Timeline {
            segments,
            dtmf,
            hang_up_after: self.hang_up_after,
        }
    }
}

// === impl Timeline ===

impl Timeline {
    /// Fills `frame` with the caller's audio starting at byte `start` of the audio clock:
    /// the utterance bytes that fall in it, silence elsewhere.
    pub(crate) fn fill(&self, start: u64, frame: &mut [u8]) {
        frame.fill(ULAW_SILENCE_BYTE);
        let end = start + frame.len() as u64;
        for (seg_start, bytes) in &self.segments {
            let seg_end = seg_start + bytes.len() as u64;
            if seg_end <= start || *seg_start >= end {
                continue;
            }
            let from = start.max(*seg_start);
            let to = end.min(seg_end);
            // Offsets are bounded by the frame and segment lengths, both in memory.
            let (frame_from, seg_from) = ((from - start) as usize, (from - seg_start) as usize);
            let len = (to - from) as usize;
            frame[frame_from..frame_from + len].copy_from_slice(&bytes[seg_from..seg_from + len]);
        }
    }

    /// The key presses due at or before `clock`, from index `*next` on; advances `*next`.
    pub(crate) fn dtmf_due(&self, clock: Duration, next: &mut usize) -> &[DtmfPress] {
        let first = (*next).min(self.dtmf.len());
        let due = self.dtmf[first..]
            .iter()
            .take_while(|press| press.at <= clock)
            .count();
        *next = first + due;
        &self.dtmf[first..first + due]
    }

    /// Whether the script hangs up once the audio clock reads `clock`.
    pub(crate) fn hangs_up_by(&self, clock: Duration) -> bool {
        self.hang_up_after.is_some_and(|after| clock >= after)
    }

    /// When the script hangs up, if it does.
    pub(crate) fn hang_up_after(&self) -> Option<Duration> {
        self.hang_up_after
    }
}

/// µ-law bytes in `duration` (8 per ms), rounded down.
pub(crate) fn duration_bytes(duration: Duration) -> u64 {
    let bytes = duration.as_micros() * u128::from(ULAW_BYTES_PER_MS) / 1000;
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn frames_carry_utterances_at_their_time_and_silence_elsewhere() {
        let script = TalkScript::silent().say_at(ms(30), AudioSource::Ulaw(Arc::from([1u8; 80])));
        let timeline = script.timeline();
        let mut frame = [0u8; 160];
        timeline.fill(0, &mut frame);
        assert!(frame.iter().all(|&b| b == 0xFF), "first 20 ms are silent");
        timeline.fill(160, &mut frame);
        // 30 ms = byte 240 = offset 80 in the second frame; 80 bytes = 10 ms of speech.
        assert!(frame[..80].iter().all(|&b| b == 0xFF));
        assert!(frame[80..].iter().all(|&b| b == 1));
        timeline.fill(320, &mut frame);
        assert!(
            frame.iter().all(|&b| b == 0xFF),
            "silence after the utterance"
        );
    }

    #[test]
    fn utterances_never_overlap() {
        let two = TalkScript::silent()
            .say_at(ms(0), AudioSource::Ulaw(Arc::from([1u8; 200])))
            .say_at(ms(10), AudioSource::Ulaw(Arc::from([2u8; 100])));
        let timeline = two.timeline();
        let mut frame = [0u8; 320];
        timeline.fill(0, &mut frame);
        assert!(frame[..200].iter().all(|&b| b == 1));
        assert!(
            frame[200..300].iter().all(|&b| b == 2),
            "second waits for the first"
        );
        assert!(frame[300..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn key_presses_come_due_in_time_order_once() {
        let script = TalkScript::silent()
            .press_at(ms(100), '2')
            .press_at(ms(40), '1');
        let timeline = script.timeline();
        let mut next = 0;
        assert!(timeline.dtmf_due(ms(20), &mut next).is_empty());
        let due: Vec<char> = timeline
            .dtmf_due(ms(100), &mut next)
            .iter()
            .map(|p| p.digit)
            .collect();
        assert_eq!(due, ['1', '2']);
        assert!(timeline.dtmf_due(ms(500), &mut next).is_empty());
    }

    #[test]
    fn hang_up_and_digit_checks() {
        let script = TalkScript::silent()
            .hang_up_after(ms(1000))
            .press_at(ms(0), 'x');
        assert!(!script.timeline().hangs_up_by(ms(980)));
        assert!(script.timeline().hangs_up_by(ms(1000)));
        assert_eq!(script.invalid_digit(), Some('x'));
        assert_eq!(
            TalkScript::silent().press_at(ms(0), '#').invalid_digit(),
            None
        );
    }
}
