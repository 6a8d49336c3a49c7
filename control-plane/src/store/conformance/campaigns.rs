//! Campaigns, their targets and the do-not-call list. Suites may share one database,
//! so every case makes its own campaigns and numbers and asserts only about them.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;

use super::number;
use crate::domain::{
    self, CallStatus, CallWindow, Campaign, CampaignAction, CampaignState, CampaignTarget,
    CampaignTransitionError, DoNotCallEntry, Pacing, RetryPolicy, TargetOutcome, TargetState,
};
use crate::store::{PageRequest, Store, StoreError};

pub(crate) fn campaign(name: &str) -> Campaign {
    let now = domain::now();
    Campaign {
        id: domain::new_id(),
        name: name.to_owned(),
        agent_id: "agent-1".into(),
        from_numbers: vec![number(), number()],
        pacing: Pacing {
            calls_per_second: 1.0,
            max_concurrent_calls: 5,
        },
        window: Some(CallWindow {
            time_zone: "Asia/Tokyo".into(),
            start_minute: 9 * 60,
            end_minute: 20 * 60,
            weekdays: vec![1, 2, 3, 4, 5],
        }),
        retry: RetryPolicy {
            max_attempts: 3,
            retry_on: vec![CallStatus::Busy, CallStatus::NoAnswer],
            backoff_ms: 300_000,
        },
        variables: BTreeMap::from([("product".into(), "plan".into())]),
        start_at: None,
        state: CampaignState::Running,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) fn target(campaign_id: &str, key: &str) -> CampaignTarget {
    let mut t = CampaignTarget::new(
        domain::new_id(),
        campaign_id.to_owned(),
        key.to_owned(),
        number(),
        domain::now(),
    );
    t.name = format!("Customer {key}");
    t.time_zone = "Asia/Tokyo".into();
    t.variables.insert("key".into(), key.to_owned());
    t
}

pub(crate) async fn campaigns_round_trip_and_update_with_versions(store: Arc<dyn Store>) {
    let mut c = campaign("Round trip");
    c.start_at = Some(domain::now() + Duration::hours(2));
    c.state = CampaignState::Scheduled;
    assert_eq!(store.create_campaign(c.clone()).await.unwrap(), c);
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), c);
    assert!(matches!(
        store.create_campaign(c.clone()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.get_campaign(&domain::new_id()).await,
        Err(StoreError::NotFound { .. })
    ));

    let later = domain::now() + Duration::seconds(1);
    let mut change = c.clone();
    change.name = "Renamed".into();
    change.pacing.max_concurrent_calls = 9;
    // Neither the state nor the creation time change through an update.
    change.state = CampaignState::Canceled;
    change.created_at = later;
    let updated = store.update_campaign(change, later).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.pacing.max_concurrent_calls, 9);
    assert_eq!(updated.state, CampaignState::Scheduled);
    assert_eq!(updated.created_at, c.created_at);
    assert_eq!(updated.updated_at, later);
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), updated);

    let err = store.update_campaign(c.clone(), later).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::VersionConflict {
            kind: "campaign",
            id: c.id.clone(),
            expected: 1,
            actual: 2,
        }
    );
    let mut missing = campaign("Missing");
    missing.id = domain::new_id();
    assert!(matches!(
        store.update_campaign(missing, later).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn campaigns_list_newest_first_filtered_by_state(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut c = campaign(&format!("List {i}"));
        if i % 2 == 1 {
            c.state = CampaignState::Paused;
        }
        ids.push(store.create_campaign(c).await.unwrap().id);
    }
    // Walk every page of the paused ones; ours appear newest first, and only paused.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = store
            .list_campaigns(Some(CampaignState::Paused), &PageRequest::new(2, token))
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        assert!(page.items.iter().all(|c| c.state == CampaignState::Paused));
        seen.extend(page.items.into_iter().map(|c| c.id));
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    let ours: Vec<&String> = seen.iter().filter(|id| ids.contains(id)).collect();
    assert_eq!(ours, vec![&ids[3], &ids[1]]);
    let all = store
        .list_campaigns(None, &PageRequest::first(1000))
        .await
        .unwrap();
    for id in &ids {
        assert!(all.items.iter().any(|c| &c.id == id));
    }
    assert!(matches!(
        store
            .list_campaigns(None, &PageRequest::new(2, "not-a-token"))
            .await,
        Err(StoreError::BadPageToken(_))
    ));
}

pub(crate) async fn uploads_are_idempotent_by_target_key(store: Arc<dyn Store>) {
    let c = store.create_campaign(campaign("Uploads")).await.unwrap();
    let first = vec![target(&c.id, "a"), target(&c.id, "b")];
    let outcomes = store.add_targets(&c.id, first.clone()).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            TargetOutcome::Accepted(first[0].id.clone()),
            TargetOutcome::Accepted(first[1].id.clone()),
        ]
    );
    // The same upload again, with fresh ids, plus a new key repeated within the batch.
    let again = vec![
        target(&c.id, "b"),
        target(&c.id, "c"),
        target(&c.id, "a"),
        target(&c.id, "c"),
    ];
    let outcomes = store.add_targets(&c.id, again.clone()).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            TargetOutcome::Duplicate(first[1].id.clone()),
            TargetOutcome::Accepted(again[1].id.clone()),
            TargetOutcome::Duplicate(first[0].id.clone()),
            TargetOutcome::Duplicate(again[1].id.clone()),
        ]
    );
    let stored = store
        .list_targets(&c.id, None, &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        stored.items,
        vec![first[0].clone(), first[1].clone(), again[1].clone()]
    );
    // Keys are per campaign: another campaign takes the same keys.
    let other = store.create_campaign(campaign("Other")).await.unwrap();
    let outcomes = store
        .add_targets(&other.id, vec![target(&other.id, "a")])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], TargetOutcome::Accepted(_)));
    assert!(matches!(
        store
            .add_targets(&domain::new_id(), vec![target("x", "a")])
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn a_large_upload_is_stored_whole(store: Arc<dyn Store>) {
    let c = store.create_campaign(campaign("Large")).await.unwrap();
    let batch: Vec<CampaignTarget> = (0..10_000)
        .map(|i| target(&c.id, &format!("k{i:05}")))
        .collect();
    let outcomes = store.add_targets(&c.id, batch.clone()).await.unwrap();
    assert_eq!(outcomes.len(), 10_000);
    assert!(outcomes
        .iter()
        .zip(&batch)
        .all(|(o, t)| o == &TargetOutcome::Accepted(t.id.clone())));
    // Half of it again, half new: the old half is reported as duplicates, in order.
    let mut second: Vec<CampaignTarget> = (5_000..15_000)
        .map(|i| target(&c.id, &format!("k{i:05}")))
        .collect();
    second.reverse();
    let outcomes = store.add_targets(&c.id, second.clone()).await.unwrap();
    for (outcome, t) in outcomes.iter().zip(&second) {
        let n: usize = t.target_key[1..].parse().unwrap();
        if n < 10_000 {
            assert_eq!(outcome, &TargetOutcome::Duplicate(batch[n].id.clone()));
        } else {
            assert_eq!(outcome, &TargetOutcome::Accepted(t.id.clone()));
        }
    }
    let progress = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!(progress.pending, 15_000);
    assert_eq!(progress.total(), 15_000);
}

pub(crate) async fn targets_list_in_upload_order_filtered_by_state(store: Arc<dyn Store>) {
    let c = store.create_campaign(campaign("Targets")).await.unwrap();
    let batch: Vec<CampaignTarget> = (0..7).map(|i| target(&c.id, &format!("t{i}"))).collect();
    store.add_targets(&c.id, batch.clone()).await.unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = store
            .list_targets(&c.id, None, &PageRequest::new(3, token))
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    assert_eq!(seen, batch);
    let none = store
        .list_targets(&c.id, Some(TargetState::Done), &PageRequest::first(10))
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_token.is_empty());
    assert!(matches!(
        store
            .list_targets(&domain::new_id(), None, &PageRequest::first(10))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .list_targets(&c.id, None, &PageRequest::new(3, "bogus"))
            .await,
        Err(StoreError::BadPageToken(_))
    ));
}

pub(crate) async fn state_changes_follow_the_machine_and_cancel_ends_waiting_targets(
    store: Arc<dyn Store>,
) {
    let c = store.create_campaign(campaign("States")).await.unwrap();
    let batch: Vec<CampaignTarget> = (0..4).map(|i| target(&c.id, &format!("s{i}"))).collect();
    store.add_targets(&c.id, batch).await.unwrap();
    let now = domain::now();

    let paused = store
        .change_campaign_state(&c.id, CampaignAction::Pause, now)
        .await
        .unwrap();
    assert_eq!(paused.state, CampaignState::Paused);
    assert_eq!(paused.version, c.version + 1);
    let err = store
        .change_campaign_state(&c.id, CampaignAction::Pause, now)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::CampaignTransition {
            campaign_id: c.id.clone(),
            source: CampaignTransitionError {
                from: CampaignState::Paused,
                action: CampaignAction::Pause,
            },
        }
    );
    let resumed = store
        .change_campaign_state(&c.id, CampaignAction::Resume, now)
        .await
        .unwrap();
    assert_eq!(resumed.state, CampaignState::Running);

    let canceled = store
        .change_campaign_state(&c.id, CampaignAction::Cancel, now)
        .await
        .unwrap();
    assert_eq!(canceled.state, CampaignState::Canceled);
    let progress = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!((progress.pending, progress.canceled), (0, 4));
    let listed = store
        .list_targets(&c.id, Some(TargetState::Canceled), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 4);
    // A repeated cancel is allowed; pausing or resuming a canceled campaign is not,
    // and it takes no more targets.
    let again = store
        .change_campaign_state(&c.id, CampaignAction::Cancel, now)
        .await
        .unwrap();
    assert_eq!(again.state, CampaignState::Canceled);
    for action in [CampaignAction::Pause, CampaignAction::Resume] {
        assert!(matches!(
            store.change_campaign_state(&c.id, action, now).await,
            Err(StoreError::CampaignTransition { .. })
        ));
    }
    assert!(matches!(
        store.add_targets(&c.id, vec![target(&c.id, "late")]).await,
        Err(StoreError::CampaignFinal { .. })
    ));
    assert!(matches!(
        store
            .change_campaign_state(&domain::new_id(), CampaignAction::Pause, now)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn the_do_not_call_list_is_unique_and_paged(store: Arc<dyn Store>) {
    let now = domain::now();
    let mut numbers: Vec<String> = (0..5).map(|_| number()).collect();
    numbers.sort();
    let entry = |phone: &str| DoNotCallEntry {
        phone: phone.to_owned(),
        reason: "asked not to be called".into(),
        created_at: now,
    };
    let added = store
        .add_do_not_call(numbers.iter().map(|n| entry(n)).collect())
        .await
        .unwrap();
    assert_eq!(added, 5);
    // Listing again keeps the first entry.
    let mut relisted = entry(&numbers[0]);
    relisted.reason = "again".into();
    assert_eq!(store.add_do_not_call(vec![relisted]).await.unwrap(), 0);

    let unlisted = number();
    let checked = store
        .check_do_not_call(&[numbers[3].clone(), unlisted.clone(), numbers[1].clone()])
        .await
        .unwrap();
    assert_eq!(checked, vec![entry(&numbers[1]), entry(&numbers[3])]);

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = store
            .list_do_not_call(&PageRequest::new(2, token))
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items);
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    assert!(seen.windows(2).all(|w| w[0].phone < w[1].phone));
    let ours: Vec<DoNotCallEntry> = seen
        .into_iter()
        .filter(|e| numbers.contains(&e.phone))
        .collect();
    assert_eq!(ours, numbers.iter().map(|n| entry(n)).collect::<Vec<_>>());

    let removed = store
        .remove_do_not_call(&[numbers[0].clone(), unlisted])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(store
        .check_do_not_call(&[numbers[0].clone()])
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store
            .list_do_not_call(&PageRequest::new(2, "nonsense"))
            .await,
        Err(StoreError::BadPageToken(_))
    ));
}

/// A stored campaign (no window) with `n` uploaded targets; their ids in upload order.
async fn campaign_with_targets(store: &Arc<dyn Store>, n: usize) -> (Campaign, Vec<String>) {
    let mut c = campaign("Dispatch");
    c.window = None;
    let c = store.create_campaign(c).await.unwrap();
    let targets: Vec<CampaignTarget> = (0..n).map(|i| target(&c.id, &format!("k{i}"))).collect();
    let ids = targets.iter().map(|t| t.id.clone()).collect();
    store.add_targets(&c.id, targets).await.unwrap();
    (c, ids)
}

pub(crate) async fn each_attempt_is_taken_once_and_follows_its_call(store: Arc<dyn Store>) {
    use crate::domain::{TargetTake, TargetUpdate};
    let (c, ids) = campaign_with_targets(&store, 3).await;
    let now = domain::now();
    let due = store.due_targets(&c.id, now, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|t| &t.id).collect::<Vec<_>>(),
        ids.iter().collect::<Vec<_>>()
    );
    assert_eq!(store.due_targets(&c.id, now, 2).await.unwrap().len(), 2);

    let dial = TargetTake::Dial {
        call_id: "call-1".into(),
    };
    let taken = store
        .take_target(&c.id, &ids[0], 0, &dial, now)
        .await
        .unwrap()
        .expect("a due target is taken");
    assert_eq!(taken.state, TargetState::Dialing);
    assert_eq!(taken.attempts, 1);
    assert_eq!(taken.last_call_id, "call-1");
    // The same attempt again, by anyone: refused.
    let again = TargetTake::Dial {
        call_id: "call-2".into(),
    };
    assert_eq!(
        store.take_target(&c.id, &ids[0], 0, &again, now).await,
        Ok(None)
    );
    assert_eq!(store.count_active_targets(&c.id).await, Ok(1));
    let due: Vec<String> = store
        .due_targets(&c.id, now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(due, ids[1..].to_vec(), "a dialing target is not due");

    // The call goes busy: retried later. An update naming another call changes nothing.
    let later = now + Duration::seconds(60);
    let busy = TargetUpdate {
        state: TargetState::RetryWait,
        attempts: 1,
        last_call_status: Some(CallStatus::Busy),
        last_error: None,
        next_attempt_at: Some(later),
    };
    assert_eq!(
        store
            .update_target(&c.id, &ids[0], "call-9", &busy, now)
            .await,
        Ok(false)
    );
    assert_eq!(
        store
            .update_target(&c.id, &ids[0], "call-1", &busy, now)
            .await,
        Ok(true)
    );
    assert_eq!(
        store
            .update_target(&c.id, &ids[0], "call-1", &busy, now)
            .await,
        Ok(false),
        "a target no longer being called takes no call update"
    );
    assert_eq!(store.count_active_targets(&c.id).await, Ok(0));
    let waiting = store.get_target(&c.id, &ids[0]).await.unwrap();
    assert_eq!(waiting.state, TargetState::RetryWait);
    assert_eq!(waiting.last_call_status, Some(CallStatus::Busy));
    assert_eq!(
        waiting.next_attempt_at.map(|t| t.timestamp_millis()),
        Some(later.timestamp_millis())
    );
    assert!(
        !store
            .due_targets(&c.id, now, 10)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == ids[0]),
        "not due before its retry time"
    );
    let due_later = store.due_targets(&c.id, later, 10).await.unwrap();
    assert_eq!(
        due_later.last().map(|t| &t.id),
        Some(&ids[0]),
        "due last: soonest first"
    );

    // Deferred (window closed) and skipped (do not call).
    let defer = TargetTake::Defer { until: later };
    let deferred = store
        .take_target(&c.id, &ids[1], 0, &defer, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deferred.state, TargetState::Pending);
    let skip = TargetTake::Skip {
        error: crate::domain::CallError {
            code: "campaign.do_not_call".into(),
            message: "listed".into(),
        },
    };
    let skipped = store
        .take_target(&c.id, &ids[2], 0, &skip, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.state, TargetState::Skipped);
    assert_eq!(skipped.last_error.unwrap().code, "campaign.do_not_call");
    assert!(store.due_targets(&c.id, now, 10).await.unwrap().is_empty());
    assert_eq!(store.due_targets(&c.id, later, 10).await.unwrap().len(), 2);
    let progress = store.campaign_progress(&c.id).await.unwrap();
    assert_eq!(
        (progress.pending, progress.retry_wait, progress.skipped),
        (1, 1, 1)
    );
    // Canceling ends the waiting ones, which are then due no more.
    store
        .change_campaign_state(&c.id, CampaignAction::Cancel, now)
        .await
        .unwrap();
    assert!(store
        .due_targets(&c.id, later, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.take_target(&c.id, &ids[1], 0, &dial, later).await,
        Ok(None)
    );
}

pub(crate) async fn a_campaign_completes_only_when_no_target_is_open(store: Arc<dyn Store>) {
    use crate::domain::{TargetTake, TargetUpdate};
    let (empty, _) = campaign_with_targets(&store, 0).await;
    let now = domain::now();
    assert_eq!(
        store.complete_campaign(&empty.id, now).await,
        Ok(false),
        "a campaign without targets waits for its upload"
    );
    let (c, ids) = campaign_with_targets(&store, 1).await;
    assert_eq!(store.complete_campaign(&c.id, now).await, Ok(false));
    let dial = TargetTake::Dial {
        call_id: "call-1".into(),
    };
    store
        .take_target(&c.id, &ids[0], 0, &dial, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.complete_campaign(&c.id, now).await,
        Ok(false),
        "a call is on"
    );
    let done = TargetUpdate {
        state: TargetState::Done,
        attempts: 1,
        last_call_status: Some(CallStatus::Completed),
        last_error: None,
        next_attempt_at: None,
    };
    assert_eq!(
        store
            .update_target(&c.id, &ids[0], "call-1", &done, now)
            .await,
        Ok(true)
    );
    assert_eq!(store.complete_campaign(&c.id, now).await, Ok(true));
    assert_eq!(
        store.get_campaign(&c.id).await.unwrap().state,
        CampaignState::Completed
    );
    assert_eq!(store.complete_campaign(&c.id, now).await, Ok(false));
    assert!(matches!(
        store.add_targets(&c.id, vec![target(&c.id, "late")]).await,
        Err(StoreError::CampaignFinal { .. })
    ));
    assert_eq!(store.campaign_progress(&c.id).await.unwrap().total(), 1);

    // A scheduled campaign starts once its time has come.
    let mut scheduled = campaign("Later");
    scheduled.state = CampaignState::Scheduled;
    scheduled.start_at = Some(now + Duration::seconds(30));
    let scheduled = store.create_campaign(scheduled).await.unwrap();
    assert_eq!(store.start_campaign(&scheduled.id, now).await, Ok(false));
    assert_eq!(
        store
            .start_campaign(&scheduled.id, now + Duration::seconds(31))
            .await,
        Ok(true)
    );
    assert_eq!(
        store.get_campaign(&scheduled.id).await.unwrap().state,
        CampaignState::Running
    );
}
