//! One suite every [`Store`] must pass. `store_conformance_suite!` expands it into
//! `#[tokio::test]`s for a store constructor, and `store_migration_suite!` the cases
//! of a store's start-up migration for a fixture that writes its previous layout; see
//! `embedded/tests.rs` and `mongo/tests.rs`. Conversation reads are in
//! `conformance/conversation.rs`, the migration in `conformance/migration.rs`,
//! campaigns and the do-not-call list in `conformance/campaigns.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::domain::{
    self, AgentMode, AgentSettings, AppendError, CallDirection, CallSession, CallStatus,
    ConversationItem, Fallback, InputTranscription, ItemKind, RealtimeProvider, Role, StatusChange,
    Tool, TurnDetection, Usage,
};

use super::{PageRequest, SessionFilter, Store, StoreError, StreamAttachment};

mod campaigns;
mod conversation;
mod leases;
mod migration;

pub(crate) use campaigns::*;
pub(crate) use conversation::*;
pub(crate) use leases::*;
pub(crate) use migration::*;

pub(crate) fn agent(name: &str, numbers: &[&str]) -> AgentSettings {
    let now = domain::now();
    AgentSettings {
        id: domain::new_id(),
        name: name.to_owned(),
        phone_numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
        mode: AgentMode::Realtime,
        provider: RealtimeProvider::OpenAi,
        model: "gpt-realtime".into(),
        voice: "marin".into(),
        instructions: "お客様 {{name}} に丁寧に対応してください。".into(),
        temperature: Some(0.8),
        tools: vec![Tool {
            name: "lookup".into(),
            description: "looks up".into(),
            parameters_json_schema: r#"{"type":"object"}"#.into(),
            webhook_url: "https://tools.example.invalid/lookup".into(),
            timeout_ms: 3_000,
        }],
        turn_detection: TurnDetection {
            threshold: Some(0.6),
            silence_duration_ms: Some(700),
            ..TurnDetection::default()
        },
        input_transcription: InputTranscription {
            model: "gpt-4o-transcribe".into(),
            language: "ja".into(),
            prompt: String::new(),
        },
        greeting: "お電話ありがとうございます。".into(),
        goodbye: "お時間になりましたので、失礼いたします。".into(),
        max_call_duration_ms: 600_000,
        handoff_target: Some(domain::HandoffTarget::Conference("support".into())),
        fallback: Fallback::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) fn session(agent_id: &str) -> CallSession {
    let mut s = CallSession::new(
        CallDirection::Outbound,
        "+815011112222".into(),
        "+819012345678".into(),
        domain::now(),
    );
    s.agent_id = agent_id.to_owned();
    s.customer.name = "Yamada".into();
    s.variables.insert("plan".into(), "premium".into());
    s
}

pub(crate) fn items(seqs: std::ops::RangeInclusive<u64>, tag: &str) -> Vec<ConversationItem> {
    seqs.map(|seq| ConversationItem {
        seq,
        role: if seq.is_multiple_of(2) {
            Role::Assistant
        } else {
            Role::User
        },
        kind: ItemKind::Message,
        text: format!("{tag} item {seq}"),
        provider_item_id: format!("item_{seq}"),
        payload_json: String::new(),
        created_at: domain::now(),
    })
    .collect()
}

/// A unique E.164 number per test, so suites can share one database.
fn number() -> String {
    let n = uuid::Uuid::now_v7().as_u128() % 1_000_000_000;
    format!("+8150{n:09}")
}

pub(crate) async fn agent_settings_round_trip(store: Arc<dyn Store>) {
    let a = agent("Reception", &[&number()]);
    let created = store.create_agent(a.clone()).await.unwrap();
    assert_eq!(created, a);
    assert_eq!(store.get_agent(&a.id).await.unwrap(), a);
    let by_phone = store.agent_by_phone(&a.phone_numbers[0]).await.unwrap();
    assert_eq!(by_phone.as_ref(), Some(&a));
    assert_eq!(store.agent_by_phone(&number()).await.unwrap(), None);
}

pub(crate) async fn a_phone_number_belongs_to_one_agent(store: Arc<dyn Store>) {
    let shared = number();
    let first = store
        .create_agent(agent("First", &[&shared]))
        .await
        .unwrap();
    let err = store
        .create_agent(agent("Second", &[&number(), &shared]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(m) if m.contains(&shared)),
        "{err:?}"
    );

    let second = store
        .create_agent(agent("Second", &[&number()]))
        .await
        .unwrap();
    let mut stealing = second.clone();
    stealing.phone_numbers.push(shared.clone());
    let err = store
        .update_agent(stealing, domain::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        store.get_agent(&second.id).await.unwrap(),
        second,
        "a refused update changes nothing"
    );

    // Keeping one's own number while changing others is fine, and a freed number is free.
    let mut moved = first.clone();
    moved.phone_numbers = vec![number()];
    store.update_agent(moved, domain::now()).await.unwrap();
    assert_eq!(store.agent_by_phone(&shared).await.unwrap(), None);
    store
        .create_agent(agent("Third", &[&shared]))
        .await
        .unwrap();
}

pub(crate) async fn updates_use_optimistic_versions(store: Arc<dyn Store>) {
    let a = store
        .create_agent(agent("Versioned", &[&number()]))
        .await
        .unwrap();
    let mut edit = a.clone();
    edit.instructions = "changed".into();
    let later = domain::now();
    let updated = store.update_agent(edit.clone(), later).await.unwrap();
    assert_eq!(updated.version, a.version + 1);
    assert_eq!(updated.instructions, "changed");
    assert_eq!(updated.created_at, a.created_at);
    assert_eq!(updated.updated_at, later);
    assert_eq!(store.get_agent(&a.id).await.unwrap(), updated);

    let err = store.update_agent(edit, domain::now()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { expected, actual, .. } if expected == a.version && actual == updated.version),
        "{err:?}"
    );
    let err = store
        .delete_agent(&a.id, Some(a.version))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::VersionConflict { .. }), "{err:?}");
    store
        .delete_agent(&a.id, Some(updated.version))
        .await
        .unwrap();
    assert!(matches!(
        store.get_agent(&a.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_agent(&a.id, None).await,
        Err(StoreError::NotFound { .. })
    ));
    let mut ghost = updated;
    ghost.version += 1;
    assert!(matches!(
        store.update_agent(ghost, domain::now()).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn agents_list_newest_first_in_pages(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .create_agent(agent(&format!("Paged {i}"), &[]))
                .await
                .unwrap()
                .id,
        );
    }
    // Other tests may share the database: look only at our agents, which are the
    // newest unless another test created one meanwhile.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let result = store.list_agents(&page).await.unwrap();
        assert!(result.items.len() <= 2);
        seen.extend(
            result
                .items
                .into_iter()
                .map(|a| a.id)
                .filter(|id| ids.contains(id)),
        );
        if result.next_token.is_empty() || seen.len() == ids.len() {
            break;
        }
        page = PageRequest {
            size: 2,
            token: result.next_token,
        };
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let err = store
        .list_agents(&PageRequest {
            size: 2,
            token: "%%%".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadPageToken(_)), "{err:?}");
}

pub(crate) async fn sessions_round_trip_and_call_sids_are_unique(store: Arc<dyn Store>) {
    let mut s = session("agent-1");
    s.twilio_call_sid = format!("CA{}", uuid::Uuid::now_v7().simple());
    s.customer.variables.insert("会員番号".into(), "42".into());
    let created = store.create_session(s.clone()).await.unwrap();
    assert_eq!(created, s);
    assert_eq!(store.get_session(&s.id).await.unwrap(), s);
    assert_eq!(
        store.session_by_call_sid(&s.twilio_call_sid).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.session_by_call_sid("CAunknown").await.unwrap(), None);

    let mut twin = session("agent-1");
    twin.twilio_call_sid.clone_from(&s.twilio_call_sid);
    let err = store.create_session(twin.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert!(matches!(
        store.get_session(&twin.id).await,
        Err(StoreError::NotFound { .. })
    ));

    // Sessions without a call SID yet do not collide with each other.
    store.create_session(session("agent-1")).await.unwrap();
    store.create_session(session("agent-1")).await.unwrap();
    assert!(matches!(
        store.get_session("missing").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn status_follows_the_machine(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    let t1 = domain::now();
    let change = StatusChange {
        twilio_call_sid: "CA123".into(),
        ..StatusChange::to(CallStatus::InProgress)
    };
    let out = store.update_status(&s.id, &change, t1).await.unwrap();
    assert_eq!(out.previous, Some(CallStatus::Queued));
    assert_eq!(out.session.status, CallStatus::InProgress);
    assert_eq!(out.session.started_at, Some(t1));
    assert_eq!(out.session.twilio_call_sid, "CA123");

    let repeat = store
        .update_status(&s.id, &change, domain::now())
        .await
        .unwrap();
    assert_eq!(repeat.previous, None);

    let back = store
        .update_status(&s.id, &StatusChange::to(CallStatus::Ringing), domain::now())
        .await;
    assert!(
        matches!(back, Err(StoreError::Transition { .. })),
        "{back:?}"
    );

    let done = StatusChange {
        end_reason: "caller_hung_up".into(),
        ..StatusChange::to(CallStatus::Completed)
    };
    let t2 = domain::now();
    let out = store.update_status(&s.id, &done, t2).await.unwrap();
    assert_eq!(out.session.ended_at, Some(t2));
    assert_eq!(out.session.end_reason, "caller_hung_up");

    let err = store
        .update_status(&s.id, &StatusChange::to(CallStatus::Failed), domain::now())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("completed") && text.contains("failed"),
        "{text}"
    );
    let stored = store.get_session(&s.id).await.unwrap();
    assert_eq!(stored.status, CallStatus::Completed);
    assert_eq!(stored.ended_at, Some(t2));
    assert!(matches!(
        store.update_status("missing", &done, domain::now()).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn racing_final_states_have_one_winner(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    let finals = [
        CallStatus::Completed,
        CallStatus::Failed,
        CallStatus::Busy,
        CallStatus::Canceled,
        CallStatus::HandedOff,
        CallStatus::NoAnswer,
    ];
    let mut tasks = Vec::new();
    for status in finals {
        let store = store.clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .update_status(&id, &StatusChange::to(status), domain::now())
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Ok(out) = task.await.unwrap() {
            winners.push(out.session.status);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(store.get_session(&s.id).await.unwrap().status, winners[0]);
}

pub(crate) async fn appends_are_idempotent_and_ordered(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    let first = store.append_items(&s.id, &items(1..=3, "a")).await.unwrap();
    assert_eq!(first.last_seq, 3);
    assert_eq!(first.stored.len(), 3);

    let resent = store.append_items(&s.id, &items(1..=3, "a")).await.unwrap();
    assert_eq!(resent.last_seq, 3);
    assert!(resent.stored.is_empty());

    let overlap = store.append_items(&s.id, &items(3..=5, "a")).await.unwrap();
    assert_eq!(
        overlap.stored.iter().map(|i| i.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );

    let err = store
        .append_items(&s.id, &items(7..=8, "a"))
        .await
        .unwrap_err();
    match err {
        StoreError::Append {
            source: AppendError::Gap { expected, .. },
            last_seq,
            ..
        } => {
            assert_eq!((expected, last_seq), (6, 5));
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    let stored = store.get_session(&s.id).await.unwrap();
    assert_eq!(stored.last_seq, 5);
    let conversation = read_conversation(store.as_ref(), &s.id).await;
    assert_eq!(
        conversation,
        items(1..=5, "a")
            .into_iter()
            .zip(&conversation)
            .map(|(mut want, got)| {
                want.created_at = got.created_at;
                want
            })
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        store.append_items("missing", &items(1..=1, "a")).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// At least 50 calls × 100 items, in batches of varying size with re-sends, all at
/// once: nothing lost, nothing duplicated, nothing mixed between calls.
pub(crate) async fn concurrent_calls_never_lose_or_mix_items(store: Arc<dyn Store>) {
    const CALLS: usize = 50;
    const ITEMS: u64 = 100;
    let mut tasks = Vec::new();
    for call in 0..CALLS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = store.create_session(session("agent-load")).await.unwrap();
            let tag = format!("call {call} {}", s.id);
            let mut next = 1;
            let mut batch_size = 1 + (call as u64 % 7);
            while next <= ITEMS {
                let end = (next + batch_size - 1).min(ITEMS);
                let batch = items(next..=end, &tag);
                let out = store.append_items(&s.id, &batch).await.unwrap();
                assert_eq!(out.last_seq, end);
                if end.is_multiple_of(10) {
                    // A sidecar re-sending after a reconnect.
                    let again = store.append_items(&s.id, &batch).await.unwrap();
                    assert!(again.stored.is_empty());
                }
                next = end + 1;
                batch_size = batch_size % 9 + 1;
            }
            (s.id, tag)
        }));
    }
    for task in tasks {
        let (id, tag) = task.await.unwrap();
        let stored = store.get_session(&id).await.unwrap();
        assert_eq!(stored.last_seq, ITEMS);
        let conversation = read_conversation(store.as_ref(), &id).await;
        let seqs: Vec<u64> = conversation.iter().map(|i| i.seq).collect();
        assert_eq!(seqs, (1..=ITEMS).collect::<Vec<_>>(), "call {id}");
        for item in &conversation {
            assert_eq!(item.text, format!("{tag} item {}", item.seq));
        }
    }
}

pub(crate) async fn sessions_list_with_filters_and_pages(store: Arc<dyn Store>) {
    let agent_id = domain::new_id();
    let campaign_id = domain::new_id();
    let start = domain::now();
    let mut ids = Vec::new();
    for i in 0..7_usize {
        let mut s = session(&agent_id);
        if i.is_multiple_of(2) {
            s.campaign_id.clone_from(&campaign_id);
        }
        if i == 3 {
            s.direction = CallDirection::Inbound;
        }
        store.create_session(s.clone()).await.unwrap();
        store.append_items(&s.id, &items(1..=2, "x")).await.unwrap();
        ids.push(s.id);
    }
    store
        .update_status(&ids[1], &StatusChange::to(CallStatus::Busy), domain::now())
        .await
        .unwrap();

    let by_agent = SessionFilter {
        agent_id: Some(agent_id.clone()),
        ..SessionFilter::default()
    };
    let mut all = Vec::new();
    let mut page = PageRequest::first(3);
    loop {
        let result = store.list_sessions(&by_agent, &page).await.unwrap();
        assert!(result.items.iter().all(|s| s.last_seq == 2));
        all.extend(result.items.into_iter().map(|s| s.id));
        if result.next_token.is_empty() {
            break;
        }
        page = PageRequest {
            size: 3,
            token: result.next_token,
        };
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(all, newest_first);

    let ids_of = |filter: SessionFilter| {
        let store = store.clone();
        async move {
            let page = store
                .list_sessions(&filter, &PageRequest::first(100))
                .await
                .unwrap();
            page.items
                .into_iter()
                .map(|s| s.id)
                .collect::<BTreeSet<_>>()
        }
    };
    let campaign = ids_of(SessionFilter {
        campaign_id: Some(campaign_id),
        ..by_agent.clone()
    })
    .await;
    assert_eq!(
        campaign,
        [0, 2, 4, 6].iter().map(|&i| ids[i].clone()).collect()
    );
    let inbound = ids_of(SessionFilter {
        direction: Some(CallDirection::Inbound),
        ..by_agent.clone()
    })
    .await;
    assert_eq!(inbound, BTreeSet::from([ids[3].clone()]));
    let busy = ids_of(SessionFilter {
        status: Some(CallStatus::Busy),
        ..by_agent.clone()
    })
    .await;
    assert_eq!(busy, BTreeSet::from([ids[1].clone()]));
    let after = ids_of(SessionFilter {
        created_after: Some(start),
        ..by_agent.clone()
    })
    .await;
    assert_eq!(after.len(), 7);
    let before = ids_of(SessionFilter {
        created_before: Some(start),
        ..by_agent.clone()
    })
    .await;
    assert!(before.is_empty());
}

pub(crate) async fn streams_and_usage_are_recorded(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    let stream = StreamAttachment {
        stream_sid: "MZ123".into(),
        call_sid: "CA999".into(),
        sidecar_id: "sidecar-a".into(),
    };
    let attached = store
        .attach_stream(&s.id, &stream, domain::now())
        .await
        .unwrap();
    assert_eq!(
        (
            attached.twilio_stream_sid.as_str(),
            attached.twilio_call_sid.as_str(),
            attached.sidecar_id.as_str()
        ),
        ("MZ123", "CA999", "sidecar-a")
    );
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 20,
        total_tokens: 30,
        caller_audio_ms: 1_000,
        ..Usage::default()
    };
    store
        .record_usage(&s.id, &usage, domain::now())
        .await
        .unwrap();
    let stored = store.get_session(&s.id).await.unwrap();
    assert_eq!(stored.usage, usage);
    assert_eq!(stored.twilio_stream_sid, "MZ123");
    assert!(matches!(
        store.attach_stream("missing", &stream, domain::now()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.record_usage("missing", &usage, domain::now()).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Expands the suite into `#[tokio::test]`s. `$make` is an async expression giving
/// `Option<Arc<dyn Store>>`; `None` skips (used when no MongoDB is configured).
macro_rules! store_conformance_suite {
    ($make:expr) => {
        store_conformance_suite!(@tests $make;
            agent_settings_round_trip,
            a_phone_number_belongs_to_one_agent,
            updates_use_optimistic_versions,
            agents_list_newest_first_in_pages,
            sessions_round_trip_and_call_sids_are_unique,
            status_follows_the_machine,
            racing_final_states_have_one_winner,
            appends_are_idempotent_and_ordered,
            concurrent_calls_never_lose_or_mix_items,
            sessions_list_with_filters_and_pages,
            streams_and_usage_are_recorded,
            items_across_many_appends_read_back_whole_and_paged,
            pages_stop_at_their_byte_budget,
            resent_and_racing_duplicates_are_stored_once,
            a_refused_batch_leaves_nothing_that_is_read,
            call_leases_expire_renew_and_leave_with_the_call,
            a_named_lease_has_one_holder_at_a_time,
            campaigns_round_trip_and_update_with_versions,
            campaigns_list_newest_first_filtered_by_state,
            uploads_are_idempotent_by_target_key,
            a_large_upload_is_stored_whole,
            targets_list_in_upload_order_filtered_by_state,
            state_changes_follow_the_machine_and_cancel_ends_waiting_targets,
            the_do_not_call_list_is_unique_and_paged,
            each_attempt_is_taken_once_and_follows_its_call,
            a_campaign_completes_only_when_no_target_is_open,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(store) = $make.await {
                    $crate::store::conformance::$name(store).await;
                }
            }
        )*
    };
}

pub(crate) use store_conformance_suite;

/// Expands the migration cases into `#[tokio::test]`s. `$make` is an async expression
/// giving `Option<impl OldLayout>` (see `conformance/migration.rs`); `None` skips.
macro_rules! store_migration_suite {
    ($make:expr) => {
        store_migration_suite!(@tests $make;
            an_old_layout_is_moved_at_start_up_and_reads_the_same,
            a_second_start_moves_nothing_and_changes_nothing,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fixture) = $make.await {
                    $crate::store::conformance::$name(fixture).await;
                }
            }
        )*
    };
}

pub(crate) use store_migration_suite;
