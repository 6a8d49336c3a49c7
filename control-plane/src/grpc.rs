//! The gRPC services: thin handlers that convert requests (`convert`), call the domain
//! and the store, and convert replies. `auth` guards them with a bearer token.
//!
//! `CampaignService` and `HandoffService` are part of the contract but are not served
//! yet: tonic answers their calls `UNIMPLEMENTED`, and reflection still lists them.

pub mod agents;
pub mod auth;
pub mod call_channel;
pub mod convert;
pub mod sessions;

use std::sync::Arc;

use crate::domain::{self, AgentSettings, CallSession, CallStatus, StatusChange};
use crate::error::store_status;
use crate::events::{CallEvent, EventBus, EventKind};
use crate::store::{Store, StoreResult};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    /// Answers calls to numbers no agent owns, when set.
    pub default_agent_id: Option<String>,
    pub tools: crate::tools::ToolInvoker,
}

impl Services {
    /// Applies a status change and publishes what it changed.
    pub(crate) async fn change_status(
        &self,
        call_id: &str,
        change: &StatusChange,
    ) -> Result<CallSession, tonic::Status> {
        let now = domain::now();
        let outcome = self
            .store
            .update_status(call_id, change, now)
            .await
            .map_err(store_status)?;
        if let Some(previous) = outcome.previous {
            self.publish_status(&outcome.session, Some(previous));
        }
        Ok(outcome.session)
    }

    /// Publishes a session's current status (and its error, if final with one).
    pub(crate) fn publish_status(&self, session: &CallSession, previous: Option<CallStatus>) {
        let now = domain::now();
        self.events.publish(CallEvent::for_session(
            session,
            now,
            EventKind::StatusChanged {
                previous,
                current: session.status,
                end_reason: session.end_reason.clone(),
            },
        ));
        if let (true, Some(error)) = (session.status.is_final(), &session.error) {
            self.events.publish(CallEvent::for_session(
                session,
                now,
                EventKind::Error(error.clone()),
            ));
        }
    }

    /// The agent for a call: its own, else the configured default agent.
    pub(crate) async fn agent_or_default(
        &self,
        agent_id: &str,
    ) -> StoreResult<Option<AgentSettings>> {
        if !agent_id.is_empty() {
            match self.store.get_agent(agent_id).await {
                Ok(agent) => return Ok(Some(agent)),
                Err(crate::store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.default_agent().await
    }

    pub(crate) async fn default_agent(&self) -> StoreResult<Option<AgentSettings>> {
        let Some(id) = &self.default_agent_id else {
            return Ok(None);
        };
        match self.store.get_agent(id).await {
            Ok(agent) => Ok(Some(agent)),
            Err(crate::store::StoreError::NotFound { .. }) => {
                tracing::warn!(agent_id = %id, "the default agent does not exist");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
