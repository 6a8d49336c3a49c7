//! Liveness leases of live calls and the cluster-wide named leases (the orphan
//! sweeper's, `crate::liveness`).

use std::sync::Arc;

use chrono::Duration;

use super::session;
use crate::domain::{self, CallStatus, StatusChange};
use crate::store::Store;

fn ids(sessions: &[crate::domain::CallSession]) -> Vec<String> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

pub(crate) async fn call_leases_expire_renew_and_leave_with_the_call(store: Arc<dyn Store>) {
    let now = domain::now();
    let leased = |until| {
        let mut s = session("agent-1");
        s.lease_expires_at = Some(until);
        s
    };
    let lapsed = store
        .create_session(leased(now - Duration::seconds(5)))
        .await
        .unwrap();
    let lapsed_longer = store
        .create_session(leased(now - Duration::seconds(50)))
        .await
        .unwrap();
    let running = store
        .create_session(leased(now + Duration::seconds(30)))
        .await
        .unwrap();
    let unleased = store.create_session(session("agent-1")).await.unwrap();
    let ended = store
        .create_session(leased(now - Duration::seconds(5)))
        .await
        .unwrap();
    let done = StatusChange {
        end_reason: "caller_hung_up".into(),
        ..StatusChange::to(CallStatus::Completed)
    };
    store.update_status(&ended.id, &done, now).await.unwrap();
    assert_eq!(
        store
            .get_session(&running.id)
            .await
            .unwrap()
            .lease_expires_at,
        running.lease_expires_at,
        "a lease reads back as stored"
    );

    let expired = store.expired_leases(now, 10).await.unwrap();
    assert_eq!(
        ids(&expired),
        [lapsed_longer.id.clone(), lapsed.id.clone()],
        "live sessions whose lease passed, longest expired first; never an ended one, \
         one with a running lease, or one without a lease"
    );
    let first = store.expired_leases(now, 1).await.unwrap();
    assert_eq!(
        ids(&first),
        std::slice::from_ref(&lapsed_longer.id),
        "the limit holds"
    );

    let later = now + Duration::seconds(60);
    let renewed = store
        .renew_leases(
            &[
                lapsed.id.clone(),
                ended.id.clone(),
                "missing".to_owned(),
                lapsed_longer.id.clone(),
            ],
            later,
        )
        .await
        .unwrap();
    assert_eq!(renewed, 2, "only live sessions are renewed");
    assert!(store.expired_leases(now, 10).await.unwrap().is_empty());
    let ended = store.get_session(&ended.id).await.unwrap();
    assert!(
        ended.lease_expires_at.is_none() || ended.lease_expires_at < Some(now),
        "an ended call's lease is not renewed: {:?}",
        ended.lease_expires_at
    );

    let much_later = later + Duration::seconds(1);
    let expired = store.expired_leases(much_later, 10).await.unwrap();
    let mut found = ids(&expired);
    assert_eq!(found.len(), 3, "{expired:?}");
    assert_eq!(found[0], running.id, "the soonest expired comes first");
    found.sort();
    let mut wanted = vec![
        running.id.clone(),
        lapsed.id.clone(),
        lapsed_longer.id.clone(),
    ];
    wanted.sort();
    assert_eq!(found, wanted);
    assert!(!ids(&expired).contains(&unleased.id));
}

pub(crate) async fn a_named_lease_has_one_holder_at_a_time(store: Arc<dyn Store>) {
    let name = format!("sweeper-{}", domain::new_id());
    let now = domain::now();
    let secs = Duration::seconds;
    assert!(store
        .acquire_lease(&name, "replica-a", now, now + secs(10))
        .await
        .unwrap());
    assert!(
        !store
            .acquire_lease(&name, "replica-b", now + secs(5), now + secs(15))
            .await
            .unwrap(),
        "held by another until it expires"
    );
    assert!(
        store
            .acquire_lease(&name, "replica-a", now + secs(9), now + secs(20))
            .await
            .unwrap(),
        "its holder extends it"
    );
    assert!(!store
        .acquire_lease(&name, "replica-b", now + secs(15), now + secs(25))
        .await
        .unwrap());
    assert!(
        store
            .acquire_lease(&name, "replica-b", now + secs(21), now + secs(31))
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    assert!(!store
        .acquire_lease(&name, "replica-a", now + secs(22), now + secs(32))
        .await
        .unwrap());
    let other = format!("{name}-other");
    assert!(
        store
            .acquire_lease(&other, "replica-a", now, now + secs(10))
            .await
            .unwrap(),
        "leases of other names are apart"
    );
}
