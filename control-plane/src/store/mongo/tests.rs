//! `MongoStore` against a MongoDB-wire server: the conformance suite and its
//! migration cases, what is particular to this store, its conversations
//! (`tests/conversation.rs`), and databases the original system left behind
//! (`tests/original.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use mongodb::bson::{self, doc, Document};

use super::documents::{ItemDoc, SessionDoc};
use super::MongoStore;
use crate::domain::{self, CallSession, ConversationItem};
use crate::store::conformance::{
    agent, items, read_conversation, session, store_conformance_suite, store_migration_suite,
    OldLayout,
};
use crate::store::{Store, StoreError};

mod conversation;
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

/// A fresh database on the test server, written beneath the store in the layout before
/// `conversation_items`: the conversation inside the session document.
struct OldSessions {
    uri: String,
    name: String,
    db: mongodb::Database,
}

async fn old_sessions() -> Option<OldSessions> {
    let (uri, name) = test_database()?;
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .expect("the test MongoDB server is reachable");
    let db = client.database(&name);
    Some(OldSessions { uri, name, db })
}

/// `session` as the previous layout stored it, with `items` inside.
fn old_session_document(session: &CallSession, items: &[ConversationItem]) -> Document {
    let mut document = bson::to_document(&SessionDoc::from_domain(session).unwrap()).unwrap();
    let embedded: Vec<ItemDoc> = items.iter().map(ItemDoc::from).collect();
    document.insert("realtimeConversation", bson::to_bson(&embedded).unwrap());
    let last_seq = items.last().map_or(0, |item| item.seq);
    document.insert("lastSeq", i64::try_from(last_seq).unwrap());
    document
}

#[async_trait]
impl OldLayout for OldSessions {
    async fn write_old_session(&self, session: &CallSession, items: &[ConversationItem]) {
        self.db
            .collection::<Document>("callsessions")
            .insert_one(old_session_document(session, items))
            .await
            .unwrap();
    }

    async fn start(&self) -> Arc<dyn Store> {
        let store = MongoStore::connect(&self.uri, &self.name).await.unwrap();
        store.migration().await.unwrap();
        Arc::new(store)
    }

    async fn old_sessions_left(&self) -> usize {
        let left = self
            .db
            .collection::<Document>("callsessions")
            .count_documents(doc! { "realtimeConversation": { "$exists": true } })
            .await
            .unwrap();
        usize::try_from(left).unwrap()
    }
}

store_migration_suite!(old_sessions());

#[tokio::test]
async fn a_continuing_batch_takes_two_round_trips_however_long_the_call() {
    let Some(store) = test_mongo_store().await else {
        return;
    };
    let s = store.create_session(session("agent-1")).await.unwrap();
    store.append_items(&s.id, &items(1..=3, "a")).await.unwrap();
    store.append_items(&s.id, &items(4..=9, "a")).await.unwrap();
    assert_eq!(
        store.append_round_trips(),
        4,
        "insert, then advance lastSeq"
    );
    for start in (10..=400).step_by(10) {
        let batch = items(start..=start + 9, "a");
        store.append_items(&s.id, &batch).await.unwrap();
    }
    assert_eq!(store.append_round_trips(), 4 + 2 * 40);

    // A re-send inserts nothing, cannot advance, and reads the last seq: three more.
    let before = store.append_round_trips();
    let again = store.append_items(&s.id, &items(4..=9, "a")).await.unwrap();
    assert!(again.stored.is_empty() && again.last_seq == 409);
    assert_eq!(store.append_round_trips(), before + 3);
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
    let conversation = read_conversation(store.as_ref(), &s.id).await;
    let seqs: Vec<u64> = conversation.iter().map(|i| i.seq).collect();
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
    use super::conversation::ITEM_FIELDS;
    use super::documents::{AgentDoc, StoredItemDoc};
    use super::{AGENT_FIELDS, SESSION_FIELDS};

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
    let item = &items(1..=1, "a")[0];
    let mut item_doc = bson::to_document(&StoredItemDoc::new("call-1", item)).unwrap();
    item_doc.insert("_id", bson::oid::ObjectId::new()); // added by the driver
    assert_eq!(sorted(item_doc), expected(ITEM_FIELDS));

    use super::campaigns::{CAMPAIGN_FIELDS, DO_NOT_CALL_FIELDS, TARGET_FIELDS};
    use crate::store::conformance::{campaign, target};
    let campaign_doc = bson::to_document(&campaign("Fields")).unwrap();
    assert_eq!(sorted(campaign_doc), expected(CAMPAIGN_FIELDS));
    let target_doc = bson::to_document(&target("c1", "k")).unwrap();
    assert_eq!(sorted(target_doc), expected(TARGET_FIELDS));
    let entry = crate::domain::DoNotCallEntry {
        phone: "+819012345678".into(),
        reason: String::new(),
        created_at: crate::domain::now(),
    };
    assert_eq!(
        sorted(bson::to_document(&entry).unwrap()),
        expected(DO_NOT_CALL_FIELDS)
    );
}
