//! Every call ends in the record, whatever dies: liveness leases and the orphan sweeper.
//!
//! A live call that a media sidecar carries has a **lease** on its session
//! (`CallSession::lease_expires_at`). The sidecar keeps it through the call's `Connect`
//! stream: while that stream is open, the replica holding it renews the lease of every
//! call it holds, in one write per [`Liveness::tick`] (`renew_leases`), and `Hello`
//! renews it at once. When the sidecar dies (OOM, node lost, `kill -9`), its streams
//! close — at once when the kernel closes its sockets, within HTTP/2 keep-alive
//! (30 s) when its node vanished — and nobody renews its calls' leases any more. When
//! a control-plane replica dies, the sidecars reopen their streams on another replica
//! within their reconnect back-off, which renews the leases there.
//!
//! The **sweeper** ends sessions whose lease has passed. It runs on every replica,
//! but acts on one at a time: each round takes the store lease [`SWEEPER_LEASE`]
//! (`acquire_lease`), held for two rounds, so another replica takes over soon after
//! the acting one dies. A session it ends:
//! - that had a media stream (a sidecar took it) ends `failed` with end reason
//!   [`SIDECAR_LOST`]. When a Twilio account is configured the sweeper asks Twilio
//!   first: a call Twilio says is still live is redirected to the agent's fallback (its
//!   apology, or its human target — the same path as an AI outage, so the caller is
//!   not left in silence), and hung up if the redirect fails;
//! - that never had one (a placed call that never connected, an answered call whose
//!   stream never came) takes Twilio's final status when Twilio has one (its status
//!   callback was lost), is left ringing while Twilio says it rings (its lease is
//!   extended), and otherwise ends `failed` with [`STREAM_NEVER_CONNECTED`] (a call
//!   Twilio says was answered is sent to the fallback first).
//!
//! **Timing.** With `SWITCHBOARD_ORPHAN_TIMEOUT` = T (default 60 s), a lease lasts
//! ¾ T and is renewed every ¼ T; the sweeper looks every ¼ T. A call whose carrier
//! died is final within T of the last renewal (plus HTTP/2 keep-alive when a node
//! vanished without closing its sockets). A new outbound session's first lease adds
//! [`OUTBOUND_RING_ALLOWANCE`] timeouts for ringing.
//!
//! **Database outages.** While the database is away nobody can renew, so once it
//! returns every lease may look expired. The sweeper therefore acts only after the
//! store has answered it without a break for a whole T: by then every replica holding
//! streams has renewed their leases (it retries every ¼ T).
//!
//! Sessions without a lease — conference and dial routes (only Twilio's callbacks end
//! them), sessions stored before leases existed — are never swept.

mod sweeper;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::Timestamp;

pub use sweeper::spawn;

/// `SWITCHBOARD_ORPHAN_TIMEOUT`: how long a call may go unclaimed before its session is
/// ended (see the module docs).
pub const ENV_ORPHAN_TIMEOUT: &str = "SWITCHBOARD_ORPHAN_TIMEOUT";
pub const DEFAULT_ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);
/// Shorter makes no sense: renewals would be a few hundred ms apart.
pub const MIN_ORPHAN_TIMEOUT: Duration = Duration::from_secs(1);
/// Orphan timeouts added to the first lease of a new outbound session (two minutes by
/// default): a placed call rings for up to Twilio's 60 s timeout by default, and may
/// wait in Twilio's queue before that. With a Twilio account the sweeper asks Twilio
/// and leaves a call that still rings alone, whatever this allowance.
pub const OUTBOUND_RING_ALLOWANCE: u32 = 2;
/// End reason of a call whose sidecar stopped carrying it.
pub const SIDECAR_LOST: &str = "sidecar_lost";
/// End reason of a call that no media stream ever reached.
pub const STREAM_NEVER_CONNECTED: &str = "stream_never_connected";
/// The store lease the acting sweeper holds.
pub const SWEEPER_LEASE: &str = "orphan-sweeper";

/// The call streams this replica holds, and the lease timings. Clones share them.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    orphan_timeout: Duration,
    /// Call id → streams of it open here (a reconnect may overlap the old stream).
    held: Mutex<HashMap<String, usize>>,
}

/// A call stream held open on this replica; dropping it stops the renewals.
#[derive(Debug)]
#[must_use = "the call's lease is renewed only while its hold lives"]
pub struct StreamHold {
    inner: Arc<Inner>,
    call_id: String,
}

// === impl Liveness ===

impl Liveness {
    pub fn new(orphan_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                orphan_timeout,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn orphan_timeout(&self) -> Duration {
        self.inner.orphan_timeout
    }

    /// How often leases are renewed and the sweeper looks: a quarter of the timeout.
    pub fn tick(&self) -> Duration {
        self.inner.orphan_timeout / 4
    }

    /// A lease taken at `now`: three quarters of the timeout, so that a call whose
    /// carrier died is swept within the timeout of the last renewal.
    pub fn lease_from(&self, now: Timestamp) -> Timestamp {
        now + chrono_duration(self.inner.orphan_timeout * 3 / 4)
    }

    /// The first lease of a new outbound session, which has to ring first.
    pub fn outbound_lease_from(&self, now: Timestamp) -> Timestamp {
        self.lease_from(now) + chrono_duration(self.inner.orphan_timeout * OUTBOUND_RING_ALLOWANCE)
    }

    /// Marks `call_id`'s stream as held here until the hold is dropped.
    pub fn hold(&self, call_id: &str) -> StreamHold {
        *self.lock().entry(call_id.to_owned()).or_default() += 1;
        StreamHold {
            inner: Arc::clone(&self.inner),
            call_id: call_id.to_owned(),
        }
    }

    /// The calls whose streams are held here now.
    pub fn held(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        lock(&self.inner)
    }
}

fn lock(inner: &Inner) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    // A panic while holding this lock leaves a consistent map: take it anyway.
    inner
        .held
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

// === impl StreamHold ===

impl Drop for StreamHold {
    fn drop(&mut self) {
        let mut held = lock(&self.inner);
        if let Some(count) = held.get_mut(&self.call_id) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.call_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_count_streams_per_call() {
        let liveness = Liveness::new(DEFAULT_ORPHAN_TIMEOUT);
        let first = liveness.hold("c-1");
        let overlapping = liveness.hold("c-1");
        let other = liveness.hold("c-2");
        let mut held = liveness.held();
        held.sort();
        assert_eq!(held, ["c-1", "c-2"]);
        drop(first);
        assert!(
            liveness.held().contains(&"c-1".to_owned()),
            "the reconnected stream still holds it"
        );
        drop((overlapping, other));
        assert!(liveness.held().is_empty());
    }

    #[test]
    fn a_lease_lasts_three_quarters_of_the_timeout_and_renewals_come_every_quarter() {
        let liveness = Liveness::new(Duration::from_secs(60));
        let now = crate::domain::now();
        assert_eq!(liveness.tick(), Duration::from_secs(15));
        assert_eq!(
            liveness.lease_from(now) - now,
            chrono::Duration::seconds(45)
        );
        assert_eq!(
            liveness.outbound_lease_from(now) - now,
            chrono::Duration::seconds(45 + 120)
        );
    }
}
