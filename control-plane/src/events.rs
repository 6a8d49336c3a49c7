//! The event feed behind `WatchCallEvents`: every status change, stored conversation
//! item, handoff and call error, published after the store accepted it, to every
//! watcher of every replica.
//!
//! Two sources feed the same fan-out (`hub.rs`: a window of recent events plus a
//! broadcast, so a slow dashboard never slows a call):
//!
//! - **MongoDB** (`mongo.rs`): each replica writes its events to the `call_events`
//!   collection and reads every replica's back through one change stream, so a watcher
//!   on any replica sees every call. Event ids carry the change stream's resume token:
//!   a watcher resumes on any replica, after a replica or database restart too.
//! - **Local**: the events of this replica alone, for the embedded store (one replica
//!   by nature) and for a MongoDB server without change streams (a standalone server).
//!   Ids are resumable from the in-memory window of the run that issued them.
//!
//! [`Watch`] (`watch.rs`) is one watcher's stream: a backlog from the window, catch-up
//! from the database when the window no longer holds the resume point, then live events.
//! Read `grpc/sessions.rs` for the RPC around it and `id.rs` for the id format.

pub mod id;

mod hub;
mod mongo;
mod watch;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::StoreConfig;
use crate::domain::{
    CallError, CallSession, CallStatus, ConversationItem, HandoffTarget, Timestamp,
};
use crate::metrics::Metrics;

pub use hub::FeedEvent;
pub use id::{EventId, MalformedId};
pub use watch::{Watch, WatchItem};

use hub::Hub;

/// Recent events each replica keeps for watchers resuming by id, and how far a watcher
/// may lag behind before it loses the oldest (and is told how many, `EventsDropped`).
pub const WINDOW: usize = 8192;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    StatusChanged {
        /// `None` for a newly created session.
        previous: Option<CallStatus>,
        current: CallStatus,
        end_reason: String,
    },
    ItemStored(ConversationItem),
    Handoff {
        target: Option<HandoffTarget>,
        reason: String,
    },
    Error(CallError),
}

/// Something that happened to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    pub call_id: String,
    pub agent_id: String,
    pub campaign_id: String,
    pub time: Timestamp,
    pub kind: EventKind,
}

impl CallEvent {
    pub fn for_session(session: &CallSession, time: Timestamp, kind: EventKind) -> Self {
        Self {
            call_id: session.id.clone(),
            agent_id: session.agent_id.clone(),
            campaign_id: session.campaign_id.clone(),
            time,
            kind,
        }
    }
}

/// Which events a watcher wants; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub call_id: String,
    pub agent_id: String,
    pub campaign_id: String,
}

impl EventFilter {
    pub fn matches(&self, e: &CallEvent) -> bool {
        (self.call_id.is_empty() || self.call_id == e.call_id)
            && (self.agent_id.is_empty() || self.agent_id == e.agent_id)
            && (self.campaign_id.is_empty() || self.campaign_id == e.campaign_id)
    }
}

/// Why a watch cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// `after_event_id` is not an event id.
    #[error("after_event_id: {0}")]
    Malformed(#[from] MalformedId),
    /// The events after `after_event_id` are no longer kept.
    #[error("after_event_id: {0}")]
    Gone(String),
    /// The database cannot be read now; the watcher may retry.
    #[error("event feed unavailable: {0}")]
    Unavailable(String),
}

/// Why the cluster-wide feed could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event feed: {0}")]
pub struct FeedError(String);

/// The feed of one replica. Cheap to clone; every clone is the same feed.
#[derive(Debug, Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Arc<Hub>,
    source: Source,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
enum Source {
    /// Events of this replica; ids carry this run's random epoch.
    Local {
        epoch: u64,
    },
    Cluster(mongo::MongoFeed),
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A feed of this replica's events alone, with metrics of its own (tests).
    pub fn new() -> Self {
        Self::local(Arc::new(Metrics::new()))
    }

    /// A feed of this replica's events alone.
    pub fn local(metrics: Arc<Metrics>) -> Self {
        metrics.set_event_feed_cluster_wide(false);
        EventBus {
            inner: Arc::new(Inner {
                hub: Arc::new(Hub::new(WINDOW)),
                source: Source::Local {
                    epoch: fastrand::u64(..),
                },
                metrics,
            }),
        }
    }

    /// The feed for the store `config` names: cluster-wide on a MongoDB server with
    /// change streams (events kept for `retention`), else this replica's own events,
    /// saying so in the log.
    pub async fn open(
        config: &StoreConfig,
        retention: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<EventBus, FeedError> {
        let (uri, database) = match config {
            StoreConfig::Embedded(_) => {
                tracing::info!(
                    "event feed: this replica's own events (the embedded store serves one \
                     replica); event ids resume from the last {WINDOW} events of this run"
                );
                return Ok(Self::local(metrics));
            }
            StoreConfig::Mongo { uri, database } => (uri, database),
        };
        let hub = Arc::new(Hub::new(WINDOW));
        match mongo::MongoFeed::open(uri.expose(), database, retention, hub.clone(), &metrics)
            .await?
        {
            mongo::Opened::Cluster(feed) => {
                tracing::info!(
                    collection = mongo::COLLECTION,
                    retention_s = retention.as_secs(),
                    "event feed: every replica's events, through a MongoDB change stream"
                );
                metrics.set_event_feed_cluster_wide(true);
                Ok(EventBus {
                    inner: Arc::new(Inner {
                        hub,
                        source: Source::Cluster(feed),
                        metrics,
                    }),
                })
            }
            mongo::Opened::Standalone(reason) => {
                tracing::warn!(
                    %reason,
                    "event feed: the MongoDB server refuses change streams (a standalone \
                     server; use a replica set, as Atlas always is): WatchCallEvents carries \
                     only this replica's events"
                );
                Ok(Self::local(metrics))
            }
        }
    }

    /// True when watchers see every replica's events.
    pub fn is_cluster_wide(&self) -> bool {
        matches!(self.inner.source, Source::Cluster(_))
    }

    /// Publishes `event` after those published before it. Returns at once; the
    /// returned future resolves once the event is in the feed (written to the database
    /// on MongoDB), for callers that answer only then. Without watchers a local event
    /// is simply dropped.
    pub fn publish(&self, event: CallEvent) -> Published {
        match &self.inner.source {
            Source::Local { epoch } => {
                let epoch = *epoch;
                self.inner.hub.push(|seq| FeedEvent {
                    id: EventId::Local { epoch, seq }.encode(),
                    key: u128::from(seq),
                    event,
                });
                Published(None)
            }
            Source::Cluster(feed) => Published(feed.publish(&event)),
        }
    }

    /// Waits (a bounded time) until every event published so far is in the feed.
    pub async fn flush(&self) {
        if let Source::Cluster(feed) = &self.inner.source {
            feed.flush().await;
        }
    }

    /// Starts a watch: from now on when `after_event_id` is empty, else from the event
    /// after that one.
    pub async fn watch(
        &self,
        filter: EventFilter,
        after_event_id: &str,
    ) -> Result<Watch, WatchError> {
        let guard = self.inner.metrics.event_watcher();
        let hub = self.inner.hub.clone();
        if after_event_id.is_empty() {
            return Ok(Watch::live(filter, hub.live(), guard));
        }
        let after = EventId::decode(after_event_id)?;
        if self.issued_here(&after) {
            if let Some((backlog, live)) = hub.after(after.key()) {
                return Ok(Watch::resumed(filter, backlog, live, guard));
            }
        }
        match (&self.inner.source, &after) {
            (Source::Local { epoch }, EventId::Local { epoch: of_id, seq }) if epoch == of_id => {
                let (first, next) = hub.bounds();
                if *seq >= next {
                    return Err(WatchError::Malformed(MalformedId::new(format!(
                        "event {seq} has not been published yet (the last is {})",
                        next - 1
                    ))));
                }
                Err(WatchError::Gone(format!(
                    "event {seq} has left this replica's window of the last {WINDOW} events \
                     (the oldest kept is {first}): the events since are gone"
                )))
            }
            (Source::Local { .. }, EventId::Local { .. }) => Err(WatchError::Gone(
                "the id was issued by another replica or before this one restarted: on the \
                 embedded store (or MongoDB without change streams) events are kept only in \
                 memory, and the events since are gone"
                    .into(),
            )),
            (Source::Local { .. }, EventId::Cluster { .. }) => Err(WatchError::Gone(
                "the id was issued by a cluster-wide MongoDB feed, which this replica does not \
                 read: its events since cannot be found here"
                    .into(),
            )),
            (Source::Cluster(_), EventId::Local { .. }) => Err(WatchError::Gone(
                "the id was issued by a replica's own in-memory feed, whose events are not \
                 kept in the database: the events since cannot be found"
                    .into(),
            )),
            (Source::Cluster(feed), EventId::Cluster { time_ms, token, .. }) => {
                feed.check_retention(*time_ms)?;
                let catch_up = feed.catch_up(token).await?;
                Ok(Watch::catching_up(
                    filter,
                    catch_up,
                    after.key(),
                    hub,
                    guard,
                ))
            }
        }
    }

    /// Whether `id` could have been issued by this feed (a local id by this very run).
    fn issued_here(&self, id: &EventId) -> bool {
        match (&self.inner.source, id) {
            (Source::Local { epoch }, EventId::Local { epoch: of_id, .. }) => epoch == of_id,
            (Source::Cluster(_), EventId::Cluster { .. }) => true,
            _ => false,
        }
    }

    /// Watchers connected to this replica now.
    pub fn watchers(&self) -> i64 {
        self.inner.metrics.event_watchers()
    }
}

/// Resolves once a published event is in the feed (at once for a local feed). Dropping
/// it does not withdraw the event.
#[derive(Debug)]
pub struct Published(Option<oneshot::Receiver<()>>);

impl Future for Published {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.0 {
            None => Poll::Ready(()),
            // The writer answers once the event is written or given up (which it logs
            // and counts), and a writer that stopped drops the sender: either way, done.
            Some(written) => Pin::new(written).poll(cx).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests;
