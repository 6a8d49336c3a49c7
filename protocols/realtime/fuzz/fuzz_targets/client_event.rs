//! Any bytes into the client event decoder (both dialects): no panic, and
//! whatever decodes re-encodes to a frame that decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_realtime::{parse_client_event, Dialect};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut buf = String::new();
    for dialect in [Dialect::Ga, Dialect::Beta] {
        let Ok(event) = parse_client_event(text, dialect) else {
            continue;
        };
        buf.clear();
        event.encode_into(dialect, &mut buf);
        assert!(
            parse_client_event(&buf, dialect).is_ok(),
            "re-encoded {dialect} event does not decode"
        );
    }
});
