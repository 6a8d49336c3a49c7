//! The campaign engine: the dispatcher that dials campaigns' targets, and how a
//! target follows its call.
//!
//! - `dispatcher`: one replica at a time (the store lease `campaign-dispatcher`) reads
//!   the running campaigns, paces their calls (`pacer`) per campaign and across the
//!   account (`SWITCHBOARD_TWILIO_MAX_CPS`), holds each campaign to its concurrency cap
//!   and the system to its live-call ceiling, and places each attempt after taking it
//!   in the store (`Store::take_target`), which is what makes every attempt dialled at
//!   most once across replicas and restarts.
//! - [`follow_call`]: every status change of a campaign's call moves its target on
//!   (in-call, done, retry-wait, failed) as the campaign's retry policy says. It runs
//!   wherever the status change lands, on any replica.
//!
//! A call whose final status never arrives is not a leaked slot: its session holds a
//! liveness lease like any outbound call, and the orphan sweeper ends it (asking
//! Twilio first), which moves the target on through [`follow_call`].

mod dispatcher;
pub mod pacer;

pub use dispatcher::{spawn, DispatchConfig, DISPATCHER_LEASE};

use crate::domain::campaign::after_call;
use crate::domain::{self, CallSession, CampaignState, TargetState};
use crate::store::{Store, StoreResult};

/// The system's live-call ceiling campaigns yield to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadCeiling {
    /// `SWITCHBOARD_CAMPAIGN_MAX_LIVE_CALLS`; `None`: no ceiling.
    pub max_live_calls: Option<usize>,
    /// `SWITCHBOARD_CAMPAIGN_INBOUND_RESERVE`.
    pub inbound_reserve: usize,
}

impl LoadCeiling {
    /// True when campaigns may place another call with `live` calls up.
    pub fn allows(&self, live: u64) -> bool {
        self.max_live_calls.is_none_or(|max| {
            let room = max.saturating_sub(self.inbound_reserve) as u64;
            live < room
        })
    }
}

/// Moves the target of a campaign call on after its session's status changed to
/// `session.status`. Does nothing for calls no campaign placed, for statuses that
/// change nothing for the target, and for a target whose current call is another one.
pub(crate) async fn follow_call(store: &dyn Store, session: &CallSession) -> StoreResult<bool> {
    if session.campaign_id.is_empty() || session.campaign_target_id.is_empty() {
        return Ok(false);
    }
    let target = store
        .get_target(&session.campaign_id, &session.campaign_target_id)
        .await?;
    if target.last_call_id != session.id || !target.state.holds_slot() {
        return Ok(false);
    }
    let campaign = store.get_campaign(&session.campaign_id).await?;
    let now = domain::now();
    let Some(mut update) = after_call(target.attempts, &campaign.retry, session, now) else {
        return Ok(false);
    };
    if update.state == target.state {
        return Ok(false);
    }
    // A canceled campaign dials nothing more, retries included.
    if update.state == TargetState::RetryWait && campaign.state == CampaignState::Canceled {
        update.state = TargetState::Canceled;
        update.next_attempt_at = None;
    }
    let recorded = store
        .update_target(&session.campaign_id, &target.id, &session.id, &update, now)
        .await?;
    if recorded {
        tracing::info!(
            campaign_id = %session.campaign_id,
            target_id = %target.id,
            call_id = %session.id,
            attempt = target.attempts,
            call_status = %session.status,
            target_state = update.state.as_str(),
            "campaign target moved on"
        );
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_keeps_the_inbound_reserve_free() {
        let none = LoadCeiling::default();
        assert!(none.allows(1_000_000));
        let ceiling = LoadCeiling {
            max_live_calls: Some(100),
            inbound_reserve: 20,
        };
        assert!(ceiling.allows(79));
        assert!(!ceiling.allows(80));
        let all_reserved = LoadCeiling {
            max_live_calls: Some(10),
            inbound_reserve: 20,
        };
        assert!(!all_reserved.allows(0));
    }
}
