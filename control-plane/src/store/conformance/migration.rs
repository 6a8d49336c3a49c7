//! Conformance cases for a store's start-up migration: sessions written in the layout
//! before conversation items had their own collection (MongoDB) or table (embedded),
//! with the items inside the session record, are read the same after a start, and
//! a second start changes nothing.

use std::sync::Arc;

use async_trait::async_trait;

use super::{items, read_conversation, session};
use crate::domain::{CallSession, ConversationItem};
use crate::store::Store;

/// A store's storage, reachable beneath the store, for the migration cases.
#[async_trait]
pub(crate) trait OldLayout: Send + Sync + 'static {
    /// Writes `session` with `items` inside its record and `last_seq` at the last of
    /// them, as the previous layout did, straight into the storage. No store of this
    /// fixture is open meanwhile.
    async fn write_old_session(&self, session: &CallSession, items: &[ConversationItem]);
    /// Starts a store on the storage, as the control plane does at start-up, and waits
    /// for its migration to finish.
    async fn start(&self) -> Arc<dyn Store>;
    /// Sessions whose record still holds a conversation; called with no store open.
    async fn old_sessions_left(&self) -> usize;
}

/// The sessions every case writes: a long conversation, a short one, and none.
async fn write_old_sessions(fixture: &impl OldLayout) -> [CallSession; 3] {
    let long = session("agent-old");
    let short = session("agent-old");
    let silent = session("agent-old");
    fixture
        .write_old_session(&long, &items(1..=40, "long"))
        .await;
    fixture
        .write_old_session(&short, &items(1..=3, "short"))
        .await;
    fixture.write_old_session(&silent, &[]).await;
    [long, short, silent]
}

/// The call's items as (seq, text).
async fn said(store: &dyn Store, id: &str) -> Vec<(u64, String)> {
    read_conversation(store, id)
        .await
        .into_iter()
        .map(|item| (item.seq, item.text))
        .collect()
}

fn expected(seqs: std::ops::RangeInclusive<u64>, tag: &str) -> Vec<(u64, String)> {
    items(seqs, tag)
        .into_iter()
        .map(|item| (item.seq, item.text))
        .collect()
}

pub(crate) async fn an_old_layout_is_moved_at_start_up_and_reads_the_same(fixture: impl OldLayout) {
    let [long, short, silent] = write_old_sessions(&fixture).await;
    let store = fixture.start().await;

    let read = store.get_session(&long.id).await.unwrap();
    assert_eq!(read.last_seq, 40);
    assert_eq!(
        (read.customer.name.as_str(), read.status),
        ("Yamada", long.status)
    );
    assert_eq!(
        said(store.as_ref(), &long.id).await,
        expected(1..=40, "long")
    );
    assert_eq!(
        said(store.as_ref(), &short.id).await,
        expected(1..=3, "short")
    );
    assert_eq!(store.get_session(&silent.id).await.unwrap().last_seq, 0);
    assert!(said(store.as_ref(), &silent.id).await.is_empty());

    // The call goes on where it was: a re-send is acknowledged, the next batch stored.
    let resent = store
        .append_items(&long.id, &items(38..=40, "long"))
        .await
        .unwrap();
    assert!(resent.stored.is_empty() && resent.last_seq == 40);
    let next = store
        .append_items(&long.id, &items(41..=45, "long"))
        .await
        .unwrap();
    assert_eq!((next.stored.len(), next.last_seq), (5, 45));
    assert_eq!(
        said(store.as_ref(), &long.id).await,
        expected(1..=45, "long")
    );

    drop(store);
    assert_eq!(fixture.old_sessions_left().await, 0);
}

pub(crate) async fn a_second_start_moves_nothing_and_changes_nothing(fixture: impl OldLayout) {
    let [long, short, silent] = write_old_sessions(&fixture).await;
    let first = fixture.start().await;
    first
        .append_items(&short.id, &items(4..=6, "short"))
        .await
        .unwrap();
    drop(first);
    assert_eq!(fixture.old_sessions_left().await, 0);

    let second = fixture.start().await;
    assert_eq!(
        said(second.as_ref(), &long.id).await,
        expected(1..=40, "long")
    );
    assert_eq!(
        said(second.as_ref(), &short.id).await,
        expected(1..=6, "short")
    );
    assert_eq!(second.get_session(&short.id).await.unwrap().last_seq, 6);
    assert_eq!(second.get_session(&silent.id).await.unwrap().last_seq, 0);
    drop(second);
    assert_eq!(fixture.old_sessions_left().await, 0);
}
