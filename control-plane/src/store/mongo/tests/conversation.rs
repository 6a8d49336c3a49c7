//! Conversations in `conversation_items`: a call far past the 16 MB document limit,
//! documents left by interrupted or concurrent migrations and appends, and a replica of
//! the previous version still writing the old layout.

use futures::TryStreamExt;
use mongodb::bson::{self, doc, Document};

use super::{old_session_document, old_sessions, test_mongo_store, OldSessions};
use crate::domain::{self, CallStatus, StatusChange};
use crate::store::conformance::{items, read_conversation, read_in_pages, session};
use crate::store::mongo::documents::{ItemDoc, StoredItemDoc};
use crate::store::mongo::MongoStore;
use crate::store::{ItemsRequest, PageRequest, SessionFilter, Store, StoreError};

impl OldSessions {
    fn sessions(&self) -> mongodb::Collection<Document> {
        self.db.collection("callsessions")
    }

    fn items(&self) -> mongodb::Collection<Document> {
        self.db.collection("conversation_items")
    }

    async fn connect_without_migration(&self) -> MongoStore {
        MongoStore::connect_without_migration(&self.uri, &self.name)
            .await
            .unwrap()
    }

    /// Item documents of `call_id`, by seq.
    async fn stored_seqs(&self, call_id: &str) -> Vec<i64> {
        let docs: Vec<Document> = self
            .items()
            .find(doc! { "callId": call_id })
            .sort(doc! { "seq": 1 })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        docs.iter().map(|d| d.get_i64("seq").unwrap()).collect()
    }
}

#[tokio::test]
async fn a_call_with_25_mb_of_items_stores_and_reads_back_every_item() {
    let Some(store) = test_mongo_store().await else {
        return;
    };
    // 1,250 items of 20 kB: far beyond what one document could hold.
    const ITEMS: u64 = 1_250;
    const TEXT: usize = 20_000;
    let s = store.create_session(session("agent-long")).await.unwrap();
    let mut next = 1;
    while next <= ITEMS {
        let end = (next + 24).min(ITEMS);
        let mut batch = items(next..=end, "long");
        for item in &mut batch {
            item.text = format!("{:0>width$}", item.seq, width = TEXT);
        }
        let out = store.append_items(&s.id, &batch).await.unwrap();
        assert_eq!(out.last_seq, end);
        next = end + 1;
    }
    assert_eq!(store.get_session(&s.id).await.unwrap().last_seq, ITEMS);

    // Pages of at most 3 MB: about 150 items each.
    let read = read_in_pages(&store, &s.id, 1000, 3 * 1024 * 1024).await;
    assert_eq!(read.len(), ITEMS as usize);
    let total: usize = read.iter().map(|item| item.text.len()).sum();
    assert!(total >= 25_000_000, "{total} bytes of text");
    for item in &read {
        assert_eq!(item.text, format!("{:0>width$}", item.seq, width = TEXT));
    }
}

#[tokio::test]
async fn an_old_session_reads_right_before_the_migration_reaches_it() {
    let Some(old) = old_sessions().await else {
        return;
    };
    let mut s = session("agent-old");
    s.twilio_call_sid = format!("CA{}", uuid::Uuid::now_v7().simple());
    old.sessions()
        .insert_one(old_session_document(&s, &items(1..=12, "old")))
        .await
        .unwrap();
    let store = old.connect_without_migration().await;

    let listed = store
        .list_sessions(&SessionFilter::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].last_seq, 12);
    let by_sid = store
        .session_by_call_sid(&s.twilio_call_sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_sid.last_seq, 12);
    let page = store
        .list_items(
            &s.id,
            &ItemsRequest {
                after_seq: 10,
                max_items: 10,
                max_bytes: usize::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|i| i.seq).collect::<Vec<_>>(),
        [11, 12]
    );
    // The first read moved it: nothing is left for the migration.
    assert_eq!(old.stored_seqs(&s.id).await, (1..=12).collect::<Vec<_>>());
    let report = store.migrate_conversations().await.unwrap();
    assert_eq!((report.sessions, report.items), (0, 0));
    let changed = store
        .update_status(
            &s.id,
            &StatusChange::to(CallStatus::Completed),
            domain::now(),
        )
        .await
        .unwrap();
    assert_eq!(changed.session.last_seq, 12);
}

#[tokio::test]
async fn an_interrupted_migration_is_finished_by_the_next_start() {
    let Some(old) = old_sessions().await else {
        return;
    };
    let s = session("agent-old");
    old.sessions()
        .insert_one(old_session_document(&s, &items(1..=30, "old")))
        .await
        .unwrap();
    // Cut short after inserting some of the items, before removing the array.
    let store = old.connect_without_migration().await;
    let moved_part: Vec<StoredItemDoc> = items(1..=10, "old")
        .iter()
        .map(|item| StoredItemDoc::new(&s.id, item))
        .collect();
    old.db
        .collection::<StoredItemDoc>("conversation_items")
        .insert_many(moved_part)
        .await
        .unwrap();
    drop(store);

    let report = MongoStore::connect(&old.uri, &old.name)
        .await
        .unwrap()
        .migration()
        .await
        .unwrap();
    assert_eq!((report.sessions, report.items), (1, 20));
    assert_eq!(old.stored_seqs(&s.id).await, (1..=30).collect::<Vec<_>>());
    let again = MongoStore::connect(&old.uri, &old.name).await.unwrap();
    let report = again.migration().await.unwrap();
    assert_eq!((report.sessions, report.items), (0, 0));
    let said = read_conversation(&again, &s.id).await;
    assert_eq!(said.len(), 30);
    assert_eq!(again.get_session(&s.id).await.unwrap().last_seq, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_starting_at_once_move_each_item_once() {
    let Some(old) = old_sessions().await else {
        return;
    };
    let mut ids = Vec::new();
    for call in 0..20 {
        let s = session("agent-old");
        old.sessions()
            .insert_one(old_session_document(&s, &items(1..=call + 1, "old")))
            .await
            .unwrap();
        ids.push((s.id, call + 1));
    }
    let (a, b) = tokio::join!(
        MongoStore::connect(&old.uri, &old.name),
        MongoStore::connect(&old.uri, &old.name)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (moved_a, moved_b) = tokio::join!(a.migration(), b.migration());
    let (moved_a, moved_b) = (moved_a.unwrap(), moved_b.unwrap());
    let all_items: u64 = (1..=20).sum();
    assert_eq!(
        (
            moved_a.items + moved_b.items,
            moved_a.sessions + moved_b.sessions
        ),
        (all_items, 20),
        "each item inserted and each session moved by one replica: {moved_a:?} {moved_b:?}"
    );
    for (id, count) in &ids {
        assert_eq!(
            old.stored_seqs(id).await,
            (1..=*count as i64).collect::<Vec<_>>()
        );
        assert_eq!(a.get_session(id).await.unwrap().last_seq, *count);
    }
    let left = old
        .sessions()
        .count_documents(doc! { "realtimeConversation": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_replica_of_the_previous_version_pushing_meanwhile_loses_nothing() {
    let Some(old) = old_sessions().await else {
        return;
    };
    let s = session("agent-old");
    old.sessions()
        .insert_one(old_session_document(&s, &items(1..=5, "mixed")))
        .await
        .unwrap();
    let store = old.connect_without_migration().await;
    // This version appends 6..=8 to the collection, then the old one pushes 9..=10
    // into the array, its compare-and-set on `lastSeq` holding.
    store
        .append_items(&s.id, &items(6..=8, "mixed"))
        .await
        .unwrap();
    let pushed: Vec<ItemDoc> = items(9..=10, "mixed").iter().map(ItemDoc::from).collect();
    let pushed = bson::to_bson(&pushed).unwrap();
    let result = old
        .sessions()
        .update_one(
            doc! { "_id": &s.id, "lastSeq": 8_i64 },
            doc! { "$push": { "realtimeConversation": { "$each": pushed } }, "$set": { "lastSeq": 10_i64 } },
        )
        .await
        .unwrap();
    assert_eq!(result.matched_count, 1);

    let said: Vec<u64> = read_conversation(&store, &s.id)
        .await
        .iter()
        .map(|i| i.seq)
        .collect();
    assert_eq!(said, (1..=10).collect::<Vec<_>>());
    let next = store
        .append_items(&s.id, &items(11..=12, "mixed"))
        .await
        .unwrap();
    assert_eq!((next.stored.len(), next.last_seq), (2, 12));
}

#[tokio::test]
async fn an_append_to_an_unknown_call_leaves_no_item_behind() {
    let Some(old) = old_sessions().await else {
        return;
    };
    let store = old.connect_without_migration().await;
    let err = store
        .append_items("no-such-call", &items(1..=3, "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(old.stored_seqs("no-such-call").await.is_empty());
}
