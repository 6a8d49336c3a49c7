//! The effective session configuration: the server's defaults at
//! `session.created`, how a `session.update` merges into it ("fields omitted
//! from an update keep their value", docs/protocols.md §3.2), and the
//! `session` object sent back.

use serde_json::Value;
use switchboard_realtime::{
    AudioFormat, Dialect, MaxOutputTokens, OutputModality, SessionConfig, TurnDetection,
    TurnDetectionMode,
};

use crate::openai::vad::{
    DEFAULT_PREFIX_PADDING_MS, DEFAULT_SILENCE_DURATION_MS, DEFAULT_THRESHOLD,
};

/// What a fresh session runs with: PCM 24 kHz both ways (so audio appended
/// before `session.update` is misread, as on the real API), server VAD with
/// its defaults, no transcription, no tools.
pub(super) fn initial(dialect: Dialect, model: &str) -> SessionConfig {
    let (voice, temperature, truncation) = match dialect {
        Dialect::Ga => ("marin", None, Some("auto".to_owned())),
        Dialect::Beta => ("alloy", Some(0.8), None),
    };
    SessionConfig {
        model: Some(model.to_owned()),
        instructions: Some(String::new()),
        voice: Some(voice.to_owned()),
        speed: Some(1.0),
        temperature,
        output_modalities: Some(OutputModality::Audio),
        input_audio_format: Some(AudioFormat::Pcm24k),
        output_audio_format: Some(AudioFormat::Pcm24k),
        turn_detection: Some(with_defaults(TurnDetection::server_vad())),
        transcription: None,
        noise_reduction: None,
        tools: Vec::new(),
        tool_choice: Some("auto".to_owned()),
        max_output_tokens: Some(MaxOutputTokens::Inf),
        truncation,
    }
}

/// Applies `update` to `current`. The codec cannot tell an omitted `tools`
/// from `[]`, nor an omitted transcription from `null`, so neither can be
/// cleared here.
pub(super) fn merge(current: &mut SessionConfig, update: SessionConfig) {
    fn set<T>(slot: &mut Option<T>, value: Option<T>) {
        if value.is_some() {
            *slot = value;
        }
    }
    set(&mut current.model, update.model);
    set(&mut current.instructions, update.instructions);
    set(&mut current.voice, update.voice);
    set(&mut current.speed, update.speed);
    set(&mut current.temperature, update.temperature);
    set(&mut current.output_modalities, update.output_modalities);
    set(&mut current.input_audio_format, update.input_audio_format);
    set(&mut current.output_audio_format, update.output_audio_format);
    set(
        &mut current.turn_detection,
        update.turn_detection.map(with_defaults),
    );
    set(&mut current.transcription, update.transcription);
    set(&mut current.noise_reduction, update.noise_reduction);
    set(&mut current.tool_choice, update.tool_choice);
    set(&mut current.max_output_tokens, update.max_output_tokens);
    set(&mut current.truncation, update.truncation);
    if !update.tools.is_empty() {
        current.tools = update.tools;
    }
}

/// Turn detection as the server reports it: every field of the mode filled.
pub(super) fn with_defaults(mut turn_detection: TurnDetection) -> TurnDetection {
    match turn_detection.mode {
        TurnDetectionMode::Disabled => return turn_detection,
        TurnDetectionMode::ServerVad => {
            turn_detection.threshold.get_or_insert(DEFAULT_THRESHOLD);
            turn_detection
                .prefix_padding_ms
                .get_or_insert(DEFAULT_PREFIX_PADDING_MS);
            turn_detection
                .silence_duration_ms
                .get_or_insert(DEFAULT_SILENCE_DURATION_MS);
        }
        TurnDetectionMode::SemanticVad => {
            turn_detection
                .eagerness
                .get_or_insert_with(|| "auto".to_owned());
        }
    }
    turn_detection.create_response.get_or_insert(true);
    turn_detection.interrupt_response.get_or_insert(true);
    turn_detection
}

/// The `session` object of `session.created` / `session.updated`.
pub(super) fn session_json(config: &SessionConfig, dialect: Dialect, session_id: &str) -> Value {
    let mut session = config.to_json(dialect);
    if let Value::Object(map) = &mut session {
        map.insert("id".to_owned(), Value::String(session_id.to_owned()));
        map.insert(
            "object".to_owned(),
            Value::String("realtime.session".to_owned()),
        );
    }
    session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_keep_omitted_fields_and_fill_turn_detection() {
        let mut config = initial(Dialect::Ga, "gpt-realtime");
        let update = SessionConfig {
            instructions: Some("be brief".into()),
            turn_detection: Some(TurnDetection {
                silence_duration_ms: Some(300),
                ..TurnDetection::server_vad()
            }),
            ..SessionConfig::default()
        };
        merge(&mut config, update);
        assert_eq!(config.instructions.as_deref(), Some("be brief"));
        assert_eq!(config.voice.as_deref(), Some("marin"));
        assert_eq!(config.input_audio_format, Some(AudioFormat::Pcmu));
        let td = config.turn_detection.expect("turn detection");
        assert_eq!(td.silence_duration_ms, Some(300));
        assert_eq!(td.threshold, Some(0.5));
        assert_eq!(td.create_response, Some(true));
    }

    #[test]
    fn disabling_turn_detection_sticks() {
        let mut config = initial(Dialect::Beta, "gpt-4o-realtime-preview");
        merge(
            &mut config,
            SessionConfig {
                turn_detection: Some(TurnDetection::disabled()),
                ..SessionConfig::default()
            },
        );
        let td = config.turn_detection.as_ref().expect("set");
        assert_eq!(td.mode, TurnDetectionMode::Disabled);
        let json = session_json(&config, Dialect::Beta, "sess_1");
        assert_eq!(json["turn_detection"], Value::Null);
        assert_eq!(json["id"], "sess_1");
    }
}
