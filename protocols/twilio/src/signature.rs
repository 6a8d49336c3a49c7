//! `X-Twilio-Signature`: computing and checking Twilio's request signature exactly as
//! Twilio's webhook-security documentation describes it and twilio-python 9.13.0's
//! `RequestValidator` implements it (docs/protocols.md §2.5).
//!
//! The string signed is the full URL Twilio requested (query included, exactly as
//! configured), then for form bodies every parameter name immediately followed by its
//! URL-decoded value, sorted by name and then value, exact duplicates once. It is signed with
//! HMAC-SHA1 keyed by the Auth Token and compared, base64, in constant time. A URL is
//! accepted with or without its port (Twilio signs either form). JSON bodies are signed
//! through a `bodySHA256` query parameter instead.
//!
//! This module does not know where the URL comes from: build it from the configured public
//! base URL and the request path (and, for the Media Stream upgrade, the `wss` scheme), not
//! from proxy-rewritten request data. Form bodies are read with
//! [`webhooks::form_params`](crate::webhooks::form_params).

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::webhooks::form_params;

/// The header carrying the signature (lower-case `x-twilio-signature` on the WS upgrade;
/// HTTP header names are case-insensitive).
pub const HEADER: &str = "X-Twilio-Signature";

/// The query parameter holding the SHA-256 of a JSON body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// Computes and checks signatures with one account's Auth Token. `Debug` hides the token.
#[derive(Clone)]
pub struct RequestValidator {
    auth_token: Vec<u8>,
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature matches none of the URL's forms.
    #[error("signature does not match the request")]
    Mismatch,
    /// The JSON body's SHA-256 differs from the URL's `bodySHA256`.
    #[error("body does not match the bodySHA256 query parameter")]
    BodyHashMismatch,
    /// A JSON body arrived without a (non-empty) `bodySHA256` query parameter.
    #[error("url has no bodySHA256 query parameter")]
    MissingBodyHash,
}

// === impl RequestValidator ===

impl RequestValidator {
    /// A validator for the account whose Auth Token this is.
    pub fn new(auth_token: impl AsRef<[u8]>) -> Self {
        Self {
            auth_token: auth_token.as_ref().to_vec(),
        }
    }

    /// The signature Twilio sends for `url` and these URL-decoded form parameters (none for
    /// GET requests, the WebSocket upgrade and JSON bodies): base64 with padding.
    pub fn compute<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.auth_token)
            .expect("hmac accepts keys of any length");
        mac.update(url.as_bytes());
        for (name, value) in sorted_params(params) {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Checks a form-encoded request given its URL-decoded parameters (see
    /// [`form_params`]). Accepts the URL with or without its port.
    pub fn validate<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let mut matched = false;
        for candidate in url_forms(url) {
            let computed = self.compute(&candidate, params);
            matched |= bool::from(computed.as_bytes().ct_eq(signature.as_bytes()));
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Checks a form-encoded request from its raw body.
    pub fn validate_form_body(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        self.validate(url, &form_params(body), signature)
    }

    /// Checks a request that signs only its URL: a GET webhook (parameters are in the query)
    /// or the Media Stream WebSocket upgrade (pass the `wss://` URL of `<Stream url>`).
    pub fn validate_url(&self, url: &str, signature: &str) -> Result<(), SignatureError> {
        self.validate::<&str, &str>(url, &[], signature)
    }

    /// Checks a JSON-bodied request: the signature covers the URL (with its `bodySHA256`
    /// query parameter) and the body's SHA-256 must equal `bodySHA256`.
    pub fn validate_json(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let expected_hash = query_param(url, BODY_SHA256_PARAM)
            .filter(|hash| !hash.is_empty())
            .ok_or(SignatureError::MissingBodyHash)?;
        let hash_ok = bool::from(
            body_sha256_hex(body)
                .as_bytes()
                .ct_eq(expected_hash.as_bytes()),
        );
        self.validate_url(url, signature)?;
        if hash_ok {
            Ok(())
        } else {
            Err(SignatureError::BodyHashMismatch)
        }
    }
}

impl fmt::Debug for RequestValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestValidator")
            .field("auth_token", &"****")
            .finish()
    }
}

/// The exact string that is signed (for debugging): `url` then each sorted `name` + `value`.
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(url: &str, params: &[(K, V)]) -> String {
    let mut out = String::from(url);
    for (name, value) in sorted_params(params) {
        out.push_str(name);
        out.push_str(value);
    }
    out
}

/// Lower-case hex SHA-256 of a body, as Twilio puts in `bodySHA256`.
pub fn body_sha256_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// Parameters sorted by name then value, exact duplicates once (twilio-python sorts
/// `set(values)` per name). Byte order of UTF-8 is code-point order, as in Python.
fn sorted_params<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_ref(), value.as_ref()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// The forms of `url` a signature may have been computed over: without its port and with
/// the scheme's default port (443 for `https`/`wss`, else 80), as twilio-python tries.
/// (twilio-python would add `:80` to a `wss` URL; `:443` is what such a URL means.)
fn url_forms(url: &str) -> Vec<String> {
    let Some(scheme_end) = url.find("://") else {
        return vec![url.to_owned()];
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // The host starts after any user-info; a port follows the last ':' outside an IPv6 `[…]`.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_colon = host_port
        .rfind(':')
        .filter(|&i| !host_port[i..].contains(']'))
        .filter(|&i| {
            let port = &host_port[i + 1..];
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        });
    let host_port_start = authority_start + host_start;
    match port_colon {
        Some(colon) => {
            let without = format!(
                "{}{}",
                &url[..host_port_start + colon],
                &url[authority_end..]
            );
            vec![without, url.to_owned()]
        }
        None => {
            let scheme = &url[..scheme_end];
            let default_port =
                if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
                    443
                } else {
                    80
                };
            let with = format!(
                "{}:{default_port}{}",
                &url[..authority_end],
                &url[authority_end..]
            );
            vec![url.to_owned(), with]
        }
    }
}

/// The first value of a query parameter, URL-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query_start = url.find('?')? + 1;
    let query_end = url[query_start..]
        .find('#')
        .map_or(url.len(), |i| query_start + i);
    form_params(&url.as_bytes()[query_start..query_end])
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_cover_with_and_without_the_port() {
        assert_eq!(
            url_forms("https://h.example.com/a?b=c"),
            [
                "https://h.example.com/a?b=c",
                "https://h.example.com:443/a?b=c"
            ]
        );
        assert_eq!(
            url_forms("https://h.example.com:443/a"),
            ["https://h.example.com/a", "https://h.example.com:443/a"]
        );
        assert_eq!(url_forms("http://h:8080"), ["http://h", "http://h:8080"]);
        assert_eq!(url_forms("wss://h/m"), ["wss://h/m", "wss://h:443/m"]);
        assert_eq!(url_forms("ws://h/m"), ["ws://h/m", "ws://h:80/m"]);
        assert_eq!(
            url_forms("https://u:p@[::1]/x"),
            ["https://u:p@[::1]/x", "https://u:p@[::1]:443/x"]
        );
        assert_eq!(
            url_forms("https://[::1]:8443/x"),
            ["https://[::1]/x", "https://[::1]:8443/x"]
        );
        assert_eq!(url_forms("not a url"), ["not a url"]);
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("https://h/p?a=1&bodySHA256=ab%63#frag", "bodySHA256"),
            Some("abc".to_owned())
        );
        assert_eq!(query_param("https://h/p", "bodySHA256"), None);
    }

    #[test]
    fn debug_hides_the_token() {
        let debug = format!("{:?}", RequestValidator::new("secret-token"));
        assert!(!debug.contains("secret"), "{debug}");
    }
}
