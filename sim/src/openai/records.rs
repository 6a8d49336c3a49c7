//! What happened, per session, for tests to assert on: the simulator's
//! side of the conversation, as opposed to what the client believes.
//!
//! Each session writes its own record behind its own lock (no contention
//! between sessions); [`Records`] hands out snapshots. Tests poll them with
//! bounded patience rather than sleeping.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard_realtime::{Dialect, SessionConfig};

use super::faults::Fault;

/// One WebSocket session, as the simulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// `sess_…`, as sent in `session.created`.
    pub session_id: String,
    /// The dialect chosen at the handshake.
    pub dialect: Dialect,
    /// The model (OpenAI) or deployment (Azure) from the URL.
    pub model: String,
    /// The request path, without the query.
    pub path: String,
    /// Faults selected for this connection.
    pub faults: Vec<Fault>,
    /// Faults that have taken effect, in order.
    pub faults_fired: Vec<Fault>,
    /// The `type` of every client event handled, in order (`"<invalid>"` for
    /// a frame that is not a JSON event). Echo mode counts its appends in
    /// `appends` instead of listing them.
    pub client_events: Vec<String>,
    /// Client events discarded while stalled.
    pub ignored_events: u64,
    /// The effective session configuration.
    pub session_config: SessionConfig,
    /// Valid `session.update`s applied.
    pub session_updates: u32,
    /// `input_audio_buffer.append` events.
    pub appends: u64,
    /// Decoded audio bytes appended.
    pub audio_bytes_appended: u64,
    /// Caller turns committed: `(user item id, transcript)`.
    pub user_turns: Vec<(String, String)>,
    /// Response ids, in order of creation.
    pub responses_created: Vec<String>,
    /// Responses cancelled (by `response.cancel` or a barge-in).
    pub responses_cancelled: Vec<String>,
    /// `conversation.item.truncate` requests, accepted or not.
    pub truncations: Vec<Truncation>,
    /// `function_call_output` items received: `(call_id, output)`.
    pub function_outputs: Vec<(String, String)>,
    /// `error` events sent.
    pub errors_sent: Vec<SentError>,
    /// Why the session ended, once it has (`client closed`, `dropped`,
    /// `expired`, `shutdown`, `socket error`).
    pub ended: Option<String>,
}

/// One `conversation.item.truncate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The item named.
    pub item_id: String,
    /// The position asked for.
    pub audio_end_ms: u64,
    /// Whether it was applied (`conversation.item.truncated` sent).
    pub accepted: bool,
}

/// One `error` event sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentError {
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
}

/// A connection refused at the handshake (TLS or WebSocket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The request path, without the query (empty for `reset` and for a
    /// failed TLS handshake: no request was read).
    pub path: String,
    /// HTTP status sent (0 when none was: a TCP reset, a failed TLS handshake).
    pub status: u16,
    /// Why: the refusal's code, `reset`, or `tls handshake failed: …` /
    /// `tls handshake timed out`.
    pub reason: String,
}

/// All records of one simulator. Cheap to clone; every clone sees the same
/// records.
#[derive(Debug, Clone, Default)]
pub struct Records {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: Vec<Recorder>,
    rejections: Vec<Rejection>,
}

/// The write side of one session's record.
#[derive(Debug, Clone)]
pub struct Recorder(Arc<Mutex<SessionRecord>>);

// === impl SessionRecord ===

impl SessionRecord {
    /// An empty record.
    pub fn new(session_id: String, dialect: Dialect, model: String) -> Self {
        Self {
            session_id,
            dialect,
            model,
            path: String::new(),
            faults: Vec::new(),
            faults_fired: Vec::new(),
            client_events: Vec::new(),
            ignored_events: 0,
            session_config: SessionConfig::default(),
            session_updates: 0,
            appends: 0,
            audio_bytes_appended: 0,
            user_turns: Vec::new(),
            responses_created: Vec::new(),
            responses_cancelled: Vec::new(),
            truncations: Vec::new(),
            function_outputs: Vec::new(),
            errors_sent: Vec::new(),
            ended: None,
        }
    }

    /// Codes of the errors sent, in order.
    pub fn error_codes(&self) -> Vec<&str> {
        self.errors_sent.iter().map(|e| e.code.as_str()).collect()
    }
}

// === impl Records ===

impl Records {
    /// Snapshots of every session so far, in order of connection.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        let inner = lock(&self.inner);
        inner.sessions.iter().map(Recorder::snapshot).collect()
    }

    /// A snapshot of the `index`-th session.
    pub fn session(&self, index: usize) -> Option<SessionRecord> {
        lock(&self.inner)
            .sessions
            .get(index)
            .map(Recorder::snapshot)
    }

    /// A snapshot of the last session to connect.
    pub fn last(&self) -> Option<SessionRecord> {
        lock(&self.inner).sessions.last().map(Recorder::snapshot)
    }

    /// Number of sessions so far.
    pub fn len(&self) -> usize {
        lock(&self.inner).sessions.len()
    }

    /// No session so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connections refused at the handshake, TLS failures included.
    pub fn rejections(&self) -> Vec<Rejection> {
        lock(&self.inner).rejections.clone()
    }

    /// Starts the record of a new session.
    pub fn open(&self, record: SessionRecord) -> Recorder {
        let recorder = Recorder(Arc::new(Mutex::new(record)));
        lock(&self.inner).sessions.push(recorder.clone());
        recorder
    }

    /// Notes a refused connection.
    pub fn reject(&self, rejection: Rejection) {
        lock(&self.inner).rejections.push(rejection);
    }
}

// === impl Recorder ===

impl Recorder {
    /// A recorder not attached to any [`Records`] (unit tests).
    pub fn detached(record: SessionRecord) -> Self {
        Self(Arc::new(Mutex::new(record)))
    }

    /// Applies `f` to the record.
    pub fn update<R>(&self, f: impl FnOnce(&mut SessionRecord) -> R) -> R {
        f(&mut lock(&self.0))
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> SessionRecord {
        lock(&self.0).clone()
    }
}

/// A poisoned lock still holds a usable record: a panicking test thread
/// must not hide what the simulator saw.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
