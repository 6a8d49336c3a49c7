//! `CallSessionService`, including the `WatchCallEvents` stream.

use std::pin::Pin;

use futures::Stream;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_session_service_server::CallSessionService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{
    call_error_from_pb, call_error_to_pb, call_status_from_pb, call_status_to_pb, customer_from_pb,
    direction_from_pb, handoff_target_to_pb, item_to_pb, session_to_pb, timestamp_from_pb,
    timestamp_to_pb,
};
use super::Services;
use crate::domain::{self, validate_e164, CallDirection, CallSession, InvalidField, StatusChange};
use crate::error::{invalid, required, store_status, watch_status};
use crate::events::{EventFilter, EventKind, FeedEvent, WatchError, WatchItem};
use crate::store::{PageRequest, SessionFilter};

/// Serves `CallSessionService`.
#[derive(Debug, Clone)]
pub struct SessionsApi {
    services: Services,
}

impl SessionsApi {
    pub fn new(services: Services) -> Self {
        Self { services }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::CallEvent, Status>> + Send>>;

/// Depth of each watcher's outgoing queue.
const WATCH_QUEUE: usize = 256;

#[tonic::async_trait]
impl CallSessionService for SessionsApi {
    #[tracing::instrument(skip_all)]
    async fn create_call_session(
        &self,
        request: Request<pb::CreateCallSessionRequest>,
    ) -> Result<Response<pb::CallSession>, Status> {
        let r = request.into_inner();
        if r.agent_id.is_empty() {
            return Err(required("agent_id"));
        }
        validate_e164("from_number", &r.from_number).map_err(invalid)?;
        validate_e164("to_number", &r.to_number).map_err(invalid)?;
        let direction = direction_from_pb("direction", r.direction).map_err(invalid)?;
        let direction = direction.unwrap_or(CallDirection::Outbound);
        let customer = customer_from_pb(r.customer);
        if !customer.phone.is_empty() {
            validate_e164("customer.phone", &customer.phone).map_err(invalid)?;
        }
        if r.place_call {
            // Refused before anything is stored, so a caller can fix and retry.
            if direction != CallDirection::Outbound {
                return Err(invalid(InvalidField::new(
                    "place_call",
                    "only outbound calls can be placed",
                )));
            }
            if !r.twilio_call_sid.is_empty() {
                return Err(invalid(InvalidField::new(
                    "place_call",
                    "the call exists already (twilio_call_sid is set)",
                )));
            }
            if let Some(missing) = self.services.cannot_place_calls() {
                return Err(Status::failed_precondition(format!(
                    "place_call: {missing}"
                )));
            }
        }
        // The agent must exist now; it may still be deleted before the call connects,
        // which the call channel handles.
        self.services
            .store
            .get_agent(&r.agent_id)
            .await
            .map_err(store_status)?;

        let mut session = CallSession::new(direction, r.from_number, r.to_number, domain::now());
        session.agent_id = r.agent_id;
        session.customer = customer;
        session.variables = r.variables.into_iter().collect();
        session.campaign_id = r.campaign_id;
        session.twilio_call_sid = r.twilio_call_sid;
        let created = self
            .services
            .store
            .create_session(session)
            .await
            .map_err(store_status)?;
        self.services.publish_status(&created, None).await;
        tracing::info!(call_id = %created.id, agent_id = %created.agent_id, "call session created");
        if !r.place_call {
            return Ok(Response::new(session_to_pb(created)));
        }
        let placed = self.services.place_call(&created).await?;
        Ok(Response::new(session_to_pb(placed)))
    }

    #[tracing::instrument(skip_all)]
    async fn get_call_session(
        &self,
        request: Request<pb::GetCallSessionRequest>,
    ) -> Result<Response<pb::CallSession>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(required("id"));
        }
        let session = self
            .services
            .store
            .get_session(&id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(session_to_pb(session)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_call_sessions(
        &self,
        request: Request<pb::ListCallSessionsRequest>,
    ) -> Result<Response<pb::ListCallSessionsResponse>, Status> {
        let r = request.into_inner();
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let filter = SessionFilter {
            status: call_status_from_pb("status", r.status).map_err(invalid)?,
            agent_id: non_empty(r.agent_id),
            campaign_id: non_empty(r.campaign_id),
            direction: direction_from_pb("direction", r.direction).map_err(invalid)?,
            created_after: r
                .created_after
                .as_ref()
                .map(|t| timestamp_from_pb("created_after", t))
                .transpose()
                .map_err(invalid)?,
            created_before: r
                .created_before
                .as_ref()
                .map(|t| timestamp_from_pb("created_before", t))
                .transpose()
                .map_err(invalid)?,
        };
        let page = PageRequest::new(r.page_size, r.page_token);
        let page = self
            .services
            .store
            .list_sessions(&filter, &page)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListCallSessionsResponse {
            call_sessions: page.items.into_iter().map(session_to_pb).collect(),
            next_page_token: page.next_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_call_status(
        &self,
        request: Request<pb::UpdateCallStatusRequest>,
    ) -> Result<Response<pb::CallSession>, Status> {
        let r = request.into_inner();
        if r.id.is_empty() {
            return Err(required("id"));
        }
        let status = call_status_from_pb("status", r.status)
            .map_err(invalid)?
            .ok_or_else(|| required("status"))?;
        let change = StatusChange {
            status,
            end_reason: r.end_reason,
            error: call_error_from_pb(r.error),
            twilio_call_sid: r.twilio_call_sid,
        };
        let session = self.services.change_status(&r.id, &change).await?;
        Ok(Response::new(session_to_pb(session)))
    }

    type WatchCallEventsStream = EventStream;

    #[tracing::instrument(skip_all)]
    async fn watch_call_events(
        &self,
        request: Request<pb::WatchCallEventsRequest>,
    ) -> Result<Response<Self::WatchCallEventsStream>, Status> {
        let r = request.into_inner();
        let filter = EventFilter {
            call_id: r.call_id,
            agent_id: r.agent_id,
            campaign_id: r.campaign_id,
        };
        let events = self.services.events.clone();
        let mut watch = events
            .watch(filter, &r.after_event_id)
            .await
            .map_err(|e| watch_status(&e))?;
        tracing::info!(
            watchers = events.watchers(),
            catching_up = watch.is_catching_up(),
            "event watcher joined"
        );
        let (sender, receiver) = mpsc::channel(WATCH_QUEUE);
        tokio::spawn(async move {
            loop {
                // A client that went away is noticed at once, even when no event for
                // it comes (a watcher of a call that ended).
                let item = tokio::select! {
                    biased;
                    () = sender.closed() => break,
                    item = watch.next() => item,
                };
                let (message, last) = match item {
                    None => break,
                    Some(WatchItem::Event(event)) => (Ok(event_to_pb(&event)), false),
                    Some(WatchItem::Dropped(count)) => (Ok(dropped_to_pb(count)), false),
                    Some(WatchItem::Interrupted(reason)) => {
                        (Err(watch_status(&WatchError::Unavailable(reason))), true)
                    }
                };
                if sender.send(message).await.is_err() || last {
                    break;
                }
            }
            drop(watch);
            tracing::info!(watchers = events.watchers(), "event watcher left");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

fn dropped_to_pb(count: u64) -> pb::CallEvent {
    pb::CallEvent {
        time: Some(timestamp_to_pb(domain::now())),
        event: Some(pb::call_event::Event::Dropped(pb::EventsDropped { count })),
        ..Default::default()
    }
}

fn event_to_pb(fed: &FeedEvent) -> pb::CallEvent {
    use pb::call_event::Event;
    let e = &fed.event;
    let event = match &e.kind {
        EventKind::StatusChanged {
            previous,
            current,
            end_reason,
        } => Event::StatusChanged(pb::StatusChanged {
            previous: previous
                .map_or(pb::CallStatus::Unspecified, call_status_to_pb)
                .into(),
            current: call_status_to_pb(*current).into(),
            end_reason: end_reason.clone(),
        }),
        EventKind::ItemStored(item) => Event::ItemStored(pb::ConversationItemStored {
            item: Some(item_to_pb(item.clone())),
        }),
        EventKind::Handoff { target, reason } => Event::Handoff(pb::HandoffRequested {
            target: target.as_ref().map(handoff_target_to_pb),
            reason: reason.clone(),
        }),
        EventKind::Error(error) => Event::Error(call_error_to_pb(error.clone())),
    };
    pb::CallEvent {
        call_id: e.call_id.clone(),
        agent_id: e.agent_id.clone(),
        campaign_id: e.campaign_id.clone(),
        time: Some(timestamp_to_pb(e.time)),
        event_id: fed.id.clone(),
        event: Some(event),
    }
}
