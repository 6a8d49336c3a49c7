//! The embedded store: one [redb] file, no server. The default for a first run and for
//! single-box use; it keeps everything across restarts.
//!
//! Writes go through one writer thread that commits every write waiting in its queue
//! in a single transaction (group commit), so a hundred calls appending at once cost
//! one fsync, not a hundred. Each write validates before it changes anything, so a
//! refused write never leaves a trace in the shared transaction. Reads use redb's
//! MVCC read transactions on the blocking pool and never wait for the writer.
//!
//! Layout: `agents` (id → JSON), `phones` (E.164 → agent id), `sessions` (id → JSON
//! without conversation), `call_sids` (Twilio SID → session id), `items`
//! ((session id, seq) → JSON), so an append writes only its new items and a session
//! is read without them, `live_leases` (session id → lease expiry in epoch ms, for
//! the live sessions that have a lease: what the orphan sweeper scans), `leases`
//! (cluster-wide leases by name; one process holds the file, so they only keep the
//! contract) and `meta` (the file's format, see `embedded/format.rs`). Campaigns,
//! their targets and the do-not-call list have tables of their own
//! (`embedded/campaigns.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::domain::{
    conversation::plan_append, AgentSettings, CallSession, Campaign, CampaignAction,
    CampaignProgress, CampaignState, CampaignTarget, ConversationItem, DoNotCallEntry,
    StatusChange, TargetOutcome, TargetState, TargetTake, TargetUpdate, Timestamp, Usage,
};

mod campaigns;
mod format;

use super::{
    AppendOutcome, ConversationPage, ItemsRequest, Page, PageRequest, SessionFilter, StatusOutcome,
    Store, StoreError, StoreResult, StreamAttachment,
};

const AGENTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("agents");
const PHONES: TableDefinition<'_, &str, &str> = TableDefinition::new("phones");
const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const CALL_SIDS: TableDefinition<'_, &str, &str> = TableDefinition::new("call_sids");
const ITEMS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("items");
const LIVE_LEASES: TableDefinition<'_, &str, i64> = TableDefinition::new("live_leases");
const LEASES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("leases");

/// Writes waiting at most this many per transaction, so one commit stays short.
const MAX_GROUP: usize = 512;
const QUEUE_DEPTH: usize = 4096;

type Completion = Box<dyn FnOnce(StoreResult<()>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> (Completion, bool) + Send>;

/// The embedded store. Cheap to share behind an `Arc`.
pub struct EmbeddedStore {
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, which is created when missing.
    pub fn open(dir: &Path) -> StoreResult<EmbeddedStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", dir.display())))?;
        let path = dir.join("switchboard.redb");
        let db = Database::create(&path)
            .map_err(|e| StoreError::Unavailable(format!("open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(internal)?;
        txn.open_table(AGENTS).map_err(internal)?;
        txn.open_table(PHONES).map_err(internal)?;
        txn.open_table(SESSIONS).map_err(internal)?;
        txn.open_table(CALL_SIDS).map_err(internal)?;
        txn.open_table(ITEMS).map_err(internal)?;
        txn.open_table(LIVE_LEASES).map_err(internal)?;
        txn.open_table(LEASES).map_err(internal)?;
        campaigns::open_tables(&txn)?;
        if let Some(upgrade) = format::upgrade(&txn)? {
            tracing::info!(
                path = %path.display(),
                from = upgrade.from,
                to = format::FORMAT,
                sessions = upgrade.sessions,
                items = upgrade.items,
                "embedded store upgraded"
            );
        }
        txn.commit().map_err(internal)?;

        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let writer_db = db.clone();
        let commits = Arc::new(AtomicU64::new(0));
        let writer_commits = commits.clone();
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || run_writer(&writer_db, queue, &writer_commits))
            .map_err(|e| StoreError::Internal(format!("spawn writer: {e}")))?;
        Ok(EmbeddedStore {
            db,
            jobs: Some(jobs),
            writer: Mutex::new(Some(writer)),
            commits,
        })
    }

    /// Transactions committed so far (each carries every write that was queued), for
    /// benchmarks.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `op` inside the next group transaction and waits for its commit.
    async fn write<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            let outcome = op(txn);
            // A storage failure may have left partial writes: the whole group aborts.
            let poisoned = matches!(outcome, Err(StoreError::Internal(_)));
            let complete: Completion = Box::new(move |commit: StoreResult<()>| {
                let _ = done.send(commit.and(outcome));
            });
            (complete, poisoned)
        });
        let jobs = self.jobs.as_ref().ok_or_else(writer_gone)?;
        jobs.send(job).await.map_err(|_| writer_gone())?;
        result.await.map_err(|_| writer_gone())?
    }

    /// Runs `op` on a read snapshot, on the blocking pool.
    async fn read<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(internal)?;
            op(&txn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task: {e}")))?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Close the queue, then wait for the writer to commit what is queued and
        // release the file, so the store can be reopened at once.
        self.jobs = None;
        let writer = self.writer.lock().map(|mut w| w.take()).unwrap_or_default();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

fn run_writer(db: &Database, mut queue: mpsc::Receiver<Job>, commits: &AtomicU64) {
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                // Dropping the jobs unrun answers each waiter with `Unavailable`.
                tracing::error!(error = %e, "embedded store cannot begin a write");
                drop(group);
                continue;
            }
        };
        let mut completions = Vec::with_capacity(group.len());
        let mut poisoned = false;
        for job in group {
            let (complete, job_poisoned) = job(&txn);
            poisoned |= job_poisoned;
            completions.push(complete);
        }
        let commit = if poisoned {
            let _ = txn.abort();
            Err(StoreError::Unavailable(
                "write group aborted after a storage error".into(),
            ))
        } else {
            commits.fetch_add(1, Ordering::Relaxed);
            txn.commit()
                .map_err(|e| StoreError::Unavailable(format!("commit: {e}")))
        };
        for complete in completions {
            complete(commit.clone());
        }
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("embedded store writer stopped".into())
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(internal)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(internal)
}

fn not_found(kind: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn check_token(token: &str) -> StoreResult<()> {
    if token.is_empty() || uuid::Uuid::parse_str(token).is_ok() {
        Ok(())
    } else {
        Err(StoreError::BadPageToken(token.to_owned()))
    }
}

/// Reads a table newest first (reverse id order) after `page.token`, keeping values
/// `keep` accepts, one more than a page to know whether another page follows.
fn page_newest_first<T>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    page: &PageRequest,
    mut keep: impl FnMut(&T) -> bool,
    id_of: impl Fn(&T) -> &str,
) -> StoreResult<Page<T>>
where
    T: DeserializeOwned,
{
    check_token(&page.token)?;
    let range = if page.token.is_empty() {
        table.iter().map_err(internal)?
    } else {
        table
            .range::<&str>(..page.token.as_str())
            .map_err(internal)?
    };
    let mut items = Vec::with_capacity(page.size);
    let mut more = false;
    for entry in range.rev() {
        let (_, value) = entry.map_err(internal)?;
        let value: T = decode(value.value())?;
        if !keep(&value) {
            continue;
        }
        if items.len() == page.size {
            more = true;
            break;
        }
        items.push(value);
    }
    let next_token = match (more, items.last()) {
        (true, Some(last)) => id_of(last).to_owned(),
        _ => String::new(),
    };
    Ok(Page { items, next_token })
}

fn read_session(txn: &ReadTransaction, id: &str) -> StoreResult<CallSession> {
    let sessions = txn.open_table(SESSIONS).map_err(internal)?;
    let value = sessions.get(id).map_err(internal)?;
    decode(value.ok_or_else(|| not_found("call session", id))?.value())
}

fn load_session(txn: &WriteTransaction, id: &str) -> StoreResult<CallSession> {
    let sessions = txn.open_table(SESSIONS).map_err(internal)?;
    let value = sessions.get(id).map_err(internal)?;
    let value = value.ok_or_else(|| not_found("call session", id))?;
    decode(value.value())
}

/// A session as the `sessions` table holds it.
#[derive(Serialize)]
struct SessionRecord<'a> {
    #[serde(flatten)]
    session: &'a CallSession,
    /// Always empty (items live in `items`), and ignored when read; written because
    /// control planes before format 2 require the field.
    conversation: [ConversationItem; 0],
}

fn save_session(txn: &WriteTransaction, session: &CallSession) -> StoreResult<()> {
    let bytes = encode(&SessionRecord {
        session,
        conversation: [],
    })?;
    let mut sessions = txn.open_table(SESSIONS).map_err(internal)?;
    sessions
        .insert(session.id.as_str(), bytes.as_slice())
        .map_err(internal)?;
    let mut leases = txn.open_table(LIVE_LEASES).map_err(internal)?;
    match session.lease_expires_at.filter(|_| session.is_live()) {
        Some(until) => {
            leases
                .insert(session.id.as_str(), until.timestamp_millis())
                .map_err(internal)?;
        }
        None => {
            leases.remove(session.id.as_str()).map_err(internal)?;
        }
    }
    Ok(())
}

/// A cluster-wide lease as the `leases` table holds it.
#[derive(Debug, Serialize, serde::Deserialize)]
struct LeaseRecord {
    holder: String,
    until_ms: i64,
}

/// Refuses `agent` when one of its numbers belongs to another agent.
fn check_numbers_free(txn: &WriteTransaction, agent: &AgentSettings) -> StoreResult<()> {
    let phones = txn.open_table(PHONES).map_err(internal)?;
    for number in &agent.phone_numbers {
        if let Some(owner) = phones.get(number.as_str()).map_err(internal)? {
            if owner.value() != agent.id {
                return Err(StoreError::AlreadyExists(format!(
                    "phone number {number} belongs to agent {}",
                    owner.value()
                )));
            }
        }
    }
    Ok(())
}

fn save_agent(
    txn: &WriteTransaction,
    agent: &AgentSettings,
    released: &[String],
) -> StoreResult<()> {
    let bytes = encode(agent)?;
    let mut phones = txn.open_table(PHONES).map_err(internal)?;
    for number in released {
        phones.remove(number.as_str()).map_err(internal)?;
    }
    for number in &agent.phone_numbers {
        phones
            .insert(number.as_str(), agent.id.as_str())
            .map_err(internal)?;
    }
    let mut agents = txn.open_table(AGENTS).map_err(internal)?;
    agents
        .insert(agent.id.as_str(), bytes.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn load_agent(txn: &WriteTransaction, id: &str) -> StoreResult<AgentSettings> {
    let agents = txn.open_table(AGENTS).map_err(internal)?;
    let value = agents.get(id).map_err(internal)?;
    let value = value.ok_or_else(|| not_found("agent settings", id))?;
    decode(value.value())
}

fn check_version(stored: &AgentSettings, expected: i64) -> StoreResult<()> {
    if stored.version == expected {
        Ok(())
    } else {
        Err(StoreError::VersionConflict {
            kind: "agent settings",
            id: stored.id.clone(),
            expected,
            actual: stored.version,
        })
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_agent(&self, agent: AgentSettings) -> StoreResult<AgentSettings> {
        self.write(move |txn| {
            let exists = txn
                .open_table(AGENTS)
                .map_err(internal)?
                .get(agent.id.as_str())
                .map_err(internal)?
                .is_some();
            if exists {
                return Err(StoreError::AlreadyExists(format!(
                    "agent settings {} exists",
                    agent.id
                )));
            }
            check_numbers_free(txn, &agent)?;
            save_agent(txn, &agent, &[])?;
            Ok(agent)
        })
        .await
    }

    async fn get_agent(&self, id: &str) -> StoreResult<AgentSettings> {
        let id = id.to_owned();
        self.read(move |txn| {
            let agents = txn.open_table(AGENTS).map_err(internal)?;
            let value = agents.get(id.as_str()).map_err(internal)?;
            decode(
                value
                    .ok_or_else(|| not_found("agent settings", &id))?
                    .value(),
            )
        })
        .await
    }

    async fn update_agent(
        &self,
        agent: AgentSettings,
        now: Timestamp,
    ) -> StoreResult<AgentSettings> {
        self.write(move |txn| {
            let stored = load_agent(txn, &agent.id)?;
            check_version(&stored, agent.version)?;
            check_numbers_free(txn, &agent)?;
            let updated = AgentSettings {
                version: stored.version + 1,
                created_at: stored.created_at,
                updated_at: now,
                ..agent
            };
            let released: Vec<String> = stored
                .phone_numbers
                .into_iter()
                .filter(|n| !updated.phone_numbers.contains(n))
                .collect();
            save_agent(txn, &updated, &released)?;
            Ok(updated)
        })
        .await
    }

    async fn delete_agent(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |txn| {
            let stored = load_agent(txn, &id)?;
            if let Some(expected) = expected_version {
                check_version(&stored, expected)?;
            }
            let mut phones = txn.open_table(PHONES).map_err(internal)?;
            for number in &stored.phone_numbers {
                phones.remove(number.as_str()).map_err(internal)?;
            }
            let mut agents = txn.open_table(AGENTS).map_err(internal)?;
            agents.remove(id.as_str()).map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn list_agents(&self, page: &PageRequest) -> StoreResult<Page<AgentSettings>> {
        let page = page.clone();
        self.read(move |txn| {
            let agents = txn.open_table(AGENTS).map_err(internal)?;
            page_newest_first(&agents, &page, |_: &AgentSettings| true, |a| &a.id)
        })
        .await
    }

    async fn agent_by_phone(&self, phone: &str) -> StoreResult<Option<AgentSettings>> {
        let phone = phone.to_owned();
        self.read(move |txn| {
            let phones = txn.open_table(PHONES).map_err(internal)?;
            let Some(owner) = phones.get(phone.as_str()).map_err(internal)? else {
                return Ok(None);
            };
            let agents = txn.open_table(AGENTS).map_err(internal)?;
            let value = agents.get(owner.value()).map_err(internal)?;
            value.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn create_session(&self, session: CallSession) -> StoreResult<CallSession> {
        self.write(move |txn| {
            let exists = txn
                .open_table(SESSIONS)
                .map_err(internal)?
                .get(session.id.as_str())
                .map_err(internal)?
                .is_some();
            if exists {
                return Err(StoreError::AlreadyExists(format!(
                    "call session {} exists",
                    session.id
                )));
            }
            let sid = session.twilio_call_sid.as_str();
            if !sid.is_empty() {
                let mut sids = txn.open_table(CALL_SIDS).map_err(internal)?;
                if let Some(owner) = sids.get(sid).map_err(internal)? {
                    return Err(StoreError::AlreadyExists(format!(
                        "twilio call {sid} is recorded as call session {}",
                        owner.value()
                    )));
                }
                sids.insert(sid, session.id.as_str()).map_err(internal)?;
            }
            super::check_new_session(&session)?;
            save_session(txn, &session)?;
            Ok(session)
        })
        .await
    }

    async fn get_session(&self, id: &str) -> StoreResult<CallSession> {
        let id = id.to_owned();
        self.read(move |txn| read_session(txn, &id)).await
    }

    async fn session_by_call_sid(&self, call_sid: &str) -> StoreResult<Option<CallSession>> {
        let call_sid = call_sid.to_owned();
        self.read(move |txn| {
            let sids = txn.open_table(CALL_SIDS).map_err(internal)?;
            let Some(id) = sids.get(call_sid.as_str()).map_err(internal)? else {
                return Ok(None);
            };
            let sessions = txn.open_table(SESSIONS).map_err(internal)?;
            let value = sessions.get(id.value()).map_err(internal)?;
            value.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CallSession>> {
        let filter = filter.clone();
        let page = page.clone();
        self.read(move |txn| {
            let sessions = txn.open_table(SESSIONS).map_err(internal)?;
            page_newest_first(
                &sessions,
                &page,
                |s| filter.matches(s),
                |s: &CallSession| &s.id,
            )
        })
        .await
    }

    async fn update_status(
        &self,
        id: &str,
        change: &StatusChange,
        now: Timestamp,
    ) -> StoreResult<StatusOutcome> {
        let id = id.to_owned();
        let change = change.clone();
        self.write(move |txn| {
            let mut session = load_session(txn, &id)?;
            let before = session.clone();
            let previous =
                session
                    .apply_status(&change, now)
                    .map_err(|source| StoreError::Transition {
                        call_id: id.clone(),
                        source,
                    })?;
            if session != before {
                let new_sid = session.twilio_call_sid.as_str();
                if new_sid != before.twilio_call_sid {
                    let mut sids = txn.open_table(CALL_SIDS).map_err(internal)?;
                    if sids.get(new_sid).map_err(internal)?.is_some() {
                        return Err(StoreError::AlreadyExists(format!(
                            "twilio call {new_sid} is recorded already"
                        )));
                    }
                    sids.insert(new_sid, id.as_str()).map_err(internal)?;
                }
                save_session(txn, &session)?;
            }
            Ok(StatusOutcome { session, previous })
        })
        .await
    }

    async fn append_items(
        &self,
        id: &str,
        batch: &[ConversationItem],
    ) -> StoreResult<AppendOutcome> {
        let id = id.to_owned();
        let batch = batch.to_vec();
        self.write(move |txn| {
            let mut session = load_session(txn, &id)?;
            let plan =
                plan_append(session.last_seq, &batch).map_err(|source| StoreError::Append {
                    call_id: id.clone(),
                    source,
                    last_seq: session.last_seq,
                })?;
            let mut batch = batch;
            let stored = batch.split_off(plan.first_new);
            if !stored.is_empty() {
                let mut items = txn.open_table(ITEMS).map_err(internal)?;
                for item in &stored {
                    items
                        .insert((id.as_str(), item.seq), encode(item)?.as_slice())
                        .map_err(internal)?;
                }
                drop(items);
                session.last_seq = plan.last_seq;
                save_session(txn, &session)?;
            }
            Ok(AppendOutcome {
                stored,
                last_seq: plan.last_seq,
            })
        })
        .await
    }

    async fn list_items(&self, id: &str, request: &ItemsRequest) -> StoreResult<ConversationPage> {
        let id = id.to_owned();
        let request = *request;
        self.read(move |txn| {
            // One snapshot: the session's last seq and its items agree.
            let last_seq = read_session(txn, &id)?.last_seq;
            let mut page = ConversationPage {
                items: Vec::new(),
                last_seq,
            };
            if request.after_seq >= last_seq || request.max_items == 0 {
                return Ok(page);
            }
            let items = txn.open_table(ITEMS).map_err(internal)?;
            let range = (id.as_str(), request.after_seq + 1)..=(id.as_str(), last_seq);
            let mut bytes = 0;
            for entry in items.range(range).map_err(internal)? {
                let (_, value) = entry.map_err(internal)?;
                let item: ConversationItem = decode(value.value())?;
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
        })
        .await
    }

    async fn attach_stream(
        &self,
        id: &str,
        stream: &StreamAttachment,
        now: Timestamp,
    ) -> StoreResult<CallSession> {
        let id = id.to_owned();
        let stream = stream.clone();
        self.write(move |txn| {
            let mut session = load_session(txn, &id)?;
            if session.twilio_call_sid.is_empty() && !stream.call_sid.is_empty() {
                let mut sids = txn.open_table(CALL_SIDS).map_err(internal)?;
                if sids
                    .get(stream.call_sid.as_str())
                    .map_err(internal)?
                    .is_some()
                {
                    return Err(StoreError::AlreadyExists(format!(
                        "twilio call {} is recorded already",
                        stream.call_sid
                    )));
                }
                sids.insert(stream.call_sid.as_str(), id.as_str())
                    .map_err(internal)?;
                session.twilio_call_sid.clone_from(&stream.call_sid);
            }
            session.twilio_stream_sid = stream.stream_sid;
            session.sidecar_id = stream.sidecar_id;
            session.updated_at = now;
            save_session(txn, &session)?;
            Ok(session)
        })
        .await
    }

    async fn record_usage(&self, id: &str, usage: &Usage, now: Timestamp) -> StoreResult<()> {
        let id = id.to_owned();
        let usage = *usage;
        self.write(move |txn| {
            let mut session = load_session(txn, &id)?;
            session.usage = usage;
            session.updated_at = now;
            save_session(txn, &session)
        })
        .await
    }

    async fn renew_leases(&self, ids: &[String], until: Timestamp) -> StoreResult<u64> {
        let ids = ids.to_vec();
        self.write(move |txn| {
            let mut renewed = 0;
            for id in &ids {
                let mut session = match load_session(txn, id) {
                    Ok(session) => session,
                    Err(StoreError::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                };
                if !session.is_live() {
                    continue;
                }
                session.lease_expires_at = Some(until);
                save_session(txn, &session)?;
                renewed += 1;
            }
            Ok(renewed)
        })
        .await
    }

    async fn expired_leases(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<CallSession>> {
        let now_ms = now.timestamp_millis();
        self.read(move |txn| {
            let leases = txn.open_table(LIVE_LEASES).map_err(internal)?;
            let mut expired = Vec::new();
            for entry in leases.iter().map_err(internal)? {
                let (id, until) = entry.map_err(internal)?;
                if until.value() < now_ms {
                    expired.push((until.value(), id.value().to_owned()));
                }
            }
            expired.sort();
            expired.truncate(limit);
            expired
                .into_iter()
                .map(|(_, id)| read_session(txn, &id))
                .collect()
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |txn| {
            let mut leases = txn.open_table(LEASES).map_err(internal)?;
            let current: Option<LeaseRecord> = leases
                .get(name.as_str())
                .map_err(internal)?
                .map(|v| decode(v.value()))
                .transpose()?;
            let free = current.is_none_or(|lease| {
                lease.holder == holder || lease.until_ms < now.timestamp_millis()
            });
            if free {
                let record = encode(&LeaseRecord {
                    holder,
                    until_ms: until.timestamp_millis(),
                })?;
                leases
                    .insert(name.as_str(), record.as_slice())
                    .map_err(internal)?;
            }
            Ok(free)
        })
        .await
    }

    async fn create_campaign(&self, campaign: Campaign) -> StoreResult<Campaign> {
        self.write(move |txn| campaigns::create(txn, campaign))
            .await
    }

    async fn get_campaign(&self, id: &str) -> StoreResult<Campaign> {
        let id = id.to_owned();
        self.read(move |txn| campaigns::get(txn, &id)).await
    }

    async fn list_campaigns(
        &self,
        state: Option<CampaignState>,
        page: &PageRequest,
    ) -> StoreResult<Page<Campaign>> {
        let page = page.clone();
        self.read(move |txn| campaigns::list(txn, state, &page))
            .await
    }

    async fn update_campaign(&self, campaign: Campaign, now: Timestamp) -> StoreResult<Campaign> {
        self.write(move |txn| campaigns::update(txn, campaign, now))
            .await
    }

    async fn change_campaign_state(
        &self,
        id: &str,
        action: CampaignAction,
        now: Timestamp,
    ) -> StoreResult<Campaign> {
        let id = id.to_owned();
        self.write(move |txn| campaigns::change_state(txn, &id, action, now))
            .await
    }

    async fn add_targets(
        &self,
        campaign_id: &str,
        targets: Vec<CampaignTarget>,
    ) -> StoreResult<Vec<TargetOutcome>> {
        let campaign_id = campaign_id.to_owned();
        self.write(move |txn| campaigns::add_targets(txn, &campaign_id, targets))
            .await
    }

    async fn list_targets(
        &self,
        campaign_id: &str,
        state: Option<TargetState>,
        page: &PageRequest,
    ) -> StoreResult<Page<CampaignTarget>> {
        let campaign_id = campaign_id.to_owned();
        let page = page.clone();
        self.read(move |txn| campaigns::list_targets(txn, &campaign_id, state, &page))
            .await
    }

    async fn campaign_progress(&self, campaign_id: &str) -> StoreResult<CampaignProgress> {
        let campaign_id = campaign_id.to_owned();
        self.read(move |txn| campaigns::progress(txn, &campaign_id))
            .await
    }

    async fn get_target(&self, campaign_id: &str, target_id: &str) -> StoreResult<CampaignTarget> {
        let (campaign_id, target_id) = (campaign_id.to_owned(), target_id.to_owned());
        self.read(move |txn| campaigns::get_target(txn, &campaign_id, &target_id))
            .await
    }

    async fn due_targets(
        &self,
        campaign_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<CampaignTarget>> {
        let campaign_id = campaign_id.to_owned();
        self.read(move |txn| campaigns::due_targets(txn, &campaign_id, now, limit))
            .await
    }

    async fn take_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        attempts: u32,
        take: &TargetTake,
        now: Timestamp,
    ) -> StoreResult<Option<CampaignTarget>> {
        let (campaign_id, target_id) = (campaign_id.to_owned(), target_id.to_owned());
        let take = take.clone();
        self.write(move |txn| {
            campaigns::take_target(txn, &campaign_id, &target_id, attempts, &take, now)
        })
        .await
    }

    async fn update_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        call_id: &str,
        update: &TargetUpdate,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (campaign_id, target_id) = (campaign_id.to_owned(), target_id.to_owned());
        let (call_id, update) = (call_id.to_owned(), update.clone());
        self.write(move |txn| {
            campaigns::update_target(txn, &campaign_id, &target_id, &call_id, &update, now)
        })
        .await
    }

    async fn count_active_targets(&self, campaign_id: &str) -> StoreResult<u64> {
        let campaign_id = campaign_id.to_owned();
        self.read(move |txn| campaigns::count_active(txn, &campaign_id))
            .await
    }

    async fn start_campaign(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |txn| campaigns::start(txn, &id, now)).await
    }

    async fn complete_campaign(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |txn| campaigns::complete(txn, &id, now))
            .await
    }

    async fn count_leased_calls(&self) -> StoreResult<u64> {
        self.read(|txn| {
            use redb::ReadableTableMetadata;
            let leases = txn.open_table(LIVE_LEASES).map_err(internal)?;
            leases.len().map_err(internal)
        })
        .await
    }

    async fn add_do_not_call(&self, entries: Vec<DoNotCallEntry>) -> StoreResult<u64> {
        self.write(move |txn| campaigns::add_do_not_call(txn, entries))
            .await
    }

    async fn remove_do_not_call(&self, phones: &[String]) -> StoreResult<u64> {
        let phones = phones.to_vec();
        self.write(move |txn| campaigns::remove_do_not_call(txn, &phones))
            .await
    }

    async fn list_do_not_call(&self, page: &PageRequest) -> StoreResult<Page<DoNotCallEntry>> {
        let page = page.clone();
        self.read(move |txn| campaigns::list_do_not_call(txn, &page))
            .await
    }

    async fn check_do_not_call(&self, phones: &[String]) -> StoreResult<Vec<DoNotCallEntry>> {
        let phones = phones.to_vec();
        self.read(move |txn| campaigns::check_do_not_call(txn, &phones))
            .await
    }
}

#[cfg(test)]
mod tests;
