//! Signed per-call stream tokens.
//!
//! The voice webhook answers `<Connect><Stream>` with a `<Parameter name="token">`; Twilio
//! hands it back in the Media Stream's `start.customParameters`, and the call driver
//! checks it before contacting the control plane or OpenAI. A token proves that this
//! deployment answered the webhook for *this* call, recently.
//!
//! Format: `v1.<expiry>.<sig>` where `expiry` is unix seconds in decimal and `sig` is
//! unpadded base64url of HMAC-SHA256(secret, `v1.<expiry>.<call_id>`). The call id is not in
//! the token (it is in the stream URL and the `callId` parameter), so a token presented
//! for another call fails as [`TokenError::BadSignature`]. The signature is checked in
//! constant time, before the expiry, so only authentic tokens are ever reported expired.
//! Tokens are short (~58 characters), well under Twilio's 500-character `<Parameter>`.
//!
//! This module is pure: callers pass the clock. The secret comes from
//! `SWITCHBOARD_STREAM_TOKEN_SECRET` (see `config.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The version prefix of tokens this module issues.
pub const TOKEN_VERSION: &str = "v1";

/// Issues and verifies stream tokens with one secret. Cheap to clone; `Debug` hides the
/// secret.
#[derive(Clone)]
pub struct TokenSigner {
    key: Arc<[u8]>,
    ttl: Duration,
}

/// Why a token was refused. Messages never include the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `v1.<expiry>.<sig>`.
    #[error("stream token is malformed")]
    Malformed,
    /// Not signed by this deployment for this call.
    #[error("stream token signature does not match the call")]
    BadSignature,
    /// Authentic, but its time has passed.
    #[error("stream token has expired")]
    Expired,
}

// === impl TokenSigner ===

impl TokenSigner {
    /// A signer keyed by `secret`, issuing tokens valid for `ttl`.
    pub fn new(secret: impl AsRef<[u8]>, ttl: Duration) -> Self {
        Self {
            key: Arc::from(secret.as_ref()),
            ttl,
        }
    }

    /// How long issued tokens stay valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `call_id`, valid from `now` for the signer's TTL (rounded up to the
    /// next whole second).
    pub fn issue(&self, call_id: &str, now: SystemTime) -> String {
        let expiry = unix_seconds(now)
            .saturating_add(self.ttl.as_secs())
            .saturating_add(u64::from(self.ttl.subsec_nanos() > 0));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(call_id, expiry));
        format!("{TOKEN_VERSION}.{expiry}.{signature}")
    }

    /// Checks that `token` was issued by this signer for `call_id` and is still valid at
    /// `now`.
    pub fn verify(&self, token: &str, call_id: &str, now: SystemTime) -> Result<(), TokenError> {
        let mut parts = token.split('.');
        let (Some(TOKEN_VERSION), Some(expiry), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let presented = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let expected = self.mac(call_id, expiry);
        if !bool::from(presented.as_slice().ct_eq(expected.as_slice())) {
            return Err(TokenError::BadSignature);
        }
        if unix_seconds(now) >= expiry {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    fn mac(&self, call_id: &str, expiry: u64) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac accepts keys of any length");
        // The expiry is all digits and comes first, so the message encodes the pair
        // unambiguously whatever the call id holds.
        mac.update(format!("{TOKEN_VERSION}.{expiry}.").as_bytes());
        mac.update(call_id.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("key", &"*****")
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn signer() -> TokenSigner {
        TokenSigner::new("a-secret-of-thirty-two-bytes-len", Duration::from_secs(300))
    }

    #[test]
    fn a_token_verifies_for_its_call_until_it_expires() {
        let token = signer().issue("call-1", at(1_700_000_000));
        assert!(token.starts_with("v1.1700000300."), "{token}");
        assert!(token.len() < 64, "{token}");
        assert_eq!(signer().verify(&token, "call-1", at(1_700_000_000)), Ok(()));
        assert_eq!(signer().verify(&token, "call-1", at(1_700_000_299)), Ok(()));
        assert_eq!(
            signer().verify(&token, "call-1", at(1_700_000_300)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_for_another_call_or_key_is_refused() {
        let token = signer().issue("call-1", at(100));
        assert_eq!(
            signer().verify(&token, "call-2", at(100)),
            Err(TokenError::BadSignature)
        );
        let other = TokenSigner::new("another-secret-of-thirty-two-byt", Duration::from_secs(300));
        assert_eq!(
            other.verify(&token, "call-1", at(100)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_expiry_breaks_the_signature() {
        let token = signer().issue("call-1", at(100));
        let forged = token.replacen("v1.400.", "v1.9999999999.", 1);
        assert_ne!(forged, token);
        assert_eq!(
            signer().verify(&forged, "call-1", at(100)),
            Err(TokenError::BadSignature)
        );
        // An expired forgery is still a forgery, not "expired".
        let foreign = TokenSigner::new("another-secret-of-thirty-two-byt", Duration::from_secs(1))
            .issue("call-1", at(100));
        assert_eq!(
            signer().verify(&foreign, "call-1", at(1_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_named_so() {
        for bad in [
            "",
            "v1",
            "v1.100",
            "v2.100.abc",
            "v1.-100.abc",
            "v1..abc",
            "v1.100.abc.def",
            "v1.100.not base64!",
            "v1.99999999999999999999999.abc",
        ] {
            assert_eq!(
                signer().verify(bad, "call-1", at(0)),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let text = format!("{:?}", signer());
        assert!(!text.contains("thirty-two"), "{text}");
    }
}
