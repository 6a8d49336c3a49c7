//! `CallChannelService`: the media sidecars' side of the control plane.
//!
//! `OpenInboundCall` turns Twilio's voice webhook into a session and a routing
//! decision. `Connect` is one stream per live call: `Hello` → `CallConfig`, then
//! conversation batches (acknowledged through the highest stored seq, refused with a
//! `Nack` on a gap), status updates, usage, tool calls and requests (transfer, fallback),
//! answered once per request id however often a reconnecting sidecar re-sends them
//! (`call_channel/ledger.rs`, `call_channel/requests.rs`). Messages of one call are
//! handled in order, so appends keep their order; tool webhooks run beside them.

mod ledger;
mod requests;
mod stream;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_channel_service_server::CallChannelService;
use switchboard_proto::v1::connect_request::Message as In;
use switchboard_proto::v1::connect_response::Message as Out;
use switchboard_proto::v1::open_inbound_call_response::Route;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{agent_to_pb, session_to_pb};
use super::Services;
use crate::domain::{
    self, template, validate_e164, AgentMode, AgentSettings, CallDirection, CallError, CallSession,
    CallStatus, HandoffTarget, InvalidField, StatusChange,
};
use crate::error::{invalid, required, store_status};
use crate::store::{StoreError, StreamAttachment};

/// How long a new stream may take to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Depth of each call's outgoing queue.
const OUT_QUEUE: usize = 64;

/// Serves `CallChannelService`.
#[derive(Debug, Clone)]
pub struct CallChannelApi {
    services: Services,
    /// What the call streams were asked to do, so each request is acted on once.
    ledger: ledger::Ledger<Out>,
}

impl CallChannelApi {
    pub fn new(services: Services) -> Self {
        Self {
            services,
            ledger: ledger::Ledger::new(),
        }
    }

    /// How to answer a call's webhook, given its session and agent.
    fn route_for(session: &CallSession, agent: Option<&AgentSettings>) -> Route {
        let Some(agent) = agent.filter(|_| session.is_live()) else {
            let say = agent
                .map(|a| a.fallback.message.clone())
                .filter(|m| !m.is_empty());
            return Route::Reject(pb::RejectRoute {
                say: say.unwrap_or_else(|| crate::redirect::DEFAULT_APOLOGY.to_owned()),
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
        lease_until: domain::Timestamp,
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
                // A media stream is coming: if none claims the call, the sweeper ends it.
                if agent.mode == AgentMode::Realtime {
                    session.lease_expires_at = Some(lease_until);
                }
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
                let lease = self.services.liveness.lease_from(domain::now());
                let session = Self::new_inbound_session(&r, agent.as_ref(), lease);
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
        if !r.stream_event.is_empty() {
            return self.report_stream_event(r).await.map(Response::new);
        }
        let status = twilio_status(&r.call_status).ok_or_else(|| {
            invalid(InvalidField::new(
                "call_status",
                format!("{:?} is not a Twilio call status", r.call_status),
            ))
        })?;
        let session = self.reported_session(&r).await?;
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
        // Only a live call needs its lease kept; a resumed stream of an ended one
        // delivers what its sidecar holds and goes.
        let hold = session
            .is_live()
            .then(|| self.services.liveness.hold(&session.id));
        let call = stream::CallLoop {
            hold,
            services: self.services.clone(),
            session,
            sender,
            ledger: self.ledger.clone(),
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
        if session.is_live() && session.lease_expires_at.is_some() {
            // Answered: its media stream is a second away, not a ring time.
            self.renew_lease(&session.id).await;
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

    /// Checks the call can take media, records the stream and builds its config. A
    /// resumed stream (`hello.resume`) of a call that has ended meanwhile gets its config
    /// as it is, with nothing recorded, so its sidecar can deliver what it still holds.
    async fn open_call(&self, hello: &pb::Hello) -> Result<(CallSession, pb::CallConfig), Status> {
        let store = &self.services.store;
        let call_id = &hello.call_id;
        let session = store.get_session(call_id).await.map_err(store_status)?;
        if !session.is_live() && !hello.resume {
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
        let attached = if session.is_live() {
            let stream = StreamAttachment {
                stream_sid: hello.stream_sid.clone(),
                call_sid: hello.call_sid.clone(),
                sidecar_id: hello.sidecar_id.clone(),
            };
            let attached = store
                .attach_stream(call_id, &stream, domain::now())
                .await
                .map_err(store_status)?;
            self.renew_lease(call_id).await;
            if attached.status == CallStatus::InProgress {
                attached
            } else {
                self.services
                    .change_status(call_id, &StatusChange::to(CallStatus::InProgress))
                    .await?
            }
        } else {
            tracing::info!(%call_id, status = %session.status, "stream resumed for a call that has ended");
            session
        };
        agent.instructions =
            template::render(&agent.instructions, &template::variables_for(&attached));
        tracing::info!(%call_id, stream_sid = %hello.stream_sid, sidecar_id = %hello.sidecar_id, last_seq = attached.last_seq, resume = hello.resume, "call connected");
        let config = pb::CallConfig {
            stored_through_seq: attached.last_seq,
            session: Some(session_to_pb(attached.clone())),
            agent_settings: Some(agent_to_pb(agent)),
            answers_requests: true,
        };
        Ok((attached, config))
    }
}

/// Twilio's `CallStatus` names; `initiated` is Twilio's word for a call it is placing.
impl CallChannelApi {
    /// Renews a live call's lease now (see `crate::liveness`). A failure is logged: the
    /// lease keeper renews it on its next tick anyway.
    async fn renew_lease(&self, call_id: &str) {
        let until = self.services.liveness.lease_from(domain::now());
        if let Err(e) = self
            .services
            .store
            .renew_leases(&[call_id.to_owned()], until)
            .await
        {
            tracing::warn!(%call_id, error = %e, "call lease not renewed");
        }
    }

    /// The session a Twilio callback is about: by the `callId` of its URL, else by its
    /// `CallSid`.
    async fn reported_session(
        &self,
        r: &pb::ReportTwilioStatusRequest,
    ) -> Result<crate::domain::CallSession, Status> {
        let store = &self.services.store;
        if !r.call_id.is_empty() {
            store.get_session(&r.call_id).await.map_err(store_status)
        } else if !r.call_sid.is_empty() {
            let found = store
                .session_by_call_sid(&r.call_sid)
                .await
                .map_err(store_status)?;
            found.ok_or_else(|| {
                Status::not_found(format!("no call session for twilio call {}", r.call_sid))
            })
        } else {
            Err(required("call_sid"))
        }
    }

    /// A Media Stream status callback. A stream that stopped or failed while the session
    /// is still `queued` or `ringing` never reached a sidecar (its socket was refused, or
    /// Twilio could not open it): nothing else would end that session, so it ends
    /// `failed` here. Once a sidecar holds the call, it reports the end itself.
    async fn report_stream_event(
        &self,
        r: pb::ReportTwilioStatusRequest,
    ) -> Result<pb::ReportTwilioStatusResponse, Status> {
        let end_reason = match r.stream_event.as_str() {
            "stream-started" => None,
            "stream-stopped" => Some("twilio_stream_stopped"),
            "stream-error" => Some("twilio_stream_error"),
            other => {
                return Err(invalid(InvalidField::new(
                    "stream_event",
                    format!("{other:?} is not a Twilio stream event"),
                )))
            }
        };
        let session = self.reported_session(&r).await?;
        let unclaimed = matches!(session.status, CallStatus::Queued | CallStatus::Ringing);
        let Some(end_reason) = end_reason.filter(|_| unclaimed) else {
            tracing::debug!(call_id = %session.id, stream_sid = %r.stream_sid, event = %r.stream_event, status = session.status.as_str(), "media stream event, nothing to change");
            return Ok(pb::ReportTwilioStatusResponse {
                session: Some(session_to_pb(session)),
                applied: false,
            });
        };
        let change = StatusChange {
            status: CallStatus::Failed,
            end_reason: end_reason.to_owned(),
            error: (!r.stream_error.is_empty()).then(|| CallError {
                code: "twilio.stream_error".into(),
                message: r.stream_error.clone(),
            }),
            twilio_call_sid: r.call_sid.clone(),
        };
        tracing::warn!(call_id = %session.id, stream_sid = %r.stream_sid, event = %r.stream_event, error = %r.stream_error, "the media stream ended before a sidecar took the call");
        match self.services.change_status(&session.id, &change).await {
            Ok(updated) => Ok(pb::ReportTwilioStatusResponse {
                applied: updated.status == CallStatus::Failed,
                session: Some(session_to_pb(updated)),
            }),
            // Ended meanwhile by another path: nothing to do.
            Err(refused) if refused.code() == tonic::Code::FailedPrecondition => {
                Ok(pb::ReportTwilioStatusResponse {
                    session: Some(session_to_pb(session)),
                    applied: false,
                })
            }
            Err(e) => Err(e),
        }
    }
}

fn twilio_status(name: &str) -> Option<CallStatus> {
    match name {
        "initiated" => Some(CallStatus::Queued),
        other => CallStatus::parse(other),
    }
}
