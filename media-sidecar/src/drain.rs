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
//! A call still on when the grace runs out is not left to die with the process (its
//! caller cut off mid-sentence, its session `in-progress` for good):
//! [`Drain::cut_remaining`] raises the cut signal, which every call's task watches
//! through its [`CutSignal`] (one taken after the cut hears it at once). The call then
//! ends through the control plane — redirected to the agent's fallback, recorded
//! `sidecar_drained` — and [`Drain::wait_cut`] gives those calls a bounded time to finish
//! saying so before the process exits.
//!
//! A call is ours from the moment its voice webhook is answered with a stream, not from
//! the moment its media socket arrives (normally a second later): the webhook registers
//! the call id as *expected* ([`Drain::expect`], with a deadline), and the socket
//! consumes the expectation as it is admitted ([`Drain::admit`]). While draining, a
//! socket is admitted only for an expected call, and [`Drain::wait_idle`] waits for
//! expected calls as for active ones, so a caller answered just before SIGTERM is not
//! dropped. Expectations past their deadline are forgotten.
//!
//! Calls and expectations live in one `watch` channel: changing them takes a short lock,
//! a few times per call, never per frame; waiting for idle needs no polling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::time::Instant;

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

/// Tells one call's task when the drain cuts the calls still on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CutSignal {
    cut: watch::Receiver<bool>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls still active when the grace ran out (0: every call finished), each told to
    /// end through the control plane.
    pub cut: usize,
    /// Of those, calls still running when the time given to the cut calls ran out: they
    /// end with the process (0: every cut call finished).
    pub unsettled: usize,
    /// Calls answered with a stream whose media socket had not arrived when the grace
    /// ran out (0: every expected socket came, or its deadline passed).
    pub unconnected: usize,
}

#[derive(Debug)]
struct Inner {
    calls: watch::Sender<Calls>,
    /// Raised once, when the grace ran out with calls still on.
    cut: watch::Sender<bool>,
    max_calls: usize,
    ready: AtomicBool,
    draining: AtomicBool,
    gauge: Gauge,
}

/// What the drain waits for.
#[derive(Debug, Default)]
struct Calls {
    /// Calls whose media socket was admitted and whose task still runs.
    active: usize,
    /// Call ids answered with a stream whose socket has not arrived yet, each with the
    /// instant after which it is no longer waited for.
    expected: HashMap<String, Instant>,
}

// === impl Drain ===

impl Drain {
    /// A registry admitting up to `max_calls` calls, moving `gauge` with the count. Not
    /// ready until [`set_ready`](Self::set_ready).
    pub fn new(max_calls: usize, gauge: Gauge) -> Self {
        Self {
            inner: Arc::new(Inner {
                calls: watch::Sender::new(Calls::default()),
                cut: watch::Sender::new(false),
                max_calls,
                ready: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                gauge,
            }),
        }
    }

    /// Registers an active call, whatever the count (a socket Twilio opens for a call we
    /// already answered is not refused for capacity) and whether or not the replica
    /// drains. Media sockets go through [`admit`](Self::admit).
    pub fn track(&self) -> CallGuard {
        self.inner.calls.send_modify(|calls| calls.active += 1);
        self.guard()
    }

    /// Registers `call_id`, just answered with a stream, as expected: its media socket
    /// will be admitted even if the drain begins before it arrives, and the drain waits
    /// for it, until `within` has passed. Expectations already past their deadline are
    /// forgotten here.
    pub fn expect(&self, call_id: &str, within: Duration) {
        let now = Instant::now();
        let deadline = now + within;
        self.inner.calls.send_modify(|calls| {
            calls.expected.retain(|_, until| *until > now);
            calls.expected.insert(call_id.to_owned(), deadline);
        });
    }

    /// Admits the media socket of `call_id` as an active call, consuming its
    /// expectation if there is one. While draining, only an expected call (its deadline
    /// not passed) is admitted; otherwise `None`. The expectation is swapped for the
    /// active call under one lock, so a drain never sees the call as neither.
    pub fn admit(&self, call_id: &str) -> Option<CallGuard> {
        let now = Instant::now();
        let mut admitted = false;
        self.inner.calls.send_if_modified(|calls| {
            let expected = calls
                .expected
                .remove(call_id)
                .is_some_and(|until| until > now);
            admitted = expected || !self.is_draining();
            if admitted {
                calls.active += 1;
            }
            // A consumed expectation changes what the drain waits for, even if refused.
            admitted || expected
        });
        admitted.then(|| self.guard())
    }

    /// Calls active now.
    pub fn active(&self) -> usize {
        self.inner.calls.borrow().active
    }

    /// Calls answered with a stream whose media socket has not arrived yet (expired
    /// expectations not forgotten yet included).
    pub fn expected(&self) -> usize {
        self.inner.calls.borrow().expected.len()
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
    /// media sockets are refused, except those of calls already answered (expected).
    /// Active calls go on.
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Waits until no call is active and none is expected, or `grace` has passed,
    /// whichever comes first. Expectations are forgotten as their deadlines pass.
    pub async fn wait_idle(&self, grace: Duration) -> DrainReport {
        let give_up = Instant::now() + grace;
        let mut changes = self.inner.calls.subscribe();
        loop {
            let now = Instant::now();
            self.inner.calls.send_if_modified(|calls| {
                let before = calls.expected.len();
                calls.expected.retain(|_, until| *until > now);
                calls.expected.len() != before
            });
            let next_expiry = {
                // Marks this state seen: `changed` below wakes on anything after it.
                let calls = changes.borrow_and_update();
                if calls.active == 0 && calls.expected.is_empty() {
                    return DrainReport {
                        cut: 0,
                        unsettled: 0,
                        unconnected: 0,
                    };
                }
                calls.expected.values().min().copied()
            };
            if now >= give_up {
                break;
            }
            let wake = next_expiry.map_or(give_up, |expiry| expiry.min(give_up));
            // The sender lives in `self`, so `changed` cannot fail under us.
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        let report = {
            let calls = self.inner.calls.borrow();
            DrainReport {
                cut: calls.active,
                unsettled: 0,
                unconnected: calls.expected.len(),
            }
        };
        if report.unconnected > 0 {
            tracing::warn!(
                unconnected = report.unconnected,
                "drain grace elapsed before the media sockets of answered calls arrived"
            );
        }
        report
    }

    /// The signal a call's task watches to hear that the drain cut it
    /// ([`cut_remaining`](Self::cut_remaining)); taken after the cut, it has been raised
    /// already.
    pub fn cut_signal(&self) -> CutSignal {
        CutSignal {
            cut: self.inner.cut.subscribe(),
        }
    }

    /// True once [`cut_remaining`](Self::cut_remaining) was called.
    pub fn is_cut(&self) -> bool {
        *self.inner.cut.borrow()
    }

    /// The grace ran out: tells every call still on — and any admitted later — to end
    /// now, through its [`CutSignal`]. Once is enough; again changes nothing.
    pub fn cut_remaining(&self) {
        self.inner
            .cut
            .send_if_modified(|cut| !std::mem::replace(cut, true));
    }

    /// After [`cut_remaining`](Self::cut_remaining): waits until no call is active, or
    /// `grace` has passed, whichever comes first; returns how many calls are still
    /// active. Expected sockets are not waited for any more: one arriving meanwhile is
    /// admitted, cut at once, and waited for as an active call.
    pub async fn wait_cut(&self, grace: Duration) -> usize {
        let give_up = Instant::now() + grace;
        let mut changes = self.inner.calls.subscribe();
        loop {
            // Marks this state seen: `changed` below wakes on anything after it.
            let active = changes.borrow_and_update().active;
            if active == 0 || Instant::now() >= give_up {
                return active;
            }
            // The sender lives in `self`, so `changed` cannot fail under us.
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(give_up) => {}
            }
        }
    }

    fn guard(&self) -> CallGuard {
        self.inner.gauge.inc();
        CallGuard {
            inner: Arc::clone(&self.inner),
        }
    }
}

// === impl CutSignal ===

impl CutSignal {
    /// Resolves once the drain has cut the calls still on: at once if it has already.
    /// Never resolves while the drain has not (nor if its registry is gone uncut).
    pub async fn cut(&mut self) {
        if self.cut.wait_for(|cut| *cut).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// True once the drain has cut the calls still on.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

// === impl CallGuard ===

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.inner
            .calls
            .send_modify(|calls| calls.active = calls.active.saturating_sub(1));
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
        assert_eq!(
            report,
            DrainReport {
                cut: 2,
                unsettled: 0,
                unconnected: 0
            }
        );
    }

    #[test]
    fn an_expected_socket_is_admitted_while_draining_once() {
        let (drain, gauge) = drain(5);
        drain.expect("c-1", PATIENCE);
        assert_eq!((drain.expected(), drain.active()), (1, 0));
        drain.begin_drain();

        assert!(
            drain.admit("c-2").is_none(),
            "an unexpected call is refused"
        );
        let call = drain.admit("c-1").expect("the answered call is admitted");
        assert_eq!((drain.expected(), drain.active(), gauge.get()), (0, 1, 1));
        assert!(
            drain.admit("c-1").is_none(),
            "the expectation was consumed by the first socket"
        );
        drop(call);
        assert_eq!((drain.active(), gauge.get()), (0, 0));
    }

    #[test]
    fn before_the_drain_every_socket_is_admitted_and_consumes_its_expectation() {
        let (drain, _) = drain(1);
        drain.expect("c-1", PATIENCE);
        let unexpected = drain.admit("c-2").expect("not draining");
        let expected = drain.admit("c-1").expect("not draining");
        assert_eq!((drain.expected(), drain.active()), (0, 2));
        drop((unexpected, expected));
        assert_eq!(drain.active(), 0);
    }

    #[test]
    fn expired_expectations_admit_nothing_and_are_forgotten() {
        let (drain, _) = drain(5);
        drain.expect("c-1", Duration::from_millis(1));
        drain.expect("c-2", Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(20));
        drain.begin_drain();
        assert!(drain.admit("c-1").is_none(), "its deadline passed");
        assert_eq!(drain.expected(), 1, "c-2 is not forgotten yet");
        drain.expect("c-3", PATIENCE);
        assert_eq!(drain.expected(), 1, "c-2 was forgotten when c-3 came");
    }

    #[tokio::test]
    async fn wait_idle_waits_for_an_expected_call_to_arrive_and_finish() {
        let (drain, _) = drain(5);
        drain.expect("c-1", PATIENCE);
        drain.begin_drain();
        let ended = Arc::new(AtomicBool::new(false));
        let call = tokio::spawn({
            let (drain, ended) = (drain.clone(), Arc::clone(&ended));
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let guard = drain.admit("c-1").expect("the answered call is admitted");
                tokio::time::sleep(Duration::from_millis(20)).await;
                ended.store(true, Ordering::SeqCst);
                drop(guard);
            }
        });
        let report = tokio::time::timeout(Duration::from_secs(10), drain.wait_idle(PATIENCE))
            .await
            .expect("returns when the call ends, not at the grace");
        assert_eq!(
            report,
            DrainReport {
                cut: 0,
                unsettled: 0,
                unconnected: 0
            }
        );
        assert!(
            ended.load(Ordering::SeqCst),
            "waited for the expected call to arrive and end"
        );
        call.await.unwrap();
    }

    #[tokio::test]
    async fn wait_idle_waits_for_a_call_expected_while_it_waits() {
        let (drain, _) = drain(5);
        let first = drain.track();
        drain.begin_drain();
        let ended = Arc::new(AtomicBool::new(false));
        let calls = tokio::spawn({
            let (drain, ended) = (drain.clone(), Arc::clone(&ended));
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                // A webhook answered as the drain began, then the only active call ends.
                drain.expect("c-2", PATIENCE);
                drop(first);
                tokio::time::sleep(Duration::from_millis(20)).await;
                let second = drain.admit("c-2").expect("the answered call is admitted");
                tokio::time::sleep(Duration::from_millis(20)).await;
                ended.store(true, Ordering::SeqCst);
                drop(second);
            }
        });
        let report = tokio::time::timeout(Duration::from_secs(10), drain.wait_idle(PATIENCE))
            .await
            .expect("returns when the calls end, not at the grace");
        assert_eq!(report.cut, 0);
        assert!(ended.load(Ordering::SeqCst), "waited for the second call");
        calls.await.unwrap();
    }

    #[tokio::test]
    async fn wait_idle_gives_up_on_an_expected_socket_at_its_deadline() {
        let (drain, _) = drain(5);
        let start = Instant::now();
        drain.expect("c-1", Duration::from_millis(50));
        drain.begin_drain();
        let report = tokio::time::timeout(Duration::from_secs(10), drain.wait_idle(PATIENCE))
            .await
            .expect("returns when the expectation expires, not at the grace");
        assert_eq!(
            report,
            DrainReport {
                cut: 0,
                unsettled: 0,
                unconnected: 0
            }
        );
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "not before it"
        );
        assert_eq!(drain.expected(), 0, "the expired expectation is forgotten");
        assert!(drain.admit("c-1").is_none());
    }

    #[tokio::test]
    async fn wait_idle_reports_expected_sockets_the_grace_gave_up_on() {
        let (drain, _) = drain(5);
        drain.expect("c-1", PATIENCE);
        drain.begin_drain();
        let report = drain.wait_idle(Duration::from_millis(20)).await;
        assert_eq!(
            report,
            DrainReport {
                cut: 0,
                unsettled: 0,
                unconnected: 1
            }
        );
    }

    #[tokio::test]
    async fn the_cut_reaches_every_call_even_one_that_listens_after_it() {
        let (drain, _) = drain(5);
        let mut before = drain.cut_signal();
        assert!(!before.is_cut() && !drain.is_cut());
        let heard = tokio::spawn(async move {
            before.cut().await;
            before.is_cut()
        });
        tokio::task::yield_now().await;
        assert!(
            !heard.is_finished(),
            "nothing is cut before the grace ran out"
        );

        drain.cut_remaining();
        assert!(drain.is_cut());
        let heard = tokio::time::timeout(Duration::from_secs(10), heard)
            .await
            .expect("a call listening before the cut hears it")
            .unwrap();
        assert!(heard);
        let mut after = drain.cut_signal();
        assert!(after.is_cut());
        tokio::time::timeout(Duration::from_secs(10), after.cut())
            .await
            .expect("a call listening after the cut hears it at once");
        drain.cut_remaining();
        assert!(drain.is_cut(), "a second cut changes nothing");
    }

    #[tokio::test]
    async fn wait_cut_returns_when_the_cut_calls_end() {
        let (drain, _) = drain(5);
        drain.begin_drain();
        let calls = [drain.track(), drain.track()];
        let mut signals = [drain.cut_signal(), drain.cut_signal()];
        let ends = tokio::spawn(async move {
            for (call, signal) in calls.into_iter().zip(signals.iter_mut()) {
                signal.cut().await;
                drop(call);
            }
        });
        drain.cut_remaining();
        let unsettled = tokio::time::timeout(Duration::from_secs(10), drain.wait_cut(PATIENCE))
            .await
            .expect("returns when the calls end, not at the grace");
        assert_eq!(unsettled, 0);
        assert_eq!(drain.active(), 0);
        ends.await.unwrap();
    }

    #[tokio::test]
    async fn wait_cut_reports_calls_that_did_not_end_in_time() {
        let (drain, _) = drain(5);
        let _deaf = drain.track();
        let ended = drain.track();
        drain.cut_remaining();
        drop(ended);
        assert_eq!(drain.wait_cut(Duration::from_millis(20)).await, 1);
    }
}
