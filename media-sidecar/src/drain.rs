//! Active calls, readiness and the SIGTERM drain.
//!
//! [`Drain`] counts the calls this replica carries: each holds a [`CallGuard`] from the
//! moment its media socket is accepted until the call's task lets go of it, and the
//! guard moves the active-calls gauge (the autoscaling signal) both ways. Readiness is a
//! latch: [`Drain::set_ready`] once the listeners serve, and after
//! [`Drain::begin_drain`] the replica is never ready again — `/readyz` answers 503, new
//! calls get the fallback answer and new media sockets are refused.
//! [`Drain::wait_idle`] then lets the active calls finish for a bounded grace and reports
//! how many were cut.
//!
//! The count lives in a `watch` channel: changing it takes a short lock, once per call,
//! never per frame; waiting for zero needs no polling.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

/// The replica's call registry and readiness latch. Clones share it.
#[derive(Debug, Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

/// One active call. Dropping it ends the call's registration.
#[derive(Debug)]
#[must_use = "the call counts as active only while its guard lives"]
pub struct CallGuard {
    inner: Arc<Inner>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls still active when the grace ran out (0: every call finished).
    pub cut: usize,
}

#[derive(Debug)]
struct Inner {
    active: watch::Sender<usize>,
    max_calls: usize,
    ready: AtomicBool,
    draining: AtomicBool,
    gauge: Gauge,
}

// === impl Drain ===

impl Drain {
    /// A registry admitting up to `max_calls` calls, moving `gauge` with the count. Not
    /// ready until [`set_ready`](Self::set_ready).
    pub fn new(max_calls: usize, gauge: Gauge) -> Self {
        Self {
            inner: Arc::new(Inner {
                active: watch::Sender::new(0),
                max_calls,
                ready: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                gauge,
            }),
        }
    }

    /// Registers an active call, whatever the count (a socket Twilio opens for a call we
    /// already answered is not refused for capacity).
    pub fn track(&self) -> CallGuard {
        self.inner.active.send_modify(|n| *n += 1);
        self.inner.gauge.inc();
        CallGuard {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Calls active now.
    pub fn active(&self) -> usize {
        *self.inner.active.borrow()
    }

    /// The configured ceiling.
    pub fn max_calls(&self) -> usize {
        self.inner.max_calls
    }

    /// True when `max_calls` calls are active: a new call should get the fallback.
    pub fn at_capacity(&self) -> bool {
        self.active() >= self.inner.max_calls
    }

    /// Marks the replica ready (once its listeners serve). No effect after a drain began.
    pub fn set_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
    }

    /// Ready and not draining: what `/readyz` reports.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.is_draining()
    }

    /// True once [`begin_drain`](Self::begin_drain) was called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Stops taking calls, for good: readiness drops, webhooks answer the fallback and
    /// media sockets are refused. Active calls go on.
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Waits until no call is active or `grace` has passed, whichever comes first.
    pub async fn wait_idle(&self, grace: Duration) -> DrainReport {
        let mut active = self.inner.active.subscribe();
        // `wait_for` checks the current value first, so a count already at zero returns
        // at once; the sender lives in `self`, so it cannot close under us.
        let _ = tokio::time::timeout(grace, active.wait_for(|n| *n == 0)).await;
        DrainReport { cut: self.active() }
    }
}

// === impl CallGuard ===

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.inner.active.send_modify(|n| *n = n.saturating_sub(1));
        self.inner.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(max_calls: usize) -> (Drain, Gauge) {
        let gauge = Gauge::default();
        (Drain::new(max_calls, gauge.clone()), gauge)
    }

    #[test]
    fn guards_count_calls_and_move_the_gauge() {
        let (drain, gauge) = drain(2);
        let first = drain.track();
        assert!(!drain.at_capacity());
        let second = drain.track();
        assert_eq!((drain.active(), gauge.get()), (2, 2));
        assert!(drain.at_capacity());
        drop(first);
        assert_eq!((drain.active(), gauge.get()), (1, 1));
        assert!(!drain.at_capacity());
        drop(second);
        assert_eq!((drain.active(), gauge.get()), (0, 0));
    }

    #[test]
    fn readiness_is_a_latch() {
        let (drain, _) = drain(1);
        assert!(!drain.is_ready(), "not ready before the listeners serve");
        drain.set_ready();
        assert!(drain.is_ready());
        drain.begin_drain();
        assert!(!drain.is_ready() && drain.is_draining());
        drain.set_ready();
        assert!(
            !drain.is_ready(),
            "a draining replica never turns ready again"
        );
    }

    /// Far longer than any test should take: reaching it means `wait_idle` hung.
    const PATIENCE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn wait_idle_returns_at_once_without_calls() {
        let (drain, _) = drain(1);
        let report = tokio::time::timeout(Duration::from_secs(10), drain.wait_idle(PATIENCE))
            .await
            .expect("no call to wait for");
        assert_eq!(report.cut, 0);
    }

    #[tokio::test]
    async fn wait_idle_returns_when_the_last_call_ends() {
        let (drain, _) = drain(5);
        let call = drain.track();
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(call);
        });
        let report = tokio::time::timeout(Duration::from_secs(10), drain.wait_idle(PATIENCE))
            .await
            .expect("returns when the call ends, not at the grace");
        assert_eq!(report.cut, 0);
        ends.await.unwrap();
    }

    #[tokio::test]
    async fn wait_idle_reports_calls_cut_by_the_grace() {
        let (drain, _) = drain(5);
        let _long = [drain.track(), drain.track()];
        let report = drain.wait_idle(Duration::from_millis(20)).await;
        assert_eq!(report.cut, 2);
    }
}
