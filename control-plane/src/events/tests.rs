//! The local feed: publishing, filters, resuming from the window, and the errors of ids
//! it cannot resume from. The MongoDB feed has its own tests (`mongo/tests.rs`).

use std::time::Duration;

use super::*;
use crate::domain::{self, CallStatus};

fn status(call_id: &str, agent_id: &str, current: CallStatus) -> CallEvent {
    CallEvent {
        call_id: call_id.into(),
        agent_id: agent_id.into(),
        campaign_id: String::new(),
        time: domain::now(),
        kind: EventKind::StatusChanged {
            previous: None,
            current,
            end_reason: String::new(),
        },
    }
}

/// The next event of `watch`, failing on anything else or on a long wait.
async fn next_event(watch: &mut Watch) -> Arc<FeedEvent> {
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(WatchItem::Event(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// True when `watch` has nothing more for now.
async fn is_idle(watch: &mut Watch) -> bool {
    tokio::time::timeout(Duration::from_millis(50), watch.next())
        .await
        .is_err()
}

#[test]
fn filters_match_on_every_field_that_is_set() {
    let event = CallEvent {
        campaign_id: "camp-1".into(),
        ..status("call-1", "agent-1", CallStatus::Queued)
    };
    let filter = |call: &str, agent: &str, campaign: &str| EventFilter {
        call_id: call.into(),
        agent_id: agent.into(),
        campaign_id: campaign.into(),
    };
    assert!(EventFilter::default().matches(&event));
    assert!(filter("call-1", "", "").matches(&event));
    assert!(filter("", "agent-1", "camp-1").matches(&event));
    assert!(filter("call-1", "agent-1", "camp-1").matches(&event));
    assert!(!filter("call-2", "", "").matches(&event));
    assert!(!filter("", "agent-2", "").matches(&event));
    assert!(!filter("", "", "camp-2").matches(&event));
    assert!(!filter("call-1", "agent-1", "camp-2").matches(&event));
}

#[tokio::test]
async fn a_watcher_gets_the_matching_events_published_after_it_started() {
    let bus = EventBus::new();
    assert!(!bus.is_cluster_wide());
    bus.publish(status("before", "a", CallStatus::Queued)).await;
    let filter = EventFilter {
        agent_id: "a".into(),
        ..EventFilter::default()
    };
    let mut watch = bus.watch(filter, "").await.unwrap();
    bus.publish(status("c1", "a", CallStatus::Ringing)).await;
    bus.publish(status("c2", "other", CallStatus::Ringing))
        .await;
    bus.publish(status("c1", "a", CallStatus::InProgress)).await;
    let first = next_event(&mut watch).await;
    let second = next_event(&mut watch).await;
    assert_eq!(first.event.call_id, "c1");
    assert!(matches!(
        second.event.kind,
        EventKind::StatusChanged {
            current: CallStatus::InProgress,
            ..
        }
    ));
    assert_ne!(first.id, second.id);
    assert!(is_idle(&mut watch).await);
}

#[tokio::test]
async fn resuming_after_an_id_gives_exactly_the_events_after_it() {
    let bus = EventBus::new();
    let mut watch = bus.watch(EventFilter::default(), "").await.unwrap();
    for n in 0..5 {
        bus.publish(status(&format!("c{n}"), "a", CallStatus::Queued))
            .await;
    }
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(next_event(&mut watch).await.id.clone());
    }
    let mut resumed = bus.watch(EventFilter::default(), &ids[2]).await.unwrap();
    assert_eq!(next_event(&mut resumed).await.event.call_id, "c3");
    assert_eq!(next_event(&mut resumed).await.event.call_id, "c4");
    assert!(is_idle(&mut resumed).await, "nothing repeated");
    bus.publish(status("c5", "a", CallStatus::Queued)).await;
    let live = next_event(&mut resumed).await;
    assert_eq!(live.event.call_id, "c5");

    // After the newest event: only what comes next.
    let mut at_the_end = bus.watch(EventFilter::default(), &live.id).await.unwrap();
    assert!(is_idle(&mut at_the_end).await);
    bus.publish(status("c6", "a", CallStatus::Queued)).await;
    assert_eq!(next_event(&mut at_the_end).await.event.call_id, "c6");
}

#[tokio::test]
async fn resuming_applies_the_filter_to_the_backlog_too() {
    let bus = EventBus::new();
    let mut watch = bus.watch(EventFilter::default(), "").await.unwrap();
    for call in ["x", "y", "x", "y"] {
        bus.publish(status(call, "a", CallStatus::Queued)).await;
    }
    let first = next_event(&mut watch).await;
    let filter = EventFilter {
        call_id: "y".into(),
        ..EventFilter::default()
    };
    let mut resumed = bus.watch(filter, &first.id).await.unwrap();
    let a = next_event(&mut resumed).await;
    let b = next_event(&mut resumed).await;
    assert_eq!(
        (a.event.call_id.as_str(), b.event.call_id.as_str()),
        ("y", "y")
    );
    assert!(is_idle(&mut resumed).await);
}

#[tokio::test]
async fn ids_this_feed_cannot_resume_from_are_refused_with_the_reason() {
    let bus = EventBus::new();
    let mut watch = bus.watch(EventFilter::default(), "").await.unwrap();
    bus.publish(status("c", "a", CallStatus::Queued)).await;
    let id = next_event(&mut watch).await.id.clone();

    // Malformed.
    let err = bus.watch(EventFilter::default(), "%%%").await.unwrap_err();
    assert!(matches!(err, WatchError::Malformed(_)), "{err}");
    assert!(err.to_string().starts_with("after_event_id: "), "{err}");

    // Not published yet.
    let EventId::Local { epoch, .. } = EventId::decode(&id).unwrap() else {
        panic!("a local id")
    };
    let future = EventId::Local { epoch, seq: 99 }.encode();
    let err = bus
        .watch(EventFilter::default(), &future)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WatchError::Malformed(m) if m.to_string().contains("not been published")),
        "{err}"
    );

    // Another run (a restart, another replica): its window is gone.
    let other = EventBus::new();
    let err = other.watch(EventFilter::default(), &id).await.unwrap_err();
    assert!(
        matches!(&err, WatchError::Gone(m) if m.contains("another replica or before this one restarted")),
        "{err}"
    );

    // A cluster id on a local feed.
    let cluster = EventId::Cluster {
        time_ms: domain::now().timestamp_millis(),
        key: 1,
        token: mongodb::bson::to_vec(&mongodb::bson::doc! { "_data": "00" }).unwrap(),
    }
    .encode();
    let err = bus
        .watch(EventFilter::default(), &cluster)
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::Gone(_)), "{err}");
}

#[tokio::test]
async fn an_id_that_left_the_window_is_out_of_range() {
    let bus = EventBus::new();
    let mut watch = bus.watch(EventFilter::default(), "").await.unwrap();
    bus.publish(status("first", "a", CallStatus::Queued)).await;
    let first = next_event(&mut watch).await.id.clone();
    drop(watch);
    for _ in 0..WINDOW {
        bus.publish(status("later", "a", CallStatus::Queued)).await;
    }
    let err = bus.watch(EventFilter::default(), &first).await.unwrap_err();
    assert!(
        matches!(&err, WatchError::Gone(m) if m.contains("left this replica's window")),
        "{err}"
    );
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_how_many_it_missed() {
    let bus = EventBus::new();
    let mut watch = bus.watch(EventFilter::default(), "").await.unwrap();
    for _ in 0..WINDOW + 10 {
        bus.publish(status("c", "a", CallStatus::Queued)).await;
    }
    match watch.next().await {
        Some(WatchItem::Dropped(count)) => assert_eq!(count, 10),
        other => panic!("expected Dropped, got {other:?}"),
    }
    // Then the events that were kept.
    next_event(&mut watch).await;
}

#[tokio::test]
async fn the_watcher_gauge_counts_watches_until_they_are_dropped() {
    let bus = EventBus::new();
    assert_eq!(bus.watchers(), 0);
    let first = bus.watch(EventFilter::default(), "").await.unwrap();
    let second = bus.watch(EventFilter::default(), "").await.unwrap();
    assert_eq!(bus.watchers(), 2);
    drop(first);
    assert_eq!(bus.watchers(), 1);
    drop(second);
    assert_eq!(bus.watchers(), 0);
    // A refused watch is not counted.
    let _ = bus.watch(EventFilter::default(), "%%%").await.unwrap_err();
    assert_eq!(bus.watchers(), 0);
}
