//! When to try the control stream again after it broke: exponential back-off with full
//! jitter.
//!
//! A control-plane restart breaks the streams of every call on every sidecar at the
//! same instant. With a plain doubling schedule they would all come back in lockstep,
//! hundreds of `Hello`s in the same millisecond, again and again. Full jitter waits a
//! uniformly random time in `[0, ceiling]`, and the ceiling doubles per failed attempt
//! up to the cap, so the reconnects spread over the whole window. Pure: the random
//! source comes in, so the bounds are tested with a seeded one.

use std::time::Duration;

/// The first ceiling: a stream that broke is tried again within this.
pub const RECONNECT_MIN: Duration = Duration::from_millis(250);
/// The largest ceiling: a control plane that stays away is tried at least this often.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The back-off of one call's control stream.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Ceilings from `min`, doubling to `max` (`max` is raised to `min` if below it).
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            ceiling: min,
        }
    }

    /// The wait before the next attempt: uniformly random in `[0, ceiling]`. The
    /// ceiling then doubles, up to the maximum.
    pub fn next_delay(&mut self, rng: &mut fastrand::Rng) -> Duration {
        let ceiling_ms = u64::try_from(self.ceiling.as_millis()).unwrap_or(u64::MAX);
        let delay = Duration::from_millis(rng.u64(0..=ceiling_ms));
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        delay
    }

    /// The ceiling the next delay is drawn under.
    pub fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// The stream is back: the next failure starts from the smallest ceiling again.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(RECONNECT_MIN, RECONNECT_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_ceiling_that_doubles_to_the_cap() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut backoff = Backoff::default();
        let expected_ceilings = [250, 500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000];
        for ceiling_ms in expected_ceilings {
            assert_eq!(backoff.ceiling(), Duration::from_millis(ceiling_ms));
            let delay = backoff.next_delay(&mut rng);
            assert!(
                delay <= Duration::from_millis(ceiling_ms),
                "{delay:?} > {ceiling_ms} ms"
            );
        }
        backoff.reset();
        assert_eq!(backoff.ceiling(), RECONNECT_MIN);
    }

    #[test]
    fn delays_spread_over_the_whole_window_instead_of_lockstep() {
        // A thousand sidecars' first reconnects after the same restart.
        let mut rng = fastrand::Rng::with_seed(42);
        let delays: Vec<u64> = (0..1_000)
            .map(|_| {
                let ms = Backoff::default().next_delay(&mut rng).as_millis();
                u64::try_from(ms).unwrap()
            })
            .collect();
        assert!(delays.iter().all(|ms| *ms <= 250));
        // Every 50 ms slice of the window gets some of them (uniform: ~200 each).
        for slice in 0..5 {
            let in_slice = delays.iter().filter(|ms| **ms / 50 == slice).count();
            assert!(in_slice > 100, "slice {slice}: {in_slice}");
        }
        assert!(delays.contains(&0) || delays.iter().any(|ms| *ms < 5));
    }

    #[test]
    fn a_cap_below_the_start_is_raised_to_it() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_millis(10));
        for _ in 0..4 {
            assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(1));
            assert_eq!(backoff.ceiling(), Duration::from_secs(1));
        }
    }
}
