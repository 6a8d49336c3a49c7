//! Requests Twilio makes to an application, signed as Twilio signs them (docs/protocols.md
//! §2.5): the voice webhook and other TwiML fetches (`action`, `<Redirect>`, a call's `Url`)
//! and status callbacks.
//!
//! A POST carries the parameters as a form body and is signed over the URL plus the sorted
//! parameters; a GET carries them in the query string and is signed over the full URL alone.
//! The signature itself is `switchboard_twilio::signature::RequestValidator::compute`.

use std::time::Duration;

use reqwest::header::HeaderValue;
use switchboard_twilio::rest::API_VERSION;
use switchboard_twilio::signature::{RequestValidator, HEADER};
use switchboard_twilio::vocabulary::{CallDirection, CallStatus, HttpMethod};
use switchboard_twilio::webhooks::VoiceWebhook;

/// What Twilio sends as its user agent.
const USER_AGENT: &str = "TwilioProxy/1.1";

/// A signed request's answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// Why a signed request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The URL does not parse.
    #[error("invalid url {url}")]
    Url {
        /// The URL.
        url: String,
    },
    /// Connecting, sending or reading failed, or the timeout passed. The message carries
    /// the whole chain of causes: reqwest's own says only "error sending request", and
    /// the cause (an untrusted certificate, a refused connection) is what matters.
    #[error("request to {url} failed: {}", causes(.source))]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
}

/// Sends `params` to `url` with `method`, signed with `validator`, within `timeout`.
/// Returns the status and body of any answer (the caller decides what a non-2xx means).
pub async fn send_signed(
    client: &reqwest::Client,
    validator: &RequestValidator,
    url: &str,
    method: HttpMethod,
    params: &[(String, String)],
    timeout: Duration,
) -> Result<Answer, RequestError> {
    let request = match method {
        HttpMethod::Post => {
            let signature = validator.compute(url, params);
            client
                .post(url)
                .header(HEADER, header_value(&signature))
                .form(params)
        }
        HttpMethod::Get => {
            let full =
                reqwest::Url::parse_with_params(url, params).map_err(|_| RequestError::Url {
                    url: url.to_owned(),
                })?;
            let signature = validator.compute::<&str, &str>(full.as_str(), &[]);
            client.get(full).header(HEADER, header_value(&signature))
        }
    };
    let transport = |source| RequestError::Transport {
        url: url.to_owned(),
        source,
    };
    let response = request
        .header(reqwest::header::USER_AGENT, USER_AGENT)
        .timeout(timeout)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(transport)?;
    Ok(Answer { status, body })
}

/// Resolves `reference` against the document it appeared in, as Twilio resolves relative
/// `action`, `<Redirect>` and `<Stream url>` values. Absolute references are returned as
/// written.
pub fn resolve(reference: &str, base: Option<&str>) -> Option<String> {
    if reference.contains("://") {
        return Some(reference.to_owned());
    }
    let base = reqwest::Url::parse(base?).ok()?;
    base.join(reference).ok().map(String::from)
}

/// The parameters every request about a call carries (docs/protocols.md §2.2),
/// `Caller`/`Called` included, as Twilio sends them.
pub fn voice_webhook(
    call_sid: &str,
    account_sid: &str,
    from: &str,
    to: &str,
    status: CallStatus,
    direction: CallDirection,
) -> VoiceWebhook {
    VoiceWebhook {
        call_sid: call_sid.to_owned(),
        account_sid: account_sid.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        call_status: status,
        direction,
        api_version: Some(API_VERSION.to_owned()),
        caller: Some(from.to_owned()),
        called: Some(to.to_owned()),
        forwarded_from: None,
        caller_name: None,
        parent_call_sid: None,
        call_token: None,
        stir_verstat: None,
        answered_by: None,
        from_city: None,
        from_state: None,
        from_zip: None,
        from_country: None,
        to_city: None,
        to_state: None,
        to_zip: None,
        to_country: None,
    }
}

/// The WebSocket URL Twilio opens for a `<Stream url>`: resolved against the document's
/// URL like any reference, then `https://`/`http://` become `wss://`/`ws://`
/// (WebSocket URLs are kept as written).
pub fn stream_socket_url(reference: &str, base: Option<&str>) -> Option<String> {
    let url = resolve(reference, base)?;
    Some(if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url
    })
}

/// `err` and its sources, joined with `: `.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn header_value(signature: &str) -> HeaderValue {
    // Base64 is always a valid header value.
    HeaderValue::from_str(signature).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_references_resolve_against_the_document() {
        let base = Some("http://127.0.0.1:8080/api/twilio/voice?x=1");
        assert_eq!(
            resolve("/api/done", base).as_deref(),
            Some("http://127.0.0.1:8080/api/done")
        );
        assert_eq!(
            resolve("next", base).as_deref(),
            Some("http://127.0.0.1:8080/api/twilio/next")
        );
        assert_eq!(
            resolve("wss://h/m", None).as_deref(),
            Some("wss://h/m"),
            "absolute as written"
        );
        assert_eq!(resolve("next", None), None);
    }

    #[test]
    fn stream_urls_take_the_websocket_scheme_of_the_document() {
        let voice = Some("http://127.0.0.1:8080/api/twilio/voice");
        assert_eq!(
            stream_socket_url("/api/twilio/media-stream/c1", voice).as_deref(),
            Some("ws://127.0.0.1:8080/api/twilio/media-stream/c1")
        );
        assert_eq!(
            stream_socket_url(
                "media-stream/c1",
                Some("https://sb.example.com/api/twilio/voice")
            )
            .as_deref(),
            Some("wss://sb.example.com/api/twilio/media-stream/c1")
        );
        assert_eq!(
            stream_socket_url("wss://other.example.com/m", voice).as_deref(),
            Some("wss://other.example.com/m")
        );
    }
}
