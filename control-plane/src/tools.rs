//! Tool webhooks: when the model calls a tool an agent declared, the control plane
//! POSTs the arguments to the tool's URL with a deadline and hands the reply back to
//! the sidecar. A failure becomes a result the model can read, never a stuck call.
//!
//! With a signing secret (`SWITCHBOARD_TOOL_SIGNING_SECRET`), every request carries
//! `X-Switchboard-Timestamp: <unix seconds>` and
//! `X-Switchboard-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, so a
//! tool can check the call came from us and is fresh.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

use crate::domain::{CallError, Tool};

/// Deadline when the tool declares none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest reply passed on to the model.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    /// JSON text for the model.
    pub output_json: String,
    /// Set when the webhook failed.
    pub error: Option<CallError>,
}

impl ToolOutcome {
    pub fn failed(code: &str, message: String) -> Self {
        let output_json = serde_json::json!({ "error": message }).to_string();
        Self {
            output_json,
            error: Some(CallError {
                code: code.to_owned(),
                message,
            }),
        }
    }
}

/// Header carrying the request's unix time, covered by the signature.
pub const TIMESTAMP_HEADER: &str = "x-switchboard-timestamp";
/// Header carrying `v1=<hex HMAC-SHA256>` over `"<timestamp>.<body>"`.
pub const SIGNATURE_HEADER: &str = "x-switchboard-signature";

/// Calls tool webhooks. Cheap to clone (one shared connection pool).
#[derive(Debug, Clone, Default)]
pub struct ToolInvoker {
    client: reqwest::Client,
    signing_secret: Option<Secret>,
}

/// The signature header value of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl ToolInvoker {
    /// Signs every request with `secret` when one is given.
    pub fn new(signing_secret: Option<Secret>) -> Self {
        Self {
            client: reqwest::Client::new(),
            signing_secret,
        }
    }

    /// POSTs `{"call_id", "tool_call_id", "name", "arguments"}` to the tool's webhook.
    /// A 2xx JSON reply is the output; other text is wrapped as a JSON string.
    pub async fn invoke(
        &self,
        tool: &Tool,
        call_id: &str,
        tool_call_id: &str,
        arguments_json: &str,
    ) -> ToolOutcome {
        let arguments: serde_json::Value = match serde_json::from_str(arguments_json) {
            Ok(value) => value,
            Err(e) => {
                return ToolOutcome::failed(
                    "tool.bad_arguments",
                    format!("arguments are not JSON: {e}"),
                )
            }
        };
        let timeout = if tool.timeout_ms == 0 {
            DEFAULT_TIMEOUT
        } else {
            Duration::from_millis(tool.timeout_ms)
        };
        let body = serde_json::json!({
            "call_id": call_id,
            "tool_call_id": tool_call_id,
            "name": tool.name,
            "arguments": arguments,
        });
        let body = body.to_string();
        let mut request = self
            .client
            .post(&tool.webhook_url)
            .timeout(timeout)
            .header("content-type", "application/json");
        if let Some(secret) = &self.signing_secret {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    sign(secret.expose(), timestamp, body.as_bytes()),
                );
        }
        let sent = request.body(body).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return ToolOutcome::failed(
                    "tool.timeout",
                    format!("tool {} did not answer within {timeout:?}", tool.name),
                )
            }
            Err(e) => {
                return ToolOutcome::failed("tool.unreachable", format!("tool {}: {e}", tool.name))
            }
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => {
                return ToolOutcome::failed(
                    "tool.unreachable",
                    format!("tool {}: reading reply: {e}", tool.name),
                )
            }
        };
        if !status.is_success() {
            return ToolOutcome::failed(
                "tool.http_status",
                format!("tool {} answered HTTP {status}", tool.name),
            );
        }
        if text.len() > MAX_REPLY_BYTES {
            return ToolOutcome::failed(
                "tool.reply_too_large",
                format!("tool {} replied with {} bytes", tool.name, text.len()),
            );
        }
        let output_json = if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
            text
        } else {
            serde_json::Value::String(text).to_string()
        };
        ToolOutcome {
            output_json,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook that records the headers and body it got and answers `{"ok":true}`.
    async fn webhook() -> (
        String,
        std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    ) {
        type Seen = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>;
        async fn handle(
            axum::extract::State(seen): axum::extract::State<Seen>,
            headers: axum::http::HeaderMap,
            body: String,
        ) -> &'static str {
            seen.lock().unwrap().push((headers, body));
            r#"{"ok":true}"#
        }
        let seen: Seen = Default::default();
        let app = axum::Router::new()
            .route("/tool", axum::routing::post(handle))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/tool", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn tool(url: &str) -> Tool {
        Tool {
            name: "lookup".into(),
            description: String::new(),
            parameters_json_schema: r#"{"type":"object"}"#.into(),
            webhook_url: url.into(),
            timeout_ms: 2_000,
        }
    }

    #[tokio::test]
    async fn signed_requests_carry_a_signature_the_tool_can_check() {
        let (url, seen) = webhook().await;
        let invoker = ToolInvoker::new(Some(Secret::new("tool-secret")));
        let outcome = invoker
            .invoke(&tool(&url), "call-1", "fc_1", r#"{"id":"42"}"#)
            .await;
        assert_eq!(
            outcome,
            ToolOutcome {
                output_json: r#"{"ok":true}"#.into(),
                error: None
            }
        );
        let (headers, body) = seen.lock().unwrap()[0].clone();
        let timestamp: u64 = headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
        let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(signature, sign("tool-secret", timestamp, body.as_bytes()));
        assert_ne!(signature, sign("other-secret", timestamp, body.as_bytes()));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["arguments"]["id"], "42");
        assert_eq!(json["call_id"], "call-1");
    }

    #[tokio::test]
    async fn without_a_secret_nothing_is_signed() {
        let (url, seen) = webhook().await;
        ToolInvoker::default()
            .invoke(&tool(&url), "call-1", "fc_1", "{}")
            .await;
        let (headers, _) = seen.lock().unwrap()[0].clone();
        assert!(headers.get(SIGNATURE_HEADER).is_none());
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            sign("k", 1_700_000_000, b"{}"),
            "v1=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
    }
}
