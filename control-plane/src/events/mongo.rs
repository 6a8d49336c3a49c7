//! The cluster-wide feed on MongoDB: every replica writes its events to the
//! `call_events` collection and reads every replica's back through one change stream.
//!
//! **Writing.** [`MongoFeed::publish`] queues the event for one writer task, which
//! inserts what is waiting in one ordered `insert_many` (group commit), so a replica's
//! events enter the database in the order it published them, at a few round trips a
//! second whatever the load. Each document carries its own id (a UUIDv7) and expiry
//! (`expireAt`, the event's time plus the retention, under a TTL index), so a retry
//! after an ambiguous failure cannot store an event twice, and replicas with different
//! retentions need no index change.
//!
//! **Reading.** One change stream per replica (inserts into `call_events` only) feeds the
//! replica's hub, whatever the number of watchers. After an error it is reopened after
//! the last resume token it saw, with backoff — across a database restart or failover
//! no event is lost or repeated. Should the database no longer have that point in its
//! change history, the hub is told of the gap: live watchers are ended and may resume
//! by id, which then tells them precisely whether their events are still there.
//!
//! **Resuming a watcher.** An event id holds its event's resume token; a watcher whose
//! resume point has left the replica's window gets a [`CatchUp`]: a change stream of its
//! own from that token, until `watch.rs` hands it over to the hub.
//!
//! Why change streams and not a capped collection read with a tailable cursor: a
//! capped collection cannot expire documents by age (only by size, so the retention
//! would vary with the load), cannot be resharded, and its tailable cursor resumes
//! only by scanning from the start of the collection; change streams resume from a
//! token in one step, order events of all writers the same way for every reader, and
//! survive failovers. They need a replica set, which Atlas always is.

use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{self, doc, Document, RawDocumentBuf};
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::hub::{FeedEvent, Hub};
use super::id::{EventId, MalformedId};
use super::{CallEvent, FeedError, WatchError};
use crate::domain;
use crate::metrics::Metrics;
use crate::store::mongo::{is_duplicate_key, is_transient};

mod documents;

use documents::EventDoc;

/// The collection of events.
pub(crate) const COLLECTION: &str = "call_events";
/// The TTL index on `expireAt`.
const TTL_INDEX: &str = "expireAt_ttl";
/// `IllegalOperation`: what a standalone server answers `$changeStream`.
const CHANGE_STREAMS_UNSUPPORTED: i32 = 40573;
/// The resume point is no longer in the change history.
const HISTORY_LOST: i32 = 286;
/// Codes of a resume token the server cannot use: BadValue, FailedToParse, Unauthorized
/// (a token of another collection, on some servers), InvalidResumeToken.
const UNUSABLE_TOKEN: &[i32] = &[2, 9, 13, 260];
/// Events a write may carry.
const MAX_GROUP: usize = 1000;
/// Events waiting for the writer; beyond it publishing drops events (counted).
const QUEUE: usize = 65_536;
/// How long a write keeps retrying before its events are given up (logged, counted).
const WRITE_PATIENCE: Duration = Duration::from_secs(10);
/// How long a catch-up stream's server waits for events before saying it has none, so
/// a watcher that caught up is handed over promptly.
const CATCH_UP_AWAIT: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What [`MongoFeed::open`] found.
#[derive(Debug)]
pub(crate) enum Opened {
    Cluster(MongoFeed),
    /// The server refuses change streams; its message.
    Standalone(String),
}

/// One replica's side of the MongoDB feed. Dropping it stops its change stream; the
/// writer finishes what is queued, then stops.
#[derive(Debug)]
pub(crate) struct MongoFeed {
    collection: Collection<Document>,
    retention: Duration,
    writes: mpsc::Sender<Write>,
    metrics: Arc<Metrics>,
    tail: JoinHandle<()>,
}

enum Write {
    Event(Document, oneshot::Sender<()>),
    Flush(oneshot::Sender<()>),
}

/// A watcher's own change stream, from its resume token until the hub takes over.
#[derive(Debug)]
pub(crate) struct CatchUp {
    stream: ChangeStream<RawDocumentBuf>,
}

impl MongoFeed {
    /// Connects, creates the TTL index, and opens this replica's change stream — before
    /// returning, so every event published afterwards is read back.
    pub(crate) async fn open(
        uri: &str,
        database: &str,
        retention: Duration,
        hub: Arc<Hub>,
        metrics: &Arc<Metrics>,
    ) -> Result<Opened, FeedError> {
        // The URI may carry a password: errors name the database, never the URI.
        let client = Client::with_uri_str(uri)
            .await
            .map_err(|e| FeedError(format!("connect to database {database}: {e}")))?;
        let collection = client.database(database).collection::<Document>(COLLECTION);
        let ttl = IndexModel::builder()
            .keys(doc! { "expireAt": 1 })
            .options(
                IndexOptions::builder()
                    .name(TTL_INDEX.to_owned())
                    .expire_after(Duration::ZERO)
                    .build(),
            )
            .build();
        collection.create_index(ttl).await.map_err(|e| {
            FeedError(format!(
                "collection {COLLECTION}: cannot create the TTL index {TTL_INDEX} on \
                 {{ expireAt: 1 }} with expireAfterSeconds 0: {e}"
            ))
        })?;
        let stream = match open_stream(&collection, None, None).await {
            Ok(stream) => stream,
            Err(e) if server_code(&e) == Some(CHANGE_STREAMS_UNSUPPORTED) => {
                return Ok(Opened::Standalone(e.to_string()));
            }
            Err(e) => {
                return Err(FeedError(format!(
                    "collection {COLLECTION}: cannot open a change stream: {e}"
                )))
            }
        };
        let (writes, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write(collection.clone(), queue, metrics.clone()));
        let tail = tokio::spawn(tail(collection.clone(), stream, hub, metrics.clone()));
        Ok(Opened::Cluster(MongoFeed {
            collection,
            retention,
            writes,
            metrics: metrics.clone(),
            tail,
        }))
    }

    /// Queues `event` for the writer; the receiver answers once it is written or given
    /// up. `None` when it could not even be queued (logged and counted).
    pub(crate) fn publish(&self, event: &CallEvent) -> Option<oneshot::Receiver<()>> {
        let expire_at = chrono::Duration::from_std(self.retention)
            .ok()
            .and_then(|retention| event.time.checked_add_signed(retention))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let document = match EventDoc::from_event(uuid::Uuid::now_v7(), event, expire_at) {
            Ok(document) => document,
            Err(e) => {
                tracing::error!(call_id = %event.call_id, error = %e, "event not published: cannot encode it");
                self.metrics.events_not_published(1);
                return None;
            }
        };
        let (done, written) = oneshot::channel();
        match self.writes.try_send(Write::Event(document, done)) {
            Ok(()) => Some(written),
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the queue to the database is full",
                    mpsc::error::TrySendError::Closed(_) => "the writer stopped",
                };
                tracing::warn!(call_id = %event.call_id, "event not published: {why}");
                self.metrics.events_not_published(1);
                None
            }
        }
    }

    /// Waits until what was queued before is written or given up (at most a little
    /// longer than one write's patience).
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.writes.send(Write::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(WRITE_PATIENCE * 2, flushed).await;
        }
    }

    /// Refuses an event older than the retention: its document may be gone, and so may
    /// the events after it.
    pub(crate) fn check_retention(&self, time_ms: i64) -> Result<(), WatchError> {
        let age_ms = domain::now().timestamp_millis().saturating_sub(time_ms);
        if u128::try_from(age_ms).unwrap_or(0) > self.retention.as_millis() {
            return Err(WatchError::Gone(format!(
                "the event is {} s old, beyond the retention of {} s: the events since are gone",
                age_ms / 1000,
                self.retention.as_secs()
            )));
        }
        Ok(())
    }

    /// A change stream of the events after the one whose resume token is `token`.
    pub(crate) async fn catch_up(&self, token: &[u8]) -> Result<CatchUp, WatchError> {
        let token: ResumeToken = bson::from_slice(token).map_err(|e| {
            WatchError::Malformed(MalformedId::new(format!("unusable resume token: {e}")))
        })?;
        let stream = open_stream(&self.collection, Some(token), Some(CATCH_UP_AWAIT))
            .await
            .map_err(|e| match server_code(&e) {
                Some(HISTORY_LOST) => WatchError::Gone(
                    "the database's change history no longer reaches back to this event: \
                     the events since are gone"
                        .into(),
                ),
                Some(code) if UNUSABLE_TOKEN.contains(&code) => WatchError::Malformed(
                    MalformedId::new(format!("the database refuses its resume token: {e}")),
                ),
                _ => WatchError::Unavailable(format!("cannot read the change history: {e}")),
            })?;
        Ok(CatchUp { stream })
    }
}

impl Drop for MongoFeed {
    fn drop(&mut self) {
        self.tail.abort();
    }
}

impl CatchUp {
    /// The next event after those read; `None` when there is none for now. An error
    /// ends the catch-up (the reason says why).
    pub(crate) async fn next(&mut self) -> Result<Option<FeedEvent>, String> {
        loop {
            if !self.stream.is_alive() {
                return Err(format!(
                    "the change stream of {COLLECTION} ended (was the collection dropped?)"
                ));
            }
            match self.stream.next_if_any().await {
                Ok(Some(change)) => match decode(&change) {
                    Ok(Some(event)) => return Ok(Some(event)),
                    Ok(None) => {}
                    Err(reason) => tracing::warn!(%reason, "event skipped: unreadable"),
                },
                Ok(None) => return Ok(None),
                Err(e) => return Err(format!("the change history could not be read: {e}")),
            }
        }
    }
}

/// Opens a change stream of inserts into `call_events`, after `start_after` when given.
async fn open_stream(
    collection: &Collection<Document>,
    start_after: Option<ResumeToken>,
    max_await: Option<Duration>,
) -> Result<ChangeStream<RawDocumentBuf>, DriverError> {
    // Raw events: a document this replica cannot read (a newer replica's, during a
    // rolling upgrade) is skipped, never a stream error that would stop the feed.
    let mut watch = collection
        .watch()
        .pipeline([doc! { "$match": { "operationType": "insert" } }]);
    if let Some(token) = start_after {
        watch = watch.start_after(token);
    }
    if let Some(wait) = max_await {
        watch = watch.max_await_time(wait);
    }
    Ok(watch.await?.with_type::<RawDocumentBuf>())
}

/// Reads this replica's change stream into `hub`, for as long as the feed lives.
async fn tail(
    collection: Collection<Document>,
    mut stream: ChangeStream<RawDocumentBuf>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
) {
    let mut token = stream.resume_token();
    loop {
        let next = if stream.is_alive() {
            stream.next_if_any().await.map_err(|e| e.to_string())
        } else {
            Err(format!("the change stream of {COLLECTION} ended"))
        };
        match next {
            Ok(Some(change)) => {
                match decode(&change) {
                    Ok(Some(event)) => hub.push(|_| event),
                    Ok(None) => {}
                    Err(reason) => tracing::warn!(%reason, "event skipped: unreadable"),
                }
                token = stream.resume_token().or(token);
            }
            Ok(None) => token = stream.resume_token().or(token),
            Err(error) => {
                tracing::warn!(%error, "event feed: the change stream failed; reopening it");
                stream = reopen(&collection, &mut token, &hub, &metrics).await;
            }
        }
    }
}

/// Reopens the change stream after `token`, with backoff, until it opens.
async fn reopen(
    collection: &Collection<Document>,
    token: &mut Option<ResumeToken>,
    hub: &Hub,
    metrics: &Metrics,
) -> ChangeStream<RawDocumentBuf> {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        match open_stream(collection, token.clone(), None).await {
            Ok(stream) => {
                metrics.event_feed_reopened();
                tracing::info!("event feed: change stream reopened where it stopped");
                return stream;
            }
            Err(e) if server_code(&e) == Some(HISTORY_LOST) => {
                tracing::error!(
                    error = %e,
                    "event feed: the database's change history no longer reaches back to \
                     where this replica stopped reading; events in between may be missing \
                     from its watchers, which are ended so they resume by id"
                );
                hub.gap();
                *token = None;
            }
            Err(e) => tracing::warn!(error = %e, "event feed: cannot reopen the change stream yet"),
        }
    }
}

/// Writes queued events in groups, in order, until every sender is gone.
async fn write(
    collection: Collection<Document>,
    mut queue: mpsc::Receiver<Write>,
    metrics: Arc<Metrics>,
) {
    let mut group = Vec::new();
    while let Some(first) = queue.recv().await {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let documents: Vec<&Document> = group
            .iter()
            .filter_map(|w| match w {
                Write::Event(document, _) => Some(document),
                Write::Flush(_) => None,
            })
            .collect();
        let lost = insert_in_order(&collection, &documents).await;
        if lost > 0 {
            metrics.events_not_published(lost);
        }
        for written in group.drain(..) {
            let done = match written {
                Write::Event(_, done) | Write::Flush(done) => done,
            };
            let _ = done.send(());
        }
    }
}

/// Inserts `documents` in order; returns how many were given up. One `insert_many`
/// normally; after a failure, one document at a time, so a retry after an ambiguous
/// failure keeps the order and treats "already stored" as stored.
async fn insert_in_order(collection: &Collection<Document>, documents: &[&Document]) -> u64 {
    if documents.is_empty() {
        return 0;
    }
    let first_error = match collection.insert_many(documents.iter().copied()).await {
        Ok(_) => return 0,
        Err(e) => e,
    };
    tracing::warn!(error = %first_error, count = documents.len(), "event feed: writing events failed; retrying one by one");
    let deadline = tokio::time::Instant::now() + WRITE_PATIENCE;
    let mut lost = 0;
    for document in documents {
        let mut backoff = Duration::from_millis(50);
        loop {
            match collection.insert_one(*document).await {
                Ok(_) => break,
                Err(e) if is_duplicate_key(&e) => break,
                Err(e) if is_transient(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    tracing::error!(error = %e, "event not published: the database refused it");
                    lost += 1;
                    break;
                }
            }
        }
    }
    lost
}

/// The event of a change, `None` for a change that is not an event (not an insert).
fn decode(change: &RawDocumentBuf) -> Result<Option<FeedEvent>, String> {
    let operation = change
        .get_str("operationType")
        .map_err(|e| format!("change without operationType: {e}"))?;
    if operation != "insert" {
        return Ok(None);
    }
    let token = change
        .get_document("_id")
        .map_err(|e| format!("change without a resume token: {e}"))?
        .as_bytes()
        .to_vec();
    let full = change
        .get_document("fullDocument")
        .map_err(|e| format!("insert without its document: {e}"))?;
    let document: EventDoc = bson::from_slice(full.as_bytes())
        .map_err(|e| format!("{COLLECTION} document not readable: {e}"))?;
    let (key, time_ms, event) = document.into_event()?;
    let id = EventId::Cluster {
        time_ms,
        key,
        token,
    };
    Ok(Some(FeedEvent {
        id: id.encode(),
        key,
        event,
    }))
}

/// The code of a server error, if it is one.
fn server_code(e: &DriverError) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
