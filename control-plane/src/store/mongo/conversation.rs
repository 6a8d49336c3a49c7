//! Conversation items in their own collection, `conversation_items`: one document per
//! item, unique on `(callId, seq)`, so a call may talk for hours without nearing
//! MongoDB's 16 MB document limit, and reading a session never loads its items.
//!
//! The session's `lastSeq` is the commit point: items 1 to `lastSeq` are all stored,
//! and reads return none beyond it. An append first inserts its items (one already
//! stored is a duplicate key and skipped: a re-sent batch stores nothing twice), then
//! advances `lastSeq` by a compare-and-set from the seq before the batch: two round
//! trips for a batch that continues the log, however long the call (an overlap reads
//! `lastSeq` and sets it from there). A
//! failure between the two leaves items beyond `lastSeq`, unread until the sidecar
//! re-sends them; a batch refused for a gap may leave items the same way. Whichever
//! append then advances `lastSeq` over such an item writes its own copy over it, so
//! what is read is what was acknowledged.
//!
//! Sessions still in the previous layout (items inside the session document) are
//! moved on first touch, here and by the start-up migration (`migration.rs`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::Collection;

use super::documents::{bson_time, probe_last_seq, LastSeqDoc, StoredItemDoc};
use super::legacy::id_match;
use super::{contended, driver_error, int64, not_found, CAS_ATTEMPTS, DUPLICATE_KEY, SESSION};
use crate::domain::{self, conversation::plan_append, ConversationItem};
use crate::store::{AppendOutcome, ConversationPage, ItemsRequest, StoreError, StoreResult};

/// The collection of conversation items.
pub(super) const ITEMS: &str = "conversation_items";
/// The fields every item document carries.
pub(super) const ITEM_FIELDS: &[&str] = &[
    "_id",
    "callId",
    "seq",
    "role",
    "kind",
    "text",
    "providerItemId",
    "payloadJson",
    "createdAt",
];
/// Items fetched per round trip by conversation reads.
const READ_BATCH: usize = 500;

/// Where conversations live; cheap to clone into the migration task.
#[derive(Debug, Clone)]
pub(super) struct Conversations {
    pub(super) sessions: Collection<Document>,
    pub(super) items: Collection<StoredItemDoc>,
    /// Database round trips spent by appends, for benchmarks.
    pub(super) append_round_trips: Arc<AtomicU64>,
}

impl Conversations {
    /// Appends a batch idempotently; see the module docs.
    pub(super) async fn append(
        &self,
        id: &str,
        batch: &[ConversationItem],
    ) -> StoreResult<AppendOutcome> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            let last_seq = self.counted(self.last_seq_of(id)).await?;
            return Ok(AppendOutcome {
                stored: Vec::new(),
                last_seq,
            });
        };
        let (first, last) = (first.seq, last.seq);
        // A malformed batch is refused before anything is written; its error reports
        // the stored last seq.
        if plan_append(first.saturating_sub(1), batch).is_err() {
            let last_seq = self.counted(self.last_seq_of(id)).await?;
            let source = plan_append(last_seq, batch).err();
            let source = source.expect("a batch that is not contiguous is refused at any seq");
            return Err(StoreError::Append {
                call_id: id.to_owned(),
                source,
                last_seq,
            });
        }

        let present = self.counted(self.insert(id, batch)).await?;
        // A sidecar almost always sends the batch after the last one acknowledged:
        // assume it continues the log, and read `lastSeq` only when it does not.
        let mut assumed = first - 1;
        for _ in 0..CAS_ATTEMPTS {
            if self.counted(self.advance(id, assumed, last)).await? {
                let stored: Vec<ConversationItem> = batch
                    .iter()
                    .filter(|item| item.seq > assumed)
                    .cloned()
                    .collect();
                let found: Vec<&ConversationItem> = stored
                    .iter()
                    .filter(|item| present.contains(&item.seq))
                    .collect();
                if !found.is_empty() {
                    self.counted(self.overwrite(id, &found)).await?;
                }
                return Ok(AppendOutcome {
                    stored,
                    last_seq: last,
                });
            }
            // Not advanced: a re-send, a gap, a session in the old layout, or none.
            let last_seq = match self.counted(self.last_seq_of(id)).await {
                Ok(last_seq) => last_seq,
                Err(StoreError::NotFound { kind, id: missing }) => {
                    self.forget(id, batch, &present).await;
                    return Err(StoreError::NotFound { kind, id: missing });
                }
                Err(e) => return Err(e),
            };
            let plan = plan_append(last_seq, batch).map_err(|source| StoreError::Append {
                call_id: id.to_owned(),
                source,
                last_seq,
            })?;
            if plan.is_noop(batch.len()) {
                return Ok(AppendOutcome {
                    stored: Vec::new(),
                    last_seq,
                });
            }
            // An overlap, a `lastSeq` that moved meanwhile, or a session just moved out
            // of the old layout: the batch continues the log from there.
            assumed = last_seq;
        }
        Err(contended("append to call session", id))
    }

    /// Reads part of a conversation; see `Store::list_items`.
    pub(super) async fn read(
        &self,
        id: &str,
        request: &ItemsRequest,
    ) -> StoreResult<ConversationPage> {
        let last_seq = self.last_seq_of(id).await?;
        let mut page = ConversationPage {
            items: Vec::new(),
            last_seq,
        };
        if request.after_seq >= last_seq || request.max_items == 0 {
            return Ok(page);
        }
        let filter = doc! {
            "callId": id,
            "seq": { "$gt": int64(request.after_seq)?, "$lte": int64(last_seq)? },
        };
        let batch = u32::try_from(request.max_items.min(READ_BATCH)).unwrap_or(1);
        let mut cursor = self
            .items
            .find(filter)
            .sort(doc! { "seq": 1 })
            // 0: no limit (a request for "all").
            .limit(i64::try_from(request.max_items).unwrap_or(0))
            .batch_size(batch)
            .await
            .map_err(|e| driver_error("read the conversation of call session", id, e))?;
        let mut bytes = 0;
        let mut expected = request.after_seq + 1;
        while let Some(doc) = cursor
            .try_next()
            .await
            .map_err(|e| driver_error("read the conversation of call session", id, e))?
        {
            let item = doc.into_domain()?;
            if item.seq != expected {
                // Items below `lastSeq` are never deleted: this is damage from outside.
                tracing::error!(call_id = %id, missing = expected, last_seq, "conversation items missing below the last seq");
            }
            expected = item.seq + 1;
            bytes += item.weight();
            if !page.items.is_empty() && bytes > request.max_bytes {
                break;
            }
            page.items.push(item);
            if page.items.len() == request.max_items {
                break;
            }
        }
        Ok(page)
    }

    /// The session's `lastSeq`, after moving its conversation out of the old layout if
    /// need be. `NotFound` for an unknown session.
    pub(super) async fn last_seq_of(&self, id: &str) -> StoreResult<u64> {
        let mut probe = self.probe(id).await?;
        if probe.in_old_layout() {
            self.move_one(id).await?;
            probe = self.probe(id).await?;
        }
        Ok(probe.last_seq.unwrap_or(0))
    }

    async fn probe(&self, id: &str) -> StoreResult<LastSeqDoc> {
        self.sessions
            .clone_with_type::<LastSeqDoc>()
            .find_one(doc! { "_id": id_match(id) })
            .projection(probe_last_seq())
            .await
            .map_err(|e| driver_error("read the last seq of call session", id, e))?
            .ok_or_else(|| not_found(SESSION, id))
    }

    /// Inserts the items of `call_id` that are not stored yet; returns the seqs that
    /// were (duplicate keys).
    pub(super) async fn insert(
        &self,
        call_id: &str,
        items: &[ConversationItem],
    ) -> StoreResult<BTreeSet<u64>> {
        let docs = items.iter().map(|item| StoredItemDoc::new(call_id, item));
        let inserted = self.items.insert_many(docs).ordered(false).await;
        let err = match inserted {
            Ok(_) => return Ok(BTreeSet::new()),
            Err(err) => err,
        };
        // Duplicate keys are items stored already; any other failure fails the append.
        let present: Option<BTreeSet<u64>> = match err.kind.as_ref() {
            ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => failure
                .write_errors
                .iter()
                .flatten()
                .map(|e| match items.get(e.index) {
                    Some(item) if e.code == DUPLICATE_KEY => Some(item.seq),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        present.ok_or_else(|| driver_error("store items of call session", call_id, err))
    }

    /// Sets `lastSeq` from `expected` to `to`; false when it is not `expected` (or the
    /// session is missing, or has no `lastSeq` yet). An update conditioned on the exact
    /// value, whose match count says whether it held.
    async fn advance(&self, id: &str, expected: u64, to: u64) -> StoreResult<bool> {
        let filter = doc! { "_id": id_match(id), "lastSeq": int64(expected)? };
        let update = doc! {
            "$set": { "lastSeq": int64(to)?, "updatedAt": bson_time(domain::now()) },
        };
        let result = self
            .sessions
            .update_one(filter, update)
            .await
            .map_err(|e| driver_error("append to call session", id, e))?;
        Ok(result.matched_count == 1)
    }

    /// Writes `items` over the copies found stored before their batch was
    /// acknowledged (see the module docs).
    async fn overwrite(&self, call_id: &str, items: &[&ConversationItem]) -> StoreResult<()> {
        for item in items {
            self.items
                .replace_one(
                    doc! { "callId": call_id, "seq": int64(item.seq)? },
                    StoredItemDoc::new(call_id, item),
                )
                .await
                .map_err(|e| driver_error("store items of call session", call_id, e))?;
        }
        Ok(())
    }

    /// Deletes what `insert` just stored for a call that turned out not to exist. No
    /// append can claim these items, so removing them cannot lose anything; a failure
    /// only leaves unread documents behind.
    async fn forget(&self, call_id: &str, batch: &[ConversationItem], present: &BTreeSet<u64>) {
        let inserted: Vec<i64> = batch
            .iter()
            .filter(|item| !present.contains(&item.seq))
            .filter_map(|item| i64::try_from(item.seq).ok())
            .collect();
        let filter = doc! { "callId": call_id, "seq": { "$in": inserted } };
        if let Err(e) = self.items.delete_many(filter).await {
            tracing::warn!(%call_id, error = %e, "items of an unknown call left behind");
        }
    }

    /// Runs `op`, counting it as one append round trip.
    async fn counted<T>(&self, op: impl std::future::Future<Output = T>) -> T {
        self.append_round_trips.fetch_add(1, Ordering::Relaxed);
        op.await
    }
}
