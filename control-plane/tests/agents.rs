//! AgentSettingsService: CRUD, optimistic versions, every bad field named, phone ownership.

mod support;

#[allow(unused_imports)]
use support::*;

#[tokio::test]
async fn agent_settings_crud_with_optimistic_versions() {
    let server = TestServer::start().await;
    let created = create_agent(&server, agent("Reception", &unique_number())).await;
    assert_eq!(created.version, 1);
    assert_eq!(
        created.mode,
        pb::AgentMode::Realtime as i32,
        "mode defaults to realtime"
    );

    let fetched = server
        .agents()
        .get_agent_settings(pb::GetAgentSettingsRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);

    // Switch to the legacy conference mode at run time, naming only that field.
    let mut edit = created.clone();
    edit.mode = pb::AgentMode::Conference.into();
    edit.instructions = "ignored: not in the mask".into();
    let updated = server
        .agents()
        .update_agent_settings(pb::UpdateAgentSettingsRequest {
            agent_settings: Some(edit.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["mode".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.mode, pb::AgentMode::Conference as i32);
    assert_eq!(updated.instructions, created.instructions);

    let stale = server
        .agents()
        .update_agent_settings(pb::UpdateAgentSettingsRequest {
            agent_settings: Some(edit),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");

    let listed = server
        .agents()
        .list_agent_settings(pb::ListAgentSettingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agent_settings, vec![updated.clone()]);
    assert!(listed.next_page_token.is_empty());

    server
        .agents()
        .delete_agent_settings(pb::DeleteAgentSettingsRequest {
            id: created.id.clone(),
            version: 2,
        })
        .await
        .unwrap();
    let gone = server
        .agents()
        .get_agent_settings(pb::GetAgentSettingsRequest { id: created.id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_agent_settings_are_refused_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let number = unique_number();
    type Spoil = Box<dyn Fn(&mut pb::AgentSettings)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("agent_settings.name", Box::new(|a| a.name.clear())),
        (
            "agent_settings.phone_numbers[0]",
            Box::new(|a| a.phone_numbers = vec!["090-1234-5678".into()]),
        ),
        (
            "agent_settings.temperature",
            Box::new(|a| a.temperature = Some(1.9)),
        ),
        (
            "agent_settings.turn_detection.threshold",
            Box::new(|a| {
                a.turn_detection = Some(pb::TurnDetection {
                    threshold: Some(1.2),
                    ..Default::default()
                })
            }),
        ),
        (
            "agent_settings.turn_detection.silence_duration_ms",
            Box::new(|a| {
                a.turn_detection = Some(pb::TurnDetection {
                    silence_duration_ms: Some(99_999),
                    ..Default::default()
                })
            }),
        ),
        (
            "agent_settings.tools[0].parameters_json_schema",
            Box::new(|a| {
                a.tools[0].parameters_json_schema = r#"{"type":"object","required":"id"}"#.into()
            }),
        ),
        ("agent_settings.mode", Box::new(|a| a.mode = 17)),
        ("agent_settings.provider", Box::new(|a| a.provider = -3)),
    ];
    for (field, spoil) in cases {
        let mut a = agent("Bad", &number);
        spoil(&mut a);
        let status = server
            .agents()
            .create_agent_settings(pb::CreateAgentSettingsRequest {
                agent_settings: Some(a),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let listed = server
        .agents()
        .list_agent_settings(pb::ListAgentSettingsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.agent_settings.is_empty(), "nothing was stored");

    let missing = server
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().starts_with("agent_settings"));
}

#[tokio::test]
async fn a_phone_number_owned_by_another_agent_is_already_exists() {
    let server = TestServer::start().await;
    let number = unique_number();
    create_agent(&server, agent("First", &number)).await;
    let status = server
        .agents()
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent("Second", &number)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(status.message().contains(&number), "{}", status.message());
}
