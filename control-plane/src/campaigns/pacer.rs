//! Calls-per-second pacing, sans I/O: the dispatcher asks a [`Pacer`] when the next call
//! may be placed and tells it when one was.
//!
//! Two rules hold together: calls are spaced at least `1 / cps` apart, and no window of
//! one second (plus a small margin for the network between us and Twilio) holds more
//! than `ceil(cps)` of them. Spacing alone would let a late call and the next on-time
//! one land closer than the spacing at Twilio; the window rule is what an account's
//! limit is measured by ("calls per second"), so it is checked directly. Fractional
//! rates work the same way: 0.2 calls per second is one call every 5 s.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Added to the one-second window, for the jitter between placing a call here and
/// Twilio receiving it.
pub const WINDOW_MARGIN: Duration = Duration::from_millis(25);
const WINDOW: Duration = Duration::from_secs(1);

/// Paces one stream of calls (a campaign's, or the account's).
#[derive(Debug, Clone)]
pub struct Pacer {
    cps: f64,
    interval: Duration,
    /// Most calls in any window.
    per_window: usize,
    /// When the latest calls were placed, oldest first, at most `per_window`.
    recent: VecDeque<Instant>,
}

impl Pacer {
    /// A pacer at `cps` calls per second (above 0).
    pub fn new(cps: f64) -> Self {
        let mut pacer = Self {
            cps: 0.0,
            interval: Duration::ZERO,
            per_window: 1,
            recent: VecDeque::new(),
        };
        pacer.set_rate(cps);
        pacer
    }

    pub fn rate(&self) -> f64 {
        self.cps
    }

    /// Changes the rate; the calls already placed still count.
    pub fn set_rate(&mut self, cps: f64) {
        let cps = if cps.is_finite() && cps > 0.0 {
            cps
        } else {
            1.0
        };
        self.cps = cps;
        self.interval = Duration::from_secs_f64(1.0 / cps);
        // Whole calls per window; at least one.
        self.per_window = (cps.ceil() as usize).max(1);
        while self.recent.len() > self.per_window {
            self.recent.pop_front();
        }
    }

    /// The earliest instant at or after `now` the next call may be placed.
    pub fn next_slot(&self, now: Instant) -> Instant {
        let mut at = now;
        if let Some(last) = self.recent.back() {
            at = at.max(*last + self.interval);
        }
        if self.recent.len() >= self.per_window {
            let oldest = self.recent[self.recent.len() - self.per_window];
            at = at.max(oldest + WINDOW + WINDOW_MARGIN);
        }
        at
    }

    /// Records a call placed at `at`.
    pub fn record(&mut self, at: Instant) {
        self.recent.push_back(at);
        while self.recent.len() > self.per_window {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places `n` calls as fast as the pacer allows from `start`; their instants.
    fn run(pacer: &mut Pacer, start: Instant, n: usize) -> Vec<Instant> {
        let mut at = start;
        let mut placed = Vec::with_capacity(n);
        for _ in 0..n {
            at = pacer.next_slot(at);
            pacer.record(at);
            placed.push(at);
        }
        placed
    }

    fn most_in_any_second(placed: &[Instant]) -> usize {
        placed
            .iter()
            .map(|t| {
                placed
                    .iter()
                    .filter(|u| **u >= *t && **u < *t + WINDOW)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn calls_are_spaced_and_no_second_holds_more_than_the_rate() {
        let start = Instant::now();
        let mut pacer = Pacer::new(5.0);
        let placed = run(&mut pacer, start, 50);
        for pair in placed.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(200));
        }
        assert_eq!(most_in_any_second(&placed), 5);
        // Close to the rate: 50 calls in a little over 10 s.
        let took = *placed.last().unwrap() - placed[0];
        assert!(took < Duration::from_secs(11), "{took:?}");
    }

    #[test]
    fn a_fractional_rate_spaces_calls_seconds_apart() {
        let start = Instant::now();
        let mut pacer = Pacer::new(0.2);
        let placed = run(&mut pacer, start, 3);
        assert_eq!(placed[1] - placed[0], Duration::from_secs(5));
        assert_eq!(placed[2] - placed[1], Duration::from_secs(5));
    }

    #[test]
    fn a_rate_change_applies_to_the_next_call() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1.0);
        let first = run(&mut pacer, start, 2);
        assert_eq!(first[1] - first[0], Duration::from_secs(1) + WINDOW_MARGIN);
        pacer.set_rate(10.0);
        let after = pacer.next_slot(first[1]);
        assert_eq!(after - first[1], Duration::from_millis(100));
        let burst = run(&mut pacer, after, 30);
        assert!(most_in_any_second(&burst) <= 10);
    }

    #[test]
    fn an_idle_pacer_allows_a_call_at_once() {
        let now = Instant::now();
        let mut pacer = Pacer::new(2.0);
        assert_eq!(pacer.next_slot(now), now);
        pacer.record(now);
        let later = now + Duration::from_secs(5);
        assert_eq!(pacer.next_slot(later), later);
    }
}
