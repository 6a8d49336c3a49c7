//! The gRPC services: thin handlers that convert requests (`convert`), call the domain
//! and the store, and convert replies. `auth` guards them with a bearer token.
//!
//! `CampaignService` (`campaigns`) stores campaigns, their targets and the do-not-call
//! list; the dispatcher that dials them is `crate::campaigns`.

pub mod agents;
pub mod auth;
pub mod call_channel;
pub mod campaigns;
pub mod convert;
pub mod handoff;
pub mod sessions;

use std::sync::Arc;

use crate::domain::{self, AgentSettings, CallSession, CallStatus, StatusChange};
use crate::error::store_status;
use crate::events::{CallEvent, EventBus, EventKind, Published};
use crate::store::{Store, StoreResult};

/// Why a handoff found nowhere to send the call.
pub(crate) const NO_HANDOFF_TARGET: &str = "no handoff target given and its agent has none";

/// Why a live call could not be redirected. Twilio was not asked, or refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedirectError {
    #[error("no twilio credentials are configured")]
    NotConfigured,
    #[error("call {call_id} has no twilio call sid yet")]
    NoCallSid { call_id: String },
    #[error("call {call_id}: {source}")]
    Twilio {
        call_id: String,
        source: crate::twilio_api::TwilioError,
    },
}

impl RedirectError {
    /// The stable code recorded and sent to sidecars (`twilio.not_configured`, …).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            RedirectError::NotConfigured => "twilio.not_configured",
            RedirectError::NoCallSid { .. } => "twilio.no_call_sid",
            RedirectError::Twilio { .. } => "twilio.redirect_failed",
        }
    }
}

impl From<RedirectError> for tonic::Status {
    fn from(e: RedirectError) -> Self {
        match e {
            RedirectError::Twilio { .. } => tonic::Status::unavailable(e.to_string()),
            _ => tonic::Status::failed_precondition(e.to_string()),
        }
    }
}

/// The end reason of a handoff: the requester's reason, else `handoff_requested`.
pub(crate) fn handoff_reason(reason: &str) -> &str {
    if reason.is_empty() {
        "handoff_requested"
    } else {
        reason
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    /// Answers calls to numbers no agent owns, when set.
    pub default_agent_id: Option<String>,
    pub tools: crate::tools::ToolInvoker,
    /// Twilio's REST API; `None` when no credentials are configured.
    pub twilio: Option<Arc<dyn crate::twilio_api::TwilioApi>>,
    /// The sidecars' webhooks, for the calls this control plane places.
    pub webhooks: crate::config::WebhookConfig,
    /// The call streams held here and the lease timings (`crate::liveness`).
    pub liveness: crate::liveness::Liveness,
}

impl Services {
    /// Applies a status change and publishes what it changed; returns once the events
    /// are in the feed, so whoever acts on the answer finds them there.
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
            self.publish_status(&outcome.session, Some(previous)).await;
            // A campaign's target follows its call; the dispatcher's reconcile round
            // catches up if this fails.
            if let Err(e) =
                crate::campaigns::follow_call(self.store.as_ref(), &outcome.session).await
            {
                tracing::warn!(call_id = %call_id, error = %e, "campaign target did not follow its call");
            }
        }
        Ok(outcome.session)
    }

    /// Publishes a session's current status (and its error, if final with one); the
    /// result resolves once both are in the feed.
    pub(crate) fn publish_status(
        &self,
        session: &CallSession,
        previous: Option<CallStatus>,
    ) -> Published {
        let now = domain::now();
        let status = self.events.publish(CallEvent::for_session(
            session,
            now,
            EventKind::StatusChanged {
                previous,
                current: session.status,
                end_reason: session.end_reason.clone(),
            },
        ));
        match (session.status.is_final(), &session.error) {
            // Events are written in the order published: the last one written means
            // both are.
            (true, Some(error)) => self.events.publish(CallEvent::for_session(
                session,
                now,
                EventKind::Error(error.clone()),
            )),
            _ => status,
        }
    }

    /// Why calls cannot be placed (the missing setting), or `None` when they can.
    pub(crate) fn cannot_place_calls(&self) -> Option<String> {
        use crate::config::{
            ENV_TWILIO_ACCOUNT_SID, ENV_TWILIO_API_KEY, ENV_TWILIO_AUTH_TOKEN,
            ENV_VOICE_WEBHOOK_URL,
        };
        if self.twilio.is_none() {
            return Some(format!(
                "no twilio account is configured ({ENV_TWILIO_ACCOUNT_SID} with \
                 {ENV_TWILIO_AUTH_TOKEN} or {ENV_TWILIO_API_KEY})"
            ));
        }
        if self.webhooks.voice_url.is_none() {
            return Some(format!(
                "no voice webhook url is configured ({ENV_VOICE_WEBHOOK_URL})"
            ));
        }
        None
    }

    /// Asks Twilio to dial a new outbound session's callee and records the call SID.
    /// When Twilio refuses or cannot be reached, the session ends `failed` with Twilio's
    /// reason, and the error names the session and Twilio's code and message.
    pub(crate) async fn place_call(
        &self,
        session: &CallSession,
    ) -> Result<CallSession, tonic::Status> {
        let (Some(twilio), Some(voice_url), Some(status_url)) = (
            &self.twilio,
            &self.webhooks.voice_url,
            &self.webhooks.status_url,
        ) else {
            let missing = self.cannot_place_calls().unwrap_or_default();
            return Err(tonic::Status::failed_precondition(format!(
                "call {}: cannot place calls: {missing}",
                session.id
            )));
        };
        let request = crate::outbound::create_call(session, voice_url, status_url);
        let created = match twilio.create_call(&request).await {
            Ok(created) => created,
            Err(e) => {
                tracing::warn!(call_id = %session.id, error = %e, "twilio did not place the call");
                let change = crate::outbound::not_placed(&e);
                if let Err(status) = self.change_status(&session.id, &change).await {
                    tracing::error!(call_id = %session.id, "could not record the unplaced call: {}", status.message());
                }
                let context = format!("call {}: twilio did not place the call", session.id);
                return Err(crate::error::twilio_status(&context, &e));
            }
        };
        let call_sid = created.sid.unwrap_or_default();
        tracing::info!(call_id = %session.id, %call_sid, "call placed");
        let change = StatusChange {
            twilio_call_sid: call_sid,
            ..StatusChange::to(session.status)
        };
        match self.change_status(&session.id, &change).await {
            Ok(updated) => Ok(updated),
            // A status callback moved the session on first, and recorded the SID itself.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => self
                .store
                .get_session(&session.id)
                .await
                .map_err(store_status),
            Err(status) => Err(status),
        }
    }

    /// Hands a live call to humans: `target`, or the agent's handoff target. The
    /// session ends `handed-off` only once Twilio took the redirect.
    pub(crate) async fn hand_off(
        &self,
        session: &CallSession,
        target: Option<domain::HandoffTarget>,
        reason: &str,
        say: &str,
    ) -> Result<CallSession, tonic::Status> {
        let redirect = self.handoff_redirect(session, target, say).await?;
        self.redirect_live_call(session, &redirect).await?;
        self.end_redirected(session, &redirect, handoff_reason(reason), None)
            .await
    }

    /// The redirect a handoff of `session` to `target` (or its agent's handoff target)
    /// runs. FAILED_PRECONDITION when the call has ended or there is no target.
    pub(crate) async fn handoff_redirect(
        &self,
        session: &CallSession,
        target: Option<domain::HandoffTarget>,
        say: &str,
    ) -> Result<crate::redirect::Redirect, tonic::Status> {
        if !session.is_live() {
            return Err(tonic::Status::failed_precondition(format!(
                "call {} has ended ({})",
                session.id, session.status
            )));
        }
        let agent = self
            .agent_or_default(&session.agent_id)
            .await
            .map_err(crate::error::store_status)?;
        crate::redirect::transfer(agent.as_ref(), target, say).ok_or_else(|| {
            tonic::Status::failed_precondition(format!("call {}: {NO_HANDOFF_TARGET}", session.id))
        })
    }

    /// Asks Twilio to run `redirect.twiml` on the live call.
    pub(crate) async fn redirect_live_call(
        &self,
        session: &CallSession,
        redirect: &crate::redirect::Redirect,
    ) -> Result<(), RedirectError> {
        let Some(twilio) = &self.twilio else {
            return Err(RedirectError::NotConfigured);
        };
        if session.twilio_call_sid.is_empty() {
            return Err(RedirectError::NoCallSid {
                call_id: session.id.clone(),
            });
        }
        let update = switchboard_twilio::rest::UpdateCall::redirect_twiml(redirect.twiml.clone());
        twilio
            .update_call(&session.twilio_call_sid, &update)
            .await
            .map_err(|source| RedirectError::Twilio {
                call_id: session.id.clone(),
                source,
            })
    }

    /// Sends a live call to its agent's fallback (the apology, or the human target;
    /// the built-in apology when the agent cannot be read, which still beats silence)
    /// and ends its session with `reason`. `Err` when Twilio did not take the redirect:
    /// nothing was recorded, and what to do instead is the caller's choice.
    pub(crate) async fn send_to_fallback(
        &self,
        session: &CallSession,
        reason: &str,
        error: Option<domain::CallError>,
    ) -> Result<Result<CallSession, tonic::Status>, RedirectError> {
        let agent = self
            .agent_or_default(&session.agent_id)
            .await
            .ok()
            .flatten();
        let redirect = crate::redirect::fallback(agent.as_ref());
        self.redirect_live_call(session, &redirect).await?;
        Ok(self.end_redirected(session, &redirect, reason, error).await)
    }

    /// Records where a redirected call went and ends its session.
    pub(crate) async fn end_redirected(
        &self,
        session: &CallSession,
        redirect: &crate::redirect::Redirect,
        reason: &str,
        error: Option<domain::CallError>,
    ) -> Result<CallSession, tonic::Status> {
        if let Some(target) = &redirect.target {
            self.events
                .publish(CallEvent::for_session(
                    session,
                    domain::now(),
                    EventKind::Handoff {
                        target: Some(target.clone()),
                        reason: reason.to_owned(),
                    },
                ))
                .await;
        }
        let change = StatusChange {
            status: redirect.status,
            end_reason: reason.to_owned(),
            error,
            twilio_call_sid: String::new(),
        };
        self.change_status(&session.id, &change).await
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
