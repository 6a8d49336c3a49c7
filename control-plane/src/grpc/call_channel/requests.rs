//! The requests a call stream answers: the model's transfer to humans, the fallback
//! (the AI is unavailable, or the sidecar drained the call), and the sidecar's final
//! status. Each is decided here and
//! answered with a `RequestAnswer` (accepted; refused with the reason; or retry later
//! when the store is unavailable) by `stream.rs`, through the ledger for the first two.
//!
//! Copies are harmless even across a control-plane restart, which empties the ledger:
//! a redirect ends the session, so a copy that finds the session already ended the way
//! the request would have ended it is answered accepted without asking Twilio again —
//! a handed-off call for a transfer, an end with the fallback's own end reason
//! (`ai_unavailable`, `sidecar_drained`) for a fallback. A status
//! goes through the status machine, where a repeat changes nothing.

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::request_answer::Outcome;

use super::super::convert::{call_error_from_pb, call_status_from_pb, handoff_target_from_pb};
use super::super::{handoff_reason, Services, NO_HANDOFF_TARGET};
use crate::domain::{CallError, CallSession, CallStatus, StatusChange};
use crate::store::StoreError;

/// The end reason of a call sent to its fallback because the AI is unavailable: what a
/// `FallbackRequest` without an end reason records.
pub(super) const FALLBACK_END_REASON: &str = "ai_unavailable";

/// The end reason of a call a sidecar's drain ended: its grace ran out with the call
/// still on, and the caller was sent to the fallback.
pub(super) const DRAINED_END_REASON: &str = "sidecar_drained";

/// An answer, without its request id, and whether copies of the request may reuse it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Decision {
    pub(super) outcome: Outcome,
    pub(super) error: Option<pb::CallError>,
}

// === impl Decision ===

impl Decision {
    fn accepted() -> Self {
        Self {
            outcome: Outcome::Accepted,
            error: None,
        }
    }

    fn refused(code: &str, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Refused,
            error: Some(pb::CallError {
                code: code.to_owned(),
                message: message.into(),
            }),
        }
    }

    /// The store could not be read or written: nothing was done.
    fn from_store(call_id: &str, error: &StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => {
                Self::refused("call.not_found", format!("call {call_id}: {error}"))
            }
            _ => Self {
                outcome: Outcome::Retry,
                error: Some(pb::CallError {
                    code: "store.unavailable".to_owned(),
                    message: format!("call {call_id}: {error}"),
                }),
            },
        }
    }

    /// A "try again later" must not answer later copies: they are the retries.
    pub(super) fn keep(&self) -> bool {
        self.outcome != Outcome::Retry
    }

    /// The answer to the request `request_id`.
    pub(super) fn answer(self, request_id: &str) -> pb::RequestAnswer {
        pb::RequestAnswer {
            request_id: request_id.to_owned(),
            outcome: self.outcome.into(),
            error: self.error,
        }
    }
}

/// The model asked for a human: redirect the live call to the request's target, else
/// the agent's handoff target. Accepted once Twilio took the redirect; the session then
/// ends `handed-off` (a failure to record that is logged, not answered: the caller is on
/// the way to humans either way).
pub(super) async fn transfer(
    services: &Services,
    call_id: &str,
    request: &pb::TransferRequest,
) -> Decision {
    let target = match handoff_target_from_pb("transfer.target", request.target.clone()) {
        Ok(target) => target,
        Err(e) => return Decision::refused("request.invalid", e.to_string()),
    };
    let session = match services.store.get_session(call_id).await {
        Ok(session) => session,
        Err(e) => return Decision::from_store(call_id, &e),
    };
    if !session.is_live() {
        return ended_already(&session, session.status == CallStatus::HandedOff);
    }
    let agent = match services.agent_or_default(&session.agent_id).await {
        Ok(agent) => agent,
        Err(e) => return Decision::from_store(call_id, &e),
    };
    let Some(redirect) = crate::redirect::transfer(agent.as_ref(), target, "") else {
        return Decision::refused(
            "handoff.no_target",
            format!("call {call_id}: {NO_HANDOFF_TARGET}"),
        );
    };
    if let Err(e) = services.redirect_live_call(&session, &redirect).await {
        tracing::warn!(
            code = e.code(),
            "transfer not possible; the call stays with the ai: {e}"
        );
        return Decision::refused(e.code(), e.to_string());
    }
    let reason = handoff_reason(&request.reason);
    match services
        .end_redirected(&session, &redirect, reason, None)
        .await
    {
        Ok(ended) => {
            tracing::info!(status = %ended.status, "call transferred to humans at the model's request");
        }
        Err(status) => {
            tracing::error!(code = ?status.code(), "call transferred, but its status was not recorded: {}", status.message());
        }
    }
    Decision::accepted()
}

/// The AI cannot go on with the call (it is gone, or the sidecar carrying the call
/// drained it): redirect the live call to the agent's fallback and end the session with
/// the request's end reason (`ai_unavailable` when it has none). When Twilio does not
/// take the redirect the session ends `failed` and the answer is refused, so the sidecar
/// hangs up rather than leave the caller in silence.
pub(super) async fn fallback(
    services: &Services,
    call_id: &str,
    request: &pb::FallbackRequest,
) -> Decision {
    let end_reason = if request.end_reason.is_empty() {
        FALLBACK_END_REASON
    } else {
        request.end_reason.as_str()
    };
    let error = call_error_from_pb(request.error.clone()).or_else(|| {
        Some(if end_reason == DRAINED_END_REASON {
            CallError {
                code: "sidecar.drained".into(),
                message: "the media sidecar shut down with the call still on".into(),
            }
        } else {
            CallError {
                code: "openai.unavailable".into(),
                message: "the realtime api is unavailable".into(),
            }
        })
    });
    let session = match services.store.get_session(call_id).await {
        Ok(session) => session,
        Err(e) => return Decision::from_store(call_id, &e),
    };
    if !session.is_live() {
        return ended_already(&session, session.end_reason == end_reason);
    }
    match services
        .send_to_fallback(&session, end_reason, error.clone())
        .await
    {
        Ok(ended) => {
            match ended {
                Ok(ended) => {
                    tracing::warn!(status = %ended.status, end_reason, "call redirected to its fallback");
                }
                Err(status) => {
                    tracing::error!(code = ?status.code(), "fallback played, but its status was not recorded: {}", status.message());
                }
            }
            Decision::accepted()
        }
        Err(e) => {
            tracing::error!(
                code = e.code(),
                "fallback redirect failed; the call ends: {e}"
            );
            let change = StatusChange {
                status: CallStatus::Failed,
                end_reason: end_reason.to_owned(),
                error,
                twilio_call_sid: String::new(),
            };
            if let Err(status) = services.change_status(call_id, &change).await {
                tracing::info!(code = ?status.code(), "fallback status not applied: {}", status.message());
            }
            Decision::refused(e.code(), e.to_string())
        }
    }
}

/// The sidecar's status update, through the status machine.
pub(super) async fn status(
    services: &Services,
    call_id: &str,
    update: pb::StatusUpdate,
) -> Decision {
    let status = match call_status_from_pb("status.status", update.status) {
        Ok(Some(status)) => status,
        Ok(None) => return Decision::refused("request.invalid", "status.status: required"),
        Err(e) => return Decision::refused("request.invalid", e.to_string()),
    };
    let change = StatusChange {
        status,
        end_reason: update.end_reason,
        error: call_error_from_pb(update.error),
        twilio_call_sid: String::new(),
    };
    match services.change_status(call_id, &change).await {
        Ok(_) => Decision::accepted(),
        // Normal in races: Twilio's callback, a redirect or an operator ended it first.
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            tracing::info!("status update not applied: {}", status.message());
            Decision::refused("call.ended", status.message())
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            Decision::refused("call.not_found", status.message())
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), "status update not stored: {}", status.message());
            Decision {
                outcome: Outcome::Retry,
                error: Some(pb::CallError {
                    code: "store.unavailable".to_owned(),
                    message: status.message().to_owned(),
                }),
            }
        }
    }
}

/// A request on a call that has ended: done already if the call ended the way the
/// request would have ended it (`as_requested`), else refused.
fn ended_already(session: &CallSession, as_requested: bool) -> Decision {
    if as_requested {
        return Decision::accepted();
    }
    Decision::refused(
        "call.ended",
        format!("call {} has ended ({})", session.id, session.status),
    )
}
