//! The fan-out of one replica's feed to its watchers: a window of recent events and a
//! broadcast of new ones, kept consistent with each other by one lock.
//!
//! Every event enters through [`Hub::push`] in feed order — published locally, or read
//! from the database's change stream — and is both appended to the window and broadcast.
//! A watcher resuming after an event that is still in the window gets the events after
//! it and a receiver subscribed in the same critical section ([`Hub::after`]), so
//! nothing falls between the two and nothing is seen twice.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::CallEvent;

/// An event as the feed delivers it: with its id, and the key that names it within
/// the feed (see `EventId::key`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// The encoded `event_id`.
    pub id: String,
    pub key: u128,
    pub event: CallEvent,
}

/// What the hub broadcasts.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    Event(Arc<FeedEvent>),
    /// The feed lost its place (the database's change history moved on while this
    /// replica was not reading it): events may be missing between what came before
    /// and what comes after, so live watchers are ended and may resume by id.
    Gap,
}

/// Events after a resume point and the receiver of the ones that follow.
pub(crate) type Resumed = (VecDeque<Arc<FeedEvent>>, broadcast::Receiver<Signal>);

#[derive(Debug)]
pub(crate) struct Hub {
    window: Mutex<Window>,
    sender: broadcast::Sender<Signal>,
}

#[derive(Debug)]
struct Window {
    events: VecDeque<Arc<FeedEvent>>,
    /// Ordinal of `events[0]`; ordinals count every event pushed, from 1.
    first: u64,
    /// Key → ordinal, for the events in the window.
    ordinals: HashMap<u128, u64>,
    capacity: usize,
}

impl Hub {
    /// A hub keeping the last `capacity` events; a watcher may lag as many behind the
    /// broadcast before it loses the oldest.
    pub(crate) fn new(capacity: usize) -> Hub {
        let (sender, _) = broadcast::channel(capacity);
        Hub {
            window: Mutex::new(Window {
                events: VecDeque::with_capacity(capacity.min(1024)),
                first: 1,
                ordinals: HashMap::new(),
                capacity,
            }),
            sender,
        }
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // A panic while holding the lock leaves the window consistent (every change is
        // a single push or pop), so a poisoned lock is still usable.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends the event `make` builds from its ordinal (the next one) and broadcasts
    /// it. An event whose key is in the window already is dropped: it was delivered.
    pub(crate) fn push(&self, make: impl FnOnce(u64) -> FeedEvent) {
        let mut window = self.window();
        let ordinal = window.next();
        let event = Arc::new(make(ordinal));
        if window.ordinals.contains_key(&event.key) {
            return;
        }
        if window.events.len() == window.capacity {
            if let Some(oldest) = window.events.pop_front() {
                window.ordinals.remove(&oldest.key);
                window.first += 1;
            }
        }
        window.ordinals.insert(event.key, ordinal);
        window.events.push_back(event.clone());
        // No receivers is fine: nobody watches.
        let _ = self.sender.send(Signal::Event(event));
    }

    /// Forgets the window and tells live watchers the feed has a gap.
    pub(crate) fn gap(&self) {
        let mut window = self.window();
        let next = window.next();
        window.events.clear();
        window.ordinals.clear();
        window.first = next;
        let _ = self.sender.send(Signal::Gap);
    }

    /// A receiver of the events pushed from now on.
    pub(crate) fn live(&self) -> broadcast::Receiver<Signal> {
        let _window = self.window();
        self.sender.subscribe()
    }

    /// The events after the one named `key` and a receiver of those that follow, when
    /// that event is in the window.
    pub(crate) fn after(&self, key: u128) -> Option<Resumed> {
        let window = self.window();
        let ordinal = *window.ordinals.get(&key)?;
        let start = usize::try_from(ordinal - window.first + 1).ok()?;
        let backlog = window.events.range(start..).cloned().collect();
        Some((backlog, self.sender.subscribe()))
    }

    /// The ordinals the window holds: the first kept, and the next to be pushed.
    pub(crate) fn bounds(&self) -> (u64, u64) {
        let window = self.window();
        (window.first, window.next())
    }
}

impl Window {
    fn next(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{self, CallStatus};
    use crate::events::EventKind;

    fn event(key: u128) -> FeedEvent {
        FeedEvent {
            id: format!("id-{key}"),
            key,
            event: CallEvent {
                call_id: "c".into(),
                agent_id: String::new(),
                campaign_id: String::new(),
                time: domain::now(),
                kind: EventKind::StatusChanged {
                    previous: None,
                    current: CallStatus::Queued,
                    end_reason: String::new(),
                },
            },
        }
    }

    fn keys(events: &VecDeque<Arc<FeedEvent>>) -> Vec<u128> {
        events.iter().map(|e| e.key).collect()
    }

    fn received(rx: &mut broadcast::Receiver<Signal>) -> Vec<u128> {
        let mut keys = Vec::new();
        while let Ok(signal) = rx.try_recv() {
            match signal {
                Signal::Event(e) => keys.push(e.key),
                Signal::Gap => keys.push(0),
            }
        }
        keys
    }

    #[test]
    fn resuming_in_the_window_continues_without_gap_or_overlap() {
        let hub = Hub::new(4);
        for key in 10..13 {
            hub.push(|_| event(key));
        }
        let (backlog, mut rx) = hub.after(10).unwrap();
        assert_eq!(keys(&backlog), [11, 12]);
        hub.push(|_| event(13));
        assert_eq!(received(&mut rx), [13]);
        let (backlog, _) = hub.after(13).unwrap();
        assert!(backlog.is_empty());
        assert!(hub.after(99).is_none(), "an unknown key");
    }

    #[test]
    fn the_window_keeps_the_newest_events() {
        let hub = Hub::new(3);
        for key in 1..=5 {
            hub.push(|ordinal| {
                assert_eq!(ordinal as u128, key);
                event(key)
            });
        }
        assert_eq!(hub.bounds(), (3, 6));
        assert!(hub.after(2).is_none(), "evicted");
        assert_eq!(keys(&hub.after(3).unwrap().0), [4, 5]);
    }

    #[test]
    fn an_event_delivered_already_is_not_pushed_again() {
        let hub = Hub::new(8);
        let mut rx = hub.live();
        hub.push(|_| event(1));
        hub.push(|_| event(1));
        hub.push(|_| event(2));
        assert_eq!(received(&mut rx), [1, 2]);
        assert_eq!(hub.bounds(), (1, 3));
    }

    #[test]
    fn a_gap_empties_the_window_and_tells_live_watchers() {
        let hub = Hub::new(8);
        hub.push(|_| event(1));
        let mut rx = hub.live();
        hub.gap();
        assert!(hub.after(1).is_none());
        hub.push(|_| event(2));
        assert_eq!(received(&mut rx), [0, 2]);
        assert_eq!(hub.bounds(), (2, 3));
    }
}
