//! Campaigns in MongoDB: `campaigns`, `campaign_targets` (one document per target,
//! unique on `(campaignId, targetKey)`) and `do_not_call` (the number is the `_id`, so
//! it is unique for free). Documents are the domain types' serde form (camelCase, times
//! in epoch milliseconds).
//!
//! An upload is one `insertMany` with `ordered: false`: the server stores every new
//! target and refuses those whose key the campaign holds with duplicate-key errors,
//! which are then resolved to the stored targets' ids with one read. A re-sent upload
//! therefore costs two round trips and stores nothing twice. State changes are
//! compare-and-set on the campaign's `version`; a cancel then cancels the pending and
//! retry-wait targets with one `updateMany` (a cancel interrupted in between is
//! finished by sending it again: canceling a canceled campaign is allowed).

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{self, doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};

use super::indexes::{self, WantedIndex};
use super::paging::{into_page, list_newest_first, page_size, page_token};
use super::{contended, driver_error, int64, not_found, CAS_ATTEMPTS, DUPLICATE_KEY};
use crate::domain::{
    Campaign, CampaignAction, CampaignProgress, CampaignState, CampaignTarget, DoNotCallEntry,
    TargetOutcome, TargetState, TargetTake, TargetUpdate, Timestamp,
};
use crate::store::{check_id_token, check_phone_token, Page, PageRequest, StoreError, StoreResult};

const CAMPAIGNS: &str = "campaigns";
const TARGETS: &str = "campaign_targets";
const DO_NOT_CALL: &str = "do_not_call";
const CAMPAIGN: &str = "campaign";

/// The top-level fields every document of each collection carries.
pub(super) const CAMPAIGN_FIELDS: &[&str] = &[
    "_id",
    "name",
    "agentId",
    "fromNumbers",
    "pacing",
    "window",
    "retry",
    "variables",
    "startAt",
    "state",
    "version",
    "createdAt",
    "updatedAt",
];
pub(super) const TARGET_FIELDS: &[&str] = &[
    "_id",
    "campaignId",
    "targetKey",
    "phone",
    "name",
    "variables",
    "timeZone",
    "state",
    "attempts",
    "lastCallId",
    "lastCallStatus",
    "lastError",
    "nextAttemptAt",
    "createdAt",
    "updatedAt",
];
pub(super) const DO_NOT_CALL_FIELDS: &[&str] = &["_id", "reason", "createdAt"];

/// The campaign collections.
#[derive(Clone)]
pub(super) struct Campaigns {
    campaigns: Collection<Campaign>,
    targets: Collection<CampaignTarget>,
    do_not_call: Collection<DoNotCallEntry>,
}

/// A campaign's state and upload revision, all completion reads.
#[derive(serde::Deserialize)]
struct RevisionDoc {
    state: CampaignState,
    #[serde(rename = "targetRevision", default)]
    revision: Option<i64>,
}

/// A target's key and id, all an upload's duplicate resolution reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetKeyDoc {
    #[serde(rename = "_id")]
    id: String,
    target_key: String,
}

fn encode_error(id: &str, err: bson::ser::Error) -> StoreError {
    StoreError::Internal(format!("campaign {id}: cannot encode the document: {err}"))
}

/// The field uploads bump (see `Campaigns::note_upload`).
const REVISION: &str = "targetRevision";

/// The stored names of the target states `keep` selects.
fn states(keep: impl Fn(TargetState) -> bool) -> StoreResult<Vec<bson::Bson>> {
    TargetState::ALL
        .into_iter()
        .filter(|s| keep(*s))
        .map(state_name)
        .collect()
}

fn encode(id: &str, value: &impl serde::Serialize) -> StoreResult<bson::Bson> {
    bson::to_bson(value)
        .map_err(|e| StoreError::Internal(format!("campaign target {id}: cannot encode: {e}")))
}

fn state_name(state: impl serde::Serialize) -> StoreResult<bson::Bson> {
    bson::to_bson(&state).map_err(|e| StoreError::Internal(format!("encode a state: {e}")))
}

impl Campaigns {
    pub(super) fn new(db: &Database) -> Self {
        Self {
            campaigns: db.collection(CAMPAIGNS),
            targets: db.collection(TARGETS),
            do_not_call: db.collection(DO_NOT_CALL),
        }
    }

    /// Creates (or reuses) the indexes the campaign reads and uploads rely on.
    pub(super) async fn create_indexes(&self) -> StoreResult<()> {
        let campaign_indexes = [WantedIndex::plain(
            "state_1__id_1",
            doc! { "state": 1, "_id": 1 },
        )];
        indexes::ensure(
            &self.campaigns.clone_with_type::<Document>(),
            &campaign_indexes,
            CAMPAIGN_FIELDS,
        )
        .await?;
        let target_indexes = [
            // What makes uploads idempotent.
            WantedIndex::unique_everywhere(
                "campaignId_1_targetKey_1",
                doc! { "campaignId": 1, "targetKey": 1 },
            ),
            // Progress counts and state-filtered lists, in upload order.
            WantedIndex::plain(
                "campaignId_1_state_1__id_1",
                doc! { "campaignId": 1, "state": 1, "_id": 1 },
            ),
            WantedIndex::plain("campaignId_1__id_1", doc! { "campaignId": 1, "_id": 1 }),
            // The dispatcher's read of due targets, soonest first.
            WantedIndex::plain(
                "campaignId_1_state_1_nextAttemptAt_1__id_1",
                doc! { "campaignId": 1, "state": 1, "nextAttemptAt": 1, "_id": 1 },
            ),
        ];
        indexes::ensure(
            &self.targets.clone_with_type::<Document>(),
            &target_indexes,
            TARGET_FIELDS,
        )
        .await?;
        indexes::ensure(
            &self.do_not_call.clone_with_type::<Document>(),
            &[],
            DO_NOT_CALL_FIELDS,
        )
        .await
    }

    pub(super) async fn create(&self, campaign: Campaign) -> StoreResult<Campaign> {
        match self.campaigns.insert_one(&campaign).await {
            Ok(_) => Ok(campaign),
            Err(e) if super::is_duplicate_key(&e) => Err(StoreError::AlreadyExists(format!(
                "campaign {} exists",
                campaign.id
            ))),
            Err(e) => Err(driver_error("create campaign", &campaign.id, e)),
        }
    }

    pub(super) async fn get(&self, id: &str) -> StoreResult<Campaign> {
        self.campaigns
            .find_one(doc! { "_id": id })
            .await
            .map_err(|e| driver_error("read campaign", id, e))?
            .ok_or_else(|| not_found(CAMPAIGN, id))
    }

    pub(super) async fn list(
        &self,
        state: Option<CampaignState>,
        page: &PageRequest,
    ) -> StoreResult<Page<Campaign>> {
        let size = page_size(page);
        let mut query = Document::new();
        if let Some(state) = state {
            query.insert("state", state_name(state)?);
        }
        let campaigns = list_newest_first(
            &self.campaigns,
            CAMPAIGNS,
            query,
            None,
            page_token(page)?,
            size,
        )
        .await?;
        Ok(into_page(campaigns, size, |c| &c.id))
    }

    /// `NotFound` or `VersionConflict` after a compare-and-set missed.
    async fn version_miss(&self, id: &str, expected: i64) -> StoreError {
        match self.get(id).await {
            Ok(stored) => StoreError::VersionConflict {
                kind: CAMPAIGN,
                id: id.to_owned(),
                expected,
                actual: stored.version,
            },
            Err(e) => e,
        }
    }

    pub(super) async fn update(&self, campaign: Campaign, now: Timestamp) -> StoreResult<Campaign> {
        let expected = campaign.version;
        let id = campaign.id.clone();
        let mut set = bson::to_document(&campaign).map_err(|e| encode_error(&id, e))?;
        // The state changes only through the machine, the creation time never.
        for kept in ["_id", "state", "createdAt", "version", "updatedAt"] {
            set.remove(kept);
        }
        set.insert("updatedAt", now.timestamp_millis());
        let update = doc! { "$set": set, "$inc": { "version": 1_i64 } };
        let updated = self
            .campaigns
            .find_one_and_update(doc! { "_id": &id, "version": expected }, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| driver_error("update campaign", &id, e))?;
        match updated {
            Some(stored) => Ok(stored),
            None => Err(self.version_miss(&id, expected).await),
        }
    }

    pub(super) async fn change_state(
        &self,
        id: &str,
        action: CampaignAction,
        now: Timestamp,
    ) -> StoreResult<Campaign> {
        for _ in 0..CAS_ATTEMPTS {
            let stored = self.get(id).await?;
            let next = stored
                .state
                .apply(action, stored.start_at, now)
                .map_err(|source| StoreError::CampaignTransition {
                    campaign_id: id.to_owned(),
                    source,
                })?;
            let update = doc! {
                "$set": { "state": state_name(next)?, "updatedAt": now.timestamp_millis() },
                "$inc": { "version": 1_i64 },
            };
            let changed = self
                .campaigns
                .find_one_and_update(doc! { "_id": id, "version": stored.version }, update)
                .return_document(ReturnDocument::After)
                .await
                .map_err(|e| driver_error("change campaign state", id, e))?;
            let Some(campaign) = changed else {
                continue;
            };
            if action == CampaignAction::Cancel {
                self.cancel_targets(id, now).await?;
            }
            return Ok(campaign);
        }
        Err(contended("change campaign state", id))
    }

    async fn cancel_targets(&self, campaign_id: &str, now: Timestamp) -> StoreResult<()> {
        let cancelable = TargetState::ALL
            .into_iter()
            .filter(|s| s.cancelable())
            .map(state_name)
            .collect::<StoreResult<Vec<_>>>()?;
        self.targets
            .update_many(
                doc! { "campaignId": campaign_id, "state": { "$in": cancelable } },
                doc! { "$set": {
                    "state": state_name(TargetState::Canceled)?,
                    "nextAttemptAt": bson::Bson::Null,
                    "updatedAt": now.timestamp_millis(),
                } },
            )
            .await
            .map_err(|e| driver_error("cancel the targets of campaign", campaign_id, e))?;
        Ok(())
    }

    pub(super) async fn add_targets(
        &self,
        campaign_id: &str,
        targets: Vec<CampaignTarget>,
    ) -> StoreResult<Vec<TargetOutcome>> {
        let campaign = self.get(campaign_id).await?;
        if campaign.state.is_final() {
            return Err(StoreError::CampaignFinal {
                campaign_id: campaign_id.to_owned(),
                state: campaign.state,
            });
        }
        // A key repeated within the batch is a duplicate of its first occurrence.
        let mut first_of_key: HashMap<String, String> = HashMap::with_capacity(targets.len());
        let mut outcomes = Vec::with_capacity(targets.len());
        let mut fresh = Vec::with_capacity(targets.len());
        for target in targets {
            match first_of_key.get(&target.target_key) {
                Some(id) => outcomes.push(TargetOutcome::Duplicate(id.clone())),
                None => {
                    first_of_key.insert(target.target_key.clone(), target.id.clone());
                    outcomes.push(TargetOutcome::Accepted(target.id.clone()));
                    fresh.push(target);
                }
            }
        }
        if fresh.is_empty() {
            return Ok(outcomes);
        }
        let inserted = self.targets.insert_many(&fresh).ordered(false).await;
        let duplicates = match inserted {
            Ok(_) => false,
            Err(e) => match e.kind.as_ref() {
                ErrorKind::InsertMany(failure)
                    if failure.write_concern_error.is_none()
                        && failure
                            .write_errors
                            .iter()
                            .flatten()
                            .all(|w| w.code == DUPLICATE_KEY) =>
                {
                    true
                }
                _ => return Err(driver_error("add targets to campaign", campaign_id, e)),
            },
        };
        if !duplicates {
            self.note_upload(campaign_id, &fresh).await?;
            return Ok(outcomes);
        }
        // Which keys the campaign held already, under which ids.
        let keys: Vec<&str> = fresh.iter().map(|t| t.target_key.as_str()).collect();
        let stored: Vec<TargetKeyDoc> = self
            .targets
            .clone_with_type::<TargetKeyDoc>()
            .find(doc! { "campaignId": campaign_id, "targetKey": { "$in": keys } })
            .projection(doc! { "_id": 1, "targetKey": 1 })
            .await
            .map_err(|e| driver_error("read the targets of campaign", campaign_id, e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("read the targets of campaign", campaign_id, e))?;
        let stored: HashMap<String, String> =
            stored.into_iter().map(|d| (d.target_key, d.id)).collect();
        let ours: HashMap<&str, &str> = first_of_key
            .iter()
            .map(|(key, id)| (id.as_str(), key.as_str()))
            .collect();
        for outcome in &mut outcomes {
            let TargetOutcome::Accepted(id) = outcome else {
                continue;
            };
            let holder = ours
                .get(id.as_str())
                .and_then(|key| stored.get(*key))
                .ok_or_else(|| {
                    StoreError::Internal(format!(
                        "campaign {campaign_id}: target {id} was neither stored nor found"
                    ))
                })?;
            if holder != id {
                *outcome = TargetOutcome::Duplicate(holder.clone());
            }
        }
        // Duplicates within the batch point at their first occurrence, which may itself
        // have turned out a duplicate of an older target.
        for outcome in &mut outcomes {
            if let TargetOutcome::Duplicate(id) = outcome {
                if let Some(holder) = ours.get(id.as_str()).and_then(|key| stored.get(*key)) {
                    id.clone_from(holder);
                }
            }
        }
        self.note_upload(campaign_id, &fresh).await?;
        Ok(outcomes)
    }

    /// Bumps the campaign's `targetRevision` after an upload, unless it became final
    /// meanwhile: then the upload's targets are taken back out and the upload refused.
    /// `complete` finishes a campaign only at the revision it counted at, so an upload
    /// either keeps the campaign running or is refused, never left behind in a
    /// completed campaign.
    async fn note_upload(&self, campaign_id: &str, fresh: &[CampaignTarget]) -> StoreResult<()> {
        let finals = [CampaignState::Completed, CampaignState::Canceled]
            .into_iter()
            .map(state_name)
            .collect::<StoreResult<Vec<_>>>()?;
        let bumped = self
            .campaigns
            .update_one(
                doc! { "_id": campaign_id, "state": { "$nin": finals } },
                doc! { "$inc": { REVISION: 1_i64 } },
            )
            .await
            .map_err(|e| driver_error("record an upload to campaign", campaign_id, e))?;
        if bumped.matched_count > 0 {
            return Ok(());
        }
        let ids: Vec<&str> = fresh.iter().map(|t| t.id.as_str()).collect();
        self.targets
            .delete_many(doc! { "campaignId": campaign_id, "_id": { "$in": ids } })
            .await
            .map_err(|e| driver_error("take back an upload to campaign", campaign_id, e))?;
        let campaign = self.get(campaign_id).await?;
        Err(StoreError::CampaignFinal {
            campaign_id: campaign_id.to_owned(),
            state: campaign.state,
        })
    }

    pub(super) async fn get_target(
        &self,
        campaign_id: &str,
        target_id: &str,
    ) -> StoreResult<CampaignTarget> {
        self.targets
            .find_one(doc! { "_id": target_id, "campaignId": campaign_id })
            .await
            .map_err(|e| driver_error("read campaign target", target_id, e))?
            .ok_or_else(|| not_found("campaign target", target_id))
    }

    pub(super) async fn due_targets(
        &self,
        campaign_id: &str,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<CampaignTarget>> {
        let filter = doc! {
            "campaignId": campaign_id,
            "state": { "$in": states(|s| s.is_due_state())? },
            "$or": [
                { "nextAttemptAt": bson::Bson::Null },
                { "nextAttemptAt": { "$lte": now.timestamp_millis() } },
            ],
        };
        self.targets
            .find(filter)
            .sort(doc! { "nextAttemptAt": 1, "_id": 1 })
            .limit(int64(limit as u64)?)
            .await
            .map_err(|e| driver_error("read the due targets of campaign", campaign_id, e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("read the due targets of campaign", campaign_id, e))
    }

    pub(super) async fn take_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        attempts: u32,
        take: &TargetTake,
        now: Timestamp,
    ) -> StoreResult<Option<CampaignTarget>> {
        let mut set = doc! { "updatedAt": now.timestamp_millis() };
        match take {
            TargetTake::Dial { call_id } => {
                set.insert("state", state_name(TargetState::Dialing)?);
                set.insert("attempts", i64::from(attempts.saturating_add(1)));
                set.insert("lastCallId", call_id.as_str());
                set.insert("lastCallStatus", bson::Bson::Null);
                set.insert("nextAttemptAt", bson::Bson::Null);
            }
            TargetTake::Skip { error } => {
                set.insert("state", state_name(TargetState::Skipped)?);
                set.insert("lastError", encode(target_id, error)?);
                set.insert("nextAttemptAt", bson::Bson::Null);
            }
            TargetTake::Defer { until } => {
                set.insert("nextAttemptAt", until.timestamp_millis());
            }
        }
        let filter = doc! {
            "_id": target_id,
            "campaignId": campaign_id,
            "state": { "$in": states(|s| s.is_due_state())? },
            "attempts": i64::from(attempts),
        };
        self.targets
            .find_one_and_update(filter, doc! { "$set": set })
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| driver_error("take campaign target", target_id, e))
    }

    pub(super) async fn update_target(
        &self,
        campaign_id: &str,
        target_id: &str,
        call_id: &str,
        update: &TargetUpdate,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let next = update.next_attempt_at.map_or(bson::Bson::Null, |t| {
            bson::Bson::Int64(t.timestamp_millis())
        });
        let mut set = doc! {
            "state": state_name(update.state)?,
            "attempts": i64::from(update.attempts),
            "nextAttemptAt": next,
            "updatedAt": now.timestamp_millis(),
        };
        if let Some(status) = update.last_call_status {
            set.insert("lastCallStatus", encode(target_id, &status)?);
        }
        if let Some(error) = &update.last_error {
            set.insert("lastError", encode(target_id, error)?);
        }
        let filter = doc! {
            "_id": target_id,
            "campaignId": campaign_id,
            "lastCallId": call_id,
            "state": { "$in": states(|s| s.holds_slot())? },
        };
        let result = self
            .targets
            .update_one(filter, doc! { "$set": set })
            .await
            .map_err(|e| driver_error("update campaign target", target_id, e))?;
        Ok(result.matched_count > 0)
    }

    pub(super) async fn count_active(&self, campaign_id: &str) -> StoreResult<u64> {
        self.targets
            .count_documents(doc! {
                "campaignId": campaign_id,
                "state": { "$in": states(|s| s.holds_slot())? },
            })
            .await
            .map_err(|e| driver_error("count the calls of campaign", campaign_id, e))
    }

    pub(super) async fn start(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let filter = doc! {
            "_id": id,
            "state": state_name(CampaignState::Scheduled)?,
            "$or": [
                { "startAt": bson::Bson::Null },
                { "startAt": { "$lte": now.timestamp_millis() } },
            ],
        };
        self.move_state(filter, CampaignState::Running, now, "start campaign", id)
            .await
    }

    /// Moves the campaign `filter` matches to `to` (bumping its version); true when
    /// one was moved.
    async fn move_state(
        &self,
        filter: Document,
        to: CampaignState,
        now: Timestamp,
        operation: &str,
        id: &str,
    ) -> StoreResult<bool> {
        let update = doc! {
            "$set": { "state": state_name(to)?, "updatedAt": now.timestamp_millis() },
            "$inc": { "version": 1_i64 },
        };
        let result = self
            .campaigns
            .update_one(filter, update)
            .await
            .map_err(|e| driver_error(operation, id, e))?;
        Ok(result.modified_count > 0)
    }

    pub(super) async fn complete(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let Some(read) = self
            .campaigns
            .clone_with_type::<RevisionDoc>()
            .find_one(doc! { "_id": id })
            .projection(doc! { "state": 1, REVISION: 1 })
            .await
            .map_err(|e| driver_error("read campaign", id, e))?
        else {
            return Err(not_found(CAMPAIGN, id));
        };
        if read.state != CampaignState::Running {
            return Ok(false);
        }
        let open = doc! {
            "campaignId": id,
            "state": { "$in": states(|s| !s.is_final())? },
        };
        // A campaign with no targets yet is waiting for its upload, not done.
        if self.any_target(open, id).await?
            || !self.any_target(doc! { "campaignId": id }, id).await?
        {
            return Ok(false);
        }
        let revision = read
            .revision
            .map_or(doc! { "$exists": false }, |r| doc! { "$eq": r });
        let filter = doc! {
            "_id": id,
            "state": state_name(CampaignState::Running)?,
            REVISION: revision,
        };
        self.move_state(
            filter,
            CampaignState::Completed,
            now,
            "complete campaign",
            id,
        )
        .await
    }

    /// Whether some target of campaign `id` matches `filter`.
    async fn any_target(&self, filter: Document, id: &str) -> StoreResult<bool> {
        let found = self
            .targets
            .clone_with_type::<Document>()
            .find_one(filter)
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| driver_error("read the targets of campaign", id, e))?;
        Ok(found.is_some())
    }

    pub(super) async fn list_targets(
        &self,
        campaign_id: &str,
        state: Option<TargetState>,
        page: &PageRequest,
    ) -> StoreResult<Page<CampaignTarget>> {
        check_id_token(&page.token)?;
        self.get(campaign_id).await?;
        let size = page_size(page);
        let mut filter = doc! { "campaignId": campaign_id };
        if let Some(state) = state {
            filter.insert("state", state_name(state)?);
        }
        if !page.token.is_empty() {
            filter.insert("_id", doc! { "$gt": &page.token });
        }
        let targets: Vec<CampaignTarget> = self
            .targets
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(int64(size as u64 + 1)?)
            .await
            .map_err(|e| driver_error("list the targets of campaign", campaign_id, e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("list the targets of campaign", campaign_id, e))?;
        Ok(into_page(targets, size, |t| &t.id))
    }

    pub(super) async fn progress(&self, campaign_id: &str) -> StoreResult<CampaignProgress> {
        self.get(campaign_id).await?;
        let pipeline = [
            doc! { "$match": { "campaignId": campaign_id } },
            doc! { "$group": { "_id": "$state", "n": { "$sum": 1_i64 } } },
        ];
        let groups: Vec<Document> = self
            .targets
            .aggregate(pipeline)
            .await
            .map_err(|e| driver_error("count the targets of campaign", campaign_id, e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("count the targets of campaign", campaign_id, e))?;
        let mut progress = CampaignProgress::default();
        for group in groups {
            let state: TargetState = group
                .get("_id")
                .cloned()
                .map(bson::from_bson)
                .transpose()
                .map_err(|e| StoreError::Internal(format!("campaign {campaign_id}: {e}")))?
                .ok_or_else(|| {
                    StoreError::Internal(format!("campaign {campaign_id}: a target has no state"))
                })?;
            let n = match group.get("n") {
                Some(bson::Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                Some(bson::Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                other => {
                    return Err(StoreError::Internal(format!(
                        "campaign {campaign_id}: count {other:?}"
                    )))
                }
            };
            progress.add(state, n);
        }
        Ok(progress)
    }

    pub(super) async fn add_do_not_call(&self, entries: Vec<DoNotCallEntry>) -> StoreResult<u64> {
        let mut added = 0;
        for entry in entries {
            let doc = bson::to_document(&entry).map_err(|e| encode_error(&entry.phone, e))?;
            let result = self
                .do_not_call
                .clone_with_type::<Document>()
                .update_one(doc! { "_id": &entry.phone }, doc! { "$setOnInsert": doc })
                .upsert(true)
                .await;
            match result {
                Ok(r) if r.upserted_id.is_some() => added += 1,
                Ok(_) => {}
                // Two writers listing one number at once: it is listed either way.
                Err(e) if super::is_duplicate_key(&e) => {}
                Err(e) => return Err(driver_error("list do-not-call number", &entry.phone, e)),
            }
        }
        Ok(added)
    }

    pub(super) async fn remove_do_not_call(&self, phones: &[String]) -> StoreResult<u64> {
        let result = self
            .do_not_call
            .delete_many(doc! { "_id": { "$in": phones } })
            .await
            .map_err(|e| driver_error("remove do-not-call numbers", "", e))?;
        Ok(result.deleted_count)
    }

    pub(super) async fn list_do_not_call(
        &self,
        page: &PageRequest,
    ) -> StoreResult<Page<DoNotCallEntry>> {
        check_phone_token(&page.token)?;
        let size = page_size(page);
        let filter = if page.token.is_empty() {
            Document::new()
        } else {
            doc! { "_id": { "$gt": &page.token } }
        };
        let entries: Vec<DoNotCallEntry> = self
            .do_not_call
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(int64(size as u64 + 1)?)
            .await
            .map_err(|e| driver_error("list do-not-call numbers", "", e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("list do-not-call numbers", "", e))?;
        Ok(into_page(entries, size, |e| &e.phone))
    }

    pub(super) async fn check_do_not_call(
        &self,
        phones: &[String],
    ) -> StoreResult<Vec<DoNotCallEntry>> {
        self.do_not_call
            .find(doc! { "_id": { "$in": phones } })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(|e| driver_error("check do-not-call numbers", "", e))?
            .try_collect()
            .await
            .map_err(|e| driver_error("check do-not-call numbers", "", e))
    }
}
