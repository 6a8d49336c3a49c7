//! Conformance cases for reading a call's conversation: whole, in pages by count and
//! by size, and with duplicates stored once.

use std::sync::Arc;

use super::{items, session};
use crate::domain::ConversationItem;
use crate::store::{ItemsRequest, Store, StoreError};

/// Everything, one page.
pub(crate) const WHOLE: ItemsRequest = ItemsRequest {
    after_seq: 0,
    max_items: usize::MAX,
    max_bytes: usize::MAX,
};

/// Reads a call's whole conversation in pages of 100 and checks each page's promises:
/// contiguous from seq 1, and a next page exactly while items are left.
pub(crate) async fn read_conversation(store: &dyn Store, id: &str) -> Vec<ConversationItem> {
    read_in_pages(store, id, 100, usize::MAX).await
}

/// [`read_conversation`] with pages of at most `max_items` and `max_bytes`.
pub(crate) async fn read_in_pages(
    store: &dyn Store,
    id: &str,
    max_items: usize,
    max_bytes: usize,
) -> Vec<ConversationItem> {
    let mut all: Vec<ConversationItem> = Vec::new();
    let mut after_seq = 0;
    loop {
        let request = ItemsRequest {
            after_seq,
            max_items,
            max_bytes,
        };
        let page = store.list_items(id, &request).await.unwrap();
        assert!(page.items.len() <= max_items, "call {id}: page too long");
        for (item, seq) in page.items.iter().zip(after_seq + 1..) {
            assert_eq!(item.seq, seq, "call {id}: pages are contiguous");
        }
        all.extend(page.items.iter().cloned());
        match page.next_after() {
            Some(next) => after_seq = next,
            None => {
                let last = all.last().map_or(0, |item| item.seq);
                assert_eq!(last, page.last_seq, "call {id}: read through last_seq");
                return all;
            }
        }
    }
}

/// The items of `tag` with `seqs` as the store gives them back (times as stored).
fn same_items(got: &[ConversationItem], want: Vec<ConversationItem>) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(got, mut want)| {
            want.created_at = got.created_at;
            *got == want
        })
}

pub(crate) async fn items_across_many_appends_read_back_whole_and_paged(store: Arc<dyn Store>) {
    const ITEMS: u64 = 250;
    let s = store.create_session(session("agent-1")).await.unwrap();
    let empty = store.list_items(&s.id, &WHOLE).await.unwrap();
    assert!(empty.items.is_empty() && empty.last_seq == 0);
    assert_eq!(empty.next_after(), None);

    let mut next = 1;
    let mut size = 1;
    while next <= ITEMS {
        let end = (next + size - 1).min(ITEMS);
        store
            .append_items(&s.id, &items(next..=end, "long"))
            .await
            .unwrap();
        next = end + 1;
        size = size % 9 + 1;
    }

    let whole = store.list_items(&s.id, &WHOLE).await.unwrap();
    assert_eq!(whole.last_seq, ITEMS);
    assert_eq!(whole.next_after(), None);
    assert!(same_items(&whole.items, items(1..=ITEMS, "long")));
    for size in [1, 7, 100, 250, 1000] {
        let paged = read_in_pages(store.as_ref(), &s.id, size, usize::MAX).await;
        assert_eq!(paged, whole.items, "pages of {size}");
    }

    // A page from the middle, and one past the end.
    let middle = ItemsRequest {
        after_seq: 120,
        max_items: 5,
        max_bytes: usize::MAX,
    };
    let page = store.list_items(&s.id, &middle).await.unwrap();
    let seqs: Vec<u64> = page.items.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, [121, 122, 123, 124, 125]);
    assert_eq!(page.next_after(), Some(125));
    let beyond = ItemsRequest {
        after_seq: ITEMS + 10,
        ..middle
    };
    let page = store.list_items(&s.id, &beyond).await.unwrap();
    assert!(page.items.is_empty() && page.last_seq == ITEMS);

    assert!(matches!(
        store.list_items("missing", &WHOLE).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn pages_stop_at_their_byte_budget(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    let mut batch = items(1..=12, "sized");
    for item in &mut batch {
        item.text = "x".repeat(1_000);
    }
    let weight = batch[0].weight();
    store.append_items(&s.id, &batch).await.unwrap();

    // Three items fit, the fourth would not.
    let request = ItemsRequest {
        after_seq: 0,
        max_items: 100,
        max_bytes: 3 * weight + weight / 2,
    };
    let page = store.list_items(&s.id, &request).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.next_after(), Some(3));
    assert_eq!(
        read_in_pages(store.as_ref(), &s.id, 100, request.max_bytes)
            .await
            .len(),
        12
    );
    // An item larger than the budget still comes, alone: a page always moves on.
    let tiny = ItemsRequest {
        after_seq: 5,
        max_items: 100,
        max_bytes: 1,
    };
    let page = store.list_items(&s.id, &tiny).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.seq).collect::<Vec<_>>(), [6]);
}

pub(crate) async fn resent_and_racing_duplicates_are_stored_once(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    let first = store.append_items(&s.id, &items(1..=5, "d")).await.unwrap();
    assert_eq!(first.stored.len(), 5);
    // A sidecar re-sending after a reconnect: the same batch, then a longer one.
    let again = store.append_items(&s.id, &items(1..=5, "d")).await.unwrap();
    assert!(again.stored.is_empty() && again.last_seq == 5);
    let longer = store.append_items(&s.id, &items(1..=8, "d")).await.unwrap();
    assert_eq!(
        longer.stored.iter().map(|i| i.seq).collect::<Vec<_>>(),
        [6, 7, 8]
    );

    // Eight streams racing with the same batches: each item is stored by one of them.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for (from, to) in [(6, 12), (9, 16), (1, 20)] {
                let out = store
                    .append_items(&id, &items(from..=to, "d"))
                    .await
                    .unwrap();
                assert!(out.last_seq >= to, "acknowledged through the batch");
                stored += out.stored.len();
            }
            stored
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap();
    }
    assert_eq!(stored, 12, "items 9..=20 stored once in all");

    let session = store.get_session(&s.id).await.unwrap();
    assert_eq!(session.last_seq, 20);
    let conversation = read_conversation(store.as_ref(), &s.id).await;
    assert!(same_items(&conversation, items(1..=20, "d")));
}

pub(crate) async fn a_refused_batch_leaves_nothing_that_is_read(store: Arc<dyn Store>) {
    let s = store.create_session(session("agent-1")).await.unwrap();
    store
        .append_items(&s.id, &items(1..=3, "ok"))
        .await
        .unwrap();
    let err = store
        .append_items(&s.id, &items(6..=7, "refused"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Append { last_seq: 3, .. }),
        "{err:?}"
    );
    let page = store.list_items(&s.id, &WHOLE).await.unwrap();
    assert_eq!((page.items.len(), page.last_seq), (3, 3));

    // The batch acknowledged for seqs 6 and 7 is the one read back.
    let out = store
        .append_items(&s.id, &items(4..=7, "ok"))
        .await
        .unwrap();
    assert_eq!(out.stored.len(), 4);
    let conversation = read_conversation(store.as_ref(), &s.id).await;
    assert!(same_items(&conversation, items(1..=7, "ok")));
}
