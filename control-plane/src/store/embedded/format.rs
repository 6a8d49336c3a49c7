//! The embedded store's on-disk format: a number in the `meta` table, checked and
//! brought up to date by [`upgrade`] when the store opens, inside one write
//! transaction, so a crash half-way leaves the file as it was and the next start
//! does the whole upgrade again.
//!
//! - Format 1 (no `meta` table): sessions as JSON with a `conversation` array, items
//!   in `items`. The store kept that array empty, but a file whose sessions carry items
//!   there is read right: they are moved into `items`.
//! - Format 2: `meta.format = 2`. Every item is in `items`; a session's `conversation`
//!   is written empty (so a control plane of format 1 can still read the file) and
//!   ignored when read.
//!
//! A file of a format newer than this binary knows is refused, naming both numbers,
//! rather than written in a shape this binary does not understand. redb locks the
//! file, so two processes never upgrade it at once.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Deserialize;

use super::{decode, encode, internal, save_session, ITEMS, SESSIONS};
use crate::domain::{CallSession, ConversationItem};
use crate::store::{StoreError, StoreResult};

pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The format this binary writes.
pub(super) const FORMAT: u64 = 2;
const FORMAT_KEY: &str = "format";

/// What an upgrade did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Upgrade {
    pub(super) from: u64,
    /// Sessions whose embedded conversation was moved to `items`.
    pub(super) sessions: usize,
    /// Items written to `items` (those already there are kept as they are).
    pub(super) items: usize,
}

/// The part of a format-1 session record that format 2 moves out.
#[derive(Deserialize)]
struct EmbeddedConversation {
    #[serde(default)]
    conversation: Vec<ConversationItem>,
}

/// Brings the file to [`FORMAT`]; `None` when it was there already.
pub(super) fn upgrade(txn: &WriteTransaction) -> StoreResult<Option<Upgrade>> {
    let mut meta = txn.open_table(META).map_err(internal)?;
    let found = meta
        .get(FORMAT_KEY)
        .map_err(internal)?
        .map_or(1, |v| v.value());
    if found == FORMAT {
        return Ok(None);
    }
    if found > FORMAT {
        return Err(StoreError::Internal(format!(
            "the embedded store's file has format {found}, written by a newer control \
             plane; this one reads format {FORMAT} at most"
        )));
    }
    let (sessions, items) = move_embedded_conversations(txn)?;
    meta.insert(FORMAT_KEY, FORMAT).map_err(internal)?;
    Ok(Some(Upgrade {
        from: found,
        sessions,
        items,
    }))
}

/// Format 1 → 2: moves items found inside session records into `items`. Returns the
/// sessions changed and the items written.
fn move_embedded_conversations(txn: &WriteTransaction) -> StoreResult<(usize, usize)> {
    // Read first, write after: a table cannot be changed while it is iterated.
    let mut found = Vec::new();
    {
        let sessions = txn.open_table(SESSIONS).map_err(internal)?;
        for entry in sessions.iter().map_err(internal)? {
            let (_, value) = entry.map_err(internal)?;
            let embedded: EmbeddedConversation = decode(value.value())?;
            if embedded.conversation.is_empty() {
                continue;
            }
            let session: CallSession = decode(value.value())?;
            found.push((session, embedded.conversation));
        }
    }
    let mut written = 0;
    let mut items = txn.open_table(ITEMS).map_err(internal)?;
    for (session, conversation) in &mut found {
        for item in numbered(std::mem::take(conversation)) {
            let key = (session.id.as_str(), item.seq);
            // The items table wins: an item stored there is never replaced.
            if items.get(key).map_err(internal)?.is_none() {
                items
                    .insert(key, encode(&item)?.as_slice())
                    .map_err(internal)?;
                written += 1;
            }
            session.last_seq = session.last_seq.max(item.seq);
        }
    }
    drop(items);
    for (session, _) in &found {
        save_session(txn, session)?;
    }
    if !found.is_empty() {
        tracing::info!(
            sessions = found.len(),
            items = written,
            "embedded store: conversations moved out of session records"
        );
    }
    Ok((found.len(), written))
}

/// Items in seq order, once each; numbered by position when some have no seq.
fn numbered(mut items: Vec<ConversationItem>) -> Vec<ConversationItem> {
    if items.iter().any(|item| item.seq == 0) {
        for (item, seq) in items.iter_mut().zip(1..) {
            item.seq = seq;
        }
        return items;
    }
    items.sort_by_key(|item| item.seq);
    items.dedup_by_key(|item| item.seq);
    items
}
