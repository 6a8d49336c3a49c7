//! The `session` object as each dialect writes it: serde structs that
//! [`SessionConfig`](super::SessionConfig) converts to and from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AudioFormat, InputTranscription, MaxOutputTokens, NoiseReduction};
use crate::wire;

/// The `session` object in the shape of one dialect.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum SessionWire {
    Ga(GaSession),
    Beta(BetaSession),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GaSession {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) output_modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) audio: Option<GaAudio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tools: Option<Vec<ToolWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_output_tokens: Option<MaxOutputTokens>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) truncation: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct GaAudio {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) input: Option<GaAudioInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) output: Option<GaAudioOutput>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct GaAudioInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<GaFormat>,
    #[serde(
        default,
        deserialize_with = "wire::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) transcription: Option<Option<InputTranscription>>,
    #[serde(
        default,
        deserialize_with = "wire::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) noise_reduction: Option<Option<NoiseWire>>,
    #[serde(
        default,
        deserialize_with = "wire::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) turn_detection: Option<Option<TurnDetectionWire>>,
}

impl GaAudioInput {
    pub(super) fn is_empty(&self) -> bool {
        self.format.is_none()
            && self.transcription.is_none()
            && self.noise_reduction.is_none()
            && self.turn_detection.is_none()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct GaAudioOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<GaFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) voice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) speed: Option<f64>,
}

impl GaAudioOutput {
    pub(super) fn is_empty(&self) -> bool {
        self.format.is_none() && self.voice.is_none() && self.speed.is_none()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GaFormat {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rate: Option<u32>,
}

impl GaFormat {
    pub(super) fn from_config(format: AudioFormat) -> Self {
        Self {
            kind: Some(format.ga_type().to_owned()),
            rate: format.ga_rate(),
        }
    }

    pub(super) fn into_config(self) -> Result<AudioFormat, String> {
        let kind = self.kind.as_deref().unwrap_or("audio/pcm");
        match (AudioFormat::from_ga_type(kind), self.rate) {
            (Some(format), None | Some(24_000)) => Ok(format),
            (Some(_), Some(_)) => Err("unsupported audio rate".to_owned()),
            (None, _) => Err("unknown audio format".to_owned()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BetaSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) voice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) speed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) input_audio_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) output_audio_format: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) input_audio_transcription: Option<Option<InputTranscription>>,
    #[serde(
        default,
        deserialize_with = "wire::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) input_audio_noise_reduction: Option<Option<NoiseWire>>,
    #[serde(
        default,
        deserialize_with = "wire::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) turn_detection: Option<Option<TurnDetectionWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tools: Option<Vec<ToolWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_response_output_tokens: Option<MaxOutputTokens>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TurnDetectionWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) prefix_padding_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) silence_duration_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) create_response: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) interrupt_response: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) idle_timeout_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) eagerness: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct NoiseWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<String>,
}

impl NoiseWire {
    pub(super) fn from_config(noise: NoiseReduction) -> Option<Self> {
        let kind = match noise {
            NoiseReduction::NearField => "near_field",
            NoiseReduction::FarField => "far_field",
            NoiseReduction::Off => return None,
        };
        Some(Self {
            kind: Some(kind.to_owned()),
        })
    }

    pub(super) fn to_config(wire: Option<Self>) -> NoiseReduction {
        match wire.and_then(|w| w.kind).as_deref() {
            None => NoiseReduction::Off,
            Some("far_field") => NoiseReduction::FarField,
            Some(_) => NoiseReduction::NearField,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ToolWire {
    #[serde(rename = "type", default = "function_type")]
    pub(super) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) parameters: Option<Value>,
}

fn function_type() -> String {
    "function".to_owned()
}
