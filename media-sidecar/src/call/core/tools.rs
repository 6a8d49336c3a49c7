//! Tool calls: from the model to the control plane and back (docs/control-plane.md, "The
//! call stream").
//!
//! Tools run from `response.done`, and only when its status is `completed`:
//! `response.function_call_arguments.done` also fires for cancelled responses
//! (docs/protocols.md §3.3), and `response.done.output` names every call in both dialects (beta's
//! `arguments.done` has no `name`). Each call becomes a FUNCTION_CALL item and a `ToolCall`
//! to the control plane; each `ToolResult` a `function_call_output` to the model and a
//! FUNCTION_CALL_OUTPUT item. One `response.create` follows once every call of the batch is
//! answered — deferred while another response is active, which would refuse it
//! (`conversation_already_has_active_response`).
//!
//! `transfer_to_human` is not sent to the control plane (it is no webhook): it logs a
//! HANDOFF item, answers the model at once so it tells the caller, and asks the driver to
//! hand off (`Actions::handoff`). Calls left unanswered past `CallLimits::tool_timeout_ms`
//! are answered with an error so the model does not wait forever; a late result is then
//! ignored. After a control-stream reconnect unanswered calls are sent again: the old
//! stream's results are lost with it, and `tool_call_id` lets a webhook deduplicate.

use serde_json::Value;
use switchboard_proto::v1::{
    connect_request::Message as Out, CallError, ConnectRequest, HandoffTarget, ToolCall, ToolResult,
};
use switchboard_realtime::{ClientEvent, Item, Response, ResponseStatus};

use super::{log, Actions, CallCore, EndKind, Ending};
use crate::call::actions::HandoffRequest;
use crate::call::session_config::TRANSFER_TO_HUMAN;

/// Tool calls waiting for their result.
#[derive(Debug, Default)]
pub(super) struct ToolCalls {
    pending: Vec<PendingCall>,
    /// Every call is answered; `response.create` waits for the active response to end.
    respond_when_idle: bool,
}

#[derive(Debug)]
struct PendingCall {
    call: ToolCall,
    deadline_ms: u64,
}

impl CallCore {
    /// `Command::HandOff` from the control plane, or the driver carrying out the model's
    /// transfer: the call ends handed off. A HANDOFF item is logged unless the model's
    /// request already logged one.
    pub fn hand_off(
        &mut self,
        reason: &str,
        target: Option<HandoffTarget>,
        now_ms: u64,
        out: &mut Actions,
    ) {
        if self.ended.is_some() {
            return;
        }
        if !self.handoff_requested {
            let target = target.as_ref().or(self.agent.handoff_target.as_ref());
            let item = log::handoff("control_plane", reason, target, now_ms);
            self.log(item, now_ms, out);
        }
        let ending = Ending {
            handoff_target: target,
            ..Ending::new(EndKind::HandedOff, "handed_off")
        };
        self.end_call(ending, now_ms, out);
    }

    /// Starts the tool calls of a finished response (see the module docs).
    pub(super) fn on_response_tool_calls(
        &mut self,
        response: &Response,
        now_ms: u64,
        out: &mut Actions,
    ) {
        if response.status == Some(ResponseStatus::Completed) {
            for item in response.function_calls() {
                self.start_tool_call(item, now_ms, out);
            }
        }
        let idle = self.realtime.active_response.is_none() && self.tools.pending.is_empty();
        if self.tools.respond_when_idle && idle {
            self.tools.respond_when_idle = false;
            ClientEvent::response_create().encode_into(self.dialect, out.to_openai.next_buffer());
        }
    }

    /// A `ToolResult` from the control plane.
    pub(super) fn on_tool_result(&mut self, result: ToolResult, now_ms: u64, out: &mut Actions) {
        let Some(index) = self
            .tools
            .pending
            .iter()
            .position(|p| p.call.tool_call_id == result.tool_call_id)
        else {
            // Answered already (timed out) or never asked: nothing waits for it.
            return;
        };
        self.tools.pending.swap_remove(index);
        let output = match (&result.output_json, &result.error) {
            (output, _) if !output.is_empty() => output.clone(),
            (_, Some(error)) => serde_json::json!({"error": error.message}).to_string(),
            (_, None) => "{}".to_owned(),
        };
        self.answer_tool_call(
            &result.tool_call_id,
            &output,
            result.error.as_ref(),
            now_ms,
            out,
        );
    }

    /// Answers the calls whose deadline passed with an error.
    pub(super) fn expire_tool_calls(&mut self, now_ms: u64, out: &mut Actions) {
        while let Some(index) = self
            .tools
            .pending
            .iter()
            .position(|p| now_ms >= p.deadline_ms)
        {
            let expired = self.tools.pending.swap_remove(index);
            self.counters.tool_timeouts += 1;
            let error = CallError {
                code: "tool.timeout".to_owned(),
                message: format!("tool {} did not answer in time", expired.call.name),
            };
            let output = serde_json::json!({"error": error.message}).to_string();
            self.answer_tool_call(
                &expired.call.tool_call_id,
                &output,
                Some(&error),
                now_ms,
                out,
            );
        }
    }

    /// Sends the unanswered tool calls again (after a control-stream reconnect).
    pub(super) fn resend_tool_calls(&self, out: &mut Actions) {
        for pending in &self.tools.pending {
            out.to_control.push(ConnectRequest {
                message: Some(Out::ToolCall(pending.call.clone())),
            });
        }
    }

    fn start_tool_call(&mut self, item: &Item, now_ms: u64, out: &mut Actions) {
        let call_id = item.call_id.as_deref().unwrap_or_default();
        if call_id.is_empty() {
            return;
        }
        let name = item.name.as_deref().unwrap_or_default();
        let arguments = item.arguments.as_deref().unwrap_or("{}");
        let provider_item_id = item.id.as_deref().unwrap_or_default();
        let logged = log::function_call(call_id, name, arguments, provider_item_id, now_ms);
        self.log(logged, now_ms, out);
        if name == TRANSFER_TO_HUMAN {
            return self.request_handoff(call_id, arguments, now_ms, out);
        }
        let call = ToolCall {
            tool_call_id: call_id.to_owned(),
            name: name.to_owned(),
            arguments_json: arguments.to_owned(),
        };
        out.to_control.push(ConnectRequest {
            message: Some(Out::ToolCall(call.clone())),
        });
        self.counters.tool_calls += 1;
        self.tools.pending.push(PendingCall {
            call,
            deadline_ms: now_ms.saturating_add(self.limits.tool_timeout_ms),
        });
    }

    fn request_handoff(&mut self, call_id: &str, arguments: &str, now_ms: u64, out: &mut Actions) {
        let reason = serde_json::from_str::<Value>(arguments)
            .ok()
            .and_then(|args| args.get("reason")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let target = self.agent.handoff_target.clone();
        let item = log::handoff("model", &reason, target.as_ref(), now_ms);
        self.log(item, now_ms, out);
        self.handoff_requested = true;
        out.handoff = Some(HandoffRequest { reason, target });
        let output = r#"{"status":"transferring","say":"Tell the caller briefly that you are transferring them to a person now."}"#;
        self.answer_tool_call(call_id, output, None, now_ms, out);
    }

    /// Gives the model a tool's output, logs it, and asks for a response once nothing else
    /// is pending.
    fn answer_tool_call(
        &mut self,
        call_id: &str,
        output: &str,
        error: Option<&CallError>,
        now_ms: u64,
        out: &mut Actions,
    ) {
        ClientEvent::item_create(Item::function_call_output(call_id, output))
            .encode_into(self.dialect, out.to_openai.next_buffer());
        self.log(
            log::function_call_output(call_id, output, error, now_ms),
            now_ms,
            out,
        );
        if !self.tools.pending.is_empty() {
            return;
        }
        if self.realtime.active_response.is_some() {
            self.tools.respond_when_idle = true;
        } else {
            ClientEvent::response_create().encode_into(self.dialect, out.to_openai.next_buffer());
        }
    }
}
