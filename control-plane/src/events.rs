//! The in-process event bus behind `WatchCallEvents`.
//!
//! Every status change, stored conversation item, handoff and call error is published
//! here after the store accepted it. Watchers that fall behind by more than the
//! buffer lose the oldest events and are told how many (`EventsDropped`), so a slow
//! dashboard never slows a call. Events are those of this replica; a multi-replica
//! feed (MongoDB change streams) is future work.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::domain::{
    CallError, CallSession, CallStatus, ConversationItem, HandoffTarget, Timestamp,
};

/// Events a watcher may lag behind before it starts losing the oldest.
const BUFFER: usize = 8192;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    StatusChanged {
        /// `None` for a newly created session.
        previous: Option<CallStatus>,
        current: CallStatus,
        end_reason: String,
    },
    ItemStored(ConversationItem),
    Handoff {
        target: Option<HandoffTarget>,
        reason: String,
    },
    Error(CallError),
}

/// Something that happened to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_id: String,
    pub agent_id: String,
    pub campaign_id: String,
    pub time: Timestamp,
    pub kind: EventKind,
}

impl CallEvent {
    pub fn for_session(session: &CallSession, time: Timestamp, kind: EventKind) -> Self {
        Self {
            call_id: session.id.clone(),
            agent_id: session.agent_id.clone(),
            campaign_id: session.campaign_id.clone(),
            time,
            kind,
        }
    }
}

/// Which events a watcher wants; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub call_id: String,
    pub agent_id: String,
    pub campaign_id: String,
}

impl EventFilter {
    pub fn matches(&self, e: &CallEvent) -> bool {
        (self.call_id.is_empty() || self.call_id == e.call_id)
            && (self.agent_id.is_empty() || self.agent_id == e.agent_id)
            && (self.campaign_id.is_empty() || self.campaign_id == e.campaign_id)
    }
}

/// Cheap to clone; every clone publishes to the same watchers.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<CallEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BUFFER);
        Self { sender }
    }

    /// Publishes to current watchers; without watchers the event is dropped.
    pub fn publish(&self, event: CallEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallEvent>> {
        self.sender.subscribe()
    }
}
