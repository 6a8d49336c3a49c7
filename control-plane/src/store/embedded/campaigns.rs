//! Campaigns in the embedded store: `campaigns` (id → JSON), `campaign_targets`
//! ((campaign id, target id) → JSON, so a campaign's targets are one key range in
//! upload order), `campaign_target_keys` ((campaign id, target key) → target id: what
//! makes uploads idempotent) and `do_not_call` (E.164 number → JSON).
//!
//! Two index tables serve the dispatcher: `campaign_targets_due` ((campaign id, due
//! time in epoch ms, target id) for the targets in a due state, 0 when pending with no
//! time: a due read is one short key range) and `campaign_targets_active` ((campaign
//! id, target id) for the targets dialing or in a call: the slots in use). Every write
//! of a target goes through `put_target`, which keeps both right.
//!
//! An upload is one write job, so a batch of 10,000 targets is one transaction (and
//! shares its commit with whatever else is queued). Progress is counted by reading the
//! state of each of the campaign's targets in one snapshot.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Deserialize;

use super::{decode, encode, internal, not_found, page_newest_first};
use crate::domain::campaign::{apply_take, apply_update, TargetTake, TargetUpdate};
use crate::domain::{
    Campaign, CampaignAction, CampaignProgress, CampaignState, CampaignTarget, DoNotCallEntry,
    TargetOutcome, TargetState, Timestamp,
};
use crate::store::{check_id_token, check_phone_token, Page, PageRequest, StoreError, StoreResult};

pub(super) const CAMPAIGNS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("campaigns");
pub(super) const TARGETS: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("campaign_targets");
pub(super) const TARGET_KEYS: TableDefinition<'_, (&str, &str), &str> =
    TableDefinition::new("campaign_target_keys");
pub(super) const DO_NOT_CALL: TableDefinition<'_, &str, &[u8]> =
    TableDefinition::new("do_not_call");
const DUE: TableDefinition<'_, (&str, i64, &str), ()> =
    TableDefinition::new("campaign_targets_due");
const ACTIVE: TableDefinition<'_, (&str, &str), ()> =
    TableDefinition::new("campaign_targets_active");

const CAMPAIGN: &str = "campaign";

/// Creates the tables, so reads of a fresh file find them.
pub(super) fn open_tables(txn: &WriteTransaction) -> StoreResult<()> {
    txn.open_table(CAMPAIGNS).map_err(internal)?;
    txn.open_table(TARGETS).map_err(internal)?;
    txn.open_table(TARGET_KEYS).map_err(internal)?;
    txn.open_table(DO_NOT_CALL).map_err(internal)?;
    txn.open_table(DUE).map_err(internal)?;
    txn.open_table(ACTIVE).map_err(internal)?;
    Ok(())
}

/// The due-index time of a target in a due state.
fn due_ms(target: &CampaignTarget) -> i64 {
    target.next_attempt_at.map_or(0, |t| t.timestamp_millis())
}

/// Stores `target` (which was `before`, if stored already) and keeps the due and active
/// indexes right.
fn put_target(
    txn: &WriteTransaction,
    before: Option<&CampaignTarget>,
    target: &CampaignTarget,
) -> StoreResult<()> {
    let campaign_id = target.campaign_id.as_str();
    let id = target.id.as_str();
    let mut due = txn.open_table(DUE).map_err(internal)?;
    let mut active = txn.open_table(ACTIVE).map_err(internal)?;
    if let Some(before) = before {
        if before.state.is_due_state() {
            due.remove((campaign_id, due_ms(before), id))
                .map_err(internal)?;
        }
        if before.state.holds_slot() {
            active.remove((campaign_id, id)).map_err(internal)?;
        }
    }
    if target.state.is_due_state() {
        due.insert((campaign_id, due_ms(target), id), ())
            .map_err(internal)?;
    }
    if target.state.holds_slot() {
        active.insert((campaign_id, id), ()).map_err(internal)?;
    }
    let bytes = encode(target)?;
    let mut targets = txn.open_table(TARGETS).map_err(internal)?;
    targets
        .insert((campaign_id, id), bytes.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn load_target(
    txn: &WriteTransaction,
    campaign_id: &str,
    target_id: &str,
) -> StoreResult<Option<CampaignTarget>> {
    let targets = txn.open_table(TARGETS).map_err(internal)?;
    let value = targets.get((campaign_id, target_id)).map_err(internal)?;
    value.map(|v| decode(v.value())).transpose()
}

pub(super) fn get_target(
    txn: &ReadTransaction,
    campaign_id: &str,
    target_id: &str,
) -> StoreResult<CampaignTarget> {
    let targets = txn.open_table(TARGETS).map_err(internal)?;
    let value = targets.get((campaign_id, target_id)).map_err(internal)?;
    let value = value.ok_or_else(|| not_found("campaign target", target_id))?;
    decode(value.value())
}

pub(super) fn due_targets(
    txn: &ReadTransaction,
    campaign_id: &str,
    now: Timestamp,
    limit: usize,
) -> StoreResult<Vec<CampaignTarget>> {
    let due = txn.open_table(DUE).map_err(internal)?;
    let targets = txn.open_table(TARGETS).map_err(internal)?;
    let range = due
        .range((campaign_id, i64::MIN, "")..=(campaign_id, now.timestamp_millis(), "\u{10FFFF}"))
        .map_err(internal)?;
    let mut found = Vec::with_capacity(limit.min(1024));
    for entry in range.take(limit) {
        let (key, _) = entry.map_err(internal)?;
        let (_, _, id) = key.value();
        if let Some(value) = targets.get((campaign_id, id)).map_err(internal)? {
            found.push(decode(value.value())?);
        }
    }
    Ok(found)
}

pub(super) fn take_target(
    txn: &WriteTransaction,
    campaign_id: &str,
    target_id: &str,
    attempts: u32,
    take: &TargetTake,
    now: Timestamp,
) -> StoreResult<Option<CampaignTarget>> {
    let Some(before) = load_target(txn, campaign_id, target_id)? else {
        return Ok(None);
    };
    if !before.state.is_due_state() || before.attempts != attempts {
        return Ok(None);
    }
    let after = apply_take(&before, take, now);
    put_target(txn, Some(&before), &after)?;
    Ok(Some(after))
}

pub(super) fn update_target(
    txn: &WriteTransaction,
    campaign_id: &str,
    target_id: &str,
    call_id: &str,
    update: &TargetUpdate,
    now: Timestamp,
) -> StoreResult<bool> {
    let Some(before) = load_target(txn, campaign_id, target_id)? else {
        return Ok(false);
    };
    if before.last_call_id != call_id || !before.state.holds_slot() {
        return Ok(false);
    }
    let after = apply_update(&before, update, now);
    put_target(txn, Some(&before), &after)?;
    Ok(true)
}

pub(super) fn count_active(txn: &ReadTransaction, campaign_id: &str) -> StoreResult<u64> {
    let active = txn.open_table(ACTIVE).map_err(internal)?;
    let mut count = 0;
    for entry in active.range((campaign_id, "")..).map_err(internal)? {
        let (key, _) = entry.map_err(internal)?;
        if key.value().0 != campaign_id {
            break;
        }
        count += 1;
    }
    Ok(count)
}

/// True when the campaign has a target that is due (now or later) or being called.
fn has_open_targets(txn: &WriteTransaction, campaign_id: &str) -> StoreResult<bool> {
    let due = txn.open_table(DUE).map_err(internal)?;
    let first_due = due
        .range((campaign_id, i64::MIN, "")..=(campaign_id, i64::MAX, "\u{10FFFF}"))
        .map_err(internal)?
        .next()
        .is_some();
    let active = txn.open_table(ACTIVE).map_err(internal)?;
    let first_active = active
        .range((campaign_id, "")..)
        .map_err(internal)?
        .next()
        .transpose()
        .map_err(internal)?
        .is_some_and(|(key, _)| key.value().0 == campaign_id);
    Ok(first_due || first_active)
}

pub(super) fn start(txn: &WriteTransaction, id: &str, now: Timestamp) -> StoreResult<bool> {
    let mut campaign = load(txn, id)?;
    let due = campaign.start_at.is_none_or(|at| at <= now);
    if campaign.state != CampaignState::Scheduled || !due {
        return Ok(false);
    }
    campaign.state = CampaignState::Running;
    campaign.version = bump(campaign.version, id)?;
    campaign.updated_at = now;
    save(txn, &campaign)?;
    Ok(true)
}

pub(super) fn complete(txn: &WriteTransaction, id: &str, now: Timestamp) -> StoreResult<bool> {
    let mut campaign = load(txn, id)?;
    if campaign.state != CampaignState::Running || has_open_targets(txn, id)? {
        return Ok(false);
    }
    // A campaign with no targets yet is waiting for its upload, not done.
    let has_targets = txn
        .open_table(TARGETS)
        .map_err(internal)?
        .range((id, "")..)
        .map_err(internal)?
        .next()
        .transpose()
        .map_err(internal)?
        .is_some_and(|(key, _)| key.value().0 == id);
    if !has_targets {
        return Ok(false);
    }
    campaign.state = CampaignState::Completed;
    campaign.version = bump(campaign.version, id)?;
    campaign.updated_at = now;
    save(txn, &campaign)?;
    Ok(true)
}

fn load(txn: &WriteTransaction, id: &str) -> StoreResult<Campaign> {
    let campaigns = txn.open_table(CAMPAIGNS).map_err(internal)?;
    let value = campaigns.get(id).map_err(internal)?;
    let value = value.ok_or_else(|| not_found(CAMPAIGN, id))?;
    decode(value.value())
}

fn save(txn: &WriteTransaction, campaign: &Campaign) -> StoreResult<()> {
    let bytes = encode(campaign)?;
    let mut campaigns = txn.open_table(CAMPAIGNS).map_err(internal)?;
    campaigns
        .insert(campaign.id.as_str(), bytes.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn bump(version: i64, id: &str) -> StoreResult<i64> {
    version
        .checked_add(1)
        .ok_or_else(|| StoreError::Internal(format!("campaign {id}: version {version} overflows")))
}

pub(super) fn create(txn: &WriteTransaction, campaign: Campaign) -> StoreResult<Campaign> {
    let exists = txn
        .open_table(CAMPAIGNS)
        .map_err(internal)?
        .get(campaign.id.as_str())
        .map_err(internal)?
        .is_some();
    if exists {
        return Err(StoreError::AlreadyExists(format!(
            "campaign {} exists",
            campaign.id
        )));
    }
    save(txn, &campaign)?;
    Ok(campaign)
}

pub(super) fn get(txn: &ReadTransaction, id: &str) -> StoreResult<Campaign> {
    let campaigns = txn.open_table(CAMPAIGNS).map_err(internal)?;
    let value = campaigns.get(id).map_err(internal)?;
    let value = value.ok_or_else(|| not_found(CAMPAIGN, id))?;
    decode(value.value())
}

pub(super) fn list(
    txn: &ReadTransaction,
    state: Option<CampaignState>,
    page: &PageRequest,
) -> StoreResult<Page<Campaign>> {
    let campaigns = txn.open_table(CAMPAIGNS).map_err(internal)?;
    page_newest_first(
        &campaigns,
        page,
        |c: &Campaign| state.is_none_or(|s| c.state == s),
        |c| &c.id,
    )
}

pub(super) fn update(
    txn: &WriteTransaction,
    campaign: Campaign,
    now: Timestamp,
) -> StoreResult<Campaign> {
    let stored = load(txn, &campaign.id)?;
    if stored.version != campaign.version {
        return Err(StoreError::VersionConflict {
            kind: CAMPAIGN,
            id: campaign.id,
            expected: campaign.version,
            actual: stored.version,
        });
    }
    let updated = Campaign {
        version: bump(stored.version, &stored.id)?,
        state: stored.state,
        created_at: stored.created_at,
        updated_at: now,
        ..campaign
    };
    save(txn, &updated)?;
    Ok(updated)
}

pub(super) fn change_state(
    txn: &WriteTransaction,
    id: &str,
    action: CampaignAction,
    now: Timestamp,
) -> StoreResult<Campaign> {
    let mut campaign = load(txn, id)?;
    let next = campaign
        .state
        .apply(action, campaign.start_at, now)
        .map_err(|source| StoreError::CampaignTransition {
            campaign_id: id.to_owned(),
            source,
        })?;
    campaign.state = next;
    campaign.version = bump(campaign.version, id)?;
    campaign.updated_at = now;
    save(txn, &campaign)?;
    if action == CampaignAction::Cancel {
        cancel_targets(txn, id, now)?;
    }
    Ok(campaign)
}

/// Moves the campaign's pending and retry-wait targets to canceled.
fn cancel_targets(txn: &WriteTransaction, campaign_id: &str, now: Timestamp) -> StoreResult<()> {
    let mut canceled = Vec::new();
    {
        let targets = txn.open_table(TARGETS).map_err(internal)?;
        for entry in targets.range((campaign_id, "")..).map_err(internal)? {
            let (key, value) = entry.map_err(internal)?;
            if key.value().0 != campaign_id {
                break;
            }
            let target: CampaignTarget = decode(value.value())?;
            if target.state.cancelable() {
                canceled.push(target);
            }
        }
    }
    for before in canceled {
        let mut target = before.clone();
        target.state = TargetState::Canceled;
        target.next_attempt_at = None;
        target.updated_at = now;
        put_target(txn, Some(&before), &target)?;
    }
    Ok(())
}

pub(super) fn add_targets(
    txn: &WriteTransaction,
    campaign_id: &str,
    targets: Vec<CampaignTarget>,
) -> StoreResult<Vec<TargetOutcome>> {
    let campaign = load(txn, campaign_id)?;
    if campaign.state.is_final() {
        return Err(StoreError::CampaignFinal {
            campaign_id: campaign_id.to_owned(),
            state: campaign.state,
        });
    }
    let mut keys = txn.open_table(TARGET_KEYS).map_err(internal)?;
    let mut outcomes = Vec::with_capacity(targets.len());
    for target in targets {
        let existing = keys
            .get((campaign_id, target.target_key.as_str()))
            .map_err(internal)?
            .map(|id| id.value().to_owned());
        if let Some(id) = existing {
            outcomes.push(TargetOutcome::Duplicate(id));
            continue;
        }
        keys.insert(
            (campaign_id, target.target_key.as_str()),
            target.id.as_str(),
        )
        .map_err(internal)?;
        put_target(txn, None, &target)?;
        outcomes.push(TargetOutcome::Accepted(target.id));
    }
    Ok(outcomes)
}

/// Fails with `NotFound` unless the campaign exists.
fn check_campaign(txn: &ReadTransaction, id: &str) -> StoreResult<()> {
    let campaigns = txn.open_table(CAMPAIGNS).map_err(internal)?;
    match campaigns.get(id).map_err(internal)? {
        Some(_) => Ok(()),
        None => Err(not_found(CAMPAIGN, id)),
    }
}

pub(super) fn list_targets(
    txn: &ReadTransaction,
    campaign_id: &str,
    state: Option<TargetState>,
    page: &PageRequest,
) -> StoreResult<Page<CampaignTarget>> {
    check_id_token(&page.token)?;
    check_campaign(txn, campaign_id)?;
    let targets = txn.open_table(TARGETS).map_err(internal)?;
    let range = if page.token.is_empty() {
        targets.range((campaign_id, "")..)
    } else {
        // Strictly after the token: the smallest key above it is the token plus NUL.
        let after = format!("{}\0", page.token);
        targets.range((campaign_id, after.as_str())..)
    }
    .map_err(internal)?;
    let mut items = Vec::with_capacity(page.size);
    let mut more = false;
    for entry in range {
        let (key, value) = entry.map_err(internal)?;
        if key.value().0 != campaign_id {
            break;
        }
        let target: CampaignTarget = decode(value.value())?;
        if state.is_some_and(|s| target.state != s) {
            continue;
        }
        if items.len() == page.size {
            more = true;
            break;
        }
        items.push(target);
    }
    let next_token = match (more, items.last()) {
        (true, Some(last)) => last.id.clone(),
        _ => String::new(),
    };
    Ok(Page { items, next_token })
}

/// The one field progress needs, so counting skips decoding the rest.
#[derive(Deserialize)]
struct StateOnly {
    state: TargetState,
}

pub(super) fn progress(txn: &ReadTransaction, campaign_id: &str) -> StoreResult<CampaignProgress> {
    check_campaign(txn, campaign_id)?;
    let targets = txn.open_table(TARGETS).map_err(internal)?;
    let mut progress = CampaignProgress::default();
    for entry in targets.range((campaign_id, "")..).map_err(internal)? {
        let (key, value) = entry.map_err(internal)?;
        if key.value().0 != campaign_id {
            break;
        }
        let only: StateOnly = decode(value.value())?;
        progress.add(only.state, 1);
    }
    Ok(progress)
}

pub(super) fn add_do_not_call(
    txn: &WriteTransaction,
    entries: Vec<DoNotCallEntry>,
) -> StoreResult<u64> {
    let mut list = txn.open_table(DO_NOT_CALL).map_err(internal)?;
    let mut added = 0;
    for entry in entries {
        if list.get(entry.phone.as_str()).map_err(internal)?.is_some() {
            continue;
        }
        let bytes = encode(&entry)?;
        list.insert(entry.phone.as_str(), bytes.as_slice())
            .map_err(internal)?;
        added += 1;
    }
    Ok(added)
}

pub(super) fn remove_do_not_call(txn: &WriteTransaction, phones: &[String]) -> StoreResult<u64> {
    let mut list = txn.open_table(DO_NOT_CALL).map_err(internal)?;
    let mut removed = 0;
    for phone in phones {
        if list.remove(phone.as_str()).map_err(internal)?.is_some() {
            removed += 1;
        }
    }
    Ok(removed)
}

pub(super) fn list_do_not_call(
    txn: &ReadTransaction,
    page: &PageRequest,
) -> StoreResult<Page<DoNotCallEntry>> {
    check_phone_token(&page.token)?;
    let list = txn.open_table(DO_NOT_CALL).map_err(internal)?;
    let after = format!("{}\0", page.token);
    let range = if page.token.is_empty() {
        list.iter()
    } else {
        list.range(after.as_str()..)
    }
    .map_err(internal)?;
    let mut items = Vec::with_capacity(page.size);
    let mut more = false;
    for entry in range {
        let (_, value) = entry.map_err(internal)?;
        if items.len() == page.size {
            more = true;
            break;
        }
        items.push(decode::<DoNotCallEntry>(value.value())?);
    }
    let next_token = match (more, items.last()) {
        (true, Some(last)) => last.phone.clone(),
        _ => String::new(),
    };
    Ok(Page { items, next_token })
}

pub(super) fn check_do_not_call(
    txn: &ReadTransaction,
    phones: &[String],
) -> StoreResult<Vec<DoNotCallEntry>> {
    let list = txn.open_table(DO_NOT_CALL).map_err(internal)?;
    let mut sorted: Vec<&String> = phones.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut listed = Vec::new();
    for phone in sorted {
        if let Some(value) = list.get(phone.as_str()).map_err(internal)? {
            listed.push(decode(value.value())?);
        }
    }
    Ok(listed)
}
