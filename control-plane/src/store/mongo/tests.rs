//! `MongoStore` against a MongoDB-wire server: the conformance suite, what is
//! particular to this store, and databases the original system left behind.

use std::sync::Arc;

use super::MongoStore;
use crate::domain;
use crate::store::conformance::{agent, items, session, store_conformance_suite};
use crate::store::{Store, StoreError};

mod original;

/// The test server's URI and a fresh database name on it, so tests running at once
/// never see each other's data. `None` (skip) when no server is configured, except in
/// CI, where a skipped suite would hide a broken store.
#[allow(clippy::disallowed_methods)]
fn test_database() -> Option<(String, String)> {
    let uri = std::env::var("SWITCHBOARD_TEST_MONGODB_URI").unwrap_or_default();
    if uri.is_empty() {
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
        assert!(
            !in_ci,
            "MongoDB tests must run in CI: set SWITCHBOARD_TEST_MONGODB_URI"
        );
        eprintln!(
            "note: SWITCHBOARD_TEST_MONGODB_URI is not set; skipping MongoDB conformance test"
        );
        return None;
    }
    let database = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
    Some((uri, database))
}

/// A store on a fresh database (see [`test_database`]).
async fn test_mongo_store() -> Option<MongoStore> {
    let (uri, database) = test_database()?;
    let store = MongoStore::connect(&uri, &database)
        .await
        .expect("the test MongoDB server is reachable");
    Some(store)
}

async fn test_store() -> Option<Arc<dyn Store>> {
    let store = test_mongo_store().await?;
    Some(Arc::new(store))
}

store_conformance_suite!(test_store());

#[tokio::test]
async fn a_continuing_batch_takes_one_round_trip() {
    let Some(store) = test_mongo_store().await else {
        return;
    };
    let s = store.create_session(session("agent-1")).await.unwrap();
    store.append_items(&s.id, &items(1..=3, "a")).await.unwrap();
    store.append_items(&s.id, &items(4..=9, "a")).await.unwrap();
    assert_eq!(store.append_round_trips(), 2);

    // A re-send misses the fast path, then reads the last seq: two more.
    let again = store.append_items(&s.id, &items(4..=9, "a")).await.unwrap();
    assert!(again.stored.is_empty());
    assert_eq!(store.append_round_trips(), 4);
}

#[tokio::test]
async fn an_agent_can_give_up_all_its_numbers() {
    let Some(store) = test_mongo_store().await else {
        return;
    };
    let a = store
        .create_agent(agent("Numbered", &["+815000000001"]))
        .await
        .unwrap();
    let mut bare = a.clone();
    bare.phone_numbers.clear();
    let updated = store.update_agent(bare, domain::now()).await.unwrap();
    assert!(updated.phone_numbers.is_empty());
    assert_eq!(store.get_agent(&a.id).await.unwrap(), updated);
    assert_eq!(store.agent_by_phone("+815000000001").await.unwrap(), None);
    // Two agents without numbers do not collide in the unique index.
    store.create_agent(agent("Bare", &[])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appends_to_one_call_store_each_item_once() {
    let Some(store) = test_mongo_store().await else {
        return;
    };
    let store = Arc::new(store);
    let s = store.create_session(session("agent-1")).await.unwrap();
    let mut tasks = Vec::new();
    for writer in 0..4u64 {
        let store = store.clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            // Overlapping batches of different sizes, like sidecars re-sending.
            let size = 3 + writer;
            let mut stored = 0;
            let mut next = 1;
            while next <= 60 {
                let end = (next + size - 1).min(60);
                let out = store
                    .append_items(&id, &items(next..=end, "r"))
                    .await
                    .unwrap();
                stored += out.stored.len();
                next = end + 1;
            }
            stored
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 60, "each item is stored by exactly one writer");
    let stored = store.get_session(&s.id).await.unwrap();
    let seqs: Vec<u64> = stored.conversation.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    assert_eq!(stored.last_seq, 60);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // A port that was free a moment ago: nothing answers there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=200");
    let err = MongoStore::connect(&uri, "sb_unreachable")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("agentsettings")),
        "{err:?}"
    );
}

#[test]
fn the_lists_of_written_fields_match_the_documents_written() {
    use super::documents::{AgentDoc, SessionDoc};
    use super::{AGENT_FIELDS, SESSION_FIELDS};
    use mongodb::bson;

    let sorted = |doc: bson::Document| {
        let mut keys: Vec<String> = doc.keys().cloned().collect();
        keys.sort();
        keys
    };
    let expected = |fields: &[&str]| {
        let mut keys: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        keys.sort();
        keys
    };
    let agent_doc = bson::to_document(&AgentDoc::from(&agent("Bare", &[]))).unwrap();
    assert_eq!(sorted(agent_doc), expected(AGENT_FIELDS));
    let session_doc = SessionDoc::from_domain(&session("agent-1")).unwrap();
    assert_eq!(
        sorted(bson::to_document(&session_doc).unwrap()),
        expected(SESSION_FIELDS)
    );
}
