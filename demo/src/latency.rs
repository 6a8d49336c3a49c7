//! Relay latency percentiles, estimated from the sidecar's Prometheus histogram.
//!
//! The sidecar observes, per relayed media frame, the time from the frame's arrival to
//! the end of the writes it caused ([`RELAY_LATENCY_SECONDS`], both directions in one
//! histogram). A histogram keeps counts per bucket, not the observations, so a
//! percentile can only be estimated: here by linear interpolation inside the bucket that
//! holds the wanted rank, as Prometheus's `histogram_quantile` does.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
pub use switchboard_media_sidecar::metrics::RELAY_LATENCY_SECONDS;

/// p50 and p99 of the relay latency, and how many frames they describe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyEstimate {
    pub frames: u64,
    pub p50: Quantile,
    pub p99: Quantile,
}

/// One estimated quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantile {
    /// Interpolated within a bucket.
    About(Duration),
    /// In the open-ended last bucket: only its lower bound is known.
    Above(Duration),
}

/// Reads the histogram from `/metrics` at `url`.
pub async fn scrape(url: &str) -> anyhow::Result<LatencyEstimate> {
    let text = reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .text()
        .await
        .with_context(|| format!("GET {url}"))?;
    estimate(&text, RELAY_LATENCY_SECONDS)
}

/// Estimates p50 and p99 of histogram `name` in Prometheus text (`{name}_bucket{le="…"}`
/// lines, cumulative).
pub fn estimate(text: &str, name: &str) -> anyhow::Result<LatencyEstimate> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .with_context(|| format!("bucket without le: {line}"))?;
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()
                .with_context(|| format!("bucket bound {le:?}: {line}"))?
        };
        let count = line
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse::<f64>().ok())
            .with_context(|| format!("bucket count: {line}"))?;
        // Counts are integers written as numbers; anything else is not this histogram.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        buckets.push((bound, count as u64));
    }
    anyhow::ensure!(!buckets.is_empty(), "no {name} histogram on /metrics");
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let frames = buckets.last().map_or(0, |b| b.1);
    anyhow::ensure!(frames > 0, "{name} has no observations yet");
    Ok(LatencyEstimate {
        frames,
        p50: quantile(&buckets, 0.5),
        p99: quantile(&buckets, 0.99),
    })
}

/// The `q` quantile of cumulative `buckets` (ascending bounds, last one `+Inf`, total > 0).
fn quantile(buckets: &[(f64, u64)], q: f64) -> Quantile {
    let total = buckets.last().map_or(0, |b| b.1);
    #[allow(clippy::cast_precision_loss)]
    let rank = q * total as f64;
    let mut lower = (0.0, 0_u64);
    for &(bound, count) in buckets {
        #[allow(clippy::cast_precision_loss)]
        if count as f64 >= rank && count > lower.1 {
            if bound.is_infinite() {
                return Quantile::Above(Duration::from_secs_f64(lower.0));
            }
            #[allow(clippy::cast_precision_loss)]
            let within = (rank - lower.1 as f64) / (count - lower.1) as f64;
            return Quantile::About(Duration::from_secs_f64(
                lower.0 + (bound - lower.0) * within,
            ));
        }
        lower = (bound, count);
    }
    Quantile::Above(Duration::from_secs_f64(lower.0))
}

impl fmt::Display for Quantile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        match self {
            Quantile::About(d) => write!(f, "~{:.2} ms", ms(d)),
            Quantile::Above(d) => write!(f, "> {:.2} ms", ms(d)),
        }
    }
}

impl fmt::Display for LatencyEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p99 {} per frame over {} frames (estimated from the sidecar's \
             histogram buckets, interpolated linearly within a bucket)",
            self.p50, self.p99, self.frames
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP switchboard_sidecar_relay_latency_seconds Time from receiving a media frame.
# TYPE switchboard_sidecar_relay_latency_seconds histogram
switchboard_sidecar_relay_latency_seconds_sum 0.05
switchboard_sidecar_relay_latency_seconds_count 100
switchboard_sidecar_relay_latency_seconds_bucket{le=\"0.00025\"} 20
switchboard_sidecar_relay_latency_seconds_bucket{le=\"0.0005\"} 60
switchboard_sidecar_relay_latency_seconds_bucket{le=\"0.001\"} 98
switchboard_sidecar_relay_latency_seconds_bucket{le=\"0.0025\"} 100
switchboard_sidecar_relay_latency_seconds_bucket{le=\"+Inf\"} 100
switchboard_sidecar_other_bucket{le=\"0.001\"} 7
";

    fn ms(q: Quantile) -> f64 {
        match q {
            Quantile::About(d) | Quantile::Above(d) => d.as_secs_f64() * 1e3,
        }
    }

    #[test]
    fn quantiles_are_interpolated_within_their_bucket() {
        let e = estimate(TEXT, RELAY_LATENCY_SECONDS).unwrap();
        assert_eq!(e.frames, 100);
        // Rank 50 lies 30 of 40 into (0.25 ms, 0.5 ms].
        assert!((ms(e.p50) - 0.4375).abs() < 1e-9, "{:?}", e.p50);
        // Rank 99 lies 1 of 2 into (1 ms, 2.5 ms].
        assert!((ms(e.p99) - 1.75).abs() < 1e-9, "{:?}", e.p99);
        assert!(e
            .to_string()
            .contains("estimated from the sidecar's histogram buckets"));
    }

    #[test]
    fn the_open_ended_bucket_gives_only_a_lower_bound() {
        let text = "x_bucket{le=\"0.001\"} 1\nx_bucket{le=\"+Inf\"} 10\n";
        let e = estimate(text, "x").unwrap();
        assert_eq!(e.p99, Quantile::Above(Duration::from_millis(1)));
        assert_eq!(e.p99.to_string(), "> 1.00 ms");
    }

    #[test]
    fn a_missing_or_empty_histogram_is_an_error() {
        assert!(estimate("", "x").is_err());
        assert!(estimate("x_bucket{le=\"+Inf\"} 0\n", "x").is_err());
    }
}
