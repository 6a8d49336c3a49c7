//! The control-plane replicas a sidecar spreads its calls over, and which one the next
//! call goes to.
//!
//! Each replica has its own connection (a lazily connecting tonic channel). A new call
//! (and a unary RPC) goes to the live replica with the fewest of this sidecar's calls
//! open on it, ties taken in turn, so calls spread evenly and a replica that comes back
//! (or is added) takes the next calls until it has its share. A replica that refused a
//! connection, or whose stream broke, counts as down for [`DOWN_FOR`]: new calls and the
//! broken calls' reconnects go to the others. When every replica is down, the one down
//! the longest is tried anyway (a single replica restarting must still be reached).
//!
//! The pool is generic over the client so the policy is tested without sockets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a replica that failed is passed over.
pub const DOWN_FOR: Duration = Duration::from_secs(5);

/// One control-plane replica.
#[derive(Debug)]
pub struct Replica<C> {
    /// The URL (static discovery) or `url@address` (DNS discovery).
    pub key: String,
    pub client: C,
    /// Calls of this sidecar with an open stream on it.
    active: AtomicUsize,
    /// Passed over until then.
    down_until: Mutex<Option<Instant>>,
}

/// Every replica known, and whose turn it is among equals.
#[derive(Debug)]
pub struct Pool<C> {
    replicas: RwLock<Vec<Arc<Replica<C>>>>,
    turn: AtomicUsize,
}

/// A call's hold on the replica its stream is open on: counted there until dropped.
#[derive(Debug)]
pub struct ReplicaLease<C> {
    replica: Arc<Replica<C>>,
}

// === impl Replica ===

impl<C> Replica<C> {
    fn new(key: String, client: C) -> Self {
        Self {
            key,
            client,
            active: AtomicUsize::new(0),
            down_until: Mutex::new(None),
        }
    }

    /// This replica failed at `now`: pass it over for [`DOWN_FOR`].
    pub fn mark_down(&self, now: Instant) {
        *lock(&self.down_until) = Some(now + DOWN_FOR);
    }

    /// This replica answered: it is up.
    pub fn mark_up(&self) {
        *lock(&self.down_until) = None;
    }

    fn down_until(&self, now: Instant) -> Option<Instant> {
        lock(&self.down_until).filter(|until| *until > now)
    }

    /// Calls of this sidecar on it now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

// === impl Pool ===

impl<C> Pool<C> {
    /// A pool of `replicas` (`(key, client)`), in that order.
    pub fn new(replicas: impl IntoIterator<Item = (String, C)>) -> Self {
        Self {
            replicas: RwLock::new(
                replicas
                    .into_iter()
                    .map(|(key, client)| Arc::new(Replica::new(key, client)))
                    .collect(),
            ),
            turn: AtomicUsize::new(0),
        }
    }

    /// The keys of the replicas known, in order.
    pub fn keys(&self) -> Vec<String> {
        read(&self.replicas).iter().map(|r| r.key.clone()).collect()
    }

    /// The replica the next call goes to, among those whose key is not in `tried`: the
    /// live one with the fewest calls (ties in turn), else the one down the longest.
    /// `None` when every replica was tried.
    pub fn pick(&self, now: Instant, tried: &[String]) -> Option<Arc<Replica<C>>> {
        let replicas = read(&self.replicas);
        let count = replicas.len();
        if count == 0 {
            return None;
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % count;
        let candidates = (0..count)
            .map(|offset| &replicas[(start + offset) % count])
            .filter(|replica| !tried.contains(&replica.key));
        let mut best_up: Option<&Arc<Replica<C>>> = None;
        let mut best_down: Option<(&Arc<Replica<C>>, Instant)> = None;
        for replica in candidates {
            match replica.down_until(now) {
                None => {
                    if best_up.is_none_or(|best| replica.active() < best.active()) {
                        best_up = Some(replica);
                    }
                }
                Some(until) => {
                    if best_down.is_none_or(|(_, best)| until < best) {
                        best_down = Some((replica, until));
                    }
                }
            }
        }
        best_up
            .or(best_down.map(|(replica, _)| replica))
            .map(Arc::clone)
    }

    /// Makes the pool hold exactly the replicas keyed `wanted`: keeps those it has (with
    /// their connections and counts), adds the others built by `build`, and forgets the
    /// rest (calls open on a forgotten replica keep it until they end or move). Returns
    /// (added, removed) keys.
    pub fn replace(
        &self,
        wanted: &[String],
        mut build: impl FnMut(&str) -> Option<C>,
    ) -> (Vec<String>, Vec<String>) {
        let mut replicas = write(&self.replicas);
        let removed: Vec<String> = replicas
            .iter()
            .filter(|r| !wanted.contains(&r.key))
            .map(|r| r.key.clone())
            .collect();
        let mut added = Vec::new();
        let mut next: Vec<Arc<Replica<C>>> = Vec::with_capacity(wanted.len());
        for key in wanted {
            if let Some(existing) = replicas.iter().find(|r| &r.key == key) {
                next.push(Arc::clone(existing));
            } else if let Some(client) = build(key) {
                added.push(key.clone());
                next.push(Arc::new(Replica::new(key.clone(), client)));
            }
        }
        *replicas = next;
        (added, removed)
    }
}

// === impl ReplicaLease ===

impl<C> ReplicaLease<C> {
    /// Counts a call on `replica` until the lease drops.
    pub fn new(replica: Arc<Replica<C>>) -> Self {
        replica.active.fetch_add(1, Ordering::Relaxed);
        Self { replica }
    }

    /// The replica held.
    pub fn replica(&self) -> &Replica<C> {
        &self.replica
    }
}

impl<C> Drop for ReplicaLease<C> {
    fn drop(&mut self) {
        self.replica.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(keys: &[&str]) -> Pool<()> {
        Pool::new(keys.iter().map(|k| ((*k).to_owned(), ())))
    }

    fn key(replica: &Arc<Replica<()>>) -> &str {
        &replica.key
    }

    #[test]
    fn calls_spread_evenly_over_live_replicas() {
        let pool = pool(&["a", "b", "c"]);
        let now = Instant::now();
        let leases: Vec<_> = (0..9)
            .map(|_| ReplicaLease::new(pool.pick(now, &[]).unwrap()))
            .collect();
        for k in ["a", "b", "c"] {
            let on = leases.iter().filter(|l| l.replica().key == k).count();
            assert_eq!(on, 3, "replica {k}");
        }
    }

    #[test]
    fn the_emptiest_replica_is_picked_and_ended_calls_free_their_place() {
        let pool = pool(&["a", "b"]);
        let now = Instant::now();
        let a = pool.pick(now, &[]).unwrap();
        let first = ReplicaLease::new(Arc::clone(&a));
        let second = ReplicaLease::new(a);
        assert_eq!(first.replica().active(), 2);
        let next = pool.pick(now, &[]).unwrap();
        assert_ne!(key(&next), first.replica().key, "the replica with no calls");
        drop(first);
        drop(second);
        assert_eq!(pool.pick(now, &[]).unwrap().active(), 0);
    }

    #[test]
    fn a_down_replica_is_passed_over_until_its_time_is_up() {
        let pool = pool(&["a", "b"]);
        let now = Instant::now();
        let a = pool.pick(now, &["b".to_owned()]).unwrap();
        assert_eq!(key(&a), "a");
        a.mark_down(now);
        for _ in 0..4 {
            assert_eq!(key(&pool.pick(now, &[]).unwrap()), "b");
        }
        let later = now + DOWN_FOR + Duration::from_millis(1);
        let keys: Vec<String> = (0..4)
            .map(|_| key(&pool.pick(later, &[]).unwrap()).to_owned())
            .collect();
        assert!(keys.iter().any(|k| k == "a"), "back in turn: {keys:?}");
        a.mark_down(later);
        a.mark_up();
        assert!((0..4).any(|_| key(&pool.pick(later, &[]).unwrap()) == "a"));
    }

    #[test]
    fn with_every_replica_down_the_one_down_longest_is_tried_and_tried_ones_never_again() {
        let pool = pool(&["a", "b"]);
        let now = Instant::now();
        let replicas: Vec<_> = (0..2).map(|_| pool.pick(now, &[]).unwrap()).collect();
        let (first, second) = if key(&replicas[0]) == "a" {
            (&replicas[0], &replicas[1])
        } else {
            (&replicas[1], &replicas[0])
        };
        first.mark_down(now);
        second.mark_down(now + Duration::from_millis(10));
        assert_eq!(key(&pool.pick(now, &[]).unwrap()), key(first));
        let tried = vec![key(first).to_owned()];
        assert_eq!(key(&pool.pick(now, &tried).unwrap()), key(second));
        let both = vec!["a".to_owned(), "b".to_owned()];
        assert!(pool.pick(now, &both).is_none());
        assert!(Pool::<()>::new([]).pick(now, &[]).is_none());
    }

    #[test]
    fn replacing_keeps_known_replicas_with_their_calls_and_adds_and_forgets_the_rest() {
        let pool = pool(&["a", "b"]);
        let now = Instant::now();
        let b = loop {
            let replica = pool.pick(now, &[]).unwrap();
            if key(&replica) == "b" {
                break replica;
            }
        };
        let lease = ReplicaLease::new(b);
        let mut built = Vec::new();
        let (added, removed) = pool.replace(&["b".to_owned(), "c".to_owned()], |k| {
            built.push(k.to_owned());
            Some(())
        });
        assert_eq!(added, ["c"]);
        assert_eq!(removed, ["a"]);
        assert_eq!(built, ["c"], "b keeps its connection");
        assert_eq!(pool.keys(), ["b", "c"]);
        assert_eq!(
            key(&pool.pick(now, &[]).unwrap()),
            "c",
            "b still counts its call"
        );
        drop(lease);
    }
}
