//! Audio arithmetic of the simulator: G.711 µ-law and A-law expansion and
//! compression (the standard ITU-T tables, computed), frame energy for the
//! VAD, and the tone the assistant "speaks".
//!
//! Pure functions over bytes; no codec state. The sidecar never decodes
//! audio, so this is the only place in Switchboard that does.

use std::borrow::Cow;

use base64::Engine as _;
use switchboard_realtime::AudioFormat;

/// Peak amplitude of the assistant tone: about −12 dBFS, clearly speech-like
/// energy for any VAD, far from clipping.
const TONE_AMPLITUDE: f64 = 8_000.0;

/// Expands one G.711 µ-law byte to 16-bit linear PCM (range ±32124).
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let sample = if u & 0x80 != 0 { -magnitude } else { magnitude };
    // |sample| ≤ 32124, always within i16.
    sample as i16
}

/// Compresses one 16-bit linear sample to G.711 µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0 };
    let magnitude = value.abs().min(CLIP) + BIAS;
    // magnitude >> 7 is in 1..=255, so the exponent is in 0..=7.
    let top = (magnitude >> 7) as u8;
    let exponent = 7 - top.leading_zeros() as u8;
    let mantissa = ((magnitude >> (exponent + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// Expands one G.711 A-law byte to 16-bit linear PCM (range ±32256).
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let segment = (a >> 4) & 0x07;
    let mut magnitude = i32::from(a & 0x0F) << 4;
    match segment {
        0 => magnitude += 8,
        1 => magnitude += 0x108,
        _ => magnitude = (magnitude + 0x108) << (segment - 1),
    }
    let sample = if a & 0x80 != 0 { magnitude } else { -magnitude };
    sample as i16
}

/// Compresses one 16-bit linear sample to G.711 A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEGMENT_ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut value = i32::from(sample) >> 3;
    let mask: u8 = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let Some(segment) = SEGMENT_ENDS.iter().position(|&end| value <= end) else {
        return 0x7F ^ mask;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let a = ((segment as u8) << 4) | ((value >> shift) & 0x0F) as u8;
    a ^ mask
}

/// Bytes per millisecond of audio in `format` (8 for G.711 at 8 kHz, 48 for
/// 16-bit PCM at 24 kHz).
pub fn bytes_per_ms(format: AudioFormat) -> u64 {
    match format {
        AudioFormat::Pcmu | AudioFormat::Pcma => 8,
        AudioFormat::Pcm24k => 48,
    }
}

/// Samples per second of `format`.
pub fn sample_rate(format: AudioFormat) -> u32 {
    match format {
        AudioFormat::Pcmu | AudioFormat::Pcma => 8_000,
        AudioFormat::Pcm24k => 24_000,
    }
}

/// Calls `f` with each linear sample of `bytes` in `format` (PCM is 16-bit
/// little-endian; a trailing odd byte is ignored).
pub fn for_each_sample(format: AudioFormat, bytes: &[u8], mut f: impl FnMut(i16)) {
    match format {
        AudioFormat::Pcmu => bytes.iter().for_each(|&b| f(ulaw_to_linear(b))),
        AudioFormat::Pcma => bytes.iter().for_each(|&b| f(alaw_to_linear(b))),
        AudioFormat::Pcm24k => bytes
            .chunks_exact(2)
            .for_each(|pair| f(i16::from_le_bytes([pair[0], pair[1]]))),
    }
}

/// Root mean square of linear samples (0 for none).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Encodes linear samples in `format`.
pub fn encode_samples(format: AudioFormat, samples: &[i16]) -> Vec<u8> {
    match format {
        AudioFormat::Pcmu => samples.iter().map(|&s| linear_to_ulaw(s)).collect(),
        AudioFormat::Pcma => samples.iter().map(|&s| linear_to_alaw(s)).collect(),
        AudioFormat::Pcm24k => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
    }
}

/// A sine of `hz` lasting `ms`, as linear samples at `rate`.
pub fn sine(hz: u32, ms: u32, rate: u32, amplitude: f64) -> Vec<i16> {
    let count = u64::from(rate) * u64::from(ms) / 1000;
    (0..count)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * f64::from(hz) * n as f64 / f64::from(rate);
            (amplitude * phase.sin()).round() as i16
        })
        .collect()
}

/// The assistant's voice: one chunk of a sine tone, encoded once and sent as
/// every audio delta. Pick `hz · chunk_ms / 1000` whole (440 Hz and 100 ms
/// give 44 cycles) and the chunks join without a click.
#[derive(Debug, Clone)]
pub struct Tone {
    format: AudioFormat,
    chunk_ms: u32,
    bytes: Vec<u8>,
    base64: String,
}

impl Tone {
    /// A `hz` tone in `format`, cut in chunks of `chunk_ms` (at least 1).
    pub fn new(format: AudioFormat, hz: u32, chunk_ms: u32) -> Self {
        let chunk_ms = chunk_ms.max(1);
        let samples = sine(hz, chunk_ms, sample_rate(format), TONE_AMPLITUDE);
        let bytes = encode_samples(format, &samples);
        let base64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        Self {
            format,
            chunk_ms,
            bytes,
            base64,
        }
    }

    /// The format of the chunks.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Length of a full chunk, ms.
    pub fn chunk_ms(&self) -> u32 {
        self.chunk_ms
    }

    /// Base64 of `ms` of tone (at most one chunk): the cached chunk when
    /// whole, a fresh encoding of its start otherwise.
    pub fn chunk(&self, ms: u32) -> Cow<'_, str> {
        if ms >= self.chunk_ms {
            return Cow::Borrowed(&self.base64);
        }
        let len = (bytes_per_ms(self.format) * u64::from(ms)) as usize;
        let part = &self.bytes[..len.min(self.bytes.len())];
        Cow::Owned(base64::engine::general_purpose::STANDARD.encode(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_expansion_matches_the_g711_table() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0x70), -120);
        assert_eq!(ulaw_to_linear(0xFE), 8);
    }

    #[test]
    fn ulaw_round_trips_every_code() {
        for byte in 0..=255u8 {
            let linear = ulaw_to_linear(byte);
            let back = linear_to_ulaw(linear);
            // 0x7F (negative zero) compresses to 0xFF (positive zero).
            let expected = if byte == 0x7F { 0xFF } else { byte };
            assert_eq!(back, expected, "code {byte:#04x} -> {linear}");
        }
    }

    #[test]
    fn alaw_round_trips_every_code() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        for byte in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(byte)), byte, "{byte:#04x}");
        }
    }

    #[test]
    fn rms_of_silence_and_of_a_sine() {
        assert_eq!(rms(&[]), 0.0);
        let silence: Vec<i16> = [0xFFu8; 160].iter().map(|&b| ulaw_to_linear(b)).collect();
        assert_eq!(rms(&silence), 0.0);
        let tone = sine(400, 20, 8_000, 8_000.0);
        let expected = 8_000.0 / 2f64.sqrt();
        assert!((rms(&tone) - expected).abs() < 60.0, "{}", rms(&tone));
    }

    #[test]
    fn tone_chunks_have_the_right_length() {
        let tone = Tone::new(AudioFormat::Pcmu, 440, 100);
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(
            b64.decode(tone.chunk(100).as_ref()).map(|v| v.len()),
            Ok(800)
        );
        assert_eq!(
            b64.decode(tone.chunk(40).as_ref()).map(|v| v.len()),
            Ok(320)
        );
        let pcm = Tone::new(AudioFormat::Pcm24k, 440, 20);
        assert_eq!(b64.decode(pcm.chunk(20).as_ref()).map(|v| v.len()), Ok(960));
        let mut samples = Vec::new();
        let bytes = b64.decode(tone.chunk(100).as_ref()).unwrap_or_default();
        for_each_sample(AudioFormat::Pcmu, &bytes, |s| samples.push(s));
        assert!(rms(&samples) > 5_000.0);
    }
}
