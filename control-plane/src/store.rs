//! The storage boundary: a small [`Store`] trait over the domain types, with two
//! implementations that pass one conformance suite (`store/conformance.rs`):
//! [`EmbeddedStore`] (the default: a file, no server) and [`MongoStore`] (production).
//!
//! Stores apply the domain's rules atomically — status transitions through
//! `CallStatus::check_transition`, conversation appends through
//! `conversation::plan_append` — so two replicas racing on one call cannot break them.
//! A session is read without its conversation, which is kept apart and read in
//! pages (`list_items`), so a call of any length costs its session reads nothing.
//! No BSON or file format crosses this boundary.
//!
//! Campaigns keep their targets apart too, one record per target, unique by
//! (campaign, `target_key`) so an upload sent twice stores each target once; a campaign
//! is read without them and its progress is counted per target state.

pub mod embedded;
pub mod mongo;

#[cfg(test)]
pub(crate) mod conformance;

use async_trait::async_trait;

use crate::domain::{
    AgentSettings, AppendError, CallDirection, CallSession, CallStatus, Campaign, CampaignAction,
    CampaignProgress, CampaignState, CampaignTarget, CampaignTransitionError, ConversationItem,
    DoNotCallEntry, StatusChange, TargetOutcome, TargetState, TargetTake, TargetUpdate, Timestamp,
    TransitionError, Usage,
};

pub use embedded::EmbeddedStore;
pub use mongo::MongoStore;

/// Default and maximum page sizes of list reads.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 1000;

/// A storage failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// A uniqueness rule would break (a phone number owned by another agent, a Twilio
    /// call SID already recorded).
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{kind} {id}: version {expected} is stale, the stored version is {actual}")]
    VersionConflict {
        kind: &'static str,
        id: String,
        expected: i64,
        actual: i64,
    },
    #[error("call {call_id}: {source}")]
    Transition {
        call_id: String,
        source: TransitionError,
    },
    /// The batch was refused; `last_seq` is the highest stored sequence number.
    #[error("call {call_id}: {source}")]
    Append {
        call_id: String,
        source: AppendError,
        last_seq: u64,
    },
    /// The campaign state machine refused a change.
    #[error("campaign {campaign_id}: {source}")]
    CampaignTransition {
        campaign_id: String,
        source: CampaignTransitionError,
    },
    /// A final campaign takes no more targets.
    #[error("campaign {campaign_id} is {state}: it takes no more targets")]
    CampaignFinal {
        campaign_id: String,
        state: CampaignState,
    },
    #[error("invalid page token {0:?}")]
    BadPageToken(String),
    /// The database cannot be reached; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store internal error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Refuses a new session that claims stored items: items come only through appends.
pub(crate) fn check_new_session(session: &CallSession) -> StoreResult<()> {
    if session.last_seq == 0 {
        return Ok(());
    }
    Err(StoreError::Internal(format!(
        "call session {}: a new session has no items, but its last_seq is {}",
        session.id, session.last_seq
    )))
}

/// A page of a list read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Already clamped to 1..=MAX_PAGE_SIZE by [`PageRequest::new`].
    pub size: usize,
    /// Opaque token from a previous page; empty for the first.
    pub token: String,
}

impl PageRequest {
    /// A page of `size` (0 means the default) after `token`.
    pub fn new(size: u32, token: impl Into<String>) -> Self {
        let size = match usize::try_from(size) {
            Ok(0) | Err(_) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
        };
        Self {
            size,
            token: token.into(),
        }
    }

    pub fn first(size: usize) -> Self {
        Self {
            size,
            token: String::new(),
        }
    }
}

/// Results of a list read, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_token: String,
}

/// Which items of a call's conversation to read: those after `after_seq`, in `seq`
/// order, at most `max_items` of them and, past the first, at most `max_bytes` of
/// [`ConversationItem::weight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemsRequest {
    pub after_seq: u64,
    pub max_items: usize,
    pub max_bytes: usize,
}

/// A run of a call's conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPage {
    /// Contiguous, in `seq` order, starting right after the requested `after_seq`.
    pub items: Vec<ConversationItem>,
    /// The call's highest stored seq when the page was read: more items follow when
    /// the last one is below it.
    pub last_seq: u64,
}

impl ConversationPage {
    /// The seq to read on from when items follow this page, else `None`.
    pub fn next_after(&self) -> Option<u64> {
        let last = self.items.last()?.seq;
        (last < self.last_seq).then_some(last)
    }
}

/// Filters of `list_sessions`; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub status: Option<CallStatus>,
    pub agent_id: Option<String>,
    pub campaign_id: Option<String>,
    pub direction: Option<CallDirection>,
    /// Created at or after.
    pub created_after: Option<Timestamp>,
    /// Created strictly before.
    pub created_before: Option<Timestamp>,
}

impl SessionFilter {
    pub fn matches(&self, s: &CallSession) -> bool {
        self.status.is_none_or(|v| s.status == v)
            && self.agent_id.as_ref().is_none_or(|v| &s.agent_id == v)
            && self
                .campaign_id
                .as_ref()
                .is_none_or(|v| &s.campaign_id == v)
            && self.direction.is_none_or(|v| s.direction == v)
            && self.created_after.is_none_or(|t| s.created_at >= t)
            && self.created_before.is_none_or(|t| s.created_at < t)
    }
}

/// The result of a status change.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOutcome {
    /// The session after the change.
    pub session: CallSession,
    /// The status before, when it changed; `None` for a repeat of the current state.
    pub previous: Option<CallStatus>,
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    /// The items this call stored (not those stored before).
    pub stored: Vec<ConversationItem>,
    /// Highest stored sequence number: what to acknowledge.
    pub last_seq: u64,
}

/// Where a live call's media runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAttachment {
    pub stream_sid: String,
    pub call_sid: String,
    pub sidecar_id: String,
}

/// The system of record.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new agent as given (id, version and times set by the caller).
    /// `AlreadyExists` when one of its numbers belongs to another agent.
    async fn create_agent(&self, agent: AgentSettings) -> StoreResult<AgentSettings>;
    async fn get_agent(&self, id: &str) -> StoreResult<AgentSettings>;
    /// Replaces the agent whose id is `agent.id` if its stored version is
    /// `agent.version`; stores and returns it with the version incremented and
    /// `updated_at` set to `now` (`created_at` is kept).
    async fn update_agent(
        &self,
        agent: AgentSettings,
        now: Timestamp,
    ) -> StoreResult<AgentSettings>;
    /// Deletes an agent, only at `expected_version` when one is given.
    async fn delete_agent(&self, id: &str, expected_version: Option<i64>) -> StoreResult<()>;
    async fn list_agents(&self, page: &PageRequest) -> StoreResult<Page<AgentSettings>>;
    /// The agent that answers calls to `phone`.
    async fn agent_by_phone(&self, phone: &str) -> StoreResult<Option<AgentSettings>>;

    /// Stores a new session. `AlreadyExists` when its Twilio call SID is recorded
    /// already. Its conversation starts empty: items come through `append_items`.
    async fn create_session(&self, session: CallSession) -> StoreResult<CallSession>;
    /// A session (its `last_seq`, not its items: those are read with `list_items`).
    async fn get_session(&self, id: &str) -> StoreResult<CallSession>;
    /// The session of a Twilio call SID.
    async fn session_by_call_sid(&self, call_sid: &str) -> StoreResult<Option<CallSession>>;
    /// Sessions newest first.
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CallSession>>;
    /// Applies a status change atomically through the status machine.
    async fn update_status(
        &self,
        id: &str,
        change: &StatusChange,
        now: Timestamp,
    ) -> StoreResult<StatusOutcome>;
    /// Appends a batch idempotently (see `conversation::plan_append`).
    async fn append_items(
        &self,
        id: &str,
        batch: &[ConversationItem],
    ) -> StoreResult<AppendOutcome>;
    /// Reads part of a call's conversation (see [`ItemsRequest`]); only items through
    /// the `last_seq` it reports, so never one of a batch still being stored.
    /// `NotFound` for an unknown call.
    async fn list_items(&self, id: &str, request: &ItemsRequest) -> StoreResult<ConversationPage>;
    /// Records the media stream carrying a live call; returns the session.
    async fn attach_stream(
        &self,
        id: &str,
        stream: &StreamAttachment,
        now: Timestamp,
    ) -> StoreResult<CallSession>;
    /// Replaces the call's cumulative usage.
    async fn record_usage(&self, id: &str, usage: &Usage, now: Timestamp) -> StoreResult<()>;

    /// Sets the liveness lease of every live session among `ids` to `until` (see
    /// `crate::liveness`); unknown and ended sessions are skipped. Returns how many
    /// sessions were renewed.
    async fn renew_leases(&self, ids: &[String], until: Timestamp) -> StoreResult<u64>;
    /// Live sessions whose lease ended before `now`, soonest expired first, at most
    /// `limit`. Sessions without a lease are never among them.
    async fn expired_leases(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<CallSession>>;
    /// Takes the named cluster-wide lease for `holder` until `until` when it is free,
    /// expired at `now`, or `holder`'s already (then it is extended). True when
    /// `holder` holds it after the call. At most one holder at a time: this is how one
    /// replica among several does a job.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores a new campaign as given (id, version, state and times set by the caller).
    async fn create_campaign(&self, campaign: Campaign) -> StoreResult<Campaign>;
    async fn get_campaign(&self, id: &str) -> StoreResult<Campaign>;
    /// Campaigns newest first, only those in `state` when one is given.
    async fn list_campaigns(
        &self,
        state: Option<CampaignState>,
        page: &PageRequest,
    ) -> StoreResult<Page<Campaign>>;
    /// Replaces the campaign's settings (not its state or `created_at`) if its stored
    /// version is `campaign.version`; returns it with the version incremented and
    /// `updated_at` set to `now`.
    async fn update_campaign(&self, campaign: Campaign, now: Timestamp) -> StoreResult<Campaign>;
    /// Applies `action` through `CampaignState::apply` atomically; a cancel also
    /// cancels the campaign's pending and retry-wait targets. Bumps the version.
    async fn change_campaign_state(
        &self,
        id: &str,
        action: CampaignAction,
        now: Timestamp,
    ) -> StoreResult<Campaign>;
    /// Adds targets (ids and times set by the caller) to a campaign that is not final,
    /// idempotently by `target_key`: one outcome per target, in order. A key seen
    /// earlier in the same batch is a duplicate of that target.
    async fn add_targets(
        &self,
        campaign_id: &str,
        targets: Vec<CampaignTarget>,
    ) -> StoreResult<Vec<TargetOutcome>>;
    /// A campaign's targets in upload order, only those in `state` when one is given.
    /// `NotFound` for an unknown campaign.
    async fn list_targets(
        &self,
        campaign_id: &str,
        state: Option<TargetState>,
        page: &PageRequest,
    ) -> StoreResult<Page<CampaignTarget>>;
    /// How many of a campaign's targets are in each state.
    async fn campaign_progress(&self, campaign_id: &str) -> StoreResult<CampaignProgress>;
    /// One target. `NotFound` when the campaign has no such target.
    async fn get_target(&self, campaign_id: &str, target_id: &str) -> StoreResult<CampaignTarget>;
    /// The campaign's targets due at `now` (pending or waiting for a retry, with no
    /// `next_attempt_at` or one not after `now`), soonest due first and in upload order
    /// among equals, at most `limit`.
    async fn due_targets(
        &self,
        campaign_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<CampaignTarget>>;
    /// Applies `take` to a target (see `campaign::apply_take`) atomically, only while it
    /// is in a due state with `attempts` used: the target after the change, or `None`
    /// when it had changed (another dispatcher took it, the campaign was canceled).
    /// This is what makes each attempt dialled at most once.
    async fn take_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        attempts: u32,
        take: &TargetTake,
        now: Timestamp,
    ) -> StoreResult<Option<CampaignTarget>>;
    /// Records `update` (see `campaign::apply_update`) atomically, only while the target
    /// is dialing or in a call and its current call is `call_id`. True when recorded.
    async fn update_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        call_id: &str,
        update: &TargetUpdate,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// How many of the campaign's targets are dialing or in a call: its slots in use.
    async fn count_active_targets(&self, campaign_id: &str) -> StoreResult<u64>;
    /// Scheduled → running once its `start_at` is not after `now`. True when changed.
    async fn start_campaign(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
    /// Running → completed when it has targets and none of them is pending, waiting
    /// for a retry, dialing or in a call (one without targets waits for its upload); atomic with uploads, so a target added meanwhile keeps it
    /// running. True when changed.
    async fn complete_campaign(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
    /// How many live sessions hold a liveness lease: the calls sidecars carry and the
    /// outbound calls still ringing (the load campaigns yield to).
    async fn count_leased_calls(&self) -> StoreResult<u64>;

    /// Lists numbers (normalised E.164) on the do-not-call list; a number listed
    /// already keeps its entry. Returns how many were new.
    async fn add_do_not_call(&self, entries: Vec<DoNotCallEntry>) -> StoreResult<u64>;
    /// Returns how many of `phones` were listed.
    async fn remove_do_not_call(&self, phones: &[String]) -> StoreResult<u64>;
    /// The list in number order; the page token is the last number of the page.
    async fn list_do_not_call(&self, page: &PageRequest) -> StoreResult<Page<DoNotCallEntry>>;
    /// The entries of those of `phones` that are listed, in number order.
    async fn check_do_not_call(&self, phones: &[String]) -> StoreResult<Vec<DoNotCallEntry>>;
}

/// Checks a do-not-call page token: a number, as the previous page ended with.
pub(crate) fn check_phone_token(token: &str) -> StoreResult<()> {
    if token.is_empty() || crate::domain::validate_e164("page_token", token).is_ok() {
        Ok(())
    } else {
        Err(StoreError::BadPageToken(token.to_owned()))
    }
}

/// Checks a target page token: the id of the previous page's last target.
pub(crate) fn check_id_token(token: &str) -> StoreResult<()> {
    if token.is_empty() || uuid::Uuid::parse_str(token).is_ok() {
        Ok(())
    } else {
        Err(StoreError::BadPageToken(token.to_owned()))
    }
}
