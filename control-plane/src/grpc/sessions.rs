//! `CallSessionService`, including the `WatchCallEvents` stream and the paged reads of
//! a conversation (`ListConversationItems`, and `GetCallSession`'s capped copy).

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
use crate::store::{ItemsRequest, PageRequest, SessionFilter};

/// `GetCallSession` returns a conversation whole up to this many items…
pub const CONVERSATION_CAP_ITEMS: usize = 10_000;
/// …and this much item weight (`ConversationItem::weight`, which is at least an item's
/// encoded size), so that a reply fits gRPC's default 4 MiB message limit with room
/// for the session. Pages of `ListConversationItems` stop at it too.
pub const REPLY_ITEM_BYTES: usize = 3 * 1024 * 1024;
/// `ListConversationItems` page sizes.
pub const DEFAULT_ITEMS_PAGE: usize = 100;
pub const MAX_ITEMS_PAGE: usize = 1000;

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
        if direction == CallDirection::Outbound {
            // Its media stream comes once it is answered; if it never does, the
            // sweeper ends the session (asking Twilio first).
            session.lease_expires_at = Some(
                self.services
                    .liveness
                    .outbound_lease_from(session.created_at),
            );
        }
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
        let store = &self.services.store;
        let session = store.get_session(&id).await.map_err(store_status)?;
        let whole = ItemsRequest {
            after_seq: 0,
            max_items: CONVERSATION_CAP_ITEMS,
            max_bytes: REPLY_ITEM_BYTES,
        };
        let page = store.list_items(&id, &whole).await.map_err(store_status)?;
        let next = page.next_after();
        let mut reply = session_to_pb(session);
        // Items appended between the two reads are in the page: say so.
        reply.last_seq = reply.last_seq.max(page.last_seq);
        reply.conversation = page.items.into_iter().map(item_to_pb).collect();
        if let Some(after) = next {
            reply.conversation_truncated = true;
            reply.conversation_next_page_token = page_token_to_pb(after);
        }
        Ok(Response::new(reply))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn list_conversation_items(
        &self,
        request: Request<pb::ListConversationItemsRequest>,
    ) -> Result<Response<pb::ListConversationItemsResponse>, Status> {
        let r = request.into_inner();
        if r.call_id.is_empty() {
            return Err(required("call_id"));
        }
        let max_items = items_page_size(r.page_size).map_err(invalid)?;
        let after_seq = page_token_from_pb(&r.page_token).map_err(invalid)?;
        let request = ItemsRequest {
            after_seq,
            max_items,
            max_bytes: REPLY_ITEM_BYTES,
        };
        let page = self
            .services
            .store
            .list_items(&r.call_id, &request)
            .await
            .map_err(store_status)?;
        if after_seq > page.last_seq {
            // Tokens are given below the last seq, which never goes down.
            return Err(invalid(InvalidField::new(
                "page_token",
                format!(
                    "{:?} is not a page of call {}: its conversation ends at seq {}",
                    r.page_token, r.call_id, page.last_seq
                ),
            )));
        }
        Ok(Response::new(pb::ListConversationItemsResponse {
            next_page_token: page.next_after().map(page_token_to_pb).unwrap_or_default(),
            last_seq: page.last_seq,
            items: page.items.into_iter().map(item_to_pb).collect(),
        }))
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

/// A `ListConversationItems` page size: 0 is the default; above the maximum is refused.
fn items_page_size(size: u32) -> Result<usize, InvalidField> {
    match usize::try_from(size) {
        Ok(0) => Ok(DEFAULT_ITEMS_PAGE),
        Ok(n) if n <= MAX_ITEMS_PAGE => Ok(n),
        _ => Err(InvalidField::new(
            "page_size",
            format!("{size} is above the maximum of {MAX_ITEMS_PAGE}"),
        )),
    }
}

/// The token of the page after seq `after`: the seq in decimal, opaque to clients.
fn page_token_to_pb(after: u64) -> String {
    after.to_string()
}

/// The seq a page token reads after; 0 for the empty token (the first page).
fn page_token_from_pb(token: &str) -> Result<u64, InvalidField> {
    if token.is_empty() {
        return Ok(0);
    }
    let canonical = token.bytes().all(|b| b.is_ascii_digit()) && !token.starts_with('0');
    match token.parse::<u64>() {
        Ok(after) if canonical => Ok(after),
        _ => Err(InvalidField::new(
            "page_token",
            format!("{token:?} is not a page token of ListConversationItems"),
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_anything_else_is_refused() {
        assert_eq!(page_token_from_pb(""), Ok(0));
        assert_eq!(page_token_from_pb(&page_token_to_pb(57)), Ok(57));
        for bad in [
            "abc",
            "-3",
            "+3",
            "07",
            "0",
            "1.5",
            "99999999999999999999999",
        ] {
            let err = page_token_from_pb(bad).unwrap_err();
            assert_eq!(err.field, "page_token", "{bad}");
        }
    }

    #[test]
    fn page_sizes_default_and_stop_at_the_maximum() {
        assert_eq!(items_page_size(0), Ok(DEFAULT_ITEMS_PAGE));
        assert_eq!(items_page_size(1000), Ok(1000));
        let err = items_page_size(1001).unwrap_err();
        assert_eq!(err.field, "page_size");
        assert!(err.to_string().contains("1001"), "{err}");
    }
}
