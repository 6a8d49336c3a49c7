//! What the simulated caller says: raw 8 kHz mono G.711 µ-law, from a file, from the
//! recordings shipped in `sim/assets/` (synthesized speech, see its README), or generated
//! here (silence, a sine tone).
//!
//! Audio is µ-law bytes end to end, as on a phone line: nothing here decodes what the
//! application sends back ([`playback`](super::playback) records it as bytes). The one
//! conversion is the tone generator's linear-to-µ-law step, the standard G.711 companding
//! (the codec crate passes audio through as base64 and has no sample arithmetic).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_twilio::media_stream::{ULAW_BYTES_PER_MS, ULAW_SILENCE_BYTE};

/// "Hello, I'd like to check on my order." (English, espeak-ng, ~2.4 s).
const HELLO_EN: &[u8] = include_bytes!("../../assets/hello-en.ulaw");

/// 「もしもし、ちゅうもんについてです。」 (Japanese, espeak-ng, ~2.6 s).
const HELLO_JA: &[u8] = include_bytes!("../../assets/hello-ja.ulaw");

/// Samples per second of G.711 on a phone line.
const SAMPLE_RATE: u32 = 8000;

/// A piece of caller audio. Rendering it gives raw µ-law bytes (8 bytes per ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    /// `0xFF` bytes for this long.
    Silence(Duration),
    /// A sine tone at `hz`, at a moderate level, for this long.
    Tone {
        /// Frequency in hertz.
        hz: u32,
        /// Length of the tone.
        duration: Duration,
    },
    /// Raw µ-law bytes (no header: a WAV header would be played as noise, as on Twilio).
    Ulaw(Arc<[u8]>),
}

/// Why audio could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be read.
    #[error("cannot read audio file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A spec string (`silence:MS`, `tone:HZ:MS`) has a malformed number.
    #[error("invalid audio spec {0:?}: expected hello-en, hello-ja, silence:MS, tone:HZ:MS or a file path")]
    Spec(String),
}

// === impl AudioSource ===

impl AudioSource {
    /// The shipped English recording (~2.4 s of synthesized speech).
    pub fn hello_en() -> Self {
        Self::Ulaw(Arc::from(HELLO_EN))
    }

    /// The shipped Japanese recording (~2.6 s of synthesized speech).
    pub fn hello_ja() -> Self {
        Self::Ulaw(Arc::from(HELLO_JA))
    }

    /// Silence of this many milliseconds.
    pub fn silence_ms(ms: u64) -> Self {
        Self::Silence(Duration::from_millis(ms))
    }

    /// A tone of `hz` for this many milliseconds.
    pub fn tone_ms(hz: u32, ms: u64) -> Self {
        Self::Tone {
            hz,
            duration: Duration::from_millis(ms),
        }
    }

    /// Reads a file of raw 8 kHz mono µ-law (e.g. made with
    /// `sox in.wav -r 8000 -c 1 -e u-law -t raw out.ulaw`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        std::fs::read(path)
            .map(|bytes| Self::Ulaw(Arc::from(bytes)))
            .map_err(|source| AudioError::Read {
                path: path.to_owned(),
                source,
            })
    }

    /// Reads a command-line spec: `hello-en`, `hello-ja`, `silence:MS`, `tone:HZ:MS`, or
    /// anything else as a file path.
    pub fn from_spec(spec: &str) -> Result<Self, AudioError> {
        let number = |text: &str| -> Result<u64, AudioError> {
            text.parse().map_err(|_| AudioError::Spec(spec.to_owned()))
        };
        match spec.split(':').collect::<Vec<_>>().as_slice() {
            ["hello-en"] => Ok(Self::hello_en()),
            ["hello-ja"] => Ok(Self::hello_ja()),
            ["silence", ms] => Ok(Self::silence_ms(number(ms)?)),
            ["tone", hz, ms] => {
                let hz = u32::try_from(number(hz)?).map_err(|_| AudioError::Spec(spec.into()))?;
                Ok(Self::tone_ms(hz, number(ms)?))
            }
            _ => Self::from_file(spec),
        }
    }

    /// The raw µ-law bytes of this audio.
    pub fn render(&self) -> Arc<[u8]> {
        match self {
            Self::Silence(duration) => silence(*duration),
            Self::Tone { hz, duration } => tone(*hz, *duration),
            Self::Ulaw(bytes) => Arc::clone(bytes),
        }
    }

    /// How long this audio plays (8 bytes per ms).
    pub fn duration(&self) -> Duration {
        match self {
            Self::Silence(duration) | Self::Tone { duration, .. } => *duration,
            Self::Ulaw(bytes) => bytes_duration(bytes.len() as u64),
        }
    }
}

/// Playing time of `bytes` of µ-law (125 µs per byte).
pub fn bytes_duration(bytes: u64) -> Duration {
    Duration::from_micros(bytes.saturating_mul(1000) / ULAW_BYTES_PER_MS)
}

/// µ-law bytes of silence for `duration` (rounded down to whole samples).
pub fn silence(duration: Duration) -> Arc<[u8]> {
    vec![ULAW_SILENCE_BYTE; samples(duration)].into()
}

/// µ-law bytes of a sine tone at `hz` for `duration`, at about a quarter of full scale.
pub fn tone(hz: u32, duration: Duration) -> Arc<[u8]> {
    let step = std::f64::consts::TAU * f64::from(hz) / f64::from(SAMPLE_RATE);
    (0..samples(duration))
        .map(|n| {
            // |sin| ≤ 1, so the product stays inside i16.
            let linear = (8000.0 * (step * n as f64).sin()) as i16;
            linear_to_ulaw(linear)
        })
        .collect::<Vec<u8>>()
        .into()
}

/// G.711 µ-law companding of one 16-bit linear sample (bias 0x84, clip 32635).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // magnitude is in [0x84, 0x7FFF], so its highest set bit is 7..=14.
    let highest_bit = 31 - magnitude.leading_zeros();
    let exponent = highest_bit.saturating_sub(7);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    // exponent ≤ 7 and mantissa ≤ 15, so both fit in a byte.
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

fn samples(duration: Duration) -> usize {
    let count = duration.as_micros() * u128::from(SAMPLE_RATE) / 1_000_000;
    usize::try_from(count).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_companding_matches_g711_reference_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
    }

    #[test]
    fn generated_audio_has_eight_bytes_per_millisecond() {
        assert_eq!(AudioSource::silence_ms(20).render().len(), 160);
        assert!(AudioSource::silence_ms(20)
            .render()
            .iter()
            .all(|&b| b == 0xFF));
        let tone = AudioSource::tone_ms(440, 100).render();
        assert_eq!(tone.len(), 800);
        assert!(tone.iter().any(|&b| b != 0xFF));
        assert_eq!(
            AudioSource::tone_ms(440, 100).duration(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn shipped_recordings_are_a_few_seconds_of_speech() {
        for audio in [AudioSource::hello_en(), AudioSource::hello_ja()] {
            let secs = audio.duration().as_secs_f64();
            assert!((2.0..4.0).contains(&secs), "{secs} s");
            let loud = audio.render().iter().filter(|&&b| b & 0x7F < 0x60).count();
            assert!(
                loud > 1000,
                "speech should not be silence: {loud} loud samples"
            );
        }
    }

    #[test]
    fn specs_name_recordings_generators_or_files() {
        assert_eq!(
            AudioSource::from_spec("hello-en").ok(),
            Some(AudioSource::hello_en())
        );
        assert_eq!(
            AudioSource::from_spec("silence:40").ok(),
            Some(AudioSource::silence_ms(40))
        );
        assert_eq!(
            AudioSource::from_spec("tone:440:20").ok(),
            Some(AudioSource::tone_ms(440, 20))
        );
        assert!(matches!(
            AudioSource::from_spec("silence:x"),
            Err(AudioError::Spec(_))
        ));
        assert!(matches!(
            AudioSource::from_spec("/nonexistent/file.ulaw"),
            Err(AudioError::Read { .. })
        ));
    }
}
