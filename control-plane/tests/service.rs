//! The server itself: bearer auth, health, reflection, declared-but-unserved services.

mod support;

#[allow(unused_imports)]
use support::*;

#[tokio::test]
async fn with_a_token_every_rpc_but_health_needs_it() {
    let server =
        TestServer::start_with(|c| c.api_token = Some(Secret::new("t0ken-for-tests"))).await;
    let status = server
        .agents()
        .list_agent_settings(pb::ListAgentSettingsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("t0ken"));

    let mut request = Request::new(pb::ListAgentSettingsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Bearer t0ken-for-tests".parse().unwrap());
    server.agents().list_agent_settings(request).await.unwrap();

    let mut wrong = Request::new(pb::ListAgentSettingsRequest::default());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer t0ken-for-test".parse().unwrap());
    assert_eq!(
        server
            .agents()
            .list_agent_settings(wrong)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn campaigns_are_served() {
    use switchboard_proto::v1::campaign_service_client::CampaignServiceClient;
    let server = TestServer::start().await;
    let status = CampaignServiceClient::new(server.channel.clone())
        .create_campaign(pb::CreateCampaignRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "campaign: is required");
}

#[tokio::test]
async fn reflection_lists_every_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let server = TestServer::start().await;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: server.addr.to_string(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(server.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "switchboard.v1.AgentSettingsService",
        "switchboard.v1.CallSessionService",
        "switchboard.v1.CallChannelService",
        "switchboard.v1.CampaignService",
        "switchboard.v1.HandoffService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
