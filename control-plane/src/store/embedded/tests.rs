//! `EmbeddedStore`: the conformance suite, its migration cases on files of format 1,
//! and what is particular to a file: restarts and formats.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableTable};

use super::format::{FORMAT, META};
use super::*;
use crate::store::conformance::{
    self, read_conversation, store_conformance_suite, store_migration_suite, OldLayout,
};

async fn test_store() -> Option<Arc<dyn Store>> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(&dir.keep()).expect("open store");
    Some(Arc::new(store))
}

store_conformance_suite!(test_store());

/// A store directory, written beneath the store as a format-1 file.
struct FormatOneFile {
    dir: tempfile::TempDir,
}

impl FormatOneFile {
    fn path(&self) -> PathBuf {
        self.dir.path().join("switchboard.redb")
    }
}

async fn format_one_file() -> Option<FormatOneFile> {
    let dir = tempfile::tempdir().expect("temporary directory");
    Some(FormatOneFile { dir })
}

#[async_trait]
impl OldLayout for FormatOneFile {
    async fn write_old_session(&self, session: &CallSession, items: &[ConversationItem]) {
        let db = Database::create(self.path()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut record = serde_json::to_value(session).unwrap();
            record["conversation"] = serde_json::to_value(items).unwrap();
            record["last_seq"] = items.last().map_or(0, |item| item.seq).into();
            let bytes = serde_json::to_vec(&record).unwrap();
            let mut sessions = txn.open_table(SESSIONS).unwrap();
            sessions
                .insert(session.id.as_str(), bytes.as_slice())
                .unwrap();
            // Format 1 had no format number.
            txn.open_table(META).unwrap().remove("format").unwrap();
        }
        txn.commit().unwrap();
    }

    async fn start(&self) -> Arc<dyn Store> {
        Arc::new(EmbeddedStore::open(self.dir.path()).unwrap())
    }

    async fn old_sessions_left(&self) -> usize {
        let db = Database::create(self.path()).unwrap();
        let txn = db.begin_read().unwrap();
        let sessions = txn.open_table(SESSIONS).unwrap();
        let mut left = 0;
        for entry in sessions.iter().unwrap() {
            let (_, value) = entry.unwrap();
            let record: serde_json::Value = serde_json::from_slice(value.value()).unwrap();
            if record["conversation"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
            {
                left += 1;
            }
        }
        left
    }
}

store_migration_suite!(format_one_file());

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let agent = conformance::agent("Persistent", &["+815011119999"]);
    let session = conformance::session(&agent.id);
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create_agent(agent.clone()).await.unwrap();
        store.create_session(session.clone()).await.unwrap();
        store
            .append_items(&session.id, &conformance::items(1..=4, "kept"))
            .await
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get_agent(&agent.id).await.unwrap(), agent);
    assert_eq!(
        store.agent_by_phone("+815011119999").await.unwrap(),
        Some(agent)
    );
    let reopened = store.get_session(&session.id).await.unwrap();
    assert_eq!(reopened.last_seq, 4);
    assert_eq!(read_conversation(&store, &session.id).await.len(), 4);
    let again = store
        .append_items(&session.id, &conformance::items(3..=5, "kept"))
        .await
        .unwrap();
    assert_eq!(again.stored.len(), 1);
}

#[tokio::test]
async fn a_file_of_a_newer_format_is_refused_naming_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        let db = Database::create(dir.path().join("switchboard.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", FORMAT + 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = EmbeddedStore::open(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("format {}", FORMAT + 1))
            && message.contains(&format!("format {FORMAT} at most")),
        "{message}"
    );
}

#[tokio::test]
async fn sessions_are_written_so_a_format_one_control_plane_reads_them() {
    /// What a control plane of format 1 requires of a session record.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct FormatOneSession {
        id: String,
        conversation: Vec<ConversationItem>,
        last_seq: u64,
    }
    let dir = tempfile::tempdir().unwrap();
    let session = conformance::session("agent-1");
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create_session(session.clone()).await.unwrap();
        store
            .append_items(&session.id, &conformance::items(1..=2, "x"))
            .await
            .unwrap();
    }
    let db = Database::create(dir.path().join("switchboard.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let sessions = txn.open_table(SESSIONS).unwrap();
    let value = sessions.get(session.id.as_str()).unwrap().unwrap();
    let old: FormatOneSession = serde_json::from_slice(value.value()).unwrap();
    assert_eq!((old.conversation.len(), old.last_seq), (0, 2));
    let format = txn.open_table(META).unwrap().get("format").unwrap();
    assert_eq!(format.map(|v| v.value()), Some(FORMAT));
}
