//! Media Streams frames: any text is a message or an error, never a panic, and whatever
//! parses re-encodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_twilio::media_stream::{parse_inbound, parse_outbound, payload_duration_ms};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = parse_inbound(text) {
        let mut out = String::new();
        message.encode(&mut out);
        let again = parse_inbound(&out).map(|m| m.into_owned());
        assert_eq!(again, Ok(message.into_owned()));
    }
    if let Ok(message) = parse_outbound(text) {
        let mut out = String::new();
        message.encode(&mut out);
        assert!(parse_outbound(&out).is_ok());
    }
    let _ = payload_duration_ms(text);
});
