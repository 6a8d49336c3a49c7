//! `CallChannelService`: the media sidecars' side of the control plane.
//!
//! `OpenInboundCall` turns Twilio's voice webhook into a session and a routing
//! decision. `Connect` is one stream per live call: `Hello` → `CallConfig`, then
//! conversation batches (acknowledged through the highest stored seq, refused with a
//! `Nack` on a gap), status updates, usage and tool calls. Messages of one call are
//! handled in order, so appends keep their order; tool webhooks run beside them.

use std::pin::Pin;
use std::time::Duration;

use futures::{FutureExt, Stream};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_channel_service_server::CallChannelService;
use switchboard_proto::v1::connect_request::Message as In;
use switchboard_proto::v1::connect_response::Message as Out;
use switchboard_proto::v1::open_inbound_call_response::Route;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{
    agent_to_pb, call_error_from_pb, call_status_from_pb, item_from_pb, session_to_pb,
    usage_from_pb,
};
use super::Services;
use crate::domain::{
    self, template, validate_e164, AgentMode, AgentSettings, CallDirection, CallError, CallSession,
    CallStatus, HandoffTarget, InvalidField, StatusChange,
};
use crate::error::{invalid, required, store_status};
use crate::events::{CallEvent, EventKind};
use crate::store::{StoreError, StreamAttachment};

/// How long a new stream may take to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Depth of each call's outgoing queue.
const OUT_QUEUE: usize = 64;
/// Said when nobody can take a call and the agent has no message of its own.
const DEFAULT_APOLOGY: &str =
    "We are sorry, but we cannot take your call right now. Please try again later.";

/// Serves `CallChannelService`.
#[derive(Debug, Clone)]
pub struct CallChannelApi {
    services: Services,
}

impl CallChannelApi {
    pub fn new(services: Services) -> Self {
        Self { services }
    }

    /// How to answer a call's webhook, given its session and agent.
    fn route_for(session: &CallSession, agent: Option<&AgentSettings>) -> Route {
        let Some(agent) = agent.filter(|_| session.is_live()) else {
            let say = agent
                .map(|a| a.fallback.message.clone())
                .filter(|m| !m.is_empty());
            return Route::Reject(pb::RejectRoute {
                say: say.unwrap_or_else(|| DEFAULT_APOLOGY.to_owned()),
            });
        };
        match agent.mode {
            AgentMode::Realtime => Route::Realtime(pb::RealtimeRoute {
                greeting: agent.greeting.clone(),
            }),
            AgentMode::Conference => match &agent.handoff_target {
                Some(HandoffTarget::PhoneNumber(number)) => Route::Dial(pb::DialRoute {
                    phone_number: number.clone(),
                    say: String::new(),
                }),
                Some(HandoffTarget::Conference(name)) => Route::Conference(pb::ConferenceRoute {
                    conference_name: name.clone(),
                    say: String::new(),
                }),
                None => Route::Conference(pb::ConferenceRoute {
                    conference_name: format!("agent-{}", agent.id),
                    say: String::new(),
                }),
            },
        }
    }

    /// A new inbound session for `agent` (or a failed one when there is none).
    fn new_inbound_session(
        r: &pb::OpenInboundCallRequest,
        agent: Option<&AgentSettings>,
    ) -> CallSession {
        let now = domain::now();
        let mut session = CallSession::new(
            CallDirection::Inbound,
            r.from_number.clone(),
            r.to_number.clone(),
            now,
        );
        session.twilio_call_sid.clone_from(&r.call_sid);
        session.sidecar_id.clone_from(&r.sidecar_id);
        if validate_e164("from_number", &r.from_number).is_ok() {
            session.customer.phone.clone_from(&r.from_number);
        }
        match agent {
            // Realtime calls are answered when their media stream starts; the other
            // routes answer in the TwiML itself.
            Some(agent) => {
                session.agent_id.clone_from(&agent.id);
                session.status = match agent.mode {
                    AgentMode::Realtime => CallStatus::Ringing,
                    AgentMode::Conference => CallStatus::InProgress,
                };
                if session.status == CallStatus::InProgress {
                    session.started_at = Some(now);
                }
            }
            None => {
                session.status = CallStatus::Failed;
                session.ended_at = Some(now);
                session.end_reason = "no_agent".into();
                session.error = Some(CallError {
                    code: "agent.not_found".into(),
                    message: format!(
                        "no agent answers {} and no default agent is set",
                        r.to_number
                    ),
                });
            }
        }
        session
    }
}

type ConnectStream = Pin<Box<dyn Stream<Item = Result<pb::ConnectResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CallChannelService for CallChannelApi {
    #[tracing::instrument(skip_all, fields(call_sid = %request.get_ref().call_sid))]
    async fn open_inbound_call(
        &self,
        request: Request<pb::OpenInboundCallRequest>,
    ) -> Result<Response<pb::OpenInboundCallResponse>, Status> {
        let r = request.into_inner();
        validate_e164("to_number", &r.to_number).map_err(invalid)?;
        if r.from_number.is_empty() {
            return Err(required("from_number"));
        }
        if r.call_sid.is_empty() {
            return Err(required("call_sid"));
        }
        if !r.call_id.is_empty() {
            return self.answer_placed_call(&r).await.map(Response::new);
        }
        let store = &self.services.store;
        // Twilio retries webhooks: the same CallSid gets the same session.
        let existing = store
            .session_by_call_sid(&r.call_sid)
            .await
            .map_err(store_status)?;
        let (session, agent) = match existing {
            Some(session) => {
                let agent = self
                    .services
                    .agent_or_default(&session.agent_id)
                    .await
                    .map_err(store_status)?;
                (session, agent)
            }
            None => {
                let agent = match store
                    .agent_by_phone(&r.to_number)
                    .await
                    .map_err(store_status)?
                {
                    Some(agent) => Some(agent),
                    None => self.services.default_agent().await.map_err(store_status)?,
                };
                let session = Self::new_inbound_session(&r, agent.as_ref());
                match store.create_session(session).await {
                    Ok(created) => {
                        self.services.publish_status(&created, None);
                        tracing::info!(call_id = %created.id, agent_id = %created.agent_id, status = %created.status, "inbound call opened");
                        (created, agent)
                    }
                    Err(StoreError::AlreadyExists(_)) => {
                        let raced = store
                            .session_by_call_sid(&r.call_sid)
                            .await
                            .map_err(store_status)?;
                        let raced =
                            raced.ok_or_else(|| Status::aborted("call session vanished; retry"))?;
                        (raced, agent)
                    }
                    Err(e) => return Err(store_status(e)),
                }
            }
        };
        let route = Self::route_for(&session, agent.as_ref());
        Ok(Response::new(pb::OpenInboundCallResponse {
            session: Some(session_to_pb(session)),
            route: Some(route),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_sid = %request.get_ref().call_sid, status = %request.get_ref().call_status))]
    async fn report_twilio_status(
        &self,
        request: Request<pb::ReportTwilioStatusRequest>,
    ) -> Result<Response<pb::ReportTwilioStatusResponse>, Status> {
        let r = request.into_inner();
        let status = twilio_status(&r.call_status).ok_or_else(|| {
            invalid(InvalidField::new(
                "call_status",
                format!("{:?} is not a Twilio call status", r.call_status),
            ))
        })?;
        let store = &self.services.store;
        let session = if !r.call_id.is_empty() {
            store.get_session(&r.call_id).await.map_err(store_status)?
        } else if !r.call_sid.is_empty() {
            let found = store
                .session_by_call_sid(&r.call_sid)
                .await
                .map_err(store_status)?;
            found.ok_or_else(|| {
                Status::not_found(format!("no call session for twilio call {}", r.call_sid))
            })?
        } else {
            return Err(required("call_sid"));
        };
        let error = (!r.error_code.is_empty()).then(|| CallError {
            code: format!("twilio.{}", r.error_code),
            message: r.error_message.clone(),
        });
        let change = StatusChange {
            status,
            end_reason: if status.is_final() {
                format!("twilio_{}", status.as_str().replace('-', "_"))
            } else {
                String::new()
            },
            error,
            twilio_call_sid: r.call_sid.clone(),
        };
        // Twilio does not promise order: a callback older than what is stored is refused
        // by the status machine, which is exactly "ignore the stale one".
        match self.services.change_status(&session.id, &change).await {
            Ok(updated) => {
                let applied = updated.status == status && session.status != status;
                Ok(Response::new(pb::ReportTwilioStatusResponse {
                    session: Some(session_to_pb(updated)),
                    applied,
                }))
            }
            Err(refused) if refused.code() == tonic::Code::FailedPrecondition => {
                tracing::debug!(
                    sequence_number = r.sequence_number,
                    "stale twilio status ignored: {}",
                    refused.message()
                );
                Ok(Response::new(pb::ReportTwilioStatusResponse {
                    session: Some(session_to_pb(session)),
                    applied: false,
                }))
            }
            Err(e) => Err(e),
        }
    }

    type ConnectStream = ConnectStream;

    #[tracing::instrument(skip_all)]
    async fn connect(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Err(_) => return Err(Status::deadline_exceeded("no hello within 10 s")),
            Ok(Err(status)) => return Err(status),
            Ok(Ok(None)) => {
                return Err(Status::invalid_argument(
                    "hello: the stream closed before it",
                ))
            }
            Ok(Ok(Some(message))) => message,
        };
        let Some(In::Hello(hello)) = first.message else {
            return Err(Status::invalid_argument(
                "message: the first message must be hello",
            ));
        };
        if hello.call_id.is_empty() {
            return Err(required("hello.call_id"));
        }
        let (session, config) = self.open_call(&hello).await?;
        let (sender, receiver) = mpsc::channel(OUT_QUEUE);
        sender
            .send(Ok(pb::ConnectResponse {
                message: Some(Out::Config(config)),
            }))
            .await
            .map_err(|_| Status::cancelled("sidecar went away"))?;
        let call = CallLoop {
            services: self.services.clone(),
            session,
            sender,
        };
        tokio::spawn(call.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

impl CallChannelApi {
    /// The webhook of a call the control plane placed: its session learns the CallSid
    /// and is answered by its own agent.
    async fn answer_placed_call(
        &self,
        r: &pb::OpenInboundCallRequest,
    ) -> Result<pb::OpenInboundCallResponse, Status> {
        let session = self
            .services
            .store
            .get_session(&r.call_id)
            .await
            .map_err(store_status)?;
        let session = if session.is_live() && session.twilio_call_sid.is_empty() {
            let change = StatusChange {
                twilio_call_sid: r.call_sid.clone(),
                ..StatusChange::to(session.status)
            };
            self.services.change_status(&session.id, &change).await?
        } else {
            session
        };
        if session.twilio_call_sid != r.call_sid {
            tracing::warn!(call_id = %session.id, known = %session.twilio_call_sid, got = %r.call_sid, "placed call answered with another CallSid");
        }
        let agent = self
            .services
            .agent_or_default(&session.agent_id)
            .await
            .map_err(store_status)?;
        let route = Self::route_for(&session, agent.as_ref());
        Ok(pb::OpenInboundCallResponse {
            session: Some(session_to_pb(session)),
            route: Some(route),
        })
    }

    /// Checks the call can take media, records the stream and builds its config.
    async fn open_call(&self, hello: &pb::Hello) -> Result<(CallSession, pb::CallConfig), Status> {
        let store = &self.services.store;
        let call_id = &hello.call_id;
        let session = store.get_session(call_id).await.map_err(store_status)?;
        if !session.is_live() {
            return Err(Status::failed_precondition(format!(
                "call {call_id} has ended ({})",
                session.status
            )));
        }
        let Some(mut agent) = self
            .services
            .agent_or_default(&session.agent_id)
            .await
            .map_err(store_status)?
        else {
            return Err(Status::failed_precondition(format!(
                "call {call_id}: agent settings {:?} not found and no default agent is set",
                session.agent_id
            )));
        };
        let stream = StreamAttachment {
            stream_sid: hello.stream_sid.clone(),
            call_sid: hello.call_sid.clone(),
            sidecar_id: hello.sidecar_id.clone(),
        };
        let mut attached = store
            .attach_stream(call_id, &stream, domain::now())
            .await
            .map_err(store_status)?;
        if attached.status != CallStatus::InProgress {
            attached = self
                .services
                .change_status(call_id, &StatusChange::to(CallStatus::InProgress))
                .await?;
        }
        agent.instructions =
            template::render(&agent.instructions, &template::variables_for(&attached));
        tracing::info!(%call_id, stream_sid = %hello.stream_sid, sidecar_id = %hello.sidecar_id, last_seq = attached.last_seq, "call connected");
        let config = pb::CallConfig {
            stored_through_seq: attached.last_seq,
            session: Some(session_to_pb(attached.clone())),
            agent_settings: Some(agent_to_pb(agent)),
        };
        Ok((attached, config))
    }
}

/// Twilio's `CallStatus` names; `initiated` is Twilio's word for a call it is placing.
fn twilio_status(name: &str) -> Option<CallStatus> {
    match name {
        "initiated" => Some(CallStatus::Queued),
        other => CallStatus::parse(other),
    }
}

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
struct CallLoop {
    services: Services,
    /// Without conversation; used for event metadata.
    session: CallSession,
    sender: mpsc::Sender<Result<pb::ConnectResponse, Status>>,
}

impl CallLoop {
    #[tracing::instrument(name = "call", skip_all, fields(call_id = %self.session.id))]
    async fn run(self, inbound: Streaming<pb::ConnectRequest>) {
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
        let target = match super::convert::handoff_target_from_pb("transfer.target", request.target)
        {
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
                error: outcome.error.map(super::convert::call_error_to_pb),
            };
            let _ = sender
                .send(Ok(pb::ConnectResponse {
                    message: Some(Out::ToolResult(result)),
                }))
                .await;
        });
    }
}
