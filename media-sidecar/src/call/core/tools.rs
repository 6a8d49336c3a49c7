//! Tool calls: from the model to the control plane and back (docs/control-plane.md, "The
//! call stream"), and the model's transfer to a human.
//!
//! Tools run from `response.done`, and only when its status is `completed`:
//! `response.function_call_arguments.done` also fires for cancelled responses
//! (docs/protocols.md §3.3), and `response.done.output` names every call in both dialects (beta's
//! `arguments.done` has no `name`). Each call becomes a FUNCTION_CALL item and a `ToolCall`
//! request in the outbox; each `ToolResult` a `function_call_output` to the model and a
//! FUNCTION_CALL_OUTPUT item. One `response.create` follows once every call of the batch is
//! answered — deferred while another response is active, which would refuse it
//! (`conversation_already_has_active_response`). A tool call the outbox has no room for
//! (`tool.outbox_full`), or the control plane will not run (`tool.too_many_in_flight`), is
//! answered with an error at once, and the conversation goes on.
//!
//! `transfer_to_human` is no webhook: it becomes a `TransferRequest` (with a request id the
//! control plane acts on once) and the model waits for its answer. Accepted: a HANDOFF item
//! is logged and the model is told the transfer is under way (so it says a short goodbye);
//! a Twilio `stop` then ends the call `handed-off`. Refused (no handoff target, Twilio
//! failed, the call ended): the model gets the failure as the function call's result and
//! the call goes on with the AI. Calls and transfers left unanswered past
//! `CallLimits::tool_timeout_ms` are answered with an error so the model does not wait
//! forever; a late answer is then ignored. Requests wait in the outbox while the control
//! stream is down and go again after a reconnect: `tool_call_id` and the request id let the
//! control plane (and a webhook) deduplicate.

use serde_json::Value;
use switchboard_proto::v1::{
    connect_request::Message as Out, CallError, ConnectRequest, HandoffTarget, ToolCall,
    ToolResult, TransferRequest,
};
use switchboard_realtime::{ClientEvent, Item, Response, ResponseStatus};

use super::{capped, log, Actions, CallCore, EndKind, Ending};
use crate::call::outbox::RequestKind;
use crate::call::session_config::TRANSFER_TO_HUMAN;

/// What the model hears when a transfer was accepted.
const TRANSFERRING: &str = r#"{"status":"transferring","say":"Tell the caller briefly that you are transferring them to a person now."}"#;

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

/// The model's `transfer_to_human`, waiting for the control plane's answer.
#[derive(Debug)]
pub(super) struct PendingTransfer {
    pub(super) request_id: String,
    /// The model's function call, answered with the outcome.
    tool_call_id: String,
    reason: String,
    target: Option<HandoffTarget>,
    deadline_ms: u64,
}

impl ToolCalls {
    /// Forgets every call (the call ended: nobody waits for the results).
    pub(super) fn clear(&mut self) {
        self.pending.clear();
        self.respond_when_idle = false;
    }
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
        if response.status == Some(ResponseStatus::Completed) && !self.saying_goodbye() {
            for item in response.function_calls() {
                self.start_tool_call(item, now_ms, out);
            }
        }
        let idle = self.realtime.active_response.is_none() && self.tools.pending.is_empty();
        if self.tools.respond_when_idle && idle && !self.saying_goodbye() {
            self.tools.respond_when_idle = false;
            ClientEvent::response_create().encode_into(self.dialect, out.to_openai.next_buffer());
        }
    }

    /// A `ToolResult` from the control plane.
    pub(super) fn on_tool_result(&mut self, result: ToolResult, now_ms: u64, out: &mut Actions) {
        self.outbox
            .answer(RequestKind::ToolCall, &result.tool_call_id);
        if self.ended.is_some() {
            // The model is gone: nobody waits for the result.
            return;
        }
        let Some(index) = self
            .tools
            .pending
            .iter()
            .position(|p| p.call.tool_call_id == result.tool_call_id)
        else {
            // Answered already (timed out, a copy) or never asked: nothing waits for it.
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

    /// The control plane's answer to the model's transfer: accepted, or refused with
    /// `error` (see the module docs).
    pub(super) fn on_transfer_answer(
        &mut self,
        request_id: &str,
        refused: Option<CallError>,
        now_ms: u64,
        out: &mut Actions,
    ) {
        if self.ended.is_some()
            || self
                .transfer
                .as_ref()
                .is_none_or(|t| t.request_id != request_id)
        {
            return;
        }
        match refused {
            None => {
                self.log_model_handoff(now_ms, out);
                let tool_call_id = self
                    .transfer
                    .take()
                    .map(|t| t.tool_call_id)
                    .unwrap_or_default();
                self.answer_tool_call(&tool_call_id, TRANSFERRING, None, now_ms, out);
            }
            Some(error) => self.fail_transfer(&error, now_ms, out),
        }
    }

    /// Answers the calls (and the transfer) whose deadline passed with an error.
    pub(super) fn expire_tool_calls(&mut self, now_ms: u64, out: &mut Actions) {
        while let Some(index) = self
            .tools
            .pending
            .iter()
            .position(|p| now_ms >= p.deadline_ms)
        {
            let expired = self.tools.pending.swap_remove(index);
            self.outbox
                .answer(RequestKind::ToolCall, &expired.call.tool_call_id);
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
        if self
            .transfer
            .as_ref()
            .is_some_and(|t| now_ms >= t.deadline_ms)
        {
            self.counters.tool_timeouts += 1;
            let error = CallError {
                code: "transfer.timeout".to_owned(),
                message: "the transfer was not answered in time".to_owned(),
            };
            self.fail_transfer(&error, now_ms, out);
        }
    }

    /// Logs the model's handoff once it is under way (at most once per transfer).
    pub(super) fn log_model_handoff(&mut self, now_ms: u64, out: &mut Actions) {
        let Some(transfer) = self.transfer.as_ref() else {
            return;
        };
        let item = log::handoff("model", &transfer.reason, transfer.target.as_ref(), now_ms);
        self.log(item, now_ms, out);
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
            return self.request_transfer(call_id, arguments, now_ms, out);
        }
        let call = ToolCall {
            tool_call_id: call_id.to_owned(),
            name: name.to_owned(),
            arguments_json: arguments.to_owned(),
        };
        let request = ConnectRequest {
            message: Some(Out::ToolCall(call.clone())),
        };
        if let Err(full) = self
            .outbox
            .push_request(RequestKind::ToolCall, call_id, request)
        {
            let error = CallError {
                code: "tool.outbox_full".to_owned(),
                message: format!("tool {name} not run: {full}"),
            };
            let output = serde_json::json!({"error": error.message}).to_string();
            return self.answer_tool_call(call_id, &output, Some(&error), now_ms, out);
        }
        self.counters.tool_calls += 1;
        self.tools.pending.push(PendingCall {
            call,
            deadline_ms: now_ms.saturating_add(self.limits.tool_timeout_ms),
        });
        self.flush_control(now_ms, out);
    }

    /// The model called `transfer_to_human`: asks the control plane, once.
    fn request_transfer(&mut self, call_id: &str, arguments: &str, now_ms: u64, out: &mut Actions) {
        if self.transfer.is_some() {
            let output = r#"{"status":"failed","error":"a transfer is already under way"}"#;
            return self.answer_tool_call(call_id, output, None, now_ms, out);
        }
        let reason = serde_json::from_str::<Value>(arguments)
            .ok()
            .and_then(|args| args.get("reason")?.as_str().map(|r| capped(r).to_owned()))
            .unwrap_or_default();
        let target = self.agent.handoff_target.clone();
        let request_id = self.next_request_id("transfer");
        let request = ConnectRequest {
            message: Some(Out::Transfer(TransferRequest {
                target: target.clone(),
                reason: reason.clone(),
                request_id: request_id.clone(),
            })),
        };
        // Always kept: at most one at a time.
        let _ = self
            .outbox
            .push_request(RequestKind::Transfer, &request_id, request);
        self.handoff_requested = true;
        self.transfer = Some(PendingTransfer {
            request_id,
            tool_call_id: call_id.to_owned(),
            reason,
            target,
            deadline_ms: now_ms.saturating_add(self.limits.tool_timeout_ms),
        });
        self.flush_control(now_ms, out);
    }

    /// The transfer will not happen: the model hears why and the call goes on.
    fn fail_transfer(&mut self, error: &CallError, now_ms: u64, out: &mut Actions) {
        let Some(transfer) = self.transfer.take() else {
            return;
        };
        self.handoff_requested = false;
        self.outbox
            .answer(RequestKind::Transfer, &transfer.request_id);
        let output = serde_json::json!({
            "status": "failed",
            "error": error.message,
            "say": "Tell the caller that a transfer to a person is not possible right now, \
                    and keep helping them yourself.",
        })
        .to_string();
        self.answer_tool_call(&transfer.tool_call_id, &output, Some(error), now_ms, out);
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
        if !self.tools.pending.is_empty() || self.transfer.is_some() || self.saying_goodbye() {
            // More answers to wait for; or the goodbye is the last response of the call.
            return;
        }
        if self.realtime.active_response.is_some() {
            self.tools.respond_when_idle = true;
        } else {
            ClientEvent::response_create().encode_into(self.dialect, out.to_openai.next_buffer());
        }
    }
}
