//! The body of one call's `Connect` stream, after `Hello`: messages of the call are
//! handled in order (so appends keep their order), waiting batches are folded into one
//! append, and tool webhooks run beside the stream, bounded per call and per replica.
//! Requests that carry an id (transfer, fallback, status) are answered with a
//! `RequestAnswer`; transfers, fallbacks and tool calls go through the [`Ledger`], so a
//! copy re-sent after a reconnect is never acted on twice. Read `call_channel.rs` first.

use futures::FutureExt;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::connect_request::Message as In;
use switchboard_proto::v1::connect_response::Message as Out;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::super::convert::{item_from_pb, usage_from_pb};
use super::super::Services;
use super::ledger::{self, Claim, Ledger};
use super::requests;
use crate::domain::{self, CallSession};
use crate::events::{CallEvent, EventKind};
use crate::store::StoreError;
use crate::tools::ToolOutcome;

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
    /// Keeps the call's lease renewed while the stream is open (`None` for a resumed
    /// stream of a call that has ended).
    pub(super) hold: Option<crate::liveness::StreamHold>,
    pub(super) services: Services,
    /// Without conversation; used for event metadata.
    pub(super) session: CallSession,
    pub(super) sender: mpsc::Sender<Result<pb::ConnectResponse, Status>>,
    /// Requests of every call on this replica, shared by the streams of one call.
    pub(super) ledger: Ledger<Out>,
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
                Some(In::Status(update)) => self.status(update).await,
                Some(In::ToolCall(call)) => self.tool_call(call),
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
                Some(In::Fallback(request)) => self.fallback(request).await,
                Some(In::Transfer(request)) => self.transfer(request).await,
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
        // The lease is no longer renewed from here.
        drop(self.hold);
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

    /// Applies a status update; answers it when it carries a request id.
    async fn status(&self, update: pb::StatusUpdate) -> Option<Out> {
        let request_id = update.request_id.clone();
        let decision = requests::status(&self.services, &self.session.id, update).await;
        (!request_id.is_empty()).then(|| Out::Answer(decision.answer(&request_id)))
    }

    /// The AI is gone: send the caller to the agent's fallback, once per request id.
    async fn fallback(&self, request: pb::FallbackRequest) -> Option<Out> {
        let services = &self.services;
        let call_id = &self.session.id;
        if request.request_id.is_empty() {
            requests::fallback(services, call_id, &request).await;
            return None;
        }
        let key = format!("fallback:{}", request.request_id);
        let answer = self
            .ledger
            .run_once(call_id, &key, || async {
                let decision = requests::fallback(services, call_id, &request).await;
                let keep = decision.keep();
                (Out::Answer(decision.answer(&request.request_id)), keep)
            })
            .await;
        Some(answer)
    }

    /// The model asked for a human: redirect the call, once per request id.
    async fn transfer(&self, request: pb::TransferRequest) -> Option<Out> {
        let services = &self.services;
        let call_id = &self.session.id;
        if request.request_id.is_empty() {
            requests::transfer(services, call_id, &request).await;
            return None;
        }
        let key = format!("transfer:{}", request.request_id);
        let answer = self
            .ledger
            .run_once(call_id, &key, || async {
                let decision = requests::transfer(services, call_id, &request).await;
                let keep = decision.keep();
                (Out::Answer(decision.answer(&request.request_id)), keep)
            })
            .await;
        Some(answer)
    }

    /// Runs the tool's webhook beside the stream, once per `tool_call_id`, and sends the
    /// result when it comes. Answered at once, without a task, when it ran already or a
    /// bound on tool calls in flight is reached.
    fn tool_call(&self, call: pb::ToolCall) -> Option<Out> {
        let call_id = self.session.id.clone();
        let key = format!("tool:{}", call.tool_call_id);
        let runner = match self.ledger.claim(&call_id, &key) {
            Claim::Done(result) => return Some(result),
            Claim::Running(running) => {
                // A copy re-sent after a reconnect: the first copy's result, on this stream.
                let sender = self.sender.clone();
                tokio::spawn(async move {
                    if let Some(result) = ledger::wait(running).await {
                        let _ = sender
                            .send(Ok(pb::ConnectResponse {
                                message: Some(result),
                            }))
                            .await;
                    }
                });
                return None;
            }
            Claim::First(runner) => runner,
        };
        let permit = match self.services.tools.slots().try_acquire(&call_id) {
            Ok(permit) => permit,
            Err(reached) => {
                tracing::warn!(tool = %call.name, "tool call refused: {reached}");
                let result = tool_result(&call.tool_call_id, ToolOutcome::too_many(reached));
                runner.finish(result.clone(), true);
                return Some(result);
            }
        };
        let services = self.services.clone();
        let sender = self.sender.clone();
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
                None => {
                    ToolOutcome::failed("tool.unknown", format!("no tool named {:?}", call.name))
                }
            };
            drop(permit);
            if let Some(error) = &outcome.error {
                tracing::warn!(%call_id, tool = %call.name, code = %error.code, "tool call failed: {}", error.message);
            }
            let result = tool_result(&call.tool_call_id, outcome);
            runner.finish(result.clone(), true);
            let _ = sender
                .send(Ok(pb::ConnectResponse {
                    message: Some(result),
                }))
                .await;
        });
        None
    }
}

/// The `ToolResult` of `tool_call_id`.
fn tool_result(tool_call_id: &str, outcome: ToolOutcome) -> Out {
    Out::ToolResult(pb::ToolResult {
        tool_call_id: tool_call_id.to_owned(),
        output_json: outcome.output_json,
        error: outcome.error.map(super::super::convert::call_error_to_pb),
    })
}
