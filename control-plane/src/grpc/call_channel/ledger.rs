//! What the call streams were asked to do, so each request is acted on once.
//!
//! A sidecar keeps every request (transfer, fallback, tool call) until it is answered and
//! sends it again after a reconnect, since the answer may have been lost with the old
//! stream. The copy may arrive while the first is still running (the old stream broke
//! in the middle of a Twilio redirect or a webhook) or after it finished. The ledger
//! makes both harmless: the first copy of a key runs, a copy arriving meanwhile waits for
//! its answer, and a later copy gets the answer kept from the first — never a second
//! redirect or webhook call.
//!
//! It is per replica and in memory: answers are kept for [`KEEP_ANSWERS`], and a replica
//! that restarts has forgotten them. What survives a restart is the session itself: a
//! redirect ends the session, and the request handlers answer a copy that finds the
//! session already ended that way as done (see `requests.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long an answer is kept for copies of its request.
pub(super) const KEEP_ANSWERS: Duration = Duration::from_secs(10 * 60);
/// Least time between two sweeps of expired answers.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Requests of every call stream on this replica, by call and key. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Ledger<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// What [`Ledger::claim`] found.
#[derive(Debug)]
pub(crate) enum Claim<T> {
    /// Nobody has run this request: the caller runs it and [`Runner::finish`]es it.
    First(Runner<T>),
    /// Another copy is running: [`wait`] for its answer.
    Running(watch::Receiver<Option<T>>),
    /// It ran already: its answer.
    Done(T),
}

/// The right and duty to run one request. Dropped without [`Runner::finish`] (its task
/// was cancelled), it forgets the request, so a later copy runs it.
#[derive(Debug)]
pub(crate) struct Runner<T> {
    ledger: Ledger<T>,
    call_id: String,
    key: String,
    answer: watch::Sender<Option<T>>,
    finished: bool,
}

#[derive(Debug)]
struct Inner<T> {
    calls: HashMap<String, HashMap<String, Slot<T>>>,
    last_sweep: Instant,
}

#[derive(Debug)]
enum Slot<T> {
    Running(watch::Receiver<Option<T>>),
    Done { answer: T, at: Instant },
}

// === impl Ledger ===

impl<T: Clone> Ledger<T> {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                calls: HashMap::new(),
                last_sweep: Instant::now(),
            })),
        }
    }

    /// Looks `key` of `call_id` up, and takes it for the caller if nobody has.
    pub(crate) fn claim(&self, call_id: &str, key: &str) -> Claim<T> {
        let mut inner = lock(&self.inner);
        inner.sweep(Instant::now());
        let requests = inner.calls.entry(call_id.to_owned()).or_default();
        match requests.get(key) {
            Some(Slot::Done { answer, .. }) => return Claim::Done(answer.clone()),
            Some(Slot::Running(running)) => return Claim::Running(running.clone()),
            None => {}
        }
        let (answer, running) = watch::channel(None);
        requests.insert(key.to_owned(), Slot::Running(running));
        Claim::First(Runner {
            ledger: self.clone(),
            call_id: call_id.to_owned(),
            key: key.to_owned(),
            answer,
            finished: false,
        })
    }

    /// Runs `run` for the first copy of `key`; any copy returns the first one's answer.
    /// `run` returns the answer and whether to keep it for later copies (an answer that
    /// means "not done, try again" must not be kept).
    pub(crate) async fn run_once<F, Fut>(&self, call_id: &str, key: &str, run: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = (T, bool)>,
    {
        let mut run = Some(run);
        loop {
            match self.claim(call_id, key) {
                Claim::Done(answer) => return answer,
                Claim::Running(running) => {
                    if let Some(answer) = wait(running).await {
                        return answer;
                    }
                    // The runner was cancelled before answering: claim again.
                }
                Claim::First(runner) => {
                    let run = run
                        .take()
                        .expect("a ledger key is first at most once per call");
                    let (answer, keep) = run().await;
                    runner.finish(answer.clone(), keep);
                    return answer;
                }
            }
        }
    }

    /// Keys of `call_id` remembered now (running or answered).
    #[cfg(test)]
    pub(crate) fn remembered(&self, call_id: &str) -> usize {
        lock(&self.inner).calls.get(call_id).map_or(0, HashMap::len)
    }

    fn settle(&self, call_id: &str, key: &str, answer: Option<T>) {
        let mut inner = lock(&self.inner);
        let Some(requests) = inner.calls.get_mut(call_id) else {
            return;
        };
        match answer {
            Some(answer) => {
                let at = Instant::now();
                requests.insert(key.to_owned(), Slot::Done { answer, at });
            }
            None => {
                requests.remove(key);
                if requests.is_empty() {
                    inner.calls.remove(call_id);
                }
            }
        }
    }
}

/// The answer of the running copy; `None` if it was cancelled without one.
pub(crate) async fn wait<T: Clone>(mut running: watch::Receiver<Option<T>>) -> Option<T> {
    running
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|answer| answer.clone())
}

// === impl Runner ===

impl<T: Clone> Runner<T> {
    /// Gives `answer` to every copy waiting, and keeps it for later copies if `keep`.
    pub(crate) fn finish(mut self, answer: T, keep: bool) {
        self.finished = true;
        self.answer.send_replace(Some(answer.clone()));
        let kept = keep.then_some(answer);
        self.ledger.settle(&self.call_id, &self.key, kept);
    }
}

impl<T> Drop for Runner<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut inner = lock(&self.ledger.inner);
        if let Some(requests) = inner.calls.get_mut(&self.call_id) {
            requests.remove(&self.key);
            if requests.is_empty() {
                inner.calls.remove(&self.call_id);
            }
        }
    }
}

// === impl Inner ===

impl<T> Inner<T> {
    /// Forgets answers older than [`KEEP_ANSWERS`], at most every [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        self.calls.retain(|_, requests| {
            requests.retain(|_, slot| match slot {
                Slot::Running(_) => true,
                Slot::Done { at, .. } => now.duration_since(*at) < KEEP_ANSWERS,
            });
            !requests.is_empty()
        });
    }
}

/// Every change under the lock is a single map operation: a panic elsewhere leaves it
/// consistent.
fn lock<T>(inner: &Mutex<Inner<T>>) -> std::sync::MutexGuard<'_, Inner<T>> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_request_runs_once_and_every_copy_gets_its_answer() {
        let ledger = Ledger::<String>::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let ledger = ledger.clone();
            let runs = runs.clone();
            async move {
                ledger
                    .run_once("call", "transfer-1", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = released.await;
                        ("accepted".to_owned(), true)
                    })
                    .await
            }
        });
        // A copy arriving while the first runs waits for it.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let Claim::Running(running) = ledger.claim("call", "transfer-1") else {
            panic!("the first copy is running");
        };
        let waiting = tokio::spawn(wait(running));
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), "accepted");
        assert_eq!(waiting.await.unwrap().as_deref(), Some("accepted"));
        // A copy arriving later gets the kept answer without running anything.
        let again = ledger
            .run_once("call", "transfer-1", || async {
                ("ran twice".to_owned(), true)
            })
            .await;
        assert_eq!(again, "accepted");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Keys are per call.
        let other = ledger
            .run_once("other call", "transfer-1", || async {
                ("other".to_owned(), true)
            })
            .await;
        assert_eq!(other, "other");
    }

    #[tokio::test]
    async fn an_answer_not_kept_lets_the_next_copy_run_again() {
        let ledger = Ledger::<&'static str>::new();
        let answer = ledger
            .run_once("call", "fallback-1", || async { ("retry", false) })
            .await;
        assert_eq!(answer, "retry");
        assert_eq!(ledger.remembered("call"), 0, "nothing kept");
        let answer = ledger
            .run_once("call", "fallback-1", || async { ("accepted", true) })
            .await;
        assert_eq!(answer, "accepted");
        assert_eq!(ledger.remembered("call"), 1);
    }

    #[tokio::test]
    async fn a_runner_dropped_without_an_answer_frees_the_key() {
        let ledger = Ledger::<u32>::new();
        let Claim::First(runner) = ledger.claim("call", "tool:a") else {
            panic!("first claim");
        };
        let Claim::Running(running) = ledger.claim("call", "tool:a") else {
            panic!("running");
        };
        drop(runner);
        assert_eq!(
            wait(running).await,
            None,
            "the waiter is told, not left hanging"
        );
        assert!(matches!(ledger.claim("call", "tool:a"), Claim::First(_)));
    }

    #[test]
    fn old_answers_are_swept() {
        let ledger = Ledger::<u32>::new();
        let Claim::First(runner) = ledger.claim("call", "tool:a") else {
            panic!("first claim");
        };
        runner.finish(7, true);
        let later = Instant::now() + KEEP_ANSWERS + SWEEP_EVERY;
        lock(&ledger.inner).sweep(later);
        assert_eq!(ledger.remembered("call"), 0);
    }
}
