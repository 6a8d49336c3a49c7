//! The lease keeper and the orphan sweeper: two loops of one task per replica. Read
//! `liveness.rs` first for what they promise.

use std::sync::Arc;
use std::time::Duration;

use switchboard_twilio::rest::UpdateCall;
use switchboard_twilio::vocabulary::CallStatus as TwilioCallStatus;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Liveness, SIDECAR_LOST, STREAM_NEVER_CONNECTED, SWEEPER_LEASE};
use crate::domain::{self, CallError, CallSession, CallStatus, StatusChange};
use crate::grpc::Services;
use crate::metrics::Metrics;

/// Sessions ended per sweeper round at most; the rest wait for the next round.
const SWEEP_BATCH: usize = 100;

/// Starts this replica's lease keeper and sweeper; abort the handle to stop them.
pub fn spawn(services: Services, metrics: Arc<Metrics>) -> JoinHandle<()> {
    let holder = format!("replica-{}", uuid::Uuid::now_v7().simple());
    tokio::spawn(async move {
        tokio::join!(keep_leases(&services), sweep(&services, &metrics, &holder));
    })
}

fn every(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Renews the lease of every call whose stream this replica holds, every tick.
async fn keep_leases(services: &Services) {
    let liveness = &services.liveness;
    let mut tick = every(liveness.tick());
    loop {
        tick.tick().await;
        let held = liveness.held();
        if held.is_empty() {
            continue;
        }
        let until = liveness.lease_from(domain::now());
        match services.store.renew_leases(&held, until).await {
            Ok(renewed) => tracing::trace!(held = held.len(), renewed, "call leases renewed"),
            // Retried next tick; the sweeper waits a whole timeout after an outage.
            Err(e) => tracing::warn!(held = held.len(), error = %e, "call leases not renewed"),
        }
    }
}

/// Every tick: takes (or keeps) the sweeper's store lease and, once the store has
/// answered without a break for a whole orphan timeout, ends what has expired.
async fn sweep(services: &Services, metrics: &Metrics, holder: &str) {
    let liveness = &services.liveness;
    let mut tick = every(liveness.tick());
    // Since when the store has answered every round, as far as this replica knows, and
    // when it last answered.
    let mut reachable_since: Option<Instant> = None;
    let mut last_answer: Option<Instant> = None;
    let mut acting = false;
    loop {
        tick.tick().await;
        let now = domain::now();
        let hold_until = now + super::chrono_duration(liveness.tick() * 2);
        let held = match services
            .store
            .acquire_lease(SWEEPER_LEASE, holder, now, hold_until)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                if reachable_since.take().is_some() {
                    tracing::warn!(error = %e, "orphan sweeper paused: the store is unreachable");
                }
                continue;
            }
        };
        // A driver may wait for a server that went away rather than fail: an answer
        // that took rounds to come means the store was away meanwhile, and nobody could
        // renew a lease either.
        let answered = Instant::now();
        if last_answer.is_some_and(|last| answered - last > liveness.tick() * 2) {
            tracing::warn!("orphan sweeper paused: the store was away");
            reachable_since = None;
        }
        last_answer = Some(answered);
        let since = *reachable_since.get_or_insert(answered);
        if held != acting {
            acting = held;
            tracing::info!(
                acting,
                "orphan sweeper {}",
                if held {
                    "acting on this replica"
                } else {
                    "acting elsewhere"
                }
            );
        }
        if !held || since.elapsed() < liveness.orphan_timeout() {
            continue;
        }
        let expired = match services.store.expired_leases(now, SWEEP_BATCH).await {
            Ok(expired) => expired,
            Err(e) => {
                tracing::warn!(error = %e, "orphan sweeper could not read expired leases");
                continue;
            }
        };
        for session in expired {
            if end_orphan(services, liveness, &session.id).await {
                metrics.orphan_ended();
            }
        }
    }
}

/// What Twilio says of a call, when it can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TwilioView {
    /// No account configured, no call SID, or Twilio could not answer.
    Unknown,
    /// Queued or ringing: not answered yet.
    Ringing,
    /// Answered and not over.
    Live,
    /// Over, with this status.
    Ended(CallStatus),
}

/// Ends one orphaned session (see the module docs of `liveness`); true when this call
/// ended it.
#[tracing::instrument(skip_all, fields(call_id = %call_id))]
async fn end_orphan(services: &Services, liveness: &Liveness, call_id: &str) -> bool {
    // Read again: a stream may have claimed the call since the scan.
    let session = match services.store.get_session(call_id).await {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!(error = %e, "orphaned call not read");
            return false;
        }
    };
    let now = domain::now();
    if !session.is_live() || session.lease_expires_at.is_none_or(|until| until >= now) {
        return false;
    }
    let view = twilio_view(services, &session).await;
    let had_stream = session.had_stream();
    let (reason, error) = if had_stream {
        (
            SIDECAR_LOST,
            CallError {
                code: "sidecar.lost".into(),
                message: format!(
                    "no media sidecar kept the call for {:?} (sidecar {:?}); twilio says: {}",
                    liveness.orphan_timeout(),
                    session.sidecar_id,
                    describe(view)
                ),
            },
        )
    } else {
        (
            STREAM_NEVER_CONNECTED,
            CallError {
                code: "stream.never_connected".into(),
                message: format!(
                    "no media stream reached a sidecar within {:?} of the call's last sign of life; twilio says: {}",
                    liveness.orphan_timeout(),
                    describe(view)
                ),
            },
        )
    };
    match view {
        TwilioView::Ringing if !had_stream => {
            // Still ringing: Twilio will end it (and call back); look again later.
            let until = liveness.lease_from(now);
            if let Err(e) = services
                .store
                .renew_leases(std::slice::from_ref(&session.id), until)
                .await
            {
                tracing::warn!(error = %e, "lease of a ringing call not extended");
            }
            false
        }
        TwilioView::Ended(status) if !had_stream => {
            // Its status callback never reached us.
            let change = StatusChange {
                status,
                end_reason: format!("twilio_{}", status.as_str().replace('-', "_")),
                error: None,
                twilio_call_sid: String::new(),
            };
            record_for(services, &session.id, &change).await
        }
        TwilioView::Ringing | TwilioView::Live => {
            send_to_fallback(services, &session, reason, error).await
        }
        TwilioView::Ended(_) | TwilioView::Unknown => {
            let change = StatusChange {
                status: CallStatus::Failed,
                end_reason: reason.to_owned(),
                error: Some(error),
                twilio_call_sid: String::new(),
            };
            record_for(services, &session.id, &change).await
        }
    }
}

/// The call as Twilio sees it.
async fn twilio_view(services: &Services, session: &CallSession) -> TwilioView {
    let (Some(twilio), false) = (&services.twilio, session.twilio_call_sid.is_empty()) else {
        return TwilioView::Unknown;
    };
    match twilio.fetch_call(&session.twilio_call_sid).await {
        Ok(call) => match call.status {
            Some(
                TwilioCallStatus::Queued | TwilioCallStatus::Initiated | TwilioCallStatus::Ringing,
            ) => TwilioView::Ringing,
            Some(TwilioCallStatus::InProgress) => TwilioView::Live,
            Some(other) => CallStatus::parse(other.as_str())
                .filter(|s| s.is_final())
                .map_or(TwilioView::Unknown, TwilioView::Ended),
            None => TwilioView::Unknown,
        },
        Err(e) => {
            tracing::warn!(call_sid = %session.twilio_call_sid, error = %e, "twilio not asked about an orphaned call");
            TwilioView::Unknown
        }
    }
}

fn describe(view: TwilioView) -> String {
    match view {
        TwilioView::Unknown => "nothing (not asked, or no answer)".to_owned(),
        TwilioView::Ringing => "ringing".to_owned(),
        TwilioView::Live => "in-progress".to_owned(),
        TwilioView::Ended(status) => status.as_str().to_owned(),
    }
}

/// A call Twilio still carries, that no sidecar does: the caller hears the agent's
/// fallback (its apology, or its human target) rather than silence; hung up if Twilio
/// does not take the redirect.
async fn send_to_fallback(
    services: &Services,
    session: &CallSession,
    reason: &str,
    error: CallError,
) -> bool {
    match services
        .send_to_fallback(session, reason, Some(error.clone()))
        .await
    {
        Ok(ended) => {
            tracing::warn!(reason, "orphaned call sent to its fallback");
            match ended {
                Ok(_) => true,
                Err(status) => {
                    tracing::warn!(code = ?status.code(), "orphaned call redirected, its end not recorded: {}", status.message());
                    false
                }
            }
        }
        Err(e) => {
            tracing::warn!(
                code = e.code(),
                "orphaned call not redirected; hanging up: {e}"
            );
            if let Some(twilio) = &services.twilio {
                if let Err(e) = twilio
                    .update_call(&session.twilio_call_sid, &UpdateCall::hang_up())
                    .await
                {
                    tracing::warn!(error = %e, "orphaned call not hung up");
                }
            }
            let change = StatusChange {
                status: CallStatus::Failed,
                end_reason: reason.to_owned(),
                error: Some(error),
                twilio_call_sid: String::new(),
            };
            record_for(services, &session.id, &change).await
        }
    }
}

/// Applies the sweeper's status change; true when it ended the call (false when
/// another path ended it first, or the store refused).
async fn record_for(services: &Services, call_id: &str, change: &StatusChange) -> bool {
    match services.change_status(call_id, change).await {
        Ok(ended) => {
            tracing::warn!(status = %ended.status, end_reason = %ended.end_reason, "orphaned call ended");
            true
        }
        Err(status) => {
            tracing::info!(code = ?status.code(), "orphaned call not ended here: {}", status.message());
            false
        }
    }
}
