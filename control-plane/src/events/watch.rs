//! One watcher's stream of events: what it missed, then what happens.
//!
//! A watch is in one of two phases:
//!
//! - **live**: the events after the resume point that the replica's window still held
//!   (the backlog), then the replica's broadcast;
//! - **catching up** (MongoDB only): the resume point has left this replica's window
//!   (or was never in it: the id came from another replica, or from before a restart),
//!   so the watch reads the database's change stream from the id's resume token. After
//!   every event read, and whenever the change stream has nothing more for now, it asks
//!   the window for the events after the last one read; once the window has it, the
//!   watch goes live from there. Both read the same change history in the same order,
//!   so the hand-over neither skips nor repeats an event, and the catch-up stream is
//!   closed as soon as it is no longer needed.
//!
//! Filters apply to what is delivered, never to what is read, so the hand-over point is
//! found whatever the filter.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::hub::{FeedEvent, Hub, Signal};
use super::mongo::CatchUp;
use super::EventFilter;
use crate::metrics::WatcherGuard;

/// What a watch yields.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// An event the filter matches.
    Event(Arc<FeedEvent>),
    /// The watcher fell behind the broadcast and this many events were not delivered.
    Dropped(u64),
    /// The feed cannot go on for this watcher (the reason says why); it may resume
    /// with the id of the last event it received.
    Interrupted(String),
}

/// One watcher's stream; counted on the watcher gauge while it exists.
#[derive(Debug)]
pub struct Watch {
    filter: EventFilter,
    phase: Phase,
    _counted: WatcherGuard,
}

#[derive(Debug)]
enum Phase {
    Live {
        backlog: VecDeque<Arc<FeedEvent>>,
        live: broadcast::Receiver<Signal>,
    },
    CatchingUp {
        source: Box<CatchUp>,
        /// The last event read (delivered or filtered out).
        last_key: u128,
        hub: Arc<Hub>,
    },
    Ended,
}

impl Watch {
    /// From now on.
    pub(crate) fn live(
        filter: EventFilter,
        live: broadcast::Receiver<Signal>,
        counted: WatcherGuard,
    ) -> Watch {
        Watch::resumed(filter, VecDeque::new(), live, counted)
    }

    /// `backlog`, then `live`.
    pub(crate) fn resumed(
        filter: EventFilter,
        backlog: VecDeque<Arc<FeedEvent>>,
        live: broadcast::Receiver<Signal>,
        counted: WatcherGuard,
    ) -> Watch {
        Watch {
            filter,
            phase: Phase::Live { backlog, live },
            _counted: counted,
        }
    }

    /// From the change stream `source`, opened after the event `after_key`, until the
    /// replica's window `hub` takes over.
    pub(crate) fn catching_up(
        filter: EventFilter,
        source: CatchUp,
        after_key: u128,
        hub: Arc<Hub>,
        counted: WatcherGuard,
    ) -> Watch {
        Watch {
            filter,
            phase: Phase::CatchingUp {
                source: Box::new(source),
                last_key: after_key,
                hub,
            },
            _counted: counted,
        }
    }

    /// True while the watch reads the database rather than the replica's window.
    pub fn is_catching_up(&self) -> bool {
        matches!(self.phase, Phase::CatchingUp { .. })
    }

    /// The next item for this watcher; `None` once the feed has ended. Cancel-safe only
    /// between events while live; a watcher that stops waiting should drop the watch.
    pub async fn next(&mut self) -> Option<WatchItem> {
        loop {
            match &mut self.phase {
                Phase::Ended => return None,
                Phase::Live { backlog, live } => {
                    if let Some(event) = backlog.pop_front() {
                        if self.filter.matches(&event.event) {
                            return Some(WatchItem::Event(event));
                        }
                        continue;
                    }
                    match live.recv().await {
                        Ok(Signal::Event(event)) => {
                            if self.filter.matches(&event.event) {
                                return Some(WatchItem::Event(event));
                            }
                        }
                        Ok(Signal::Gap) => {
                            self.phase = Phase::Ended;
                            return Some(WatchItem::Interrupted(
                                "the event feed lost its place in the database's change \
                                 history; events may be missing: resume with the last \
                                 event id received"
                                    .into(),
                            ));
                        }
                        Err(broadcast::error::RecvError::Lagged(count)) => {
                            return Some(WatchItem::Dropped(count));
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            self.phase = Phase::Ended;
                            return None;
                        }
                    }
                }
                Phase::CatchingUp {
                    source,
                    last_key,
                    hub,
                } => match source.next().await {
                    Ok(Some(event)) => {
                        *last_key = event.key;
                        if let Some((backlog, live)) = hub.after(event.key) {
                            self.phase = Phase::Live { backlog, live };
                        }
                        if self.filter.matches(&event.event) {
                            return Some(WatchItem::Event(Arc::new(event)));
                        }
                    }
                    Ok(None) => {
                        if let Some((backlog, live)) = hub.after(*last_key) {
                            self.phase = Phase::Live { backlog, live };
                        }
                    }
                    Err(reason) => {
                        self.phase = Phase::Ended;
                        return Some(WatchItem::Interrupted(reason));
                    }
                },
            }
        }
    }
}
