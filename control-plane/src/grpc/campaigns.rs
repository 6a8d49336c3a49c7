//! `CampaignService`: campaigns, their targets and the do-not-call list, over the
//! store.
//!
//! Handlers validate everything before they store anything (`domain::campaign` names
//! the field), except uploads: `AddCampaignTargets` judges each target on its own and
//! answers one result per target in request order, so one bad number never rejects the
//! rest. State changes go through the campaign state machine in the store, atomically.
//! A campaign read alone carries its progress (counts per target state); list reads
//! leave it out, so a page costs no count per campaign.
//!
//! `crate::campaigns` dials them; `WatchCampaign` follows one as it runs.

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::campaign_service_server::CampaignService;
use switchboard_proto::v1::target_result::Result as TargetResultKind;
use tonic::{Request, Response, Status};

use super::convert::{
    campaign_from_pb, campaign_state_from_pb, campaign_to_pb, do_not_call_to_pb, target_from_pb,
    target_state_from_pb, target_to_pb,
};
use super::Services;
use crate::domain::campaign::{normalize_phone, MAX_TARGETS_PER_REQUEST};
use crate::domain::{
    self, Campaign, CampaignAction, CampaignLimits, CampaignState, CampaignTarget, DoNotCallEntry,
    InvalidField, TargetOutcome,
};
use crate::error::{invalid, required, store_status};
use crate::store::PageRequest;

/// The stream `WatchCampaign` answers.
pub type CampaignStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::Campaign, Status>> + Send>>;

/// `WatchCampaign`'s check interval: default and bounds.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const MIN_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
const MAX_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Most numbers one do-not-call request may carry.
pub const MAX_DO_NOT_CALL_PER_REQUEST: usize = 10_000;

/// Serves `CampaignService`.
#[derive(Debug, Clone)]
pub struct CampaignsApi {
    services: Services,
    limits: CampaignLimits,
}

impl CampaignsApi {
    /// `limits` are the account's (`SWITCHBOARD_TWILIO_MAX_CPS`).
    pub fn new(services: Services, limits: CampaignLimits) -> Self {
        Self { services, limits }
    }

    /// Validates a campaign, prefixing the offending field with `campaign.`.
    fn validate(&self, campaign: &Campaign) -> Result<(), Status> {
        campaign
            .validate(&self.limits)
            .map_err(|e| invalid(InvalidField::new(format!("campaign.{}", e.field), e.reason)))
    }

    /// The campaign with its progress.
    async fn with_progress(&self, campaign: Campaign) -> Result<pb::Campaign, Status> {
        let progress = self
            .services
            .store
            .campaign_progress(&campaign.id)
            .await
            .map_err(store_status)?;
        Ok(campaign_to_pb(campaign, Some(progress)))
    }

    async fn change_state(
        &self,
        id: String,
        action: CampaignAction,
    ) -> Result<pb::Campaign, Status> {
        if id.is_empty() {
            return Err(required("id"));
        }
        let campaign = self
            .services
            .store
            .change_campaign_state(&id, action, domain::now())
            .await
            .map_err(store_status)?;
        tracing::info!(campaign_id = %id, action = action.as_str(), state = %campaign.state, "campaign state changed");
        self.with_progress(campaign).await
    }
}

/// Refuses more than `max` entries in the request field `field`.
fn check_count(field: &str, count: usize, max: usize) -> Result<(), Status> {
    if count > max {
        return Err(invalid(InvalidField::new(
            field,
            format!("{count} entries; at most {max} per request"),
        )));
    }
    Ok(())
}

/// Normalises the numbers of a do-not-call request (`phones[i]` names a bad one).
fn normalize_phones(phones: &[String]) -> Result<Vec<String>, Status> {
    if phones.is_empty() {
        return Err(required("phones"));
    }
    check_count("phones", phones.len(), MAX_DO_NOT_CALL_PER_REQUEST)?;
    phones
        .iter()
        .enumerate()
        .map(|(i, p)| normalize_phone(&format!("phones[{i}]"), p).map_err(invalid))
        .collect()
}

/// Copies the fields named in `paths` from `from` into `into`.
fn apply_mask(into: &mut Campaign, from: Campaign, paths: &[String]) -> Result<(), Status> {
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "name" => into.name.clone_from(&from.name),
            "pacing" => into.pacing = from.pacing,
            "window" => into.window.clone_from(&from.window),
            "retry" => into.retry.clone_from(&from.retry),
            "from_numbers" | "from_number" => into.from_numbers.clone_from(&from.from_numbers),
            "variables" => into.variables.clone_from(&from.variables),
            "start_at" => into.start_at = from.start_at,
            other => {
                return Err(invalid(InvalidField::new(
                    format!("update_mask.paths[{i}]"),
                    format!("{other:?} is not an updatable field"),
                )))
            }
        }
    }
    Ok(())
}

/// The check interval a watch asked for, within bounds.
fn watch_interval(requested: Option<prost_types::Duration>) -> Result<std::time::Duration, Status> {
    let Some(d) = requested else {
        return Ok(WATCH_INTERVAL);
    };
    let interval = std::time::Duration::try_from(d)
        .map_err(|_| invalid(InvalidField::new("interval", "is negative")))?;
    if !(MIN_WATCH_INTERVAL..=MAX_WATCH_INTERVAL).contains(&interval) {
        return Err(invalid(InvalidField::new(
            "interval",
            format!("{interval:?} is not between 100ms and 60s"),
        )));
    }
    Ok(interval)
}

#[tonic::async_trait]
impl CampaignService for CampaignsApi {
    type WatchCampaignStream = CampaignStream;

    #[tracing::instrument(skip_all)]
    async fn watch_campaign(
        &self,
        request: Request<pb::WatchCampaignRequest>,
    ) -> Result<Response<CampaignStream>, Status> {
        let request = request.into_inner();
        if request.id.is_empty() {
            return Err(required("id"));
        }
        let interval = watch_interval(request.interval)?;
        // NOT_FOUND for an unknown campaign before the stream starts.
        let first = self
            .services
            .store
            .get_campaign(&request.id)
            .await
            .map_err(store_status)?;
        let first = self.with_progress(first).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let api = self.clone();
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            let final_states = [
                pb::CampaignState::Completed as i32,
                pb::CampaignState::Canceled as i32,
            ];
            // A canceled campaign's calls still in progress keep changing its progress.
            let settled = |c: &pb::Campaign| {
                final_states.contains(&c.state)
                    && c.progress
                        .as_ref()
                        .is_none_or(|p| p.dialing + p.in_call == 0)
            };
            while !settled(&last) {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = tx.closed() => return,
                }
                let read = match api.services.store.get_campaign(&request.id).await {
                    Ok(campaign) => api.with_progress(campaign).await,
                    Err(e) => Err(store_status(e)),
                };
                let now = match read {
                    Ok(now) => now,
                    // A store outage is ridden out; the watcher sees no change meanwhile.
                    Err(status) if status.code() == tonic::Code::Unavailable => continue,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                if now.state != last.state || now.progress != last.progress {
                    if tx.send(Ok(now.clone())).await.is_err() {
                        return;
                    }
                    last = now;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn create_campaign(
        &self,
        request: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let request = request.into_inner();
        let incoming = request.campaign.ok_or_else(|| required("campaign"))?;
        let mut campaign = campaign_from_pb("campaign", incoming).map_err(invalid)?;
        self.validate(&campaign)?;
        check_count("targets", request.targets.len(), MAX_TARGETS_PER_REQUEST)?;
        let now = domain::now();
        campaign.id = domain::new_id();
        campaign.state = CampaignState::initial(campaign.start_at, now);
        campaign.version = 1;
        campaign.created_at = now;
        campaign.updated_at = now;
        let targets = request
            .targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let target = target_from_pb(&campaign.id, t, now);
                target.validate(&format!("targets[{i}]")).map(|()| target)
            })
            .collect::<Result<Vec<CampaignTarget>, InvalidField>>()
            .map_err(invalid)?;
        // An unknown agent is NOT_FOUND, before anything is stored.
        self.services
            .store
            .get_agent(&campaign.agent_id)
            .await
            .map_err(store_status)?;
        let store = &self.services.store;
        let created = store
            .create_campaign(campaign)
            .await
            .map_err(store_status)?;
        if !targets.is_empty() {
            store
                .add_targets(&created.id, targets)
                .await
                .map_err(store_status)?;
        }
        tracing::info!(campaign_id = %created.id, state = %created.state, "campaign created");
        Ok(Response::new(self.with_progress(created).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(required("id"));
        }
        let campaign = self
            .services
            .store
            .get_campaign(&id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(self.with_progress(campaign).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn list_campaigns(
        &self,
        request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let request = request.into_inner();
        let state = campaign_state_from_pb("state", request.state).map_err(invalid)?;
        let page = PageRequest::new(request.page_size, request.page_token);
        let page = self
            .services
            .store
            .list_campaigns(state, &page)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns: page
                .items
                .into_iter()
                .map(|c| campaign_to_pb(c, None))
                .collect(),
            next_page_token: page.next_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_campaign_targets(
        &self,
        request: Request<pb::ListCampaignTargetsRequest>,
    ) -> Result<Response<pb::ListCampaignTargetsResponse>, Status> {
        let request = request.into_inner();
        if request.campaign_id.is_empty() {
            return Err(required("campaign_id"));
        }
        let state = target_state_from_pb("state", request.state).map_err(invalid)?;
        let page = PageRequest::new(request.page_size, request.page_token);
        let page = self
            .services
            .store
            .list_targets(&request.campaign_id, state, &page)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListCampaignTargetsResponse {
            targets: page.items.into_iter().map(target_to_pb).collect(),
            next_page_token: page.next_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn pause_campaign(
        &self,
        request: Request<pb::PauseCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(
            self.change_state(id, CampaignAction::Pause).await?,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn resume_campaign(
        &self,
        request: Request<pb::ResumeCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(
            self.change_state(id, CampaignAction::Resume).await?,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn cancel_campaign(
        &self,
        request: Request<pb::CancelCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(
            self.change_state(id, CampaignAction::Cancel).await?,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn add_campaign_targets(
        &self,
        request: Request<pb::AddCampaignTargetsRequest>,
    ) -> Result<Response<pb::AddCampaignTargetsResponse>, Status> {
        let request = request.into_inner();
        if request.campaign_id.is_empty() {
            return Err(required("campaign_id"));
        }
        if request.targets.is_empty() {
            return Err(required("targets"));
        }
        check_count("targets", request.targets.len(), MAX_TARGETS_PER_REQUEST)?;
        let now = domain::now();
        // Invalid targets get their result now; the valid ones go to the store together.
        let mut results: Vec<Option<TargetResultKind>> = Vec::with_capacity(request.targets.len());
        let mut valid = Vec::with_capacity(request.targets.len());
        for (i, t) in request.targets.into_iter().enumerate() {
            let target = target_from_pb(&request.campaign_id, t, now);
            match target.validate(&format!("targets[{i}]")) {
                Ok(()) => {
                    valid.push(target);
                    results.push(None);
                }
                Err(e) => results.push(Some(TargetResultKind::Invalid(pb::InvalidTarget {
                    field: e.field,
                    reason: e.reason,
                }))),
            }
        }
        let outcomes = if valid.is_empty() {
            // Still NOT_FOUND for an unknown campaign, as when some are valid.
            self.services
                .store
                .get_campaign(&request.campaign_id)
                .await
                .map_err(store_status)?;
            Vec::new()
        } else {
            self.services
                .store
                .add_targets(&request.campaign_id, valid)
                .await
                .map_err(store_status)?
        };
        let mut outcomes = outcomes.into_iter();
        let mut response = pb::AddCampaignTargetsResponse::default();
        for slot in results {
            let result = match slot {
                Some(invalid) => {
                    response.invalid += 1;
                    invalid
                }
                None => match outcomes.next() {
                    Some(TargetOutcome::Accepted(id)) => {
                        response.accepted += 1;
                        TargetResultKind::AcceptedId(id)
                    }
                    Some(TargetOutcome::Duplicate(id)) => {
                        response.duplicates += 1;
                        TargetResultKind::DuplicateOfId(id)
                    }
                    None => {
                        return Err(Status::internal(
                            "the store answered fewer outcomes than targets",
                        ))
                    }
                },
            };
            response.results.push(pb::TargetResult {
                result: Some(result),
            });
        }
        tracing::info!(
            campaign_id = %request.campaign_id,
            accepted = response.accepted,
            duplicates = response.duplicates,
            invalid = response.invalid,
            "campaign targets added"
        );
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn update_campaign(
        &self,
        request: Request<pb::UpdateCampaignRequest>,
    ) -> Result<Response<pb::Campaign>, Status> {
        let request = request.into_inner();
        let incoming = request.campaign.ok_or_else(|| required("campaign"))?;
        let incoming = campaign_from_pb("campaign", incoming).map_err(invalid)?;
        if incoming.id.is_empty() {
            return Err(required("campaign.id"));
        }
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(required("update_mask"));
        }
        let mut campaign = self
            .services
            .store
            .get_campaign(&incoming.id)
            .await
            .map_err(store_status)?;
        // The caller's version decides the race when given; else the one just read
        // still keeps a concurrent update from being lost.
        if incoming.version > 0 {
            campaign.version = incoming.version;
        }
        apply_mask(&mut campaign, incoming, &paths)?;
        self.validate(&campaign)?;
        let updated = self
            .services
            .store
            .update_campaign(campaign, domain::now())
            .await
            .map_err(store_status)?;
        tracing::info!(campaign_id = %updated.id, version = updated.version, "campaign updated");
        Ok(Response::new(self.with_progress(updated).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn add_do_not_call(
        &self,
        request: Request<pb::AddDoNotCallRequest>,
    ) -> Result<Response<pb::AddDoNotCallResponse>, Status> {
        let request = request.into_inner();
        let phones = normalize_phones(&request.phones)?;
        let now = domain::now();
        let entries = phones
            .into_iter()
            .map(|phone| DoNotCallEntry {
                phone,
                reason: request.reason.clone(),
                created_at: now,
            })
            .collect();
        let added = self
            .services
            .store
            .add_do_not_call(entries)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::AddDoNotCallResponse {
            added: u32::try_from(added).unwrap_or(u32::MAX),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_do_not_call(
        &self,
        request: Request<pb::RemoveDoNotCallRequest>,
    ) -> Result<Response<pb::RemoveDoNotCallResponse>, Status> {
        let phones = normalize_phones(&request.into_inner().phones)?;
        let removed = self
            .services
            .store
            .remove_do_not_call(&phones)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::RemoveDoNotCallResponse {
            removed: u32::try_from(removed).unwrap_or(u32::MAX),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_do_not_call(
        &self,
        request: Request<pb::ListDoNotCallRequest>,
    ) -> Result<Response<pb::ListDoNotCallResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::new(request.page_size, request.page_token);
        let page = self
            .services
            .store
            .list_do_not_call(&page)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListDoNotCallResponse {
            entries: page.items.into_iter().map(do_not_call_to_pb).collect(),
            next_page_token: page.next_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn check_do_not_call(
        &self,
        request: Request<pb::CheckDoNotCallRequest>,
    ) -> Result<Response<pb::CheckDoNotCallResponse>, Status> {
        let phones = normalize_phones(&request.into_inner().phones)?;
        let listed = self
            .services
            .store
            .check_do_not_call(&phones)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::CheckDoNotCallResponse {
            listed: listed.into_iter().map(do_not_call_to_pb).collect(),
        }))
    }
}
