//! Any bytes into the server event decoder: no panic, and whatever decodes
//! re-encodes (in both dialects) to a frame that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_realtime::{parse_server_event, Dialect};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = parse_server_event(text) else {
        return;
    };
    let mut buf = String::new();
    for dialect in [Dialect::Ga, Dialect::Beta] {
        buf.clear();
        event.encode_into(dialect, &mut buf);
        assert!(
            parse_server_event(&buf).is_ok(),
            "re-encoded {dialect} event does not decode"
        );
    }
});
