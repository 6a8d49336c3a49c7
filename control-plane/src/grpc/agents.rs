//! `AgentSettingsService`.

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_server::AgentSettingsService;
use tonic::{Request, Response, Status};

use super::convert::{agent_from_pb, agent_to_pb};
use super::Services;
use crate::domain::{self, AgentSettings, InvalidField};
use crate::error::{invalid, required, store_status};
use crate::store::PageRequest;

/// Serves `AgentSettingsService`.
#[derive(Debug, Clone)]
pub struct AgentsApi {
    services: Services,
}

impl AgentsApi {
    pub fn new(services: Services) -> Self {
        Self { services }
    }
}

/// Validates an agent, prefixing the offending field with `agent_settings.`.
fn validate(agent: &AgentSettings) -> Result<(), Status> {
    agent.validate().map_err(|e| {
        invalid(InvalidField::new(
            format!("agent_settings.{}", e.field),
            e.reason,
        ))
    })
}

/// Copies the top-level fields named in `paths` from `from` into `into`.
fn apply_mask(
    into: &mut AgentSettings,
    from: AgentSettings,
    paths: &[String],
) -> Result<(), Status> {
    for (i, path) in paths.iter().enumerate() {
        match path.as_str() {
            "name" => into.name.clone_from(&from.name),
            "phone_numbers" => into.phone_numbers.clone_from(&from.phone_numbers),
            "mode" => into.mode = from.mode,
            "provider" => into.provider = from.provider,
            "model" => into.model.clone_from(&from.model),
            "voice" => into.voice.clone_from(&from.voice),
            "instructions" => into.instructions.clone_from(&from.instructions),
            "temperature" => into.temperature = from.temperature,
            "tools" => into.tools.clone_from(&from.tools),
            "turn_detection" => into.turn_detection.clone_from(&from.turn_detection),
            "input_transcription" => into
                .input_transcription
                .clone_from(&from.input_transcription),
            "greeting" => into.greeting.clone_from(&from.greeting),
            "goodbye" => into.goodbye.clone_from(&from.goodbye),
            "max_call_duration" => into.max_call_duration_ms = from.max_call_duration_ms,
            "handoff_target" => into.handoff_target.clone_from(&from.handoff_target),
            "fallback" => into.fallback.clone_from(&from.fallback),
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

#[tonic::async_trait]
impl AgentSettingsService for AgentsApi {
    #[tracing::instrument(skip_all)]
    async fn create_agent_settings(
        &self,
        request: Request<pb::CreateAgentSettingsRequest>,
    ) -> Result<Response<pb::AgentSettings>, Status> {
        let settings = request
            .into_inner()
            .agent_settings
            .ok_or_else(|| required("agent_settings"))?;
        let mut agent = agent_from_pb("agent_settings", settings).map_err(invalid)?;
        validate(&agent)?;
        let now = domain::now();
        agent.id = domain::new_id();
        agent.version = 1;
        agent.created_at = now;
        agent.updated_at = now;
        let created = self
            .services
            .store
            .create_agent(agent)
            .await
            .map_err(store_status)?;
        tracing::info!(agent_id = %created.id, "agent created");
        Ok(Response::new(agent_to_pb(created)))
    }

    #[tracing::instrument(skip_all)]
    async fn get_agent_settings(
        &self,
        request: Request<pb::GetAgentSettingsRequest>,
    ) -> Result<Response<pb::AgentSettings>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(required("id"));
        }
        let agent = self
            .services
            .store
            .get_agent(&id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(agent_to_pb(agent)))
    }

    #[tracing::instrument(skip_all)]
    async fn update_agent_settings(
        &self,
        request: Request<pb::UpdateAgentSettingsRequest>,
    ) -> Result<Response<pb::AgentSettings>, Status> {
        let request = request.into_inner();
        let settings = request
            .agent_settings
            .ok_or_else(|| required("agent_settings"))?;
        let incoming = agent_from_pb("agent_settings", settings).map_err(invalid)?;
        if incoming.id.is_empty() {
            return Err(required("agent_settings.id"));
        }
        if incoming.version <= 0 {
            return Err(invalid(InvalidField::new(
                "agent_settings.version",
                "must be the version last read (optimistic concurrency)",
            )));
        }
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        let agent = if paths.is_empty() {
            incoming
        } else {
            let mut stored = self
                .services
                .store
                .get_agent(&incoming.id)
                .await
                .map_err(store_status)?;
            // The caller's version decides the race, not the one we just read.
            stored.version = incoming.version;
            apply_mask(&mut stored, incoming, &paths)?;
            stored
        };
        validate(&agent)?;
        let updated = self
            .services
            .store
            .update_agent(agent, domain::now())
            .await
            .map_err(store_status)?;
        tracing::info!(agent_id = %updated.id, version = updated.version, "agent updated");
        Ok(Response::new(agent_to_pb(updated)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_agent_settings(
        &self,
        request: Request<pb::DeleteAgentSettingsRequest>,
    ) -> Result<Response<pb::DeleteAgentSettingsResponse>, Status> {
        let request = request.into_inner();
        if request.id.is_empty() {
            return Err(required("id"));
        }
        let version = (request.version != 0).then_some(request.version);
        self.services
            .store
            .delete_agent(&request.id, version)
            .await
            .map_err(store_status)?;
        tracing::info!(agent_id = %request.id, "agent deleted");
        Ok(Response::new(pb::DeleteAgentSettingsResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_agent_settings(
        &self,
        request: Request<pb::ListAgentSettingsRequest>,
    ) -> Result<Response<pb::ListAgentSettingsResponse>, Status> {
        let request = request.into_inner();
        let page = PageRequest::new(request.page_size, request.page_token);
        let page = self
            .services
            .store
            .list_agents(&page)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListAgentSettingsResponse {
            agent_settings: page.items.into_iter().map(agent_to_pb).collect(),
            next_page_token: page.next_token,
        }))
    }
}
