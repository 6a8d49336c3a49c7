//! Databases the original Node system left behind: its collections, documents shaped
//! as Mongoose wrote them (ObjectId ids and references, `__v`, items without seq) and
//! indexes under Mongoose's names. The store must open them, read them, and refuse to
//! start only on an index that would break it, saying which and how to fix it.

use futures::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

use super::{test_database, MongoStore};
use crate::domain::{self, CallStatus, Role};
use crate::store::conformance::{read_conversation, session};
use crate::store::{PageRequest, SessionFilter, Store, StoreError};

const AGENT_OID: &str = "65a9f001c2b3d4e5f6a7b8c9";
const SESSION_OID: &str = "65a9f002c2b3d4e5f6a7b8ca";
const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";

/// A fresh database on the test server, and its URI and name for the store.
async fn seeded_database() -> Option<(Database, String, String)> {
    let (uri, name) = test_database()?;
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .expect("the test MongoDB server is reachable");
    Some((client.database(&name), uri, name))
}

async fn index(
    db: &Database,
    collection: &str,
    name: &str,
    keys: Document,
    unique: bool,
    sparse: bool,
) {
    let options = IndexOptions::builder()
        .name(name.to_owned())
        .unique(unique)
        .sparse(sparse)
        .build();
    db.collection::<Document>(collection)
        .create_index(IndexModel::builder().keys(keys).options(options).build())
        .await
        .unwrap();
}

async fn index_names(db: &Database, collection: &str) -> Vec<String> {
    db.collection::<Document>(collection)
        .list_index_names()
        .await
        .unwrap()
}

/// An agent and a finished call as the original system stored them.
async fn seed_original_documents(db: &Database) {
    let agent = ObjectId::parse_str(AGENT_OID).unwrap();
    let created = DateTime::from_millis(1_705_000_000_000);
    db.collection::<Document>("agentsettings")
        .insert_one(doc! {
            "_id": agent,
            "name": "Reception",
            "phoneNumbers": ["+81312345678"],
            "instructions": "You are a receptionist.",
            "voice": "alloy",
            "temperature": 0.8,
            "tools": [],
            "isActive": true,
            "createdAt": created,
            "updatedAt": created,
            "__v": 0,
        })
        .await
        .unwrap();
    db.collection::<Document>("callsessions")
        .insert_one(doc! {
            "_id": ObjectId::parse_str(SESSION_OID).unwrap(),
            "agentId": agent,
            "direction": "inbound",
            "fromNumber": "+819012345678",
            "toNumber": "+81312345678",
            "status": "completed",
            "twilioCallSid": CALL_SID,
            "realtimeConversation": [
                { "_id": ObjectId::new(), "role": "user", "content": "もしもし", "timestamp": created },
                { "_id": ObjectId::new(), "role": "assistant", "text": "Hello, how can I help?", "createdAt": created },
            ],
            "recordingUrl": "https://example.invalid/rec.mp3",
            "createdAt": created,
            "updatedAt": created,
            "__v": 2,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_of_the_original_system_is_opened_and_read() {
    let Some((db, uri, name)) = seeded_database().await else {
        return;
    };
    // Mongoose's names for indexes equivalent to ours, plus one of its own.
    index(
        &db,
        "agentsettings",
        "phoneNumbers_1",
        doc! { "phoneNumbers": 1 },
        true,
        true,
    )
    .await;
    index(
        &db,
        "callsessions",
        "twilioCallSid_1",
        doc! { "twilioCallSid": 1 },
        true,
        true,
    )
    .await;
    index(
        &db,
        "callsessions",
        "createdAt_1",
        doc! { "createdAt": 1 },
        false,
        false,
    )
    .await;
    index(
        &db,
        "callsessions",
        "status_1",
        doc! { "status": 1 },
        false,
        false,
    )
    .await;
    seed_original_documents(&db).await;

    let store = MongoStore::connect(&uri, &name)
        .await
        .expect("the store opens");

    // Equivalent indexes are reused, not doubled under our names.
    let agent_indexes = index_names(&db, "agentsettings").await;
    assert!(
        !agent_indexes.contains(&"phoneNumbers_unique".to_owned()),
        "{agent_indexes:?}"
    );
    let session_indexes = index_names(&db, "callsessions").await;
    assert!(
        !session_indexes.contains(&"twilioCallSid_unique".to_owned()),
        "{session_indexes:?}"
    );
    assert!(
        session_indexes.contains(&"agentId_1__id_1".to_owned()),
        "{session_indexes:?}"
    );

    let agent = store.get_agent(AGENT_OID).await.unwrap();
    assert_eq!(agent.id, AGENT_OID);
    assert_eq!(agent.name, "Reception");
    assert_eq!(agent.temperature, Some(0.8));
    assert_eq!(agent.created_at.timestamp_millis(), 1_705_000_000_000);
    let by_phone = store.agent_by_phone("+81312345678").await.unwrap().unwrap();
    assert_eq!(by_phone.id, AGENT_OID);

    let call = store.get_session(SESSION_OID).await.unwrap();
    assert_eq!(call.id, SESSION_OID);
    assert_eq!(call.agent_id, AGENT_OID);
    assert_eq!(call.status, CallStatus::Completed);
    assert_eq!(call.twilio_call_sid, CALL_SID);
    let conversation = read_conversation(&store, SESSION_OID).await;
    let said: Vec<(u64, Role, &str)> = conversation
        .iter()
        .map(|i| (i.seq, i.role, i.text.as_str()))
        .collect();
    assert_eq!(
        said,
        [
            (1, Role::User, "もしもし"),
            (2, Role::Assistant, "Hello, how can I help?")
        ]
    );
    assert_eq!(call.last_seq, 2);
    let by_sid = store.session_by_call_sid(CALL_SID).await.unwrap().unwrap();
    assert_eq!(by_sid.id, SESSION_OID);

    // Lists find them by their agent's id string, after our own newer documents.
    let ours = store.create_session(session(AGENT_OID)).await.unwrap();
    let filter = SessionFilter {
        agent_id: Some(AGENT_OID.to_owned()),
        ..SessionFilter::default()
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = PageRequest { size: 1, token };
        let listed = store.list_sessions(&filter, &page).await.unwrap();
        seen.extend(listed.items.into_iter().map(|s| s.id));
        if listed.next_token.is_empty() {
            break;
        }
        token = listed.next_token;
    }
    assert_eq!(seen, [ours.id.clone(), SESSION_OID.to_owned()]);

    // The original agent can be edited: it had no version, and now has one.
    let mut renamed = agent.clone();
    renamed.name = "Front desk".into();
    let updated = store.update_agent(renamed, domain::now()).await.unwrap();
    assert_eq!((updated.id.as_str(), updated.version), (AGENT_OID, 1));
    let stored_id = db
        .collection::<Document>("agentsettings")
        .find(doc! { "name": "Front desk" })
        .await
        .unwrap()
        .try_collect::<Vec<Document>>()
        .await
        .unwrap()[0]
        .get_object_id("_id")
        .unwrap();
    assert_eq!(
        stored_id.to_hex(),
        AGENT_OID,
        "the document keeps its ObjectId"
    );
}

#[tokio::test]
async fn an_index_that_would_break_the_store_stops_start_up_naming_the_fix() {
    let Some((db, uri, name)) = seeded_database().await else {
        return;
    };
    // Unique but not sparse: a second agent without numbers would collide on null.
    index(
        &db,
        "agentsettings",
        "phoneNumbers_1",
        doc! { "phoneNumbers": 1 },
        true,
        false,
    )
    .await;
    let err = MongoStore::connect(&uri, &name).await.unwrap_err();
    let StoreError::Internal(message) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.contains("collection agentsettings")
            && message.contains("index phoneNumbers_1")
            && message.contains("not sparse")
            && message.contains("db.agentsettings.dropIndex(\"phoneNumbers_1\")"),
        "{message}"
    );

    // A unique index on a field we never write: each new call would carry null there.
    let Some((db, uri, name)) = seeded_database().await else {
        return;
    };
    index(
        &db,
        "callsessions",
        "callSid_1",
        doc! { "callSid": 1 },
        true,
        false,
    )
    .await;
    let err = MongoStore::connect(&uri, &name).await.unwrap_err();
    assert!(
        err.to_string().contains("unique index callSid_1")
            && err.to_string().contains("callsessions"),
        "{err}"
    );
}

#[tokio::test]
async fn a_call_the_original_system_left_in_progress_can_still_end() {
    let Some((db, uri, name)) = seeded_database().await else {
        return;
    };
    db.collection::<Document>("callsessions")
        .insert_one(doc! {
            "_id": ObjectId::parse_str(SESSION_OID).unwrap(),
            "status": "in_progress",
            "realtimeConversation": [],
            "createdAt": DateTime::from_millis(1_705_000_000_000),
            "__v": 0,
        })
        .await
        .unwrap();
    let store = MongoStore::connect(&uri, &name).await.unwrap();

    let change = domain::StatusChange::to(CallStatus::Completed);
    let outcome = store
        .update_status(SESSION_OID, &change, domain::now())
        .await
        .unwrap();
    assert_eq!(outcome.previous, Some(CallStatus::InProgress));
    let ended = store.get_session(SESSION_OID).await.unwrap();
    assert_eq!(ended.status, CallStatus::Completed);
}
