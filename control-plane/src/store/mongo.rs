//! The MongoDB store: [`MongoStore`] keeps agents in `agentsettings`, calls in
//! `callsessions` and their conversations in `conversation_items`, one document per
//! item (`mongo/conversation.rs`). Sessions of the previous layout, with the
//! conversation in a `realtimeConversation` array inside the session document as the
//! original Node system kept it, are moved over at start-up and on first touch
//! (`mongo/migration.rs`).
//!
//! It holds no rules of its own: status changes go through `CallSession::apply_status`
//! and appends through `conversation::plan_append`, applied with single-document
//! compare-and-set writes (no multi-document transactions, so a standalone server
//! works). Uniqueness (a phone number per agent, a Twilio call SID per call) is left to
//! sparse unique indexes that [`MongoStore::connect`] creates, or reuses when the
//! database already holds equivalent ones (`mongo/indexes.rs`); an agent without numbers
//! and a call without a SID are stored without the field, so they are not indexed and
//! never collide.
//!
//! The document structs are private and camelCase (`mongo/documents.rs`), read leniently
//! so the original system's documents decode too (`mongo/legacy.rs`); no BSON type
//! crosses the [`Store`] trait. Pages are cut in `mongo/paging.rs`. Campaigns, their
//! targets and the do-not-call list are in `mongo/campaigns.rs`. Read `store.rs` for
//! the contract and `conformance.rs` for the suite this store passes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::{Error as DriverError, ErrorKind, WriteFailure};
use mongodb::options::ReturnDocument;
use mongodb::{Client, Collection};

use crate::domain::{
    AgentSettings, CallSession, CallStatus, Campaign, CampaignAction, CampaignProgress,
    CampaignState, CampaignTarget, ConversationItem, DoNotCallEntry, StatusChange, TargetOutcome,
    TargetState, TargetTake, TargetUpdate, Timestamp, Usage,
};

mod campaigns;
mod conversation;
mod documents;
mod indexes;
mod legacy;
mod migration;
mod paging;

pub use migration::MigrationReport;

use campaigns::Campaigns;
use conversation::{Conversations, ITEMS, ITEM_FIELDS};
use documents::*;
use indexes::WantedIndex;
use legacy::{id_match, id_other_than};
use migration::MigrationState;
use paging::{into_page, list_newest_first, page_size, page_token};

use super::{
    AppendOutcome, ConversationPage, ItemsRequest, Page, PageRequest, SessionFilter, StatusOutcome,
    Store, StoreError, StoreResult, StreamAttachment,
};

const AGENTS: &str = "agentsettings";
const SESSIONS: &str = "callsessions";
/// Cluster-wide leases by name (`{_id: name, holder, expiresAt}`).
const LEASES: &str = "leases";
/// Ids per `renew_leases` write, so one write stays small.
const RENEW_CHUNK: usize = 500;
const AGENT: &str = "agent";
const SESSION: &str = "call session";
const DUPLICATE_KEY: i32 = 11000;
/// The top-level fields every agent document we write carries (`phoneNumbers` is left
/// out when empty): a unique index elsewhere would make our documents collide on null.
const AGENT_FIELDS: &[&str] = &[
    "_id",
    "name",
    "mode",
    "provider",
    "model",
    "voice",
    "instructions",
    "temperature",
    "tools",
    "turnDetection",
    "inputTranscription",
    "greeting",
    "goodbye",
    "maxCallDurationMs",
    "handoffTarget",
    "fallback",
    "version",
    "createdAt",
    "updatedAt",
];
/// The same for call sessions (`twilioCallSid` is left out while unknown).
const SESSION_FIELDS: &[&str] = &[
    "_id",
    "agentId",
    "direction",
    "fromNumber",
    "toNumber",
    "customer",
    "variables",
    "status",
    "twilioStreamSid",
    "campaignId",
    "lastSeq",
    "endReason",
    "error",
    "createdAt",
    "startedAt",
    "endedAt",
    "updatedAt",
    "usage",
    "sidecarId",
];
/// Each compare-and-set miss means another writer changed the document in between; a
/// long run of misses is contention the caller should back off from.
const CAS_ATTEMPTS: usize = 16;

/// The production store on MongoDB (or a server speaking its wire protocol).
pub struct MongoStore {
    database: String,
    agents: Collection<AgentDoc>,
    sessions: Collection<SessionDoc>,
    conversations: Conversations,
    leases: Collection<Document>,
    campaigns: Campaigns,
    migration: MigrationState,
}

impl MongoStore {
    /// Connects to `database` on the server at `uri`, creates the indexes the store
    /// relies on (creating an existing index is a no-op), and starts moving
    /// conversations of the previous layout into `conversation_items` in the
    /// background (see [`MongoStore::migration`]).
    pub async fn connect(uri: &str, database: &str) -> StoreResult<MongoStore> {
        let store = Self::open(uri, database).await?;
        let migration = migration::start(store.conversations.clone(), store.database.clone());
        Ok(MongoStore { migration, ..store })
    }

    /// [`connect`](Self::connect) without the start-up migration, for tests of what
    /// happens before it reaches a session.
    #[cfg(test)]
    pub(crate) async fn connect_without_migration(
        uri: &str,
        database: &str,
    ) -> StoreResult<MongoStore> {
        Self::open(uri, database).await
    }

    /// Connects and creates the indexes; the migration's state says it is over, with
    /// nothing moved. Sessions of the previous layout are still moved when first read
    /// or appended to.
    async fn open(uri: &str, database: &str) -> StoreResult<MongoStore> {
        // The URI may carry a password: errors name the database, never the URI.
        let client = Client::with_uri_str(uri)
            .await
            .map_err(|e| driver_error("connect to database", database, e))?;
        let db = client.database(database);
        let (_, migration) = tokio::sync::watch::channel(Some(Ok(MigrationReport::default())));
        let store = MongoStore {
            database: database.to_owned(),
            agents: db.collection(AGENTS),
            sessions: db.collection(SESSIONS),
            conversations: Conversations {
                sessions: db.collection(SESSIONS),
                items: db.collection(ITEMS),
                append_round_trips: Arc::new(AtomicU64::new(0)),
            },
            leases: db.collection(LEASES),
            campaigns: Campaigns::new(&db),
            migration,
        };
        store.create_indexes().await?;
        Ok(store)
    }

    /// Waits for the start-up migration to finish and returns what it did.
    pub async fn migration(&self) -> StoreResult<MigrationReport> {
        let mut state = self.migration.clone();
        let finished = state
            .wait_for(Option::is_some)
            .await
            .map_err(|_| StoreError::Internal("the migration task ended without a word".into()))?;
        finished
            .clone()
            .expect("wait_for returned a finished state")
    }

    /// Moves every conversation still inside its session document now, as the
    /// start-up migration does (safe to run beside it).
    #[cfg(test)]
    pub(crate) async fn migrate_conversations(&self) -> StoreResult<MigrationReport> {
        let mut report = MigrationReport::default();
        self.conversations.move_all(&mut report).await?;
        Ok(report)
    }

    /// Database round trips spent by `append_items` so far, for benchmarks to report
    /// items per round trip.
    pub fn append_round_trips(&self) -> u64 {
        self.conversations
            .append_round_trips
            .load(Ordering::Relaxed)
    }

    /// Reconciles the indexes the store relies on with those the database holds
    /// (`mongo/indexes.rs`): equivalent ones are reused, conflicts stop start-up.
    async fn create_indexes(&self) -> StoreResult<()> {
        let agent_indexes = [WantedIndex::unique(
            "phoneNumbers_unique",
            doc! { "phoneNumbers": 1 },
        )];
        indexes::ensure(
            &self.agents.clone_with_type::<Document>(),
            &agent_indexes,
            AGENT_FIELDS,
        )
        .await?;
        let session_indexes = [
            WantedIndex::unique("twilioCallSid_unique", doc! { "twilioCallSid": 1 }),
            // Lists filter on one field and walk `_id` backwards for newest first.
            WantedIndex::plain("agentId_1__id_1", doc! { "agentId": 1, "_id": 1 }),
            WantedIndex::plain("campaignId_1__id_1", doc! { "campaignId": 1, "_id": 1 }),
            WantedIndex::plain("status_1__id_1", doc! { "status": 1, "_id": 1 }),
            WantedIndex::plain("createdAt_1", doc! { "createdAt": 1 }),
            // The orphan sweeper's scan: only live calls carry the field (it is unset
            // when a call ends), so the index stays as small as the calls in progress.
            WantedIndex::plain("leaseExpiresAt_1", doc! { "leaseExpiresAt": 1 }),
        ];
        indexes::ensure(
            &self.sessions.clone_with_type::<Document>(),
            &session_indexes,
            SESSION_FIELDS,
        )
        .await?;
        // Conversation reads walk one call's items in seq order; the uniqueness is what
        // makes a re-sent item a no-op.
        let item_indexes = [WantedIndex::unique_everywhere(
            "callId_1_seq_1",
            doc! { "callId": 1, "seq": 1 },
        )];
        indexes::ensure(
            &self.conversations.items.clone_with_type::<Document>(),
            &item_indexes,
            ITEM_FIELDS,
        )
        .await?;
        self.campaigns.create_indexes().await
    }

    /// A session document as read: one still in the previous layout has its
    /// conversation moved first, and is read again.
    async fn settle(&self, doc: SessionDoc) -> StoreResult<CallSession> {
        if !doc.in_old_layout() {
            return doc.into_domain();
        }
        self.conversations.move_one(&doc.id).await?;
        self.sessions
            .find_one(doc! { "_id": id_match(&doc.id) })
            .projection(probe_conversation())
            .await
            .map_err(|e| driver_error("read call session", &doc.id, e))?
            .ok_or_else(|| not_found(SESSION, &doc.id))?
            .into_domain()
    }

    /// The error for a refused agent write: names the phone numbers another agent owns,
    /// which takes a follow-up read since the server's report is not structured. If that
    /// read fails, the message lists all the agent's numbers instead.
    async fn agent_conflict(&self, agent: &AgentSettings) -> StoreError {
        let filter = doc! {
            "phoneNumbers": { "$in": agent.phone_numbers.clone() },
            "_id": id_other_than(&agent.id),
        };
        let others: Vec<PhoneNumbersDoc> = match self
            .agents
            .clone_with_type::<PhoneNumbersDoc>()
            .find(filter)
            .projection(doc! { "phoneNumbers": 1 })
            .await
        {
            Ok(cursor) => cursor.try_collect().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let taken: Vec<&str> = agent
            .phone_numbers
            .iter()
            .filter(|n| others.iter().any(|o| o.phone_numbers.contains(n)))
            .map(String::as_str)
            .collect();
        let message = match taken.as_slice() {
            [one] => format!("phone number {one} belongs to another agent"),
            [] => format!(
                "agent {} already exists, or one of its phone numbers [{}] belongs to another agent",
                agent.id,
                agent.phone_numbers.join(", ")
            ),
            many => format!(
                "phone numbers {} belong to another agent",
                many.join(", ")
            ),
        };
        StoreError::AlreadyExists(message)
    }

    /// Tells `NotFound` from `VersionConflict` after a versioned write matched nothing.
    async fn agent_version_miss(&self, id: &str, expected: i64) -> StoreError {
        let stored = self
            .agents
            .clone_with_type::<VersionDoc>()
            .find_one(doc! { "_id": id_match(id) })
            .projection(doc! { "version": 1 })
            .await;
        match stored {
            Ok(Some(stored)) => StoreError::VersionConflict {
                kind: AGENT,
                id: id.to_owned(),
                expected,
                actual: stored.version,
            },
            Ok(None) => not_found(AGENT, id),
            Err(e) => driver_error("read the version of agent", id, e),
        }
    }

    /// The error for a refused session write: its call SID belongs to another session,
    /// or the session exists already.
    async fn session_conflict(&self, id: &str, call_sid: &str) -> StoreError {
        if !call_sid.is_empty() {
            let other = self
                .sessions
                .clone_with_type::<Document>()
                .find_one(doc! { "twilioCallSid": call_sid, "_id": id_other_than(id) })
                .projection(doc! { "_id": 1 })
                .await;
            if let Ok(Some(_)) = other {
                return StoreError::AlreadyExists(format!(
                    "twilio call sid {call_sid} belongs to another call session"
                ));
            }
        }
        StoreError::AlreadyExists(format!("call session {id} already exists"))
    }
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("database", &self.database)
            .field("append_round_trips", &self.append_round_trips())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn create_agent(&self, agent: AgentSettings) -> StoreResult<AgentSettings> {
        match self.agents.insert_one(AgentDoc::from(&agent)).await {
            Ok(_) => Ok(agent),
            Err(e) if is_duplicate_key(&e) => Err(self.agent_conflict(&agent).await),
            Err(e) => Err(driver_error("create agent", &agent.id, e)),
        }
    }

    async fn get_agent(&self, id: &str) -> StoreResult<AgentSettings> {
        self.agents
            .find_one(doc! { "_id": id_match(id) })
            .await
            .map_err(|e| driver_error("read agent", id, e))?
            .ok_or_else(|| not_found(AGENT, id))?
            .into_domain()
    }

    async fn update_agent(
        &self,
        agent: AgentSettings,
        now: Timestamp,
    ) -> StoreResult<AgentSettings> {
        let expected = agent.version;
        let mut next = AgentDoc::from(&agent);
        next.version = expected.checked_add(1).ok_or_else(|| {
            StoreError::Internal(format!("agent {}: version {expected} overflows", agent.id))
        })?;
        next.updated_at = Some(bson_time(now));
        let mut set = bson::to_document(&next).map_err(|e| encode_error(AGENT, &agent.id, e))?;
        // `$set` rather than a replacement keeps the stored creation time, whatever the
        // caller's copy says, in the same single-document write.
        set.remove("_id");
        set.remove("createdAt");
        let mut update = doc! { "$set": set };
        if agent.phone_numbers.is_empty() {
            // Left out of `$set` when empty (see `AgentDoc::phone_numbers`).
            update.insert("$unset", doc! { "phoneNumbers": "" });
        }
        let updated = self
            .agents
            .find_one_and_update(
                doc! { "_id": id_match(&agent.id), "version": version_match(expected) },
                update,
            )
            .return_document(ReturnDocument::After)
            .await;
        match updated {
            Ok(Some(stored)) => stored.into_domain(),
            Ok(None) => Err(self.agent_version_miss(&agent.id, expected).await),
            Err(e) if is_duplicate_key(&e) => Err(self.agent_conflict(&agent).await),
            Err(e) => Err(driver_error("update agent", &agent.id, e)),
        }
    }

    async fn delete_agent(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()> {
        let mut filter = doc! { "_id": id_match(id) };
        if let Some(version) = expected_version {
            filter.insert("version", version_match(version));
        }
        let result = self
            .agents
            .delete_one(filter)
            .await
            .map_err(|e| driver_error("delete agent", id, e))?;
        if result.deleted_count == 1 {
            return Ok(());
        }
        match expected_version {
            Some(expected) => Err(self.agent_version_miss(id, expected).await),
            None => Err(not_found(AGENT, id)),
        }
    }

    async fn list_agents(&self, page: &PageRequest) -> StoreResult<Page<AgentSettings>> {
        let size = page_size(page);
        let docs: Vec<AgentDoc> = list_newest_first(
            &self.agents,
            AGENTS,
            Document::new(),
            None,
            page_token(page)?,
            size,
        )
        .await?;
        let agents = docs
            .into_iter()
            .map(AgentDoc::into_domain)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(agents, size, |a| &a.id))
    }

    async fn agent_by_phone(&self, phone: &str) -> StoreResult<Option<AgentSettings>> {
        self.agents
            .find_one(doc! { "phoneNumbers": phone })
            .await
            .map_err(|e| driver_error("find the agent of phone number", phone, e))?
            .map(AgentDoc::into_domain)
            .transpose()
    }

    async fn create_session(&self, session: CallSession) -> StoreResult<CallSession> {
        let doc = SessionDoc::from_domain(&session)?;
        match self.sessions.insert_one(doc).await {
            Ok(_) => Ok(session),
            Err(e) if is_duplicate_key(&e) => Err(self
                .session_conflict(&session.id, &session.twilio_call_sid)
                .await),
            Err(e) => Err(driver_error("create call session", &session.id, e)),
        }
    }

    async fn get_session(&self, id: &str) -> StoreResult<CallSession> {
        let doc = self
            .sessions
            .find_one(doc! { "_id": id_match(id) })
            .projection(probe_conversation())
            .await
            .map_err(|e| driver_error("read call session", id, e))?
            .ok_or_else(|| not_found(SESSION, id))?;
        self.settle(doc).await
    }

    async fn session_by_call_sid(&self, call_sid: &str) -> StoreResult<Option<CallSession>> {
        if call_sid.is_empty() {
            return Ok(None);
        }
        let found = self
            .sessions
            .find_one(doc! { "twilioCallSid": call_sid })
            .projection(probe_conversation())
            .await
            .map_err(|e| driver_error("find the call session of call sid", call_sid, e))?;
        match found {
            Some(doc) => self.settle(doc).await.map(Some),
            None => Ok(None),
        }
    }

    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CallSession>> {
        let mut query = Document::new();
        if let Some(status) = filter.status {
            query.insert("status", status.as_str());
        }
        if let Some(agent_id) = &filter.agent_id {
            query.insert("agentId", id_match(agent_id));
        }
        if let Some(campaign_id) = &filter.campaign_id {
            query.insert("campaignId", id_match(campaign_id));
        }
        if let Some(direction) = filter.direction {
            query.insert("direction", direction_name(direction));
        }
        let mut created = Document::new();
        if let Some(after) = filter.created_after {
            created.insert("$gte", bson_time(after));
        }
        if let Some(before) = filter.created_before {
            created.insert("$lt", bson_time(before));
        }
        if !created.is_empty() {
            query.insert("createdAt", created);
        }
        let size = page_size(page);
        let docs: Vec<SessionDoc> = list_newest_first(
            &self.sessions,
            SESSIONS,
            query,
            Some(probe_conversation()),
            page_token(page)?,
            size,
        )
        .await?;
        let mut sessions = Vec::with_capacity(docs.len());
        for doc in docs {
            sessions.push(self.settle(doc).await?);
        }
        Ok(into_page(sessions, size, |s| &s.id))
    }

    async fn update_status(
        &self,
        id: &str,
        change: &StatusChange,
        now: Timestamp,
    ) -> StoreResult<StatusOutcome> {
        for _ in 0..CAS_ATTEMPTS {
            let mut session = self.get_session(id).await?;
            let old_status = session.status;
            let sid_was_empty = session.twilio_call_sid.is_empty();
            let previous =
                session
                    .apply_status(change, now)
                    .map_err(|source| StoreError::Transition {
                        call_id: id.to_owned(),
                        source,
                    })?;
            let sid_is_new = sid_was_empty && !session.twilio_call_sid.is_empty();
            if previous.is_none() && !sid_is_new {
                return Ok(StatusOutcome {
                    session,
                    previous: None,
                });
            }

            // The write holds only if the status is still the one the machine judged.
            let mut filter = doc! {
                "_id": id_match(id),
                "status": { "$in": legacy::status_spellings(old_status.as_str()) },
            };
            let mut set = doc! { "updatedAt": bson_time(now) };
            if sid_is_new {
                // Absent, or empty in documents written by other tools.
                filter.insert("twilioCallSid", doc! { "$in": ["", Bson::Null] });
                set.insert("twilioCallSid", &session.twilio_call_sid);
            }
            if previous.is_some() {
                // These fields change only with the status, so the CAS on the status
                // guards them too.
                set.insert("status", session.status.as_str());
                set.insert("startedAt", session.started_at.map(bson_time));
                set.insert("endedAt", session.ended_at.map(bson_time));
                set.insert("endReason", &session.end_reason);
                let error = session.error.as_ref().map(CallErrorDoc::from);
                set.insert(
                    "error",
                    bson::to_bson(&error).map_err(|e| encode_error(SESSION, id, e))?,
                );
            }
            let mut update = doc! { "$set": set };
            if session.status.is_final() {
                // An ended call needs no lease, and leaves the sweeper's index.
                update.insert("$unset", doc! { "leaseExpiresAt": "" });
            }
            let written = self
                .sessions
                .find_one_and_update(filter, update)
                .projection(probe_conversation())
                .return_document(ReturnDocument::After)
                .await;
            match written {
                Ok(Some(stored)) => {
                    return Ok(StatusOutcome {
                        session: self.settle(stored).await?,
                        previous,
                    })
                }
                // Another writer changed the status (or the sid) first: judge again.
                Ok(None) => continue,
                Err(e) if is_duplicate_key(&e) => {
                    return Err(self.session_conflict(id, &session.twilio_call_sid).await)
                }
                Err(e) => return Err(driver_error("update the status of call session", id, e)),
            }
        }
        Err(contended("update the status of call session", id))
    }

    async fn append_items(
        &self,
        id: &str,
        batch: &[ConversationItem],
    ) -> StoreResult<AppendOutcome> {
        self.conversations.append(id, batch).await
    }

    async fn list_items(&self, id: &str, request: &ItemsRequest) -> StoreResult<ConversationPage> {
        self.conversations.read(id, request).await
    }

    async fn attach_stream(
        &self,
        id: &str,
        stream: &StreamAttachment,
        now: Timestamp,
    ) -> StoreResult<CallSession> {
        let set = doc! {
            "twilioStreamSid": &stream.stream_sid,
            "sidecarId": &stream.sidecar_id,
            "updatedAt": bson_time(now),
        };
        let updated = self
            .sessions
            .find_one_and_update(doc! { "_id": id_match(id) }, doc! { "$set": set })
            .projection(probe_conversation())
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| driver_error("attach a stream to call session", id, e))?
            .ok_or_else(|| not_found(SESSION, id))?;
        let session = self.settle(updated).await?;
        if stream.call_sid.is_empty() || !session.twilio_call_sid.is_empty() {
            return Ok(session);
        }
        // The call SID is recorded only while none is known; the filter keeps a
        // concurrent writer's SID.
        let recorded = self
            .sessions
            .find_one_and_update(
                doc! { "_id": id_match(id), "twilioCallSid": { "$exists": false } },
                doc! { "$set": { "twilioCallSid": &stream.call_sid } },
            )
            .projection(probe_conversation())
            .return_document(ReturnDocument::After)
            .await;
        match recorded {
            Ok(Some(stored)) => self.settle(stored).await,
            Ok(None) => Ok(session),
            Err(e) if is_duplicate_key(&e) => {
                Err(self.session_conflict(id, &stream.call_sid).await)
            }
            Err(e) => Err(driver_error("attach a stream to call session", id, e)),
        }
    }

    async fn record_usage(&self, id: &str, usage: &Usage, now: Timestamp) -> StoreResult<()> {
        let usage =
            bson::to_bson(&UsageDoc::from(usage)).map_err(|e| encode_error(SESSION, id, e))?;
        let result = self
            .sessions
            .update_one(
                doc! { "_id": id_match(id) },
                doc! { "$set": { "usage": usage, "updatedAt": bson_time(now) } },
            )
            .await
            .map_err(|e| driver_error("record the usage of call session", id, e))?;
        if result.matched_count == 0 {
            return Err(not_found(SESSION, id));
        }
        Ok(())
    }

    async fn renew_leases(&self, ids: &[String], until: Timestamp) -> StoreResult<u64> {
        let mut renewed = 0;
        for chunk in ids.chunks(RENEW_CHUNK) {
            let mut any_id = Vec::with_capacity(chunk.len());
            for id in chunk {
                any_id.push(Bson::String(id.clone()));
                if let Some(oid) = legacy::object_id(id) {
                    any_id.push(Bson::ObjectId(oid));
                }
            }
            let result = self
                .sessions
                .update_many(
                    doc! { "_id": { "$in": any_id }, "status": { "$in": live_spellings() } },
                    doc! { "$set": { "leaseExpiresAt": bson_time(until) } },
                )
                .await
                .map_err(|e| driver_error("renew the leases of call sessions", "", e))?;
            renewed += result.matched_count;
        }
        Ok(renewed)
    }

    async fn expired_leases(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<CallSession>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let docs: Vec<SessionDoc> = self
            .sessions
            .find(doc! {
                "leaseExpiresAt": { "$lt": bson_time(now) },
                "status": { "$in": live_spellings() },
            })
            .sort(doc! { "leaseExpiresAt": 1 })
            .limit(limit)
            .projection(probe_conversation())
            .await
            .map_err(|e| driver_error("find call sessions with expired leases", "", e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("find call sessions with expired leases", "", e))?;
        let mut sessions = Vec::with_capacity(docs.len());
        for doc in docs {
            sessions.push(self.settle(doc).await?);
        }
        Ok(sessions)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool> {
        let filter = doc! {
            "_id": name,
            "$or": [ { "holder": holder }, { "expiresAt": { "$lt": bson_time(now) } } ],
        };
        let update = doc! { "$set": { "holder": holder, "expiresAt": bson_time(until) } };
        // Held by another: the filter misses, the upsert's insert collides on `_id`.
        match self.leases.update_one(filter, update).upsert(true).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(driver_error("acquire lease", name, e)),
        }
    }

    async fn create_campaign(&self, campaign: Campaign) -> StoreResult<Campaign> {
        self.campaigns.create(campaign).await
    }

    async fn get_campaign(&self, id: &str) -> StoreResult<Campaign> {
        self.campaigns.get(id).await
    }

    async fn list_campaigns(
        &self,
        state: Option<CampaignState>,
        page: &PageRequest,
    ) -> StoreResult<Page<Campaign>> {
        self.campaigns.list(state, page).await
    }

    async fn update_campaign(&self, campaign: Campaign, now: Timestamp) -> StoreResult<Campaign> {
        self.campaigns.update(campaign, now).await
    }

    async fn change_campaign_state(
        &self,
        id: &str,
        action: CampaignAction,
        now: Timestamp,
    ) -> StoreResult<Campaign> {
        self.campaigns.change_state(id, action, now).await
    }

    async fn add_targets(
        &self,
        campaign_id: &str,
        targets: Vec<CampaignTarget>,
    ) -> StoreResult<Vec<TargetOutcome>> {
        self.campaigns.add_targets(campaign_id, targets).await
    }

    async fn list_targets(
        &self,
        campaign_id: &str,
        state: Option<TargetState>,
        page: &PageRequest,
    ) -> StoreResult<Page<CampaignTarget>> {
        self.campaigns.list_targets(campaign_id, state, page).await
    }

    async fn campaign_progress(&self, campaign_id: &str) -> StoreResult<CampaignProgress> {
        self.campaigns.progress(campaign_id).await
    }

    async fn get_target(&self, campaign_id: &str, target_id: &str) -> StoreResult<CampaignTarget> {
        self.campaigns.get_target(campaign_id, target_id).await
    }

    async fn due_targets(
        &self,
        campaign_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<CampaignTarget>> {
        self.campaigns.due_targets(campaign_id, now, limit).await
    }

    async fn take_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        attempts: u32,
        take: &TargetTake,
        now: Timestamp,
    ) -> StoreResult<Option<CampaignTarget>> {
        self.campaigns
            .take_target(campaign_id, target_id, attempts, take, now)
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
        self.campaigns
            .update_target(campaign_id, target_id, call_id, update, now)
            .await
    }

    async fn count_active_targets(&self, campaign_id: &str) -> StoreResult<u64> {
        self.campaigns.count_active(campaign_id).await
    }

    async fn start_campaign(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        self.campaigns.start(id, now).await
    }

    async fn complete_campaign(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        self.campaigns.complete(id, now).await
    }

    async fn count_leased_calls(&self) -> StoreResult<u64> {
        self.sessions
            .count_documents(doc! {
                "leaseExpiresAt": { "$exists": true },
                "status": { "$in": live_spellings() },
            })
            .await
            .map_err(|e| driver_error("count leased call sessions", "", e))
    }

    async fn add_do_not_call(&self, entries: Vec<DoNotCallEntry>) -> StoreResult<u64> {
        self.campaigns.add_do_not_call(entries).await
    }

    async fn remove_do_not_call(&self, phones: &[String]) -> StoreResult<u64> {
        self.campaigns.remove_do_not_call(phones).await
    }

    async fn list_do_not_call(&self, page: &PageRequest) -> StoreResult<Page<DoNotCallEntry>> {
        self.campaigns.list_do_not_call(page).await
    }

    async fn check_do_not_call(&self, phones: &[String]) -> StoreResult<Vec<DoNotCallEntry>> {
        self.campaigns.check_do_not_call(phones).await
    }
}

/// Every stored spelling of the live statuses.
fn live_spellings() -> Vec<String> {
    CallStatus::ALL
        .into_iter()
        .filter(|s| !s.is_final())
        .flat_map(|s| legacy::status_spellings(s.as_str()))
        .collect()
}

// === helpers ===

/// Documents written without a version (the original system's) hold version 0.
fn version_match(expected: i64) -> Bson {
    if expected == 0 {
        Bson::Document(doc! { "$in": [0_i64, Bson::Null] })
    } else {
        Bson::Int64(expected)
    }
}

fn not_found(kind: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn contended(operation: &str, id: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{operation} {id}: gave up after {CAS_ATTEMPTS} concurrent changes"
    ))
}

fn encode_error(kind: &str, id: &str, err: bson::ser::Error) -> StoreError {
    StoreError::Internal(format!("{kind} {id}: cannot encode the document: {err}"))
}

fn int64(value: u64) -> StoreResult<i64> {
    i64::try_from(value)
        .map_err(|_| StoreError::Internal(format!("{value} does not fit a 64-bit integer")))
}

/// Maps a driver error: what retrying (possibly after a failover) can fix is
/// `Unavailable`, the rest `Internal`.
fn driver_error(operation: &str, id: &str, err: DriverError) -> StoreError {
    let message = format!("{operation} {id}: {err}");
    if is_transient(&err) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Internal(message)
    }
}

pub(crate) fn is_transient(err: &DriverError) -> bool {
    // Server codes saying "this node cannot serve right now" (host unreachable, time
    // limits, shutdown, stepdown, not primary), as the driver specs list them.
    const TRANSIENT_CODES: &[i32] = &[
        6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
    ];
    if err.contains_label("RetryableWriteError") || err.contains_label("TransientTransactionError")
    {
        return true;
    }
    match err.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(e) => TRANSIENT_CODES.contains(&e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => TRANSIENT_CODES.contains(&e.code),
        _ => false,
    }
}

/// A unique index refused the write. Inserts and updates report it as a write error,
/// `findAndModify` as a command error.
pub(crate) fn is_duplicate_key(err: &DriverError) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
