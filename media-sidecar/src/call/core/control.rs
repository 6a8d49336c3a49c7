//! The control-plane side of the core: `ConnectResponse`s in (the per-call gRPC stream).
//!
//! Acks and nacks go to the outbox; tool results back to the model; commands end the
//! call. A `CallConfig` arriving on a live call means the stream was re-established: the
//! outbox drops what the new config says is stored and re-sends the rest, unanswered tool
//! calls and the last usage go again, and a final status not yet known to be stored is
//! held for re-sending.

use switchboard_proto::v1::{command, connect_response::Message as In, ConnectResponse};

use super::{Actions, CallCore};

impl CallCore {
    /// One message from the control plane's per-call stream.
    ///
    /// `Ack`/`Nack` → the outbox (and whatever batches are due); `ToolResult` →
    /// `function_call_output` + `response.create` to the model and a FUNCTION_CALL_OUTPUT
    /// item; `Command::HangUp` → the call ends completed; `Command::HandOff` → it ends
    /// handed off; `CallConfig` → [`CallCore::on_control_reconnected`].
    pub fn on_control(&mut self, message: ConnectResponse, now_ms: u64, out: &mut Actions) {
        match message.message {
            Some(In::Config(config)) => {
                self.on_control_reconnected(config.stored_through_seq, now_ms, out);
            }
            Some(In::Ack(ack)) => {
                self.outbox.on_ack(ack.stored_through_seq);
                self.flush_control(now_ms, out);
            }
            Some(In::Nack(nack)) => {
                self.outbox.on_nack(nack.expected_seq, now_ms);
                self.flush_control(now_ms, out);
            }
            Some(In::ToolResult(result)) if self.ended.is_none() => {
                self.on_tool_result(result, now_ms, out);
            }
            // The model is gone: nobody waits for the result.
            Some(In::ToolResult(_)) => {}
            Some(In::Command(command)) => match command.command {
                Some(command::Command::HangUp(hang_up)) => {
                    self.hang_up(&hang_up.reason, now_ms, out);
                }
                Some(command::Command::HandOff(hand_off)) => {
                    self.hand_off(&hand_off.reason, hand_off.target, now_ms, out);
                }
                None => {}
            },
            None => {}
        }
    }

    /// The control stream was re-established (after `Hello`) and the control plane says
    /// every log item up to `stored_through_seq` is stored: re-sends the rest, the
    /// unanswered tool calls, the usage so far, and (once the log is drained) the final
    /// status if the call has ended.
    pub fn on_control_reconnected(
        &mut self,
        stored_through_seq: u64,
        now_ms: u64,
        out: &mut Actions,
    ) {
        self.counters.items_lost += self.outbox.reset_after_reconnect(stored_through_seq);
        if self.ended.is_none() {
            self.resend_tool_calls(out);
        }
        if self.usage.last_sent_at.is_some() {
            self.send_usage(now_ms, out);
        }
        if let Some(ended) = self.ended.as_mut() {
            ended.status_sent = false;
        }
        self.flush_control(now_ms, out);
    }
}
