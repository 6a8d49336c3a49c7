//! Webhook bodies and signatures: any bytes are a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_twilio::signature::RequestValidator;
use switchboard_twilio::webhooks::{
    form_params, AmdStatusCallback, CallStatusCallback, ConferenceStatusCallback,
    StreamStatusCallback, VoiceWebhook,
};

fuzz_target!(|data: &[u8]| {
    let params = form_params(data);
    let _ = VoiceWebhook::parse(data);
    let _ = CallStatusCallback::parse(data);
    let _ = AmdStatusCallback::parse(data);
    let _ = StreamStatusCallback::parse(data);
    let _ = ConferenceStatusCallback::parse(data);

    // The first line is the URL, the rest the body: exercises URL port handling too.
    let (url, body) = match data.iter().position(|&b| b == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (data, &[][..]),
    };
    let url = String::from_utf8_lossy(url);
    let validator = RequestValidator::new("fuzz-token");
    let _ = validator.validate_form_body(&url, body, "c2lnbmF0dXJl");
    let _ = validator.validate_json(&url, body, "c2lnbmF0dXJl");
    let computed = validator.compute(&url, &params);
    assert_eq!(validator.validate(&url, &params, &computed), Ok(()));
});
