//! The control-plane side of the core: `ConnectResponse`s in (the per-call gRPC stream),
//! and the stream's own ups and downs.
//!
//! Acks and nacks go to the outbox; tool results back to the model; request answers to
//! whatever waited for them (the model's transfer, the fallback, the final status);
//! commands end the call. When the stream breaks ([`CallCore::on_control_lost`]) nothing
//! more is sent; a `CallConfig` arriving on a live call means the stream was
//! re-established: the outbox drops what the new config says is stored and sends the
//! rest, every unanswered request again, and the usage so far.

use switchboard_proto::v1::request_answer::Outcome;
use switchboard_proto::v1::{
    command, connect_request::Message as Out, connect_response::Message as In, CallError,
    CallStatus, ConnectRequest, ConnectResponse, RequestAnswer,
};

use super::{Actions, CallCore};
use crate::call::actions::Refusal;
use crate::call::outbox::RequestKind;

impl CallCore {
    /// One message from the control plane's per-call stream.
    ///
    /// `Ack`/`Nack` → the outbox (and whatever batches are due); `ToolResult` →
    /// `function_call_output` + `response.create` to the model and a FUNCTION_CALL_OUTPUT
    /// item; `RequestAnswer` → [`CallCore::on_request_answer`]; `Command::HangUp` → the
    /// call ends completed; `Command::HandOff` → it ends handed off; `CallConfig` →
    /// [`CallCore::on_control_reconnected`].
    pub fn on_control(&mut self, message: ConnectResponse, now_ms: u64, out: &mut Actions) {
        match message.message {
            Some(In::Config(config)) => {
                self.on_control_reconnected(
                    config.stored_through_seq,
                    config.answers_requests,
                    now_ms,
                    out,
                );
            }
            Some(In::Ack(ack)) => {
                self.outbox.on_ack(ack.stored_through_seq);
                self.flush_control(now_ms, out);
            }
            Some(In::Nack(nack)) => {
                self.outbox.on_nack(nack.expected_seq, now_ms);
                self.flush_control(now_ms, out);
            }
            Some(In::ToolResult(result)) => self.on_tool_result(result, now_ms, out),
            Some(In::Answer(answer)) => self.on_request_answer(answer, now_ms, out),
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

    /// The control stream broke: from now on everything waits in the outbox until the
    /// stream is back ([`CallCore::on_control_reconnected`]).
    pub fn on_control_lost(&mut self) {
        self.outbox.on_link_lost();
    }

    /// The control stream was re-established (after `Hello`) and the control plane says
    /// every log item up to `stored_through_seq` is stored: sends the rest, every
    /// unanswered request (tool calls, the transfer, the fallback, the final status), and
    /// the usage so far. `answers_requests` is the new control plane's
    /// `CallConfig.answers_requests`.
    pub fn on_control_reconnected(
        &mut self,
        stored_through_seq: u64,
        answers_requests: bool,
        now_ms: u64,
        out: &mut Actions,
    ) {
        self.counters.items_lost += self.outbox.reset_after_reconnect(stored_through_seq);
        self.answers_requests = answers_requests;
        if self.usage.last_sent_at.is_some() || self.usage.dirty {
            self.send_usage(now_ms, out);
        }
        self.flush_control(now_ms, out);
    }

    /// A `RequestAnswer`: a retry holds the request back for a while; an acceptance or a
    /// refusal settles it — the model hears the transfer's outcome, a refused fallback
    /// ends the call (the driver closes the Twilio socket: nobody else will), an answered
    /// status settles the call. An answer to nothing waiting (a copy's) changes nothing.
    pub fn on_request_answer(&mut self, answer: RequestAnswer, now_ms: u64, out: &mut Actions) {
        let Some(kind) = request_kind(&answer.request_id) else {
            return;
        };
        let id = answer.request_id.as_str();
        if answer.outcome() == Outcome::Retry {
            self.outbox.retry_later(kind, id, now_ms);
            return;
        }
        // An answer that says nothing counts as a refusal: the request is not done.
        let refused = (answer.outcome() != Outcome::Accepted).then(|| {
            answer.error.clone().unwrap_or_else(|| CallError {
                code: "request.refused".to_owned(),
                message: format!("request {id} refused"),
            })
        });
        if !self.outbox.answer(kind, id) {
            return;
        }
        if let Some(error) = &refused {
            out.refusals.push(Refusal {
                request_id: id.to_owned(),
                error: error.clone(),
            });
        }
        match kind {
            RequestKind::Transfer => self.on_transfer_answer(id, refused, now_ms, out),
            RequestKind::Fallback => {
                if refused.is_some() {
                    // The caller will hear no fallback: hang up, and record it as failed.
                    out.close_twilio = true;
                    if let Some(ended) = self.ended.as_mut() {
                        ended.status.status = CallStatus::Failed.into();
                    }
                }
            }
            RequestKind::Status => {
                if let Some(ended) = self.ended.as_mut() {
                    ended.status_answered = true;
                }
            }
            RequestKind::ToolCall => {}
        }
        self.flush_control(now_ms, out);
    }

    /// An older control plane does not answer requests: those just sent (from
    /// `out.to_control[first..]`) count as accepted, as they did before answers existed.
    pub(super) fn assume_answered(&mut self, first: usize, now_ms: u64, out: &mut Actions) {
        let sent: Vec<String> = out.to_control[first..]
            .iter()
            .filter_map(|ConnectRequest { message }| match message {
                Some(Out::Transfer(r)) => Some(r.request_id.clone()),
                Some(Out::Fallback(r)) => Some(r.request_id.clone()),
                Some(Out::Status(r)) => Some(r.request_id.clone()),
                _ => None,
            })
            .collect();
        for request_id in sent {
            let accepted = RequestAnswer {
                request_id,
                outcome: Outcome::Accepted.into(),
                error: None,
            };
            self.on_request_answer(accepted, now_ms, out);
        }
    }
}

/// The kind of a request, from the id this core gave it (`transfer-1`, `status-3`, …).
fn request_kind(request_id: &str) -> Option<RequestKind> {
    let (kind, _) = request_id.rsplit_once('-')?;
    match kind {
        "transfer" => Some(RequestKind::Transfer),
        "fallback" => Some(RequestKind::Fallback),
        "status" => Some(RequestKind::Status),
        _ => None,
    }
}
