//! Tool webhooks: when the model calls a tool an agent declared, the control plane
//! POSTs the arguments to the tool's URL with a deadline and hands the reply back to
//! the sidecar. A failure becomes a result the model can read, never a stuck call.
//!
//! Webhooks run beside the call stream, bounded per call and per replica
//! (`tools/limits.rs`): beyond a bound the model gets an error result at once.
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

mod limits;

pub use limits::{
    LimitReached, ToolLimits, ToolPermit, ToolSlots, DEFAULT_PER_CALL, DEFAULT_PER_REPLICA,
};

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
    /// A tool call that was not started because a bound was reached.
    pub fn too_many(reached: LimitReached) -> Self {
        Self::failed("tool.too_many_in_flight", reached.to_string())
    }

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

/// Calls tool webhooks. Cheap to clone (one shared connection pool, one set of slots).
#[derive(Debug, Clone, Default)]
pub struct ToolInvoker {
    client: reqwest::Client,
    signing_secret: Option<Secret>,
    slots: ToolSlots,
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
    /// Signs every request with `secret` when one is given; trusts the built-in roots.
    pub fn new(signing_secret: Option<Secret>) -> Self {
        Self::with_client(signing_secret, reqwest::Client::new())
    }

    /// As [`ToolInvoker::new`], sending through `client` (from `http_client::build`,
    /// which adds `SWITCHBOARD_TOOL_CA_FILE`'s CAs to the roots).
    pub fn with_client(signing_secret: Option<Secret>, client: reqwest::Client) -> Self {
        Self {
            client,
            signing_secret,
            slots: ToolSlots::default(),
        }
    }

    /// Bounds the webhooks running at once by `limits` (default: [`ToolLimits::default`]).
    pub fn with_limits(self, limits: ToolLimits) -> Self {
        Self {
            slots: ToolSlots::new(limits),
            ..self
        }
    }

    /// The slots every webhook run takes one of ([`ToolSlots::try_acquire`]).
    pub fn slots(&self) -> &ToolSlots {
        &self.slots
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
                // The chain, for the reason: "invalid peer certificate: UnknownIssuer".
                let reason = crate::http_client::error_chain(&e);
                return ToolOutcome::failed(
                    "tool.unreachable",
                    format!("tool {}: {reason}", tool.name),
                );
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
mod tests;
