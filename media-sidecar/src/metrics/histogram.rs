//! A lock-free duration histogram for the hot path.
//!
//! prometheus-client's `Histogram` takes a write lock on every `observe`; relay latency is
//! observed per audio frame (50 per second per call, both ways), so this one keeps its
//! buckets, sum and count in atomics instead. A scrape may see a count and buckets from
//! slightly different instants, which monitoring tolerates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// A histogram of durations, exposed in seconds. Clones share the buckets.
#[derive(Debug, Clone)]
pub struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, ascending; an implicit `+Inf` bucket follows.
    bounds: &'static [f64],
    /// Non-cumulative counts, one per bound plus `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl DurationHistogram {
    /// A histogram with these upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(Inner {
                bounds,
                buckets,
                sum_micros: AtomicU64::new(0),
                count: AtomicU64::new(0),
            }),
        }
    }

    /// Records one duration: three relaxed atomic adds, no lock.
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let index = self
            .inner
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.inner.bounds.len());
        self.inner.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.inner.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.inner.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let inner = &self.inner;
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        // Precision: micro-seconds summed in a u64 are exact far beyond any uptime.
        #[allow(clippy::cast_precision_loss)]
        let sum = inner.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let count = inner.count.load(Ordering::Relaxed);
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = DurationHistogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(1));
        let mut registry = Registry::default();
        registry.register("latency_seconds", "test", histogram.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE latency_seconds histogram"), "{text}");
        assert!(text.contains("latency_seconds_count 4"), "{text}");
        assert!(text.contains("latency_seconds_sum 1.0065"), "{text}");
        assert!(
            text.contains(r#"latency_seconds_bucket{le="0.001"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"latency_seconds_bucket{le="0.01"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"latency_seconds_bucket{le="+Inf"} 4"#),
            "{text}"
        );
        assert_eq!(histogram.count(), 4);
    }
}
