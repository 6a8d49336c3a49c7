//! The body of one call's `Connect` stream, after `Hello`: messages of the call are
//! handled in order (so appends keep their order), waiting batches are folded into one
//! append, and tool webhooks run beside the stream. Read `call_channel.rs` first.

use futures::FutureExt;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::connect_request::Message as In;
use switchboard_proto::v1::connect_response::Message as Out;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::super::convert::{call_error_from_pb, call_status_from_pb, item_from_pb, usage_from_pb};
use super::super::Services;
use crate::domain::{self, CallError, CallSession, StatusChange};
use crate::events::{CallEvent, EventKind};
use crate::store::StoreError;

/// Most items folded into one append.
const MAX_GATHERED_ITEMS: usize = 256;

/// The sidecar's half of a call stream, with room to put one message back.
struct Inbox {
    stream: Streaming<pb::ConnectRequest>,
    held: Option<Result<Option<pb::ConnectRequest>, Status>>,
}

impl Inbox {
    async fn next(&mut self) -> Result<Option<pb::ConnectRequest>, Status> {
        match self.held.take() {
            Some(held) => held,
            None => self.stream.message().await,
        }
    }

    /// Folds the batches that have already arrived into `batch` while they continue
    /// it, so a database that falls behind sees fewer, larger appends instead of a
    /// queue of small ones. Acks are cumulative: one answers them all.
    fn gather(&mut self, mut batch: pb::ConversationBatch) -> pb::ConversationBatch {
        while batch.items.len() < MAX_GATHERED_ITEMS {
            // `Streaming` keeps partial frames in itself, so an unfinished poll loses
            // nothing.
            let Some(next) = self
                .held
                .take()
                .or_else(|| self.stream.message().now_or_never())
            else {
                break;
            };
            match next {
                Ok(Some(pb::ConnectRequest {
                    message: Some(In::Items(more)),
                })) if continues(&batch, &more) => {
                    batch.items.extend(more.items);
                }
                other => {
                    self.held = Some(other);
                    break;
                }
            }
        }
        batch
    }
}

/// True when `more` starts right after the last item of `batch`.
fn continues(batch: &pb::ConversationBatch, more: &pb::ConversationBatch) -> bool {
    match (batch.items.last(), more.items.first()) {
        (Some(last), Some(first)) => first.seq == last.seq + 1,
        _ => false,
    }
}

/// One live call's stream, after `Hello`.
pub(super) struct CallLoop {
    pub(super) services: Services,
    /// Without conversation; used for event metadata.
    pub(super) session: CallSession,
    pub(super) sender: mpsc::Sender<Result<pb::ConnectResponse, Status>>,
}

impl CallLoop {
    #[tracing::instrument(name = "call", skip_all, fields(call_id = %self.session.id))]
    pub(super) async fn run(self, inbound: Streaming<pb::ConnectRequest>) {
        let mut inbox = Inbox {
            stream: inbound,
            held: None,
        };
        loop {
            let message = match inbox.next().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    tracing::info!(code = ?status.code(), "call stream ended by the sidecar: {}", status.message());
                    break;
                }
            };
            let reply = match message.message {
                Some(In::Items(batch)) => Some(self.append(inbox.gather(batch)).await),
                Some(In::Status(update)) => {
                    self.status(update).await;
                    None
                }
                Some(In::ToolCall(call)) => {
                    self.tool_call(call);
                    None
                }
                Some(In::Usage(report)) => {
                    let usage = usage_from_pb(report.usage);
                    if let Err(e) = self
                        .services
                        .store
                        .record_usage(&self.session.id, &usage, domain::now())
                        .await
                    {
                        tracing::warn!(error = %e, "usage not recorded");
                    }
                    None
                }
                Some(In::Heartbeat(_)) => None,
                Some(In::Fallback(request)) => {
                    self.fallback(request).await;
                    None
                }
                Some(In::Transfer(request)) => {
                    self.transfer(request).await;
                    None
                }
                Some(In::Hello(_)) | None => {
                    tracing::warn!("unexpected message on a connected call stream ignored");
                    None
                }
            };
            if let Some(reply) = reply {
                if self
                    .sender
                    .send(Ok(pb::ConnectResponse {
                        message: Some(reply),
                    }))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        tracing::debug!("call stream closed");
    }

    /// Stores a batch; answers `Ack` or `Nack`.
    async fn append(&self, batch: pb::ConversationBatch) -> Out {
        let first_seq = batch.items.first().map_or(0, |i| i.seq);
        let mut items = Vec::with_capacity(batch.items.len());
        for (i, item) in batch.items.into_iter().enumerate() {
            match item_from_pb(&format!("items[{i}]"), item) {
                Ok(item) => items.push(item),
                Err(e) => {
                    return Out::Nack(pb::Nack {
                        expected_seq: first_seq,
                        reason: e.to_string(),
                    });
                }
            }
        }
        match self
            .services
            .store
            .append_items(&self.session.id, &items)
            .await
        {
            Ok(outcome) => {
                let now = domain::now();
                for item in outcome.stored {
                    self.services.events.publish(CallEvent::for_session(
                        &self.session,
                        now,
                        EventKind::ItemStored(item),
                    ));
                }
                Out::Ack(pb::Ack {
                    stored_through_seq: outcome.last_seq,
                })
            }
            Err(StoreError::Append {
                source, last_seq, ..
            }) => {
                tracing::warn!(%source, "conversation batch refused");
                Out::Nack(pb::Nack {
                    expected_seq: source.expected_seq(last_seq),
                    reason: source.to_string(),
                })
            }
            Err(e) => {
                // The store is down or the call is gone: nothing was stored; the sidecar
                // keeps the batch and re-sends it from its first item.
                tracing::warn!(error = %e, "conversation batch not stored");
                Out::Nack(pb::Nack {
                    expected_seq: first_seq,
                    reason: e.to_string(),
                })
            }
        }
    }

    async fn status(&self, update: pb::StatusUpdate) {
        let status = match call_status_from_pb("status.status", update.status) {
            Ok(Some(status)) => status,
            Ok(None) => return tracing::warn!("status update without a status ignored"),
            Err(e) => return tracing::warn!(error = %e, "status update ignored"),
        };
        let change = StatusChange {
            status,
            end_reason: update.end_reason,
            error: call_error_from_pb(update.error),
            twilio_call_sid: String::new(),
        };
        // A refused change is normal in races (Twilio's callback ended the call first).
        if let Err(status) = self.services.change_status(&self.session.id, &change).await {
            tracing::info!(code = ?status.code(), "status update not applied: {}", status.message());
        }
    }

    /// The AI is gone: send the caller to the agent's fallback.
    async fn fallback(&self, request: pb::FallbackRequest) {
        let error = call_error_from_pb(request.error).or_else(|| {
            Some(CallError {
                code: "openai.unavailable".into(),
                message: "the realtime api is unavailable".into(),
            })
        });
        let session = match self.services.store.get_session(&self.session.id).await {
            Ok(session) => session,
            Err(e) => return tracing::error!(error = %e, "fallback: session unreadable"),
        };
        match self.services.play_fallback(&session, error).await {
            Ok(ended) => {
                tracing::warn!(status = %ended.status, "ai unavailable: call redirected to its fallback")
            }
            Err(status) => {
                tracing::info!(code = ?status.code(), "fallback status not applied: {}", status.message())
            }
        }
    }

    /// The model asked for a human.
    async fn transfer(&self, request: pb::TransferRequest) {
        let target = match super::super::convert::handoff_target_from_pb(
            "transfer.target",
            request.target,
        ) {
            Ok(target) => target,
            Err(e) => return tracing::warn!(error = %e, "transfer request ignored"),
        };
        let session = match self.services.store.get_session(&self.session.id).await {
            Ok(session) => session,
            Err(e) => return tracing::error!(error = %e, "transfer: session unreadable"),
        };
        match self
            .services
            .hand_off(&session, target, &request.reason, "")
            .await
        {
            Ok(ended) => {
                tracing::info!(status = %ended.status, "call transferred to humans at the model's request")
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "transfer not possible; the call stays with the ai: {}", status.message())
            }
        }
    }

    /// Runs the tool's webhook beside the stream and sends the result when it comes.
    fn tool_call(&self, call: pb::ToolCall) {
        let services = self.services.clone();
        let sender = self.sender.clone();
        let call_id = self.session.id.clone();
        let agent_id = self.session.agent_id.clone();
        tokio::spawn(async move {
            let agent = services.agent_or_default(&agent_id).await.ok().flatten();
            let tool = agent.and_then(|a| a.tools.into_iter().find(|t| t.name == call.name));
            let outcome = match tool {
                Some(tool) => {
                    services
                        .tools
                        .invoke(&tool, &call_id, &call.tool_call_id, &call.arguments_json)
                        .await
                }
                None => crate::tools::ToolOutcome::failed(
                    "tool.unknown",
                    format!("no tool named {:?}", call.name),
                ),
            };
            if let Some(error) = &outcome.error {
                tracing::warn!(%call_id, tool = %call.name, code = %error.code, "tool call failed: {}", error.message);
            }
            let result = pb::ToolResult {
                tool_call_id: call.tool_call_id,
                output_json: outcome.output_json,
                error: outcome.error.map(super::super::convert::call_error_to_pb),
            };
            let _ = sender
                .send(Ok(pb::ConnectResponse {
                    message: Some(Out::ToolResult(result)),
                }))
                .await;
        });
    }
}
