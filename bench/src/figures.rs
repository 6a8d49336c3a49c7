//! From what the calls saw and what `/proc` said to the figures the issue asks for.

use std::fmt;

use serde::Serialize;

use crate::load::CallOutcome;
use crate::system::Usage;

/// CPU and memory of one process over the steady window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spent {
    /// CPU time in the window, ms.
    pub cpu_ms: f64,
    /// Share of one core over the window, %.
    pub core_pct: f64,
}

impl Spent {
    pub fn between(before: Usage, after: Usage, window_s: f64) -> Spent {
        let cpu_ms = (after.cpu_ms - before.cpu_ms).max(0.0);
        Spent {
            cpu_ms,
            core_pct: cpu_ms / (window_s * 10.0),
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// `sidecar` or `floor`.
    pub target: String,
    pub calls: usize,
    /// Calls that streamed through the window.
    pub streamed: usize,
    /// Calls that never started, or whose stream broke; the first error.
    pub failed: usize,
    pub first_error: Option<String>,
    pub window_s: f64,
    /// Round trips of the frames written in the window, ms.
    pub rtt_p50_ms: f64,
    pub rtt_p99_ms: f64,
    pub rtt_p999_ms: f64,
    pub rtt_max_ms: f64,
    /// Frames written in the window, and of those never received.
    pub frames: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub misrouted: u64,
    /// `clear`s and frames that were not ours (both zero in a sound run).
    pub clears: u64,
    pub foreign: u64,
    pub marks_echoed: u64,
    /// The system under test: the sidecar, or the floor's echo server.
    pub target_cpu: Spent,
    /// CPU ms per call-second of the target.
    pub cpu_ms_per_call_second: f64,
    /// (RSS at the window's end − RSS before the calls) / streamed calls, KiB.
    pub rss_kib_per_call: f64,
    pub rss_idle_kib: u64,
    pub rss_loaded_kib: u64,
    /// The load core: the callers (this process), `openai-sim`, the control plane.
    pub callers_cpu: Spent,
    pub openai_sim_cpu: Spent,
    pub control_plane_cpu: Spent,
    pub load_core_pct: f64,
}

/// The load core counts as saturated above this share, and the run then measures the load
/// side more than the relay.
pub const LOAD_SATURATED_PCT: f64 = 90.0;
/// The capacity criterion: p99 round trip at most this, with no frame lost.
pub const P99_LIMIT_MS: f64 = 100.0;

impl Figures {
    /// Adds the calls' outcomes.
    pub fn add_calls(&mut self, outcomes: &[CallOutcome]) {
        let mut rtts: Vec<u32> = Vec::new();
        for outcome in outcomes {
            let error = outcome
                .setup_error
                .as_ref()
                .or(outcome.stream_error.as_ref());
            if let Some(error) = error {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| error.clone());
            } else {
                self.streamed += 1;
            }
            self.frames += outcome.sent_in_window;
            self.lost += outcome
                .sent_in_window
                .saturating_sub(outcome.received_in_window);
            self.duplicated += outcome.duplicated;
            self.misrouted += outcome.misrouted;
            self.clears += outcome.clears;
            self.foreign += outcome.foreign;
            self.marks_echoed += outcome.marks;
            rtts.extend_from_slice(&outcome.rtt_us);
        }
        rtts.sort_unstable();
        let ms = |q: f64| percentile(&rtts, q) as f64 / 1000.0;
        self.rtt_p50_ms = ms(0.50);
        self.rtt_p99_ms = ms(0.99);
        self.rtt_p999_ms = ms(0.999);
        self.rtt_max_ms = rtts.last().map_or(0.0, |&m| f64::from(m) / 1000.0);
    }

    /// Adds the target's CPU and memory.
    pub fn add_target(&mut self, idle: Usage, before: Usage, after: Usage) {
        self.target_cpu = Spent::between(before, after, self.window_s);
        let call_seconds = self.streamed as f64 * self.window_s;
        if call_seconds > 0.0 {
            self.cpu_ms_per_call_second = self.target_cpu.cpu_ms / call_seconds;
            let grown = after
                .rss_kib
                .max(before.rss_kib)
                .saturating_sub(idle.rss_kib);
            self.rss_kib_per_call = grown as f64 / self.streamed as f64;
        }
        self.rss_idle_kib = idle.rss_kib;
        self.rss_loaded_kib = after.rss_kib.max(before.rss_kib);
    }

    /// Adds the load core's processes.
    pub fn add_load(&mut self, callers: Spent, openai_sim: Spent, control_plane: Spent) {
        self.callers_cpu = callers;
        self.openai_sim_cpu = openai_sim;
        self.control_plane_cpu = control_plane;
        self.load_core_pct = callers.core_pct + openai_sim.core_pct + control_plane.core_pct;
    }

    /// Every call streamed, no frame lost, p99 within the limit.
    pub fn holds(&self) -> bool {
        self.failed == 0
            && self.streamed == self.calls
            && self.lost == 0
            && self.misrouted == 0
            && self.frames > 0
            && self.rtt_p99_ms <= P99_LIMIT_MS
    }

    pub fn load_saturated(&self) -> bool {
        self.load_core_pct >= LOAD_SATURATED_PCT
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank); 0 when empty.
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} · {} calls ({} streamed, {} failed) · {:.0} s steady window",
            self.target, self.calls, self.streamed, self.failed, self.window_s
        )?;
        if let Some(error) = &self.first_error {
            writeln!(f, "  first error: {error}")?;
        }
        writeln!(
            f,
            "  round trip   p50 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   max {:.2} ms",
            self.rtt_p50_ms, self.rtt_p99_ms, self.rtt_p999_ms, self.rtt_max_ms
        )?;
        writeln!(
            f,
            "  frames       {} in the window: {} lost, {} duplicated, {} misrouted ({} clears, {} foreign, {} marks echoed)",
            self.frames,
            self.lost,
            self.duplicated,
            self.misrouted,
            self.clears,
            self.foreign,
            self.marks_echoed
        )?;
        writeln!(
            f,
            "  {:<12} {:.3} ms CPU per call-second ({:.1} % of its core), RSS {:.1} KiB per call ({} KiB idle, {} KiB loaded)",
            self.target,
            self.cpu_ms_per_call_second,
            self.target_cpu.core_pct,
            self.rss_kib_per_call,
            self.rss_idle_kib,
            self.rss_loaded_kib
        )?;
        write!(
            f,
            "  load core    {:.1} %: callers {:.1} %, openai-sim {:.1} %, control plane {:.1} %{}",
            self.load_core_pct,
            self.callers_cpu.core_pct,
            self.openai_sim_cpu.core_pct,
            self.control_plane_cpu.core_pct,
            if self.load_saturated() {
                " — saturated: the load side, not the target, is the limit"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&values, 0.5), 500);
        assert_eq!(percentile(&values, 0.99), 990);
        assert_eq!(percentile(&values, 0.999), 999);
        assert_eq!(percentile(&values, 1.0), 1000);
        assert_eq!(percentile(&[7], 0.999), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    fn outcome(sent: u64, received: u64, rtt_us: Vec<u32>) -> CallOutcome {
        CallOutcome {
            sent_in_window: sent,
            received_in_window: received,
            rtt_us,
            ..CallOutcome::default()
        }
    }

    #[test]
    fn loss_failures_and_the_capacity_criterion() {
        let mut figures = Figures {
            calls: 2,
            window_s: 10.0,
            ..Figures::default()
        };
        figures.add_calls(&[
            outcome(500, 500, vec![900; 500]),
            outcome(500, 500, vec![1_100; 500]),
        ]);
        assert_eq!((figures.streamed, figures.lost), (2, 0));
        assert_eq!(figures.rtt_p50_ms, 0.9);
        assert_eq!(figures.rtt_p99_ms, 1.1);
        assert!(figures.holds());

        let mut lossy = Figures {
            calls: 2,
            window_s: 10.0,
            ..Figures::default()
        };
        let broken = CallOutcome {
            stream_error: Some("reset".into()),
            ..outcome(500, 499, vec![900; 499])
        };
        lossy.add_calls(&[outcome(500, 500, vec![900; 500]), broken]);
        assert_eq!((lossy.streamed, lossy.failed, lossy.lost), (1, 1, 1));
        assert_eq!(lossy.first_error.as_deref(), Some("reset"));
        assert!(!lossy.holds());

        let mut slow = Figures {
            calls: 1,
            window_s: 10.0,
            ..Figures::default()
        };
        slow.add_calls(&[outcome(100, 100, vec![150_000; 100])]);
        assert!(!slow.holds(), "p99 above the limit");
    }

    #[test]
    fn cpu_per_call_second_and_rss_per_call() {
        let mut figures = Figures {
            calls: 100,
            streamed: 100,
            window_s: 20.0,
            ..Figures::default()
        };
        let usage = |cpu_ms, rss_kib| Usage { cpu_ms, rss_kib };
        figures.add_target(
            usage(0.0, 10_000),
            usage(500.0, 14_000),
            usage(2_500.0, 16_400),
        );
        assert!((figures.cpu_ms_per_call_second - 1.0).abs() < 1e-9);
        assert!((figures.target_cpu.core_pct - 10.0).abs() < 1e-9);
        assert!((figures.rss_kib_per_call - 64.0).abs() < 1e-9);
    }
}
