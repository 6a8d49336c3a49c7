//! How many tool webhooks may run at once: per call and per replica.
//!
//! A model can ask for many tools in one response, and a replica carries hundreds of
//! calls: without a bound, a slow webhook turns into an unbounded number of tasks and
//! sockets. [`ToolSlots::try_acquire`] hands out a [`ToolPermit`] per running webhook, or
//! refuses at once when either bound is reached; the caller then answers the model with
//! an error result ("too many tool calls in flight") instead of starting a task. A permit
//! gives its slot back when dropped, however the webhook ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Default bound on tool calls running at once for one call.
pub const DEFAULT_PER_CALL: usize = 4;
/// Default bound on tool calls running at once on one control-plane replica.
pub const DEFAULT_PER_REPLICA: usize = 256;

/// The bounds. Both at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolLimits {
    /// Most tool calls of one call running at once.
    pub per_call: usize,
    /// Most tool calls running at once on this replica, all calls together.
    pub per_replica: usize,
}

/// The slots of one replica. Cheap to clone; clones share the counts.
#[derive(Debug, Clone)]
pub struct ToolSlots {
    limits: ToolLimits,
    counts: Arc<Mutex<Counts>>,
}

/// One running tool call's slot; released on drop.
#[derive(Debug)]
pub struct ToolPermit {
    counts: Arc<Mutex<Counts>>,
    call_id: String,
}

/// A bound was reached: the tool call must not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitReached {
    #[error("too many tool calls in flight: at most {limit} per call")]
    Call { limit: usize },
    #[error("too many tool calls in flight: at most {limit} on this control plane")]
    Replica { limit: usize },
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_call: HashMap<String, usize>,
}

// === impl ToolLimits ===

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            per_call: DEFAULT_PER_CALL,
            per_replica: DEFAULT_PER_REPLICA,
        }
    }
}

// === impl ToolSlots ===

impl ToolSlots {
    /// Empty slots bounded by `limits` (a zero bound counts as 1).
    pub fn new(limits: ToolLimits) -> Self {
        Self {
            limits: ToolLimits {
                per_call: limits.per_call.max(1),
                per_replica: limits.per_replica.max(1),
            },
            counts: Arc::default(),
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> ToolLimits {
        self.limits
    }

    /// A slot for one more tool call of `call_id`, or why there is none.
    pub fn try_acquire(&self, call_id: &str) -> Result<ToolPermit, LimitReached> {
        let mut counts = lock(&self.counts);
        if counts.total >= self.limits.per_replica {
            return Err(LimitReached::Replica {
                limit: self.limits.per_replica,
            });
        }
        let of_call = counts.per_call.get(call_id).copied().unwrap_or(0);
        if of_call >= self.limits.per_call {
            return Err(LimitReached::Call {
                limit: self.limits.per_call,
            });
        }
        counts.total += 1;
        counts.per_call.insert(call_id.to_owned(), of_call + 1);
        Ok(ToolPermit {
            counts: Arc::clone(&self.counts),
            call_id: call_id.to_owned(),
        })
    }

    /// Tool calls running now on this replica.
    pub fn in_flight(&self) -> usize {
        lock(&self.counts).total
    }
}

impl Default for ToolSlots {
    fn default() -> Self {
        Self::new(ToolLimits::default())
    }
}

// === impl ToolPermit ===

impl Drop for ToolPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(of_call) = counts.per_call.get_mut(&self.call_id) {
            *of_call = of_call.saturating_sub(1);
            if *of_call == 0 {
                counts.per_call.remove(&self.call_id);
            }
        }
    }
}

/// The counts stay consistent even if a holder panicked: each change is one statement.
fn lock(counts: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(per_call: usize, per_replica: usize) -> ToolSlots {
        ToolSlots::new(ToolLimits {
            per_call,
            per_replica,
        })
    }

    #[test]
    fn a_call_gets_at_most_its_share_and_others_are_not_held_up() {
        let slots = slots(2, 10);
        let a1 = slots.try_acquire("a").unwrap();
        let _a2 = slots.try_acquire("a").unwrap();
        assert_eq!(
            slots.try_acquire("a").unwrap_err(),
            LimitReached::Call { limit: 2 }
        );
        let _b = slots
            .try_acquire("b")
            .expect("another call has its own share");
        drop(a1);
        let _a3 = slots
            .try_acquire("a")
            .expect("a finished call frees its slot");
        assert_eq!(slots.in_flight(), 3);
    }

    #[test]
    fn the_replica_bound_covers_every_call() {
        let slots = slots(4, 3);
        let held: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|call| slots.try_acquire(call).unwrap())
            .collect();
        assert_eq!(
            slots.try_acquire("d").unwrap_err(),
            LimitReached::Replica { limit: 3 }
        );
        assert!(LimitReached::Replica { limit: 3 }
            .to_string()
            .starts_with("too many tool calls in flight"));
        drop(held);
        assert_eq!(slots.in_flight(), 0);
        let _d = slots
            .try_acquire("d")
            .expect("slots come back when dropped");
    }

    #[test]
    fn zero_bounds_count_as_one() {
        let slots = slots(0, 0);
        assert_eq!(
            slots.limits(),
            ToolLimits {
                per_call: 1,
                per_replica: 1
            }
        );
        let _only = slots.try_acquire("a").unwrap();
        assert!(slots.try_acquire("b").is_err());
    }
}
