//! Unit tests of the session object codec.

use super::*;
use serde_json::json;

#[test]
fn ga_has_no_temperature_and_beta_has_no_truncation() {
    let config = SessionConfig {
        temperature: Some(0.8),
        truncation: Some("auto".into()),
        ..SessionConfig::default()
    };
    let ga = config.to_json(Dialect::Ga);
    assert!(ga.get("temperature").is_none());
    assert_eq!(ga["truncation"], "auto");
    let beta = config.to_json(Dialect::Beta);
    assert_eq!(beta["temperature"], 0.8);
    assert!(beta.get("truncation").is_none());
}

#[test]
fn disabled_turn_detection_is_null_and_omitted_is_absent() {
    let mut config = SessionConfig {
        turn_detection: Some(TurnDetection::disabled()),
        ..SessionConfig::default()
    };
    let ga = config.to_json(Dialect::Ga);
    assert_eq!(ga["audio"]["input"]["turn_detection"], Value::Null);
    assert!(ga["audio"]["input"].get("turn_detection").is_some());
    assert_eq!(
        SessionConfig::from_json(&ga, Dialect::Ga).expect("reads back"),
        config
    );
    config.turn_detection = None;
    let beta = config.to_json(Dialect::Beta);
    assert!(beta.get("turn_detection").is_none());
}

#[test]
fn semantic_vad_sends_only_its_fields() {
    let config = SessionConfig {
        turn_detection: Some(TurnDetection {
            threshold: Some(0.9),
            eagerness: Some("low".into()),
            interrupt_response: Some(true),
            ..TurnDetection::semantic_vad()
        }),
        ..SessionConfig::default()
    };
    assert_eq!(
        config.to_json(Dialect::Ga)["audio"]["input"]["turn_detection"],
        json!({"type": "semantic_vad", "eagerness": "low", "interrupt_response": true})
    );
}

#[test]
fn foreign_fields_are_rejected() {
    let err = SessionConfig::from_json(
        &json!({"type": "realtime", "temperature": 0.8}),
        Dialect::Ga,
    )
    .expect_err("beta field in ga");
    assert!(matches!(err, ParseError::DialectMismatch { .. }), "{err}");
    let err = SessionConfig::from_json(&json!({"type": "realtime"}), Dialect::Beta)
        .expect_err("ga field in beta");
    assert_eq!(
        err.to_string(),
        "session.update event: field `session.type` belongs to the ga dialect"
    );
    let err = SessionConfig::from_json(&json!({"model": "gpt-realtime"}), Dialect::Ga)
        .expect_err("ga needs session.type");
    assert!(matches!(err, ParseError::Invalid { .. }), "{err}");
}

#[test]
fn pcm_carries_its_rate_in_ga() {
    let config = SessionConfig {
        input_audio_format: Some(AudioFormat::Pcm24k),
        output_audio_format: None,
        ..SessionConfig::default()
    };
    let ga = config.to_json(Dialect::Ga);
    assert_eq!(
        ga["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    assert_eq!(config.to_json(Dialect::Beta)["input_audio_format"], "pcm16");
}
