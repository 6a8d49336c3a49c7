//! CampaignService over loopback: create with first targets, every bad field named and
//! nothing stored, per-target upload results, partial updates, the state machine, and
//! the do-not-call list.

mod support;

#[allow(unused_imports)]
use support::*;

use switchboard_proto::v1::target_result::Result as TargetResult;

fn campaign(agent_id: &str) -> pb::Campaign {
    pb::Campaign {
        name: "Renewals".into(),
        agent_id: agent_id.into(),
        from_numbers: vec![unique_number()],
        pacing: Some(pb::Pacing {
            calls_per_second: 1.0,
            max_concurrent_calls: 4,
        }),
        window: Some(pb::CallWindow {
            time_zone: "Asia/Tokyo".into(),
            start_minute: 9 * 60,
            end_minute: 18 * 60,
            weekdays: vec![1, 2, 3, 4, 5],
        }),
        retry: Some(pb::RetryPolicy {
            max_attempts: 3,
            retry_on: vec![pb::CallStatus::Busy as i32, pb::CallStatus::NoAnswer as i32],
            backoff: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
        }),
        ..Default::default()
    }
}

fn target(key: &str, phone: &str) -> pb::CampaignTarget {
    pb::CampaignTarget {
        target_key: key.into(),
        phone: phone.into(),
        name: format!("Customer {key}"),
        ..Default::default()
    }
}

async fn create(
    server: &TestServer,
    campaign: pb::Campaign,
    targets: Vec<pb::CampaignTarget>,
) -> Result<pb::Campaign, tonic::Status> {
    server
        .campaigns()
        .create_campaign(pb::CreateCampaignRequest {
            campaign: Some(campaign),
            targets,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn list_all(server: &TestServer) -> Vec<pb::Campaign> {
    server
        .campaigns()
        .list_campaigns(pb::ListCampaignsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .campaigns
}

#[tokio::test]
async fn a_campaign_is_created_with_its_first_targets_and_read_back() {
    let server = TestServer::start().await;
    let agent = create_agent(&server, agent("Caller", &unique_number())).await;
    let targets = vec![
        target("a", &unique_number()),
        target("b", &unique_number()),
        // The same key again is stored once.
        target("a", &unique_number()),
    ];
    let created = create(&server, campaign(&agent.id), targets).await.unwrap();
    assert_eq!(created.state, pb::CampaignState::Running as i32);
    assert_eq!(created.version, 1);
    assert_eq!(created.from_number, created.from_numbers[0]);
    let progress = created.progress.unwrap();
    assert_eq!((progress.total, progress.pending), (2, 2));

    let fetched = server
        .campaigns()
        .get_campaign(pb::GetCampaignRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);
    let listed = server
        .campaigns()
        .list_campaign_targets(pb::ListCampaignTargetsRequest {
            campaign_id: created.id.clone(),
            state: pb::TargetState::Pending as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = listed
        .targets
        .iter()
        .map(|t| t.target_key.as_str())
        .collect();
    assert_eq!(keys, ["a", "b"]);

    // A start in the future schedules it; the legacy single caller id still works.
    let mut later = campaign(&agent.id);
    later.from_numbers.clear();
    later.from_number = unique_number();
    later.start_at = Some(prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 3600,
        nanos: 0,
    });
    let scheduled = create(&server, later.clone(), vec![]).await.unwrap();
    assert_eq!(scheduled.state, pb::CampaignState::Scheduled as i32);
    assert_eq!(scheduled.from_numbers, vec![later.from_number]);
    let only_scheduled = server
        .campaigns()
        .list_campaigns(pb::ListCampaignsRequest {
            state: pb::CampaignState::Scheduled as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = only_scheduled
        .campaigns
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, [scheduled.id.as_str()]);
}

#[tokio::test]
async fn bad_campaigns_are_refused_naming_the_field_and_nothing_is_stored() {
    let server = TestServer::start_with(|c| c.twilio.max_cps = 5).await;
    let agent = create_agent(&server, agent("Caller", &unique_number())).await;
    let ok = || campaign(&agent.id);
    let window = |c: &mut pb::Campaign| c.window.as_mut().unwrap().clone();
    let mut cases: Vec<(&str, pb::Campaign, Vec<pb::CampaignTarget>)> = Vec::new();
    let mut c = ok();
    c.pacing.as_mut().unwrap().calls_per_second = -1.0;
    cases.push(("campaign.pacing.calls_per_second", c, vec![]));
    let mut c = ok();
    c.pacing.as_mut().unwrap().calls_per_second = 6.0;
    cases.push(("campaign.pacing.calls_per_second", c, vec![]));
    let mut c = ok();
    let mut w = window(&mut c);
    w.end_minute = w.start_minute;
    c.window = Some(w);
    cases.push(("campaign.window.end_minute", c, vec![]));
    let mut c = ok();
    c.window.as_mut().unwrap().time_zone = "Europe/Atlantis".into();
    cases.push(("campaign.window.time_zone", c, vec![]));
    let mut c = ok();
    c.window.as_mut().unwrap().weekdays = vec![1, 9];
    cases.push(("campaign.window.weekdays[1]", c, vec![]));
    let mut c = ok();
    c.from_numbers = vec![unique_number(), "0312345678".into()];
    cases.push(("campaign.from_numbers[1]", c, vec![]));
    let mut c = ok();
    c.retry.as_mut().unwrap().retry_on = vec![pb::CallStatus::Completed as i32];
    cases.push(("campaign.retry.retry_on[0]", c, vec![]));
    let mut c = ok();
    c.name.clear();
    cases.push(("campaign.name", c, vec![]));
    cases.push((
        "targets[1].phone",
        ok(),
        vec![target("a", &unique_number()), target("b", "12345")],
    ));
    let mut zoned = target("z", &unique_number());
    zoned.time_zone = "Nowhere/Special".into();
    cases.push(("targets[0].time_zone", ok(), vec![zoned]));
    cases.push((
        "targets[0].target_key",
        ok(),
        vec![target(&"k".repeat(201), &unique_number())],
    ));
    for (field, c, targets) in cases {
        let status = create(&server, c, targets).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            status.message().starts_with(&format!("{field}: ")),
            "{field}: {}",
            status.message()
        );
    }
    let mut c = ok();
    c.pacing.as_mut().unwrap().calls_per_second = 5.0;
    create(&server, c, vec![]).await.unwrap();

    let status = create(&server, campaign("no-such-agent"), vec![])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(
        list_all(&server).await.len(),
        1,
        "nothing refused was stored"
    );
}

#[tokio::test]
async fn uploads_answer_each_target_in_request_order() {
    let server = TestServer::start().await;
    let agent = create_agent(&server, agent("Caller", &unique_number())).await;
    let created = create(
        &server,
        campaign(&agent.id),
        vec![target("a", &unique_number())],
    )
    .await
    .unwrap();
    let upload = |targets: Vec<pb::CampaignTarget>| {
        let mut client = server.campaigns();
        let campaign_id = created.id.clone();
        async move {
            client
                .add_campaign_targets(pb::AddCampaignTargetsRequest {
                    campaign_id,
                    targets,
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let first = server
        .campaigns()
        .list_campaign_targets(pb::ListCampaignTargetsRequest {
            campaign_id: created.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .targets
        .remove(0);
    let reply = upload(vec![
        target("b", &unique_number()),
        target("bad", "not a number"),
        target("a", &unique_number()),
        target("c", &unique_number()),
    ])
    .await
    .unwrap();
    assert_eq!((reply.accepted, reply.duplicates, reply.invalid), (2, 1, 1));
    let results: Vec<TargetResult> = reply
        .results
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect();
    assert!(matches!(&results[0], TargetResult::AcceptedId(_)));
    match &results[1] {
        TargetResult::Invalid(e) => assert_eq!(e.field, "targets[1].phone"),
        other => panic!("{other:?}"),
    }
    assert_eq!(results[2], TargetResult::DuplicateOfId(first.id.clone()));
    let TargetResult::AcceptedId(c_id) = &results[3] else {
        panic!("{:?}", results[3]);
    };

    // The same upload again changes nothing and names the stored targets.
    let again = upload(vec![target("c", &unique_number())]).await.unwrap();
    assert_eq!(
        again.results[0].result,
        Some(TargetResult::DuplicateOfId(c_id.clone()))
    );
    let progress = server
        .campaigns()
        .get_campaign(pb::GetCampaignRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .progress
        .unwrap();
    assert_eq!(progress.pending, 3);

    let too_many = upload(vec![target("x", &unique_number()); 10_001])
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(too_many.message().starts_with("targets: "), "{too_many:?}");
    let unknown = server
        .campaigns()
        .add_campaign_targets(pb::AddCampaignTargetsRequest {
            campaign_id: uuid::Uuid::now_v7().to_string(),
            targets: vec![target("x", &unique_number())],
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn updates_change_only_the_named_fields_with_optimistic_versions() {
    let server = TestServer::start().await;
    let agent = create_agent(&server, agent("Caller", &unique_number())).await;
    let created = create(&server, campaign(&agent.id), vec![]).await.unwrap();
    let mut edit = created.clone();
    edit.name = "ignored: not in the mask".into();
    edit.pacing = Some(pb::Pacing {
        calls_per_second: 1.0,
        max_concurrent_calls: 20,
    });
    let update = |campaign: pb::Campaign, paths: &[&str]| {
        let mut client = server.campaigns();
        let paths = paths.iter().map(|p| (*p).to_owned()).collect();
        async move {
            client
                .update_campaign(pb::UpdateCampaignRequest {
                    campaign: Some(campaign),
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let updated = update(edit.clone(), &["pacing"]).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, created.name);
    assert_eq!(updated.pacing.unwrap().max_concurrent_calls, 20);

    let stale = update(edit.clone(), &["pacing"]).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let mut bad = updated.clone();
    bad.window.as_mut().unwrap().end_minute = 1;
    let status = update(bad, &["window"]).await.unwrap_err();
    assert!(
        status.message().starts_with("campaign.window.end_minute: "),
        "{status:?}"
    );
    let status = update(updated.clone(), &["state"]).await.unwrap_err();
    assert!(
        status.message().starts_with("update_mask.paths[0]: "),
        "{status:?}"
    );
    let status = update(updated, &[]).await.unwrap_err();
    assert_eq!(status.message(), "update_mask: is required");
}

#[tokio::test]
async fn pause_resume_and_cancel_follow_the_state_machine() {
    let server = TestServer::start().await;
    let agent = create_agent(&server, agent("Caller", &unique_number())).await;
    let created = create(
        &server,
        campaign(&agent.id),
        vec![target("a", &unique_number()), target("b", &unique_number())],
    )
    .await
    .unwrap();
    let id = || created.id.clone();
    let mut client = server.campaigns();
    let paused = client
        .pause_campaign(pb::PauseCampaignRequest { id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, pb::CampaignState::Paused as i32);
    let twice = client
        .pause_campaign(pb::PauseCampaignRequest { id: id() })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");
    let resumed = client
        .resume_campaign(pb::ResumeCampaignRequest { id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.state, pb::CampaignState::Running as i32);
    let canceled = client
        .cancel_campaign(pb::CancelCampaignRequest { id: id() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(canceled.state, pb::CampaignState::Canceled as i32);
    let progress = canceled.progress.unwrap();
    assert_eq!((progress.pending, progress.canceled), (0, 2));
    let refused = client
        .pause_campaign(pb::PauseCampaignRequest { id: id() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused
        .message()
        .contains("cannot pause a canceled campaign"));
    let late = client
        .add_campaign_targets(pb::AddCampaignTargetsRequest {
            campaign_id: id(),
            targets: vec![target("c", &unique_number())],
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    let unknown = client
        .pause_campaign(pb::PauseCampaignRequest {
            id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn the_do_not_call_list_normalises_numbers_and_pages() {
    let server = TestServer::start().await;
    let mut client = server.campaigns();
    let added = client
        .add_do_not_call(pb::AddDoNotCallRequest {
            phones: vec![
                "+81 90-1234-5678".into(),
                "+819012345679".into(),
                "+819012345678".into(),
            ],
            reason: "asked".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.added, 2);
    let bad = client
        .add_do_not_call(pb::AddDoNotCallRequest {
            phones: vec!["+819012345670".into(), "090".into()],
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("phones[1]: "), "{bad:?}");

    let checked = client
        .check_do_not_call(pb::CheckDoNotCallRequest {
            phones: vec!["+81 (90) 1234 5678".into(), "+819011112222".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<&str> = checked.listed.iter().map(|e| e.phone.as_str()).collect();
    assert_eq!(listed, ["+819012345678"]);
    assert_eq!(checked.listed[0].reason, "asked");

    let first = client
        .list_do_not_call(pb::ListDoNotCallRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.entries[0].phone, "+819012345678");
    let second = client
        .list_do_not_call(pb::ListDoNotCallRequest {
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.entries[0].phone, "+819012345679");
    assert!(second.next_page_token.is_empty());

    let removed = client
        .remove_do_not_call(pb::RemoveDoNotCallRequest {
            phones: vec!["+819012345679".into(), "+819011112222".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    let empty = client
        .check_do_not_call(pb::CheckDoNotCallRequest { phones: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.message(), "phones: is required");
}
