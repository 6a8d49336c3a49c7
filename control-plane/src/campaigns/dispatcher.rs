//! The dispatcher: dials the running campaigns' due targets.
//!
//! Every replica runs one; the one holding the store lease [`DISPATCHER_LEASE`] dials,
//! the others try to take the lease every round and take over within its expiry when
//! the holder dies. Holding every campaign in one replica keeps the account-wide pace
//! exact; dialling itself is still safe without the lease, since each attempt is taken
//! in the store before Twilio is asked (`Store::take_target`).
//!
//! Each round (`REFRESH`) the holder reads the running campaigns and, for each, its
//! slots in use and its due targets (a short read through the due index); targets
//! whose calling window is closed are deferred to its opening. Between rounds it
//! places calls at the pace of both the campaign's and the account's [`Pacer`], while
//! the campaign has a free slot and the system is under its live-call ceiling. A call
//! is placed by a task of its own:
//! 1. the do-not-call list is checked (listed: the target ends skipped);
//! 2. the attempt is taken (`TargetTake::Dial` with the new session id);
//! 3. the session is stored (the campaign's and the target's variables fill the
//!    agent's placeholders) and Twilio is asked, once, to create the call — at the
//!    task's turn at the send gate ([`SendGate`]), which paces the requests
//!    themselves, so the store work before them adds no jitter to the pace Twilio
//!    sees;
//! 4. Twilio's answer: the call SID is recorded; a 429, a 5xx or no answer gives the
//!    attempt back to retry after a backoff (the call was not placed as far as anyone
//!    knows, and it is paced again when retried); any other refusal fails the target
//!    with Twilio's code and message.
//!
//! A running campaign whose targets are all final is completed (atomically against
//! uploads, see `Store::complete_campaign`); a scheduled one starts at its `start_at`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::pacer::Pacer;
use super::LoadCeiling;
use crate::domain::campaign::DO_NOT_CALL;
use crate::domain::{
    self, CallDirection, CallError, CallSession, Campaign, CampaignState, CampaignTarget,
    StatusChange, TargetState, TargetTake, TargetUpdate,
};
use crate::grpc::Services;
use crate::store::{PageRequest, StoreError, MAX_PAGE_SIZE};
use crate::twilio_api::{TwilioApi, TwilioError};

/// The store lease the dispatching replica holds.
pub const DISPATCHER_LEASE: &str = "campaign-dispatcher";
/// How long a taken lease lasts; renewed every round, taken over once expired.
const LEASE_TERM: Duration = Duration::from_secs(10);
/// How often campaigns, slots and due targets are read.
const REFRESH: Duration = Duration::from_millis(250);
/// Due targets read per campaign and round, at most.
const MAX_DUE_READ: usize = 500;
/// The longest wait before a placement Twilio refused without acting is repeated.
const MAX_PLACEMENT_BACKOFF: Duration = Duration::from_secs(60);
/// A target dialing this long with no session is one whose placement was cut short
/// (the replica died between taking it and storing its session): its attempt is
/// given back.
const LOST_PLACEMENT: Duration = Duration::from_secs(30);
/// How often targets holding slots are checked against their sessions.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// What the dispatcher needs besides the services.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// The account's calls per second (`SWITCHBOARD_TWILIO_MAX_CPS`).
    pub account_cps: f64,
    pub ceiling: LoadCeiling,
    /// Twilio without retries: a refused creation is retried by the dispatcher, paced.
    pub twilio: Option<Arc<dyn TwilioApi>>,
    /// Who holds the lease: stable across a restart of the same replica (its host and
    /// gRPC address), so a restarted replica takes its lease back at once instead of
    /// waiting for it to expire.
    pub holder: String,
}

/// Starts the dispatcher; abort the handle to stop it.
pub fn spawn(services: Services, config: DispatchConfig) -> JoinHandle<()> {
    let dispatcher = Dispatcher::new(services, config);
    tokio::spawn(dispatcher.run())
}

/// Targets handed to a placement task whose take has not finished: not queued again.
type InFlight = Arc<Mutex<HashSet<String>>>;

/// Paces the creation requests themselves: each placement waits here for its turn
/// (the campaign's and the account's) right before it asks Twilio.
#[derive(Clone)]
struct SendGate {
    campaign: Arc<Mutex<Pacer>>,
    account: Arc<Mutex<Pacer>>,
}

impl SendGate {
    /// Waits for the next turn and takes it.
    async fn turn(&self) {
        let at = {
            let mut campaign = lock(&self.campaign);
            let mut account = lock(&self.account);
            let now = Instant::now();
            let at = campaign.next_slot(now).max(account.next_slot(now));
            campaign.record(at);
            account.record(at);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

struct Dispatcher {
    services: Services,
    config: DispatchConfig,
    holder: String,
    holding: bool,
    account: Pacer,
    /// The account's pace at the send gate.
    account_gate: Arc<Mutex<Pacer>>,
    campaigns: HashMap<String, Running>,
    /// Whether the live-call ceiling lets campaigns dial.
    under_ceiling: bool,
    in_flight: InFlight,
    /// Placement failures per target, for the backoff of repeated placements.
    placement_failures: Arc<Mutex<HashMap<String, u32>>>,
    last_reconcile: Option<Instant>,
}

/// A running campaign as the dispatcher holds it.
struct Running {
    campaign: Campaign,
    /// When placements start: about on time for their turn at the gate.
    pacer: Pacer,
    /// The campaign's pace at the send gate.
    gate: Arc<Mutex<Pacer>>,
    queue: VecDeque<CampaignTarget>,
    /// Slots in use: read each round, plus the calls placed since.
    active: u64,
    /// The next caller id of the pool.
    next_from: usize,
}

impl Dispatcher {
    fn new(services: Services, config: DispatchConfig) -> Self {
        Self {
            account: Pacer::new(config.account_cps),
            account_gate: Arc::new(Mutex::new(Pacer::new(config.account_cps))),
            services,
            holder: config.holder.clone(),
            config,
            holding: false,
            campaigns: HashMap::new(),
            under_ceiling: true,
            in_flight: InFlight::default(),
            placement_failures: Arc::default(),
            last_reconcile: None,
        }
    }

    async fn run(mut self) {
        let mut next_refresh = Instant::now();
        loop {
            let now = Instant::now();
            if now >= next_refresh {
                self.refresh().await;
                next_refresh = Instant::now() + REFRESH;
                continue;
            }
            match self.next_call(now) {
                Some((id, at)) if at <= now => self.place(&id, now),
                Some((_, at)) => tokio::time::sleep_until(at.min(next_refresh)).await,
                None => tokio::time::sleep_until(next_refresh).await,
            }
        }
    }

    /// The campaign whose next call is due soonest, and when.
    fn next_call(&self, now: Instant) -> Option<(String, Instant)> {
        if !self.holding || !self.under_ceiling {
            return None;
        }
        let account_slot = self.account.next_slot(now);
        self.campaigns
            .iter()
            .filter(|(_, r)| {
                !r.queue.is_empty() && r.active < u64::from(r.campaign.pacing.max_concurrent_calls)
            })
            .map(|(id, r)| (id.clone(), r.pacer.next_slot(now).max(account_slot)))
            .min_by_key(|(_, at)| *at)
    }

    /// Hands the campaign's next target to a placement task.
    fn place(&mut self, campaign_id: &str, now: Instant) {
        let Some(running) = self.campaigns.get_mut(campaign_id) else {
            return;
        };
        let Some(target) = running.queue.pop_front() else {
            return;
        };
        running.pacer.record(now);
        self.account.record(now);
        running.active += 1;
        let pool = &running.campaign.from_numbers;
        let from = pool
            .get(running.next_from % pool.len().max(1))
            .cloned()
            .unwrap_or_default();
        running.next_from = running.next_from.wrapping_add(1);
        lock(&self.in_flight).insert(target.id.clone());
        let placement = Placement {
            gate: SendGate {
                campaign: running.gate.clone(),
                account: self.account_gate.clone(),
            },
            services: self.services.clone(),
            twilio: self.config.twilio.clone(),
            campaign: running.campaign.clone(),
            target,
            from,
            in_flight: self.in_flight.clone(),
            failures: self.placement_failures.clone(),
        };
        tokio::spawn(placement.run());
    }

    /// One round: the lease, the campaigns, their slots and due targets, the ceiling.
    async fn refresh(&mut self) {
        let store = self.services.store.clone();
        let now = domain::now();
        let until = now + chrono::Duration::from_std(LEASE_TERM).unwrap_or_default();
        let held = match store
            .acquire_lease(DISPATCHER_LEASE, &self.holder, now, until)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "campaign dispatcher: cannot renew its lease; not dialing");
                false
            }
        };
        match (self.holding, held) {
            (false, true) => {
                tracing::info!(holder = %self.holder, "this replica dispatches campaigns now")
            }
            (true, false) => {
                tracing::info!(holder = %self.holder, "this replica no longer dispatches campaigns")
            }
            _ => {}
        }
        self.holding = held;
        if !held {
            self.campaigns.clear();
            return;
        }
        if let Err(e) = self.read_campaigns().await {
            tracing::warn!(error = %e, "campaign dispatcher: cannot read campaigns");
            return;
        }
        self.under_ceiling = match self.config.ceiling.max_live_calls {
            None => true,
            Some(_) => match store.count_leased_calls().await {
                Ok(live) => self.config.ceiling.allows(live),
                Err(e) => {
                    tracing::warn!(error = %e, "campaign dispatcher: cannot count live calls");
                    false
                }
            },
        };
        let reconcile = self
            .last_reconcile
            .is_none_or(|at| at.elapsed() >= RECONCILE_EVERY);
        if reconcile {
            self.last_reconcile = Some(Instant::now());
        }
        let ids: Vec<String> = self.campaigns.keys().cloned().collect();
        for id in ids {
            if reconcile {
                if let Err(e) = self.reconcile(&id).await {
                    tracing::warn!(campaign_id = %id, error = %e, "campaign dispatcher: reconcile failed");
                }
            }
            if let Err(e) = self.refill(&id).await {
                tracing::warn!(campaign_id = %id, error = %e, "campaign dispatcher: cannot read targets");
            }
        }
    }

    /// Reads the running and scheduled campaigns: starts those due, keeps the running
    /// ones (with their latest settings), forgets the others.
    async fn read_campaigns(&mut self) -> Result<(), StoreError> {
        let store = self.services.store.clone();
        let now = domain::now();
        for scheduled in list_all(store.as_ref(), CampaignState::Scheduled).await? {
            if scheduled.start_at.is_none_or(|at| at <= now)
                && store.start_campaign(&scheduled.id, now).await?
            {
                tracing::info!(campaign_id = %scheduled.id, "campaign started at its start time");
            }
        }
        let running = list_all(store.as_ref(), CampaignState::Running).await?;
        let keep: HashSet<String> = running.iter().map(|c| c.id.clone()).collect();
        self.campaigns.retain(|id, _| keep.contains(id));
        for campaign in running {
            match self.campaigns.get_mut(&campaign.id) {
                Some(held) => {
                    let cps = campaign.pacing.calls_per_second;
                    if held.pacer.rate() != cps {
                        held.pacer.set_rate(cps);
                        lock(&held.gate).set_rate(cps);
                    }
                    held.campaign = campaign;
                }
                None => {
                    self.campaigns.insert(
                        campaign.id.clone(),
                        Running {
                            pacer: Pacer::new(campaign.pacing.calls_per_second),
                            gate: Arc::new(Mutex::new(Pacer::new(
                                campaign.pacing.calls_per_second,
                            ))),
                            campaign,
                            queue: VecDeque::new(),
                            active: 0,
                            next_from: 0,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Reads a campaign's slots in use and due targets; defers those whose window is
    /// closed; completes the campaign when nothing is left.
    async fn refill(&mut self, id: &str) -> Result<(), StoreError> {
        let store = self.services.store.clone();
        let Some(running) = self.campaigns.get(id) else {
            return Ok(());
        };
        let campaign = running.campaign.clone();
        let active = store.count_active_targets(id).await?;
        let now = domain::now();
        // Enough for a round and a half at the campaign's pace, and the free slots.
        let per_round = (campaign.pacing.calls_per_second * REFRESH.as_secs_f64() * 1.5).ceil();
        let free = u64::from(campaign.pacing.max_concurrent_calls).saturating_sub(active);
        let want = (per_round as usize)
            .clamp(1, MAX_DUE_READ)
            .min(free as usize);
        let due = if want == 0 {
            Vec::new()
        } else {
            store.due_targets(id, now, want).await?
        };
        let mut queue = VecDeque::with_capacity(due.len());
        {
            let in_flight = lock(&self.in_flight);
            for target in due {
                if !in_flight.contains(&target.id) {
                    queue.push_back(target);
                }
            }
        }
        let mut open = VecDeque::with_capacity(queue.len());
        for target in queue {
            let closed_until = campaign
                .window
                .as_ref()
                .and_then(|w| w.next_open(&target.time_zone, now));
            match closed_until {
                None => open.push_back(target),
                Some(until) => {
                    let take = TargetTake::Defer { until };
                    store
                        .take_target(id, &target.id, target.attempts, &take, now)
                        .await?;
                }
            }
        }
        let nothing_left = open.is_empty() && active == 0 && want > 0;
        if let Some(running) = self.campaigns.get_mut(id) {
            running.active = active;
            running.queue = open;
        }
        if nothing_left && store.complete_campaign(id, now).await? {
            tracing::info!(campaign_id = %id, "campaign completed");
            self.campaigns.remove(id);
        }
        Ok(())
    }

    /// Checks the targets holding slots of a campaign against their sessions: a final
    /// session whose target did not follow (a replica died in between) moves it on; a
    /// target dialing with no session gives its attempt back.
    async fn reconcile(&self, id: &str) -> Result<(), StoreError> {
        let store = self.services.store.clone();
        for state in [TargetState::Dialing, TargetState::InCall] {
            let page = store
                .list_targets(id, Some(state), &PageRequest::first(MAX_PAGE_SIZE))
                .await?;
            let stale_before = domain::now() - chrono::Duration::seconds(5);
            for target in page.items {
                if target.updated_at > stale_before || lock(&self.in_flight).contains(&target.id) {
                    continue;
                }
                match store.get_session(&target.last_call_id).await {
                    Ok(session) if session.status.is_final() => {
                        super::follow_call(store.as_ref(), &session).await?;
                    }
                    Ok(_) => {}
                    Err(StoreError::NotFound { .. }) => {
                        let lost_before = domain::now()
                            - chrono::Duration::from_std(LOST_PLACEMENT).unwrap_or_default();
                        if target.updated_at < lost_before {
                            tracing::warn!(campaign_id = %id, target_id = %target.id, "a placement was cut short; its attempt is given back");
                            give_back(store.as_ref(), &target, domain::now()).await?;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// Every campaign in `state`.
async fn list_all(
    store: &dyn crate::store::Store,
    state: CampaignState,
) -> Result<Vec<Campaign>, StoreError> {
    let mut all = Vec::new();
    let mut page = PageRequest::first(MAX_PAGE_SIZE);
    loop {
        let read = store.list_campaigns(Some(state), &page).await?;
        all.extend(read.items);
        if read.next_token.is_empty() {
            return Ok(all);
        }
        page = PageRequest::new(MAX_PAGE_SIZE as u32, read.next_token);
    }
}

/// Returns a dialing target's attempt: due again at `at`, its attempts as before.
async fn give_back(
    store: &dyn crate::store::Store,
    target: &CampaignTarget,
    at: domain::Timestamp,
) -> Result<bool, StoreError> {
    let update = TargetUpdate {
        state: TargetState::RetryWait,
        attempts: target.attempts.saturating_sub(1),
        last_call_status: None,
        last_error: None,
        next_attempt_at: Some(at),
    };
    store
        .update_target(
            &target.campaign_id,
            &target.id,
            &target.last_call_id,
            &update,
            domain::now(),
        )
        .await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One attempt of one target, placed by a task of its own.
struct Placement {
    gate: SendGate,
    services: Services,
    twilio: Option<Arc<dyn TwilioApi>>,
    campaign: Campaign,
    target: CampaignTarget,
    from: String,
    in_flight: InFlight,
    failures: Arc<Mutex<HashMap<String, u32>>>,
}

impl Placement {
    async fn run(self) {
        let target_id = self.target.id.clone();
        let campaign_id = self.campaign.id.clone();
        if let Err(e) = self.place().await {
            tracing::warn!(%campaign_id, %target_id, error = %e, "campaign call not placed");
        }
        lock(&self.in_flight).remove(&target_id);
    }

    async fn place(&self) -> Result<(), StoreError> {
        let store = self.services.store.clone();
        let target = &self.target;
        let now = domain::now();
        let listed = store
            .check_do_not_call(std::slice::from_ref(&target.phone))
            .await?;
        if let Some(entry) = listed.first() {
            let reason = if entry.reason.is_empty() {
                "the number is on the do-not-call list".to_owned()
            } else {
                format!("the number is on the do-not-call list: {}", entry.reason)
            };
            let take = TargetTake::Skip {
                error: CallError {
                    code: DO_NOT_CALL.to_owned(),
                    message: reason,
                },
            };
            store
                .take_target(&self.campaign.id, &target.id, target.attempts, &take, now)
                .await?;
            tracing::info!(campaign_id = %self.campaign.id, target_id = %target.id, "campaign target skipped: do not call");
            return Ok(());
        }
        let session = self.session(now);
        let take = TargetTake::Dial {
            call_id: session.id.clone(),
        };
        let Some(taken) = store
            .take_target(&self.campaign.id, &target.id, target.attempts, &take, now)
            .await?
        else {
            // Taken by someone else, canceled, or changed: nothing to do.
            return Ok(());
        };
        let created = store.create_session(session).await?;
        self.services.publish_status(&created, None).await;
        self.call(&created, &taken).await
    }

    /// The session of this attempt: an outbound call of the campaign's agent, with the
    /// campaign's variables and the target's (which win) for the agent's placeholders.
    fn session(&self, now: domain::Timestamp) -> CallSession {
        let target = &self.target;
        let mut session = CallSession::new(
            CallDirection::Outbound,
            self.from.clone(),
            target.phone.clone(),
            now,
        );
        session.agent_id.clone_from(&self.campaign.agent_id);
        session.customer.phone.clone_from(&target.phone);
        session.customer.name.clone_from(&target.name);
        session.variables = self.campaign.variables.clone();
        session.variables.extend(target.variables.clone());
        if !target.name.is_empty() {
            session
                .variables
                .entry("name".to_owned())
                .or_insert_with(|| target.name.clone());
        }
        session.campaign_id.clone_from(&self.campaign.id);
        session.campaign_target_id.clone_from(&target.id);
        session.lease_expires_at = Some(self.services.liveness.outbound_lease_from(now));
        session
    }

    /// Asks Twilio to create the call and records the answer.
    async fn call(&self, session: &CallSession, taken: &CampaignTarget) -> Result<(), StoreError> {
        let (Some(twilio), Some(voice_url), Some(status_url)) = (
            &self.twilio,
            &self.services.webhooks.voice_url,
            &self.services.webhooks.status_url,
        ) else {
            let missing = self.services.cannot_place_calls().unwrap_or_default();
            let error = TwilioError::Invalid(format!("cannot place calls: {missing}"));
            return self.refused(session, taken, &error, false).await;
        };
        let request = crate::outbound::create_call(session, voice_url, status_url);
        self.gate.turn().await;
        match twilio.create_call(&request).await {
            Ok(created) => {
                lock(&self.failures).remove(&taken.id);
                let change = StatusChange {
                    twilio_call_sid: created.sid.unwrap_or_default(),
                    ..StatusChange::to(session.status)
                };
                tracing::info!(campaign_id = %self.campaign.id, target_id = %taken.id, call_id = %session.id, attempt = taken.attempts, "campaign call placed");
                match self.services.change_status(&session.id, &change).await {
                    // A status callback may have moved the session on first, and
                    // recorded the SID itself.
                    Ok(_) => Ok(()),
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(()),
                    Err(status) => Err(StoreError::Unavailable(status.message().to_owned())),
                }
            }
            Err(error) => {
                let retry = matches!(
                    &error,
                    TwilioError::Rejected { status, code, .. }
                        if *status == 429 || *status >= 500 || *code == crate::twilio_api::TOO_MANY_REQUESTS
                ) || matches!(error, TwilioError::Unreachable(_));
                self.refused(session, taken, &error, retry).await
            }
        }
    }

    /// Records a creation Twilio refused (or that could not be asked): the attempt is
    /// given back to retry after a backoff when `retry`, else the target fails with
    /// Twilio's reason. Then the session ends `failed` (its target has moved on
    /// already, so the status change leaves it be).
    async fn refused(
        &self,
        session: &CallSession,
        taken: &CampaignTarget,
        error: &TwilioError,
        retry: bool,
    ) -> Result<(), StoreError> {
        let store = self.services.store.clone();
        let change = crate::outbound::not_placed(error);
        let now = domain::now();
        let update = if retry {
            let failures = {
                let mut all = lock(&self.failures);
                let n = all.entry(taken.id.clone()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            };
            let backoff = Duration::from_secs(1)
                .saturating_mul(1 << failures.min(6))
                .min(MAX_PLACEMENT_BACKOFF);
            tracing::warn!(campaign_id = %self.campaign.id, target_id = %taken.id, error = %error, backoff_ms = backoff.as_millis() as u64, "twilio did not take the call; the attempt is retried");
            TargetUpdate {
                state: TargetState::RetryWait,
                attempts: taken.attempts.saturating_sub(1),
                last_call_status: None,
                last_error: change.error.clone(),
                next_attempt_at: Some(
                    now + chrono::Duration::from_std(backoff).unwrap_or_default(),
                ),
            }
        } else {
            tracing::warn!(campaign_id = %self.campaign.id, target_id = %taken.id, error = %error, "twilio refused the call; the target fails");
            TargetUpdate {
                state: TargetState::Failed,
                attempts: taken.attempts,
                last_call_status: Some(domain::CallStatus::Failed),
                last_error: change.error.clone(),
                next_attempt_at: None,
            }
        };
        store
            .update_target(&self.campaign.id, &taken.id, &session.id, &update, now)
            .await?;
        if let Err(status) = self.services.change_status(&session.id, &change).await {
            tracing::warn!(call_id = %session.id, "could not record the unplaced call: {}", status.message());
        }
        Ok(())
    }
}
