//! The MongoDB feed against a real MongoDB-wire server: two or three "replicas" (feeds
//! with clients of their own) on one database, as control-plane processes would be.

use std::sync::Arc;
use std::time::Duration;

use crate::config::StoreConfig;
use crate::domain::{self, CallStatus};
use crate::events::{
    CallEvent, EventBus, EventFilter, EventId, EventKind, FeedEvent, Watch, WatchError, WatchItem,
};
use crate::metrics::Metrics;

const RETENTION: Duration = Duration::from_secs(3600);

/// The test server's store config on a fresh database; `None` (skip) when no server is
/// configured, except in CI, where a skipped test would hide a broken feed.
#[allow(clippy::disallowed_methods)]
fn test_database() -> Option<StoreConfig> {
    let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").unwrap_or_default();
    if uri.is_empty() {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
        assert!(
            !in_ci,
            "MongoDB tests must run in CI: set SWITCHBOARD_TEST_MONGODB_URI"
        );
        eprintln!("note: SWITCHBOARD_TEST_MONGODB_URI is not set; skipping a MongoDB feed test");
        return None;
    }
    Some(StoreConfig::Mongo {
        uri: crate::config::Secret::new(uri),
        database: format!("sb_events_{}", uuid::Uuid::now_v7().simple()),
    })
}

async fn replica(config: &StoreConfig) -> EventBus {
    let bus = EventBus::open(config, RETENTION, Arc::new(Metrics::new()))
        .await
        .expect("the test server opens a feed");
    assert!(
        bus.is_cluster_wide(),
        "the test server supports change streams"
    );
    bus
}

fn item_event(call_id: &str, seq: u64) -> CallEvent {
    CallEvent {
        call_id: call_id.into(),
        agent_id: "agent".into(),
        campaign_id: String::new(),
        time: domain::now(),
        kind: EventKind::ItemStored(domain::ConversationItem {
            seq,
            role: domain::Role::User,
            kind: domain::ItemKind::Message,
            text: format!("item {seq}"),
            provider_item_id: String::new(),
            payload_json: String::new(),
            created_at: domain::now(),
        }),
    }
}

fn seq_of(event: &FeedEvent) -> u64 {
    match &event.event.kind {
        EventKind::ItemStored(item) => item.seq,
        other => panic!("not an item: {other:?}"),
    }
}

async fn next_event(watch: &mut Watch) -> Arc<FeedEvent> {
    match tokio::time::timeout(Duration::from_secs(20), watch.next()).await {
        Ok(Some(WatchItem::Event(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// True when `watch` has nothing more for a while (long enough for the change streams).
async fn is_idle(watch: &mut Watch) -> bool {
    tokio::time::timeout(Duration::from_millis(1500), watch.next())
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_on_one_replica_reach_the_watchers_of_every_replica_in_order() {
    let Some(config) = test_database() else {
        return;
    };
    let a = replica(&config).await;
    let b = replica(&config).await;
    let mut on_a = a.watch(EventFilter::default(), "").await.unwrap();
    let filter = EventFilter {
        call_id: "call-1".into(),
        ..EventFilter::default()
    };
    let mut on_b = b.watch(filter, "").await.unwrap();
    for seq in 1..=3 {
        a.publish(item_event("call-1", seq)).await;
        b.publish(item_event("call-2", seq)).await;
    }
    let mut seen_on_b = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut on_b).await;
        assert_eq!(event.event.call_id, "call-1");
        assert!(matches!(
            EventId::decode(&event.id),
            Ok(EventId::Cluster { .. })
        ));
        seen_on_b.push(seq_of(&event));
    }
    assert_eq!(seen_on_b, [1, 2, 3]);
    assert!(is_idle(&mut on_b).await, "nothing repeated");

    let mut seen_on_a: Vec<(String, u64)> = Vec::new();
    for _ in 0..6 {
        let event = next_event(&mut on_a).await;
        seen_on_a.push((event.event.call_id.clone(), seq_of(&event)));
    }
    for call in ["call-1", "call-2"] {
        let seqs: Vec<u64> = seen_on_a
            .iter()
            .filter(|(c, _)| c == call)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            seqs,
            [1, 2, 3],
            "{call} in order on a replica that stored half"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_resumes_on_a_replica_that_never_saw_its_events() {
    let Some(config) = test_database() else {
        return;
    };
    let a = replica(&config).await;
    let mut on_a = a.watch(EventFilter::default(), "").await.unwrap();
    for seq in 1..=5 {
        a.publish(item_event("call", seq)).await;
    }
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(next_event(&mut on_a).await.id.clone());
    }

    // A replica started afterwards (an empty window) catches up from the database ...
    let c = replica(&config).await;
    let mut resumed = c.watch(EventFilter::default(), &ids[1]).await.unwrap();
    assert!(resumed.is_catching_up());
    let caught_up: Vec<u64> = [
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
    ]
    .iter()
    .map(|e| seq_of(e))
    .collect();
    assert_eq!(caught_up, [3, 4, 5]);
    // ... and hands over to its own change stream, with nothing lost or repeated.
    for seq in 6..=8 {
        a.publish(item_event("call", seq)).await;
    }
    let live: Vec<u64> = [
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
        next_event(&mut resumed).await,
    ]
    .iter()
    .map(|e| seq_of(e))
    .collect();
    assert_eq!(live, [6, 7, 8]);
    assert!(
        !resumed.is_catching_up(),
        "handed over to the replica's window"
    );
    assert!(is_idle(&mut resumed).await, "nothing repeated");

    // A replica whose window holds the event resumes without the database.
    let from_window = a.watch(EventFilter::default(), &ids[4]).await.unwrap();
    assert!(!from_window.is_catching_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_has_the_same_id_whichever_replica_delivers_it() {
    let Some(config) = test_database() else {
        return;
    };
    let a = replica(&config).await;
    let b = replica(&config).await;
    let mut on_a = a.watch(EventFilter::default(), "").await.unwrap();
    let mut on_b = b.watch(EventFilter::default(), "").await.unwrap();
    b.publish(item_event("call", 1)).await;
    let (from_a, from_b) = (next_event(&mut on_a).await, next_event(&mut on_b).await);
    assert_eq!(from_a.id, from_b.id);
    assert_eq!(from_a.event, from_b.event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_the_database_cannot_resume_from_are_refused_with_the_reason() {
    let Some(config) = test_database() else {
        return;
    };
    let a = replica(&config).await;
    let mut on_a = a.watch(EventFilter::default(), "").await.unwrap();
    a.publish(item_event("call", 1)).await;
    let id = next_event(&mut on_a).await.id.clone();
    let EventId::Cluster { key, token, .. } = EventId::decode(&id).unwrap() else {
        panic!("a cluster id")
    };

    // Older than the retention.
    let old = EventId::Cluster {
        time_ms: domain::now().timestamp_millis() - 2 * RETENTION.as_millis() as i64,
        key: key + 1,
        token: token.clone(),
    };
    let err = a
        .watch(EventFilter::default(), &old.encode())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WatchError::Gone(m) if m.contains("beyond the retention")),
        "{err}"
    );

    // A token the database refuses.
    let bogus = EventId::Cluster {
        time_ms: domain::now().timestamp_millis(),
        key: key + 2,
        token: mongodb::bson::to_vec(&mongodb::bson::doc! { "_data": "not hex" }).unwrap(),
    };
    let err = a
        .watch(EventFilter::default(), &bogus.encode())
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::Malformed(_)), "{err}");

    // A local id: those events were never in the database.
    let local = EventId::Local { epoch: 1, seq: 1 }.encode();
    let err = a.watch(EventFilter::default(), &local).await.unwrap_err();
    assert!(matches!(err, WatchError::Gone(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_expire_after_the_retention_through_a_ttl_index() {
    let Some(config) = test_database() else {
        return;
    };
    let a = replica(&config).await;
    a.publish(CallEvent {
        kind: EventKind::StatusChanged {
            previous: None,
            current: CallStatus::Queued,
            end_reason: String::new(),
        },
        ..item_event("call", 1)
    })
    .await;
    let StoreConfig::Mongo { uri, database } = &config else {
        unreachable!()
    };
    let client = mongodb::Client::with_uri_str(uri.expose()).await.unwrap();
    let collection = client
        .database(database)
        .collection::<mongodb::bson::Document>(super::COLLECTION);
    let document = collection
        .find_one(mongodb::bson::doc! {})
        .await
        .unwrap()
        .expect("the event is stored");
    let time = document.get_datetime("time").unwrap().timestamp_millis();
    let expire_at = document
        .get_datetime("expireAt")
        .unwrap()
        .timestamp_millis();
    assert_eq!(expire_at - time, RETENTION.as_millis() as i64);
    let mut indexes = collection.list_indexes().await.unwrap();
    let mut ttl = None;
    while indexes.advance().await.unwrap() {
        let index = indexes.deserialize_current().unwrap();
        if index.keys == mongodb::bson::doc! { "expireAt": 1 } {
            ttl = index.options.and_then(|o| o.expire_after);
        }
    }
    assert_eq!(ttl, Some(Duration::ZERO));
}

mod own_server;
