//! Every metric the control plane exports, named once.
//!
//! [`Metrics`] owns a prometheus-client registry; `admin.rs` serves it at `/metrics`
//! (OpenMetrics text) when `SWITCHBOARD_METRICS_ADDR` is set. Counters get the `_total`
//! suffix on the wire, so [`EVENTS_NOT_PUBLISHED`] is scraped as
//! `switchboard_control_plane_events_not_published_total`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Gauge: `WatchCallEvents` streams open on this replica.
pub const EVENT_WATCHERS: &str = "switchboard_control_plane_event_watchers";
/// Gauge: 1 when watchers on this replica see every replica's events (MongoDB change
/// streams), 0 when they see this replica's alone.
pub const EVENT_FEED_CLUSTER_WIDE: &str = "switchboard_control_plane_event_feed_cluster_wide";
/// Counter: events that could not be written to the feed (the database refused them
/// or stayed unreachable); watchers never see them.
pub const EVENTS_NOT_PUBLISHED: &str = "switchboard_control_plane_events_not_published";
/// Counter: times this replica reopened its change stream after an error.
pub const EVENT_FEED_REOPENED: &str = "switchboard_control_plane_event_feed_reopened";

/// Counter: sessions the orphan sweeper ended (their sidecar was lost, or their media
/// stream never came).
pub const ORPHANS_ENDED: &str = "switchboard_control_plane_orphans_ended";

/// The control plane's metrics. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    event_watchers: Gauge,
    event_feed_cluster_wide: Gauge,
    events_not_published: Counter,
    event_feed_reopened: Counter,
    orphans_ended: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let event_watchers = Gauge::default();
        registry.register(
            EVENT_WATCHERS,
            "WatchCallEvents streams open on this replica",
            event_watchers.clone(),
        );
        let event_feed_cluster_wide = Gauge::default();
        registry.register(
            EVENT_FEED_CLUSTER_WIDE,
            "1 when watchers see every replica's events, 0 when only this replica's",
            event_feed_cluster_wide.clone(),
        );
        let events_not_published = Counter::default();
        registry.register(
            EVENTS_NOT_PUBLISHED,
            "Events that could not be written to the event feed",
            events_not_published.clone(),
        );
        let event_feed_reopened = Counter::default();
        registry.register(
            EVENT_FEED_REOPENED,
            "Times the change stream of the event feed was reopened after an error",
            event_feed_reopened.clone(),
        );
        let orphans_ended = Counter::default();
        registry.register(
            ORPHANS_ENDED,
            "Sessions the orphan sweeper ended",
            orphans_ended.clone(),
        );
        Metrics {
            registry,
            orphans_ended,
            event_watchers,
            event_feed_cluster_wide,
            events_not_published,
            event_feed_reopened,
        }
    }

    /// Counts a session the orphan sweeper ended.
    pub fn orphan_ended(&self) {
        self.orphans_ended.inc();
    }

    /// Counts one watcher until the guard is dropped.
    pub fn event_watcher(&self) -> WatcherGuard {
        self.event_watchers.inc();
        WatcherGuard(self.event_watchers.clone())
    }

    pub fn event_watchers(&self) -> i64 {
        self.event_watchers.get()
    }

    pub fn set_event_feed_cluster_wide(&self, cluster_wide: bool) {
        self.event_feed_cluster_wide.set(i64::from(cluster_wide));
    }

    pub fn events_not_published(&self, count: u64) {
        self.events_not_published.inc_by(count);
    }

    pub fn event_feed_reopened(&self) {
        self.event_feed_reopened.inc();
    }

    /// Every metric, as OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Holds one count on the watcher gauge; dropping it releases the count.
#[derive(Debug)]
pub struct WatcherGuard(Gauge);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_gauge_follows_the_guards() {
        let metrics = Metrics::new();
        let first = metrics.event_watcher();
        let second = metrics.event_watcher();
        assert_eq!(metrics.event_watchers(), 2);
        drop(first);
        assert_eq!(metrics.event_watchers(), 1);
        let text = metrics.encode().unwrap();
        assert!(text.contains(&format!("{EVENT_WATCHERS} 1")), "{text}");
        drop(second);
        assert_eq!(metrics.event_watchers(), 0);
        metrics.events_not_published(3);
        metrics.set_event_feed_cluster_wide(true);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(&format!("{EVENTS_NOT_PUBLISHED}_total 3")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{EVENT_FEED_CLUSTER_WIDE} 1")),
            "{text}"
        );
    }
}
