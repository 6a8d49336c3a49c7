//! Server VAD on energy: 20 ms frames, RMS against a threshold derived from
//! `turn_detection.threshold`, speech start after two voiced frames, speech
//! stop after `silence_duration_ms` of unvoiced frames.
//!
//! Time is audio time: the position in the session's appended audio, in ms,
//! advanced by the frames themselves, never by a clock. So the events land
//! on the same milliseconds however fast the audio arrives.

use switchboard_realtime::TurnDetection;

/// Length of one analysis frame, ms (Twilio's frame size).
pub const FRAME_MS: u64 = 20;

/// Voiced audio needed before speech counts as started, ms.
pub const MIN_SPEECH_MS: u64 = 2 * FRAME_MS;

/// Server defaults of `server_vad` (docs/protocols.md §3.2).
pub const DEFAULT_THRESHOLD: f64 = 0.5;
/// Default `prefix_padding_ms`.
pub const DEFAULT_PREFIX_PADDING_MS: u32 = 300;
/// Default `silence_duration_ms`.
pub const DEFAULT_SILENCE_DURATION_MS: u32 = 500;

/// The RMS level (of 16-bit samples) that counts as voice for a
/// `turn_detection.threshold` in 0–1: −60 dBFS at 0, −35 dBFS at the default
/// 0.5 (≈ 580), −10 dBFS at 1. Line silence (µ-law `0xFF`) is 0; speech on a
/// phone line sits around −20 dBFS.
pub fn rms_threshold(threshold: f64) -> f64 {
    let t = if threshold.is_finite() {
        threshold.clamp(0.0, 1.0)
    } else {
        DEFAULT_THRESHOLD
    };
    32_768.0 * 10f64.powf((-60.0 + 50.0 * t) / 20.0)
}

/// What the VAD saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began; `audio_start_ms` includes the prefix padding.
    SpeechStarted {
        /// Session audio position, ms.
        audio_start_ms: u64,
    },
    /// Speech ended; `audio_end_ms` includes the trailing silence.
    SpeechStopped {
        /// Session audio position, ms.
        audio_end_ms: u64,
    },
}

/// Settings of one VAD, from the session's turn detection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    /// RMS at or above which a frame is voiced.
    pub threshold_rms: f64,
    /// Audio kept before the first voiced frame, ms.
    pub prefix_padding_ms: u64,
    /// Unvoiced audio that ends a turn, ms.
    pub silence_duration_ms: u64,
}

impl VadSettings {
    /// Settings for `turn_detection`, with the server's defaults for what it
    /// leaves out. `semantic_vad` is approximated by the same energy VAD.
    pub fn from_turn_detection(turn_detection: &TurnDetection) -> Self {
        Self {
            threshold_rms: rms_threshold(turn_detection.threshold.unwrap_or(DEFAULT_THRESHOLD)),
            prefix_padding_ms: u64::from(
                turn_detection
                    .prefix_padding_ms
                    .unwrap_or(DEFAULT_PREFIX_PADDING_MS),
            ),
            silence_duration_ms: u64::from(
                turn_detection
                    .silence_duration_ms
                    .unwrap_or(DEFAULT_SILENCE_DURATION_MS),
            )
            .max(FRAME_MS),
        }
    }
}

/// An energy VAD over a stream of samples.
#[derive(Debug, Clone)]
pub struct Vad {
    settings: VadSettings,
    samples_per_frame: u32,
    frame_sum_sq: f64,
    frame_samples: u32,
    /// Session audio position at the start of the current frame, ms.
    frame_start_ms: u64,
    /// Audio before this position was committed: padding never reaches back.
    floor_ms: u64,
    voiced_run_ms: u64,
    silence_run_ms: u64,
    candidate_start_ms: u64,
    speaking: bool,
}

impl Vad {
    /// A VAD at session audio position `position_ms`, for audio sampled at
    /// `sample_rate`.
    pub fn new(settings: VadSettings, sample_rate: u32, position_ms: u64) -> Self {
        let samples_per_frame = (u64::from(sample_rate) * FRAME_MS / 1000).max(1) as u32;
        Self {
            settings,
            samples_per_frame,
            frame_sum_sq: 0.0,
            frame_samples: 0,
            frame_start_ms: position_ms,
            floor_ms: position_ms,
            voiced_run_ms: 0,
            silence_run_ms: 0,
            candidate_start_ms: position_ms,
            speaking: false,
        }
    }

    /// Whether speech is in progress.
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Feeds one sample; pushes an event when a frame completes a decision.
    pub fn push(&mut self, sample: i16, events: &mut Vec<VadEvent>) {
        self.frame_sum_sq += f64::from(sample).powi(2);
        self.frame_samples += 1;
        if self.frame_samples < self.samples_per_frame {
            return;
        }
        let rms = (self.frame_sum_sq / f64::from(self.frame_samples)).sqrt();
        self.frame_sum_sq = 0.0;
        self.frame_samples = 0;
        let start = self.frame_start_ms;
        self.frame_start_ms += FRAME_MS;
        self.on_frame(start, rms >= self.settings.threshold_rms, events);
    }

    /// Audio before `position_ms` was committed: later speech starts never
    /// pad back past it.
    pub fn set_floor(&mut self, position_ms: u64) {
        self.floor_ms = position_ms;
    }

    /// Forgets any speech in progress and starts over at `position_ms` (after
    /// a commit or `input_audio_buffer.clear`).
    pub fn reset(&mut self, position_ms: u64) {
        let samples_per_frame = self.samples_per_frame;
        *self = Self {
            samples_per_frame,
            ..Self::new(self.settings, 0, position_ms)
        };
    }

    fn on_frame(&mut self, start_ms: u64, voiced: bool, events: &mut Vec<VadEvent>) {
        let end_ms = start_ms + FRAME_MS;
        if self.speaking {
            if voiced {
                self.silence_run_ms = 0;
                return;
            }
            self.silence_run_ms += FRAME_MS;
            if self.silence_run_ms >= self.settings.silence_duration_ms {
                self.speaking = false;
                self.voiced_run_ms = 0;
                self.silence_run_ms = 0;
                events.push(VadEvent::SpeechStopped {
                    audio_end_ms: end_ms,
                });
            }
            return;
        }
        if !voiced {
            self.voiced_run_ms = 0;
            return;
        }
        if self.voiced_run_ms == 0 {
            self.candidate_start_ms = start_ms;
        }
        self.voiced_run_ms += FRAME_MS;
        if self.voiced_run_ms >= MIN_SPEECH_MS {
            self.speaking = true;
            self.silence_run_ms = 0;
            let padded = self
                .candidate_start_ms
                .saturating_sub(self.settings.prefix_padding_ms);
            events.push(VadEvent::SpeechStarted {
                audio_start_ms: padded.max(self.floor_ms),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::audio::{sine, ulaw_to_linear};

    fn settings() -> VadSettings {
        VadSettings::from_turn_detection(&TurnDetection::server_vad())
    }

    fn feed(vad: &mut Vad, samples: &[i16]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        for &s in samples {
            vad.push(s, &mut events);
        }
        events
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![ulaw_to_linear(0xFF); (ms * 8) as usize]
    }

    #[test]
    fn threshold_maps_to_rms_levels() {
        assert!((rms_threshold(0.0) - 32.768).abs() < 0.01);
        assert!((rms_threshold(0.5) - 582.7).abs() < 1.0);
        assert!((rms_threshold(1.0) - 10_362.0).abs() < 1.0);
        assert_eq!(rms_threshold(f64::NAN), rms_threshold(0.5));
        assert_eq!(rms_threshold(7.0), rms_threshold(1.0));
    }

    #[test]
    fn speech_then_silence_gives_padded_start_and_stop() {
        let mut vad = Vad::new(settings(), 8_000, 0);
        assert!(feed(&mut vad, &silence(1_000)).is_empty());
        let started = feed(&mut vad, &sine(300, 800, 8_000, 6_000.0));
        assert_eq!(
            started,
            vec![VadEvent::SpeechStarted {
                audio_start_ms: 700
            }]
        );
        assert!(vad.speaking());
        let stopped = feed(&mut vad, &silence(600));
        assert_eq!(
            stopped,
            vec![VadEvent::SpeechStopped {
                audio_end_ms: 2_300
            }]
        );
    }

    #[test]
    fn padding_never_reaches_before_the_floor() {
        let mut vad = Vad::new(settings(), 8_000, 0);
        vad.reset(5_000);
        let events = feed(&mut vad, &sine(300, 100, 8_000, 6_000.0));
        assert_eq!(
            events,
            vec![VadEvent::SpeechStarted {
                audio_start_ms: 5_000
            }]
        );
    }

    #[test]
    fn quiet_noise_and_single_clicks_are_not_speech() {
        let mut vad = Vad::new(settings(), 8_000, 0);
        assert!(feed(&mut vad, &sine(300, 1_000, 8_000, 300.0)).is_empty());
        let mut click = sine(300, 20, 8_000, 8_000.0);
        click.extend(silence(200));
        assert!(feed(&mut vad, &click).is_empty());
    }

    #[test]
    fn a_short_pause_does_not_end_the_turn() {
        let mut vad = Vad::new(settings(), 8_000, 0);
        let mut audio = sine(300, 400, 8_000, 6_000.0);
        audio.extend(silence(300));
        audio.extend(sine(300, 400, 8_000, 6_000.0));
        let events = feed(&mut vad, &audio);
        assert_eq!(events.len(), 1, "{events:?}");
    }
}
