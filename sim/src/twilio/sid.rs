//! Twilio resource identifiers: a two-letter prefix and 32 lowercase hex digits
//! (`CA…` calls, `MZ…` streams, `CF…` conferences).
//!
//! Unique within a process (a counter is mixed in) and unpredictable enough for a
//! simulator (std's randomly keyed SipHash); not for secrets.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new call SID, `CA` + 32 hex digits.
pub fn call_sid() -> String {
    new_sid("CA")
}

/// A new stream SID, `MZ` + 32 hex digits.
pub fn stream_sid() -> String {
    new_sid("MZ")
}

/// A new conference SID, `CF` + 32 hex digits.
pub fn conference_sid() -> String {
    new_sid("CF")
}

/// A new SID with this prefix and 32 hex digits.
pub fn new_sid(prefix: &str) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = RandomState::new().hash_one(count);
    let low = RandomState::new().hash_one((count, high));
    format!("{prefix}{high:016x}{low:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_twilio_shape_and_do_not_repeat() {
        let sids: Vec<String> = (0..1000).map(|_| call_sid()).collect();
        for sid in &sids {
            assert_eq!(sid.len(), 34);
            assert!(sid.starts_with("CA"));
            assert!(sid[2..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        let unique: std::collections::HashSet<&String> = sids.iter().collect();
        assert_eq!(unique.len(), sids.len());
        assert!(stream_sid().starts_with("MZ") && conference_sid().starts_with("CF"));
    }
}
