//! Shared by `cluster_events.rs` and `cluster_faults.rs`: a watcher's view of the
//! cluster's calls (`WatchCallEvents`), read with bounded patience, and the checks every
//! watcher must pass.

#![allow(dead_code)] // each test file uses its own part

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::call_session_service_client::CallSessionServiceClient;
use switchboard_tests::{Authorized, Cluster};
use tonic::Streaming;

/// What a watcher saw of the calls, in the order it saw it.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) ids: Vec<String>,
    /// Per call: the statuses, and the item seqs, in the order received.
    pub(crate) statuses: HashMap<String, Vec<i32>>,
    pub(crate) items: HashMap<String, Vec<u64>>,
}

impl Seen {
    pub(crate) fn record(&mut self, event: pb::CallEvent) {
        assert!(
            !event.event_id.is_empty(),
            "every event has an id: {event:?}"
        );
        self.ids.push(event.event_id.clone());
        match event.event {
            Some(pb::call_event::Event::StatusChanged(change)) => self
                .statuses
                .entry(event.call_id)
                .or_default()
                .push(change.current),
            Some(pb::call_event::Event::ItemStored(stored)) => self
                .items
                .entry(event.call_id)
                .or_default()
                .push(stored.item.expect("an item").seq),
            _ => {}
        }
    }

    /// True once every call in `expected` (call id → (final status, last seq)) is seen
    /// through its final status and last item.
    pub(crate) fn has_all(&self, expected: &HashMap<String, (i32, u64)>) -> bool {
        expected.iter().all(|(call, (status, last_seq))| {
            self.statuses
                .get(call)
                .is_some_and(|s| s.last() == Some(status))
                && self.items.get(call).map_or(0, |i| i.len() as u64) == *last_seq
        })
    }

    /// How many calls have at least `items` items seen.
    pub(crate) fn calls_with_items(&self, items: usize) -> usize {
        self.items.values().filter(|i| i.len() >= items).count()
    }

    /// The id of the last event seen.
    pub(crate) fn last_id(&self) -> Option<&String> {
        self.ids.last()
    }
}

/// Opens a `WatchCallEvents` stream.
pub(crate) async fn watch(
    sessions: &mut CallSessionServiceClient<Authorized>,
    request: pb::WatchCallEventsRequest,
) -> Result<Streaming<pb::CallEvent>, tonic::Status> {
    sessions
        .watch_call_events(request)
        .await
        .map(|r| r.into_inner())
}

/// Reads `stream` into `seen` until `done`, or fails after a generous wait.
pub(crate) async fn read_until(
    stream: &mut Streaming<pb::CallEvent>,
    seen: &mut Seen,
    done: impl Fn(&Seen) -> bool,
    cluster: &Cluster,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(event))) => seen.record(event),
            other => panic!(
                "the watcher stopped short ({other:?}); seen so far: {seen:?}\n{}",
                cluster.logs()
            ),
        }
    }
}

/// Reads `stream` into `seen` until it breaks (its replica is gone); returns how it
/// ended. Fails if it goes on for longer than a generous wait.
pub(crate) async fn read_until_broken(
    stream: &mut Streaming<pb::CallEvent>,
    seen: &mut Seen,
    cluster: &Cluster,
) -> Result<(), tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.message()).await {
            Ok(Ok(Some(event))) => seen.record(event),
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(status)) => return Err(status),
            Err(_) => panic!(
                "the watcher of a killed replica goes on; seen: {seen:?}\n{}",
                cluster.logs()
            ),
        }
    }
}

/// Nothing more arrives on `stream` for a while: nothing was repeated.
pub(crate) async fn assert_quiet(stream: &mut Streaming<pb::CallEvent>) {
    if let Ok(Ok(Some(event))) =
        tokio::time::timeout(Duration::from_secs(2), stream.message()).await
    {
        panic!("an event after the last expected one: {event:?}");
    }
}

/// Statuses only move forward along the machine, and items come 1, 2, 3, ….
pub(crate) fn assert_in_order(seen: &Seen, expected: &HashMap<String, (i32, u64)>, watcher: &str) {
    for (call, (_, last_seq)) in expected {
        let statuses = &seen.statuses[call];
        assert!(
            statuses.windows(2).all(|w| w[0] < w[1]),
            "{watcher}: statuses of {call} out of order: {statuses:?}"
        );
        let items = &seen.items[call];
        assert_eq!(
            items,
            &(1..=*last_seq).collect::<Vec<_>>(),
            "{watcher}: items of {call}"
        );
    }
}
