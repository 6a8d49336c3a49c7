//! Load mode: N simulated callers on a ramp (calls started per second), all concurrent,
//! each a [`Caller`] sharing one HTTP client, and a result per call plus a summary.
//!
//! The ramp is deterministic: call *i* starts at `i / rate` seconds after the first, late
//! starts go out at once (the schedule is kept, not stretched). Audio bytes heard are not
//! kept (only counted), so memory stays flat per call however long the calls last.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::caller::{CallSpec, Caller};
use super::record::{CallEnd, CallRecord};
use super::sid;
use super::trust;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The call each caller places; every call gets its own call SID.
    pub template: CallSpec,
    /// How many calls.
    pub calls: usize,
    /// Calls started per second (the ramp).
    pub rate_per_sec: f64,
}

/// One call's result.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    /// Position in the ramp, from 0.
    pub index: usize,
    /// The call's SID.
    pub call_sid: String,
    /// Whether a Media Stream was established (`start` sent).
    pub connected: bool,
    /// `media` frames sent.
    pub media_sent: u64,
    /// `media` messages received.
    pub media_received: u64,
    /// Marks echoed.
    pub marks_echoed: usize,
    /// Warnings Twilio would have raised.
    pub warnings: usize,
    /// Errors, as messages.
    pub errors: Vec<String>,
    /// How the call ended.
    pub end: Option<CallEnd>,
    /// How long it lasted, in ms.
    pub duration_ms: f64,
}

/// Totals over all calls.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadSummary {
    /// Calls placed.
    pub calls: usize,
    /// Calls that established a stream.
    pub connected: usize,
    /// Calls with errors, or that never connected.
    pub failed: usize,
    /// `media` frames sent, in all.
    pub media_sent: u64,
    /// `media` messages received, in all.
    pub media_received: u64,
    /// Marks echoed, in all.
    pub marks_echoed: usize,
    /// Warnings, in all.
    pub warnings: usize,
    /// From the first start to the last end, in ms.
    pub wall_ms: f64,
    /// Mean call duration, in ms.
    pub mean_duration_ms: f64,
    /// Longest call duration, in ms.
    pub max_duration_ms: f64,
}

/// Per-call results and the summary.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// One per call, in ramp order.
    pub results: Vec<CallResult>,
    /// Totals.
    pub summary: LoadSummary,
}

/// Runs the load and waits for every call to end.
pub async fn run_load(spec: LoadSpec) -> LoadReport {
    let client = trust::http_client(spec.template.trusted_ca.as_ref());
    let started = Instant::now();
    let period = if spec.rate_per_sec > 0.0 {
        Duration::from_secs_f64(1.0 / spec.rate_per_sec)
    } else {
        Duration::ZERO
    };
    let first = tokio::time::Instant::now();
    let mut callers = Vec::with_capacity(spec.calls);
    for index in 0..spec.calls {
        let at = first + period.mul_f64(index as f64);
        tokio::time::sleep_until(at).await;
        let mut call = spec.template.clone();
        call.call_sid = sid::call_sid();
        call.keep_audio = false;
        callers.push(Caller::start_with_client(call, client.clone()));
    }
    let mut results = Vec::with_capacity(callers.len());
    for (index, caller) in callers.iter().enumerate() {
        results.push(result(index, &caller.finished().await));
    }
    let summary = summarize(&results, started.elapsed());
    LoadReport { results, summary }
}

fn result(index: usize, record: &CallRecord) -> CallResult {
    let streams = &record.streams;
    CallResult {
        index,
        call_sid: record.call_sid.clone(),
        connected: streams.iter().any(|s| !s.stream_sid.is_empty()),
        media_sent: streams.iter().map(|s| s.sent.frames).sum(),
        media_received: streams.iter().map(|s| s.received.media).sum(),
        marks_echoed: streams.iter().map(|s| s.marks.len()).sum(),
        warnings: record.warning_count(),
        errors: record.errors.clone(),
        end: record.end.clone(),
        duration_ms: record.duration.as_secs_f64() * 1000.0,
    }
}

fn summarize(results: &[CallResult], wall: Duration) -> LoadSummary {
    let calls = results.len();
    let durations = results.iter().map(|r| r.duration_ms);
    LoadSummary {
        calls,
        connected: results.iter().filter(|r| r.connected).count(),
        failed: results
            .iter()
            .filter(|r| !r.connected || !r.errors.is_empty())
            .count(),
        media_sent: results.iter().map(|r| r.media_sent).sum(),
        media_received: results.iter().map(|r| r.media_received).sum(),
        marks_echoed: results.iter().map(|r| r.marks_echoed).sum(),
        warnings: results.iter().map(|r| r.warnings).sum(),
        wall_ms: wall.as_secs_f64() * 1000.0,
        mean_duration_ms: if calls == 0 {
            0.0
        } else {
            durations.clone().sum::<f64>() / calls as f64
        },
        max_duration_ms: durations.fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(connected: bool, errors: usize, duration_ms: f64) -> CallResult {
        CallResult {
            index: 0,
            call_sid: "CA".into(),
            connected,
            media_sent: 50,
            media_received: 10,
            marks_echoed: 2,
            warnings: 0,
            errors: vec!["x".into(); errors],
            end: None,
            duration_ms,
        }
    }

    #[test]
    fn summary_totals_and_counts_failures() {
        let results = [
            result(true, 0, 1000.0),
            result(false, 1, 10.0),
            result(true, 1, 500.0),
        ];
        let summary = summarize(&results, Duration::from_secs(2));
        assert_eq!(summary.calls, 3);
        assert_eq!(summary.connected, 2);
        assert_eq!(summary.failed, 2);
        assert_eq!(summary.media_sent, 150);
        assert_eq!(summary.marks_echoed, 6);
        assert_eq!(summary.max_duration_ms, 1000.0);
        assert!((summary.mean_duration_ms - 503.333).abs() < 0.01);
    }
}
