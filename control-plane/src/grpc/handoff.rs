//! `HandoffService`: hands a live call to humans — for internal services and
//! supervisors; the model's `transfer_to_human` tool takes the same path through the
//! call stream.

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::handoff_service_server::HandoffService;
use tonic::{Request, Response, Status};

use super::convert::{handoff_target_from_pb, session_to_pb};
use super::Services;
use crate::error::{invalid, required, store_status};

/// Serves `HandoffService`.
#[derive(Debug, Clone)]
pub struct HandoffApi {
    services: Services,
}

impl HandoffApi {
    pub fn new(services: Services) -> Self {
        Self { services }
    }
}

#[tonic::async_trait]
impl HandoffService for HandoffApi {
    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn request_handoff(
        &self,
        request: Request<pb::RequestHandoffRequest>,
    ) -> Result<Response<pb::CallSession>, Status> {
        let r = request.into_inner();
        if r.call_id.is_empty() {
            return Err(required("call_id"));
        }
        let target = handoff_target_from_pb("target", r.target).map_err(invalid)?;
        let session = self
            .services
            .store
            .get_session(&r.call_id)
            .await
            .map_err(store_status)?;
        let ended = self
            .services
            .hand_off(&session, target, &r.reason, &r.say)
            .await?;
        tracing::info!(status = %ended.status, "call handed off");
        Ok(Response::new(session_to_pb(ended)))
    }
}
