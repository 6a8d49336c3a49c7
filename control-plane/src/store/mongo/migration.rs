//! Moving conversations out of session documents into `conversation_items`.
//!
//! Before items had their own collection, a session kept its conversation in a
//! `realtimeConversation` array with `lastSeq` beside it (the original system wrote
//! the array without `lastSeq`, and items without `seq`). [`Conversations::move_one`]
//! moves one session: it inserts the array's items (numbered by position when they
//! have no seq; duplicate keys skipped), then removes the array and raises `lastSeq` to
//! the last of them in one write conditioned on the array being as it was read. So it
//! is safe to repeat, to interrupt at any point (items without the array's removal are
//! found in place next time), and to run from two replicas at once; and a replica of
//! the previous version still pushing to the array makes the condition fail, and the
//! move is read and done again.
//!
//! [`start`] runs [`Conversations::move_all`] in the background when the store
//! connects; until it reaches a session, the first read or append of that session
//! moves it (`conversation.rs`), so sessions read right throughout.

use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use serde::Deserialize;
use tokio::sync::watch;

use super::conversation::Conversations;
use super::documents::{timestamp, ItemDoc};
use super::legacy::{id_match, id_string};
use super::{contended, driver_error, int64, invalid_document, CAS_ATTEMPTS, SESSION};
use crate::domain::{ConversationItem, Timestamp};
use crate::store::{StoreError, StoreResult};

/// Sessions looked up per query of the start-up migration.
const MIGRATION_BATCH: i64 = 200;
/// How often the start-up migration resumes after the database was unreachable.
const MIGRATION_RETRIES: u32 = 10;
const MIGRATION_RETRY_DELAY: Duration = Duration::from_secs(5);

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Sessions whose old layout this run removed (empty conversations included).
    pub sessions: u64,
    /// Items this run inserted into `conversation_items`.
    pub items: u64,
    /// Sessions left in the old layout because a document could not be read, with why.
    pub unreadable: Vec<String>,
}

/// What moving one session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Moved {
    /// Items inserted (those found in place already are not counted).
    pub(super) items: u64,
    /// Whether this move removed the old layout (another may have got there first).
    pub(super) removed: bool,
}

/// The state of the start-up migration: `None` while it runs.
pub(super) type MigrationState = watch::Receiver<Option<Result<MigrationReport, StoreError>>>;

/// A session document as the move reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OldConversationDoc {
    #[serde(rename = "_id", deserialize_with = "id_string")]
    id: String,
    #[serde(default)]
    realtime_conversation: Option<Vec<ItemDoc>>,
    #[serde(default)]
    last_seq: Option<u64>,
    #[serde(default)]
    created_at: Option<mongodb::bson::DateTime>,
    #[serde(default)]
    updated_at: Option<mongodb::bson::DateTime>,
}

/// Sessions the migration has to visit: items inside, or no `lastSeq` yet.
fn old_layout_filter() -> Document {
    doc! { "$or": [
        { "realtimeConversation": { "$exists": true } },
        { "lastSeq": { "$exists": false } },
    ] }
}

/// Spawns the start-up migration; the receiver says when it is over.
pub(super) fn start(conversations: Conversations, database: String) -> MigrationState {
    let (report, state) = watch::channel(None);
    tokio::spawn(async move {
        let outcome = conversations.move_all_with_retries().await;
        match &outcome {
            Ok(done) if done.sessions > 0 || !done.unreadable.is_empty() => tracing::info!(
                %database,
                sessions = done.sessions,
                items = done.items,
                unreadable = done.unreadable.len(),
                "conversations moved to conversation_items"
            ),
            Ok(_) => tracing::debug!(%database, "no conversation to move"),
            Err(e) => tracing::error!(
                %database,
                error = %e,
                "moving conversations to conversation_items stopped; sessions not moved yet are \
                 moved when read, and the next start resumes"
            ),
        }
        let _ = report.send(Some(outcome));
    });
    state
}

impl Conversations {
    /// [`move_all`](Self::move_all), resumed a few times after the database was
    /// unreachable.
    async fn move_all_with_retries(&self) -> StoreResult<MigrationReport> {
        let mut total = MigrationReport::default();
        let mut attempt = 0;
        loop {
            match self.move_all(&mut total).await {
                Ok(()) => return Ok(total),
                Err(StoreError::Unavailable(reason)) if attempt < MIGRATION_RETRIES => {
                    attempt += 1;
                    tracing::warn!(%reason, attempt, "moving conversations paused: the database is unavailable");
                    tokio::time::sleep(MIGRATION_RETRY_DELAY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves every session still in the old layout, adding to `report`.
    pub(super) async fn move_all(&self, report: &mut MigrationReport) -> StoreResult<()> {
        let mut skipped: Vec<Bson> = Vec::new();
        loop {
            let filter =
                doc! { "$and": [old_layout_filter(), { "_id": { "$nin": skipped.clone() } }] };
            let ids: Vec<Document> = self
                .sessions
                .find(filter)
                .projection(doc! { "_id": 1 })
                .limit(MIGRATION_BATCH)
                .await
                .map_err(|e| driver_error("find sessions to migrate in", "callsessions", e))?
                .try_collect()
                .await
                .map_err(|e| driver_error("find sessions to migrate in", "callsessions", e))?;
            if ids.is_empty() {
                return Ok(());
            }
            for found in ids {
                let raw_id = found.get("_id").cloned().unwrap_or(Bson::Null);
                let id = match &raw_id {
                    Bson::String(id) => id.clone(),
                    Bson::ObjectId(oid) => oid.to_hex(),
                    other => other.to_string(),
                };
                match self.move_one(&id).await {
                    Ok(moved) => {
                        report.sessions += u64::from(moved.removed);
                        report.items += moved.items;
                    }
                    Err(StoreError::Internal(reason)) => {
                        tracing::warn!(call_id = %id, %reason, "conversation left in its session: unreadable");
                        report.unreadable.push(reason);
                        skipped.push(raw_id);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Moves one session's conversation out of its document. A session already
    /// moved, or gone, moves nothing.
    pub(super) async fn move_one(&self, id: &str) -> StoreResult<Moved> {
        let mut moved = Moved::default();
        for _ in 0..CAS_ATTEMPTS {
            let found = self
                .sessions
                .clone_with_type::<OldConversationDoc>()
                .find_one(doc! { "_id": id_match(id) })
                .projection(doc! {
                    "realtimeConversation": 1, "lastSeq": 1, "createdAt": 1, "updatedAt": 1,
                })
                .await
                .map_err(|e| driver_error("read the conversation of call session", id, e))?;
            let Some(found) = found else {
                return Ok(moved);
            };
            if found.realtime_conversation.is_none() && found.last_seq.is_some() {
                return Ok(moved);
            }
            let embedded = found.realtime_conversation.as_ref().map_or(0, Vec::len);
            let created = found.created_at.or(found.updated_at);
            let fallback = match created.map(timestamp).transpose() {
                Ok(at) => at.unwrap_or_default(),
                Err(reason) => return Err(invalid_document(SESSION, id, &reason)),
            };
            let items = numbered(found.realtime_conversation.unwrap_or_default(), fallback)
                .map_err(|reason| invalid_document(SESSION, &found.id, &reason))?;
            if !items.is_empty() {
                let present = self.insert(id, &items).await?;
                moved.items += (items.len() - present.len()) as u64;
            }
            let last = items
                .last()
                .map_or(0, |item| item.seq)
                .max(found.last_seq.unwrap_or(0));
            // Only if nobody pushed to the array since it was read.
            let unchanged = if embedded == 0 && found.last_seq.is_none() {
                doc! { "$in": [[], Bson::Null] }
            } else {
                let size = i32::try_from(embedded).map_err(|_| {
                    invalid_document(SESSION, id, "the embedded conversation is too long")
                })?;
                doc! { "$size": size }
            };
            let removed = self
                .sessions
                .update_one(
                    doc! { "_id": id_match(id), "realtimeConversation": unchanged },
                    doc! {
                        "$unset": { "realtimeConversation": "" },
                        "$max": { "lastSeq": int64(last)? },
                    },
                )
                .await
                .map_err(|e| driver_error("move the conversation of call session", id, e))?;
            if removed.matched_count == 1 {
                moved.removed = true;
                return Ok(moved);
            }
        }
        Err(contended("move the conversation of call session", id))
    }
}

/// The items of an embedded conversation in seq order, once each: numbered by position
/// when they carry no seq (the original system's), as they were pushed.
fn numbered(items: Vec<ItemDoc>, fallback: Timestamp) -> Result<Vec<ConversationItem>, String> {
    let by_position = items.iter().any(|item| item.seq == 0);
    let mut items = items
        .into_iter()
        .zip(1..)
        .map(|(item, position)| {
            let seq = if by_position { position } else { item.seq };
            item.decode(seq, fallback)
        })
        .collect::<Result<Vec<_>, _>>()?;
    items.sort_by_key(|item| item.seq);
    items.dedup_by_key(|item| item.seq);
    Ok(items)
}
