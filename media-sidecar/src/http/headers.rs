//! Security headers on every response, the set helmet() sends (with a stricter
//! Content-Security-Policy: nothing here is meant for a browser).
//!
//! Applied as the outermost layer of both routers, so 404s, 403s, 413s from the body
//! limit and the WebSocket 101 carry them too. Values replace whatever a handler set;
//! `X-Powered-By` and `Server` are removed.

use axum::http::header::{self, HeaderName, HeaderValue};
use axum::response::Response;

/// `(name, value)` of every security header.
pub(crate) const SECURITY_HEADERS: [(&str, &str); 12] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "strict-transport-security",
        "max-age=15552000; includeSubDomains",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// Adds the security headers to `response` (an `axum::middleware::map_response` fn).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.remove("x-powered-by");
    headers.remove(header::SERVER);
    response
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;

    use super::*;

    #[tokio::test]
    async fn every_header_is_set_and_overrides_the_handler() {
        let response = (
            [
                ("x-frame-options", "SAMEORIGIN"),
                ("x-powered-by", "Express"),
            ],
            "body",
        )
            .into_response();
        let response = security_headers(response).await;
        for (name, value) in SECURITY_HEADERS {
            let all: Vec<_> = response.headers().get_all(name).iter().collect();
            assert_eq!(all, [value], "{name}");
        }
        assert!(response.headers().get("x-powered-by").is_none());
    }
}
