//! Tool webhooks: when the model calls a tool an agent declared, the control plane
//! POSTs the arguments to the tool's URL with a deadline and hands the reply back to
//! the sidecar. A failure becomes a result the model can read, never a stuck call.

use std::time::Duration;

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

/// Calls tool webhooks. Cheap to clone (one shared connection pool).
#[derive(Debug, Clone, Default)]
pub struct ToolInvoker {
    client: reqwest::Client,
}

impl ToolInvoker {
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
        let sent = self
            .client
            .post(&tool.webhook_url)
            .timeout(timeout)
            .json(&body)
            .send()
            .await;
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
