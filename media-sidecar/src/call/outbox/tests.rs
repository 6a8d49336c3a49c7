//! Unit tests of the outbox: numbering, batching, cumulative acks, nacks, reconnects.

use std::collections::BTreeSet;

use switchboard_proto::v1::{connect_request, StatusUpdate, ToolCall};

use super::*;

fn item(text: &str) -> ConversationItem {
    ConversationItem {
        text: text.to_owned(),
        ..ConversationItem::default()
    }
}

fn seqs(batch: &ConversationBatch) -> Vec<u64> {
    batch.items.iter().map(|i| i.seq).collect()
}

fn limits(max_batch_items: usize, max_in_flight_items: usize) -> OutboxLimits {
    OutboxLimits {
        max_batch_items,
        max_in_flight_items,
        ..OutboxLimits::default()
    }
}

#[test]
fn numbers_items_after_what_the_store_already_has() {
    let mut outbox = Outbox::new(7, OutboxLimits::default());
    assert_eq!(outbox.push(item("a")), Ok(8));
    assert_eq!(outbox.push(item("b")), Ok(9));
    let batch = outbox.next_batch(0).expect("idle outbox sends at once");
    assert_eq!(seqs(&batch), [8, 9]);
    assert_eq!(batch.items[1].text, "b");
}

#[test]
fn sends_at_once_when_idle_and_accumulates_while_a_batch_is_in_flight() {
    let mut outbox = Outbox::new(0, OutboxLimits::default());
    outbox.push(item("1")).expect("room");
    assert_eq!(seqs(&outbox.next_batch(0).expect("due")), [1]);
    outbox.push(item("2")).expect("room");
    outbox.push(item("3")).expect("room");
    assert!(outbox.next_batch(1).is_none(), "waits for the ack");
    outbox.on_ack(1);
    assert_eq!(seqs(&outbox.next_batch(2).expect("due")), [2, 3]);
    outbox.on_ack(3);
    assert!(outbox.is_drained());
    assert_eq!(outbox.in_flight(), 0);
}

#[test]
fn pipelines_full_batches_within_the_window() {
    let mut outbox = Outbox::new(0, limits(2, 4));
    for n in 0..7 {
        outbox.push(item(&n.to_string())).expect("room");
    }
    assert_eq!(seqs(&outbox.next_batch(0).expect("idle")), [1, 2]);
    assert_eq!(seqs(&outbox.next_batch(0).expect("full batch")), [3, 4]);
    assert!(outbox.next_batch(0).is_none(), "window of 4 is full");
    outbox.on_ack(2);
    assert_eq!(seqs(&outbox.next_batch(0).expect("room again")), [5, 6]);
    assert!(outbox.next_batch(0).is_none(), "a partial batch waits");
    outbox.on_ack(6);
    assert_eq!(seqs(&outbox.next_batch(0).expect("idle")), [7]);
}

#[test]
fn acks_are_cumulative_and_stale_acks_change_nothing() {
    let mut outbox = Outbox::new(0, limits(2, 8));
    for n in 0..4 {
        outbox.push(item(&n.to_string())).expect("room");
    }
    outbox.next_batch(0).expect("batch 1");
    outbox.next_batch(0).expect("batch 2");
    outbox.on_ack(4);
    assert!(outbox.is_drained());
    outbox.on_ack(2);
    assert_eq!(outbox.acked_through(), 4);
    assert_eq!(outbox.push(item("next")), Ok(5));
}

#[test]
fn an_ack_beyond_what_was_numbered_is_clamped() {
    let mut outbox = Outbox::new(0, OutboxLimits::default());
    outbox.push(item("1")).expect("room");
    outbox.next_batch(0).expect("due");
    outbox.on_ack(99);
    assert_eq!(outbox.acked_through(), 1);
    assert_eq!(outbox.push(item("2")), Ok(2));
}

#[test]
fn a_nack_resends_from_the_expected_seq_after_a_back_off() {
    let mut outbox = Outbox::new(0, OutboxLimits::default());
    for n in 0..3 {
        outbox.push(item(&n.to_string())).expect("room");
    }
    assert_eq!(seqs(&outbox.next_batch(0).expect("due")), [1, 2, 3]);
    outbox.on_nack(1, 1_000);
    assert!(
        outbox.next_batch(1_000).is_none(),
        "no hot loop while refused"
    );
    assert!(outbox.next_batch(1_249).is_none());
    assert_eq!(seqs(&outbox.next_batch(1_250).expect("retry")), [1, 2, 3]);
    // A second refusal in a row waits twice as long.
    outbox.on_nack(1, 2_000);
    assert!(outbox.next_batch(2_499).is_none());
    assert_eq!(seqs(&outbox.next_batch(2_500).expect("retry")), [1, 2, 3]);
    outbox.on_ack(3);
    assert!(outbox.is_drained());
}

#[test]
fn a_nack_never_skips_unacknowledged_items_it_does_not_vouch_for() {
    let mut outbox = Outbox::new(0, limits(2, 8));
    for n in 0..4 {
        outbox.push(item(&n.to_string())).expect("room");
    }
    outbox.next_batch(0).expect("1..=2");
    outbox.next_batch(0).expect("3..=4");
    // Both batches refused while the store is down, answered in order.
    outbox.on_nack(1, 0);
    outbox.on_nack(3, 0);
    assert_eq!(seqs(&outbox.next_batch(10_000).expect("retry")), [1, 2]);
}

#[test]
fn reconnect_drops_what_is_stored_and_resends_the_rest_without_duplicates() {
    let mut outbox = Outbox::new(0, limits(2, 8));
    let mut sent = Vec::new();
    for n in 0..5 {
        outbox.push(item(&n.to_string())).expect("room");
    }
    while let Some(batch) = outbox.next_batch(0) {
        sent.extend(seqs(&batch));
    }
    assert_eq!(sent, [1, 2, 3, 4]);
    outbox.on_ack(1);
    // The control plane restarts; it had stored through 3 (the ack of 2..=3 was lost).
    assert_eq!(outbox.reset_after_reconnect(3), 0);
    outbox.push(item("6")).expect("room");
    let mut resent = Vec::new();
    while let Some(batch) = outbox.next_batch(0) {
        resent.extend(seqs(&batch));
        outbox.on_ack(*resent.last().expect("non-empty batch"));
    }
    assert_eq!(resent, [4, 5, 6]);
    let unique: BTreeSet<u64> = resent.iter().copied().collect();
    assert_eq!(
        unique.len(),
        resent.len(),
        "no seq sent twice after the reconnect"
    );
    assert!(outbox.is_drained());
}

#[test]
fn reconnect_resends_everything_unacknowledged_when_nothing_new_is_stored() {
    let mut outbox = Outbox::new(10, OutboxLimits::default());
    outbox.push(item("a")).expect("room");
    outbox.push(item("b")).expect("room");
    outbox.next_batch(0).expect("due");
    outbox.on_nack(11, 0);
    assert_eq!(outbox.reset_after_reconnect(10), 0);
    assert_eq!(seqs(&outbox.next_batch(0).expect("due at once")), [11, 12]);
}

#[test]
fn reconnect_reports_items_the_store_lost() {
    let mut outbox = Outbox::new(0, OutboxLimits::default());
    outbox.push(item("a")).expect("room");
    outbox.push(item("b")).expect("room");
    outbox.next_batch(0).expect("due");
    outbox.on_ack(2);
    assert_eq!(outbox.reset_after_reconnect(1), 1);
    assert_eq!(outbox.push(item("c")), Ok(3));
}

#[test]
fn reconnect_to_a_store_ahead_of_us_continues_after_it() {
    let mut outbox = Outbox::new(0, OutboxLimits::default());
    outbox.push(item("a")).expect("room");
    outbox.reset_after_reconnect(5);
    assert!(outbox.is_drained());
    assert_eq!(outbox.push(item("b")), Ok(6));
}

#[test]
fn a_full_outbox_refuses_and_counts_instead_of_dropping_old_items() {
    let size = {
        let mut sized = item("a");
        sized.seq = 1;
        item_bytes(&sized)
    };
    let mut outbox = Outbox::new(
        0,
        OutboxLimits {
            capacity_bytes: 2 * size + 1,
            ..OutboxLimits::default()
        },
    );
    outbox.push(item("a")).expect("room");
    outbox.push(item("b")).expect("room");
    assert_eq!(outbox.bytes(), 2 * size);
    let full = OutboxFull {
        capacity_bytes: 2 * size + 1,
    };
    assert_eq!(outbox.push(item("c")), Err(full));
    assert_eq!(outbox.overflowed(), 1);
    let batch = outbox.next_batch(0).expect("due");
    assert_eq!(seqs(&batch), [1, 2], "the oldest items are kept");
    outbox.on_ack(2);
    assert_eq!(outbox.bytes(), 0, "acknowledged items free their bytes");
    assert_eq!(outbox.push(item("d")), Ok(3), "no gap for the refused item");
}

fn tool_call(id: &str, arguments: &str) -> ConnectRequest {
    ConnectRequest {
        message: Some(connect_request::Message::ToolCall(ToolCall {
            tool_call_id: id.to_owned(),
            name: "lookup_order".to_owned(),
            arguments_json: arguments.to_owned(),
        })),
    }
}

fn status(id: &str) -> ConnectRequest {
    ConnectRequest {
        message: Some(connect_request::Message::Status(StatusUpdate {
            request_id: id.to_owned(),
            ..StatusUpdate::default()
        })),
    }
}

#[test]
fn requests_wait_until_answered_and_go_again_on_a_new_stream() {
    let mut outbox = Outbox::new(0, OutboxLimits::default());
    outbox
        .push_request(RequestKind::ToolCall, "call_1", tool_call("call_1", "{}"))
        .expect("room");
    outbox
        .push_request(RequestKind::Status, "status-1", status("status-1"))
        .expect("always kept");
    assert_eq!(outbox.next_request(0), Some(tool_call("call_1", "{}")));
    assert_eq!(outbox.next_request(0), Some(status("status-1")));
    assert_eq!(outbox.next_request(0), None, "each once per stream");
    // A copy of a waiting request is not queued twice.
    outbox
        .push_request(RequestKind::ToolCall, "call_1", tool_call("call_1", "{}"))
        .expect("room");

    outbox.on_link_lost();
    outbox.push(item("said while down")).expect("room");
    assert!(
        outbox.next_batch(0).is_none(),
        "nothing goes while the link is down"
    );
    assert!(outbox.next_request(0).is_none());
    assert!(!outbox.link_up());

    outbox.reset_after_reconnect(0);
    assert_eq!(seqs(&outbox.next_batch(10).expect("due again")), [1]);
    assert_eq!(outbox.next_request(10), Some(tool_call("call_1", "{}")));
    assert_eq!(outbox.next_request(10), Some(status("status-1")));
    assert!(outbox.answer(RequestKind::ToolCall, "call_1"));
    assert!(
        !outbox.answer(RequestKind::ToolCall, "call_1"),
        "answered once"
    );
    assert!(
        !outbox.answer(RequestKind::Status, "call_1"),
        "found by kind and id"
    );
    assert!(outbox.has_request(RequestKind::Status));
    assert!(outbox.answer(RequestKind::Status, "status-1"));
    outbox.on_link_lost();
    outbox.reset_after_reconnect(0);
    assert_eq!(
        outbox.next_request(20),
        None,
        "answered requests never go again"
    );
}

#[test]
fn a_retry_answer_holds_the_request_back_for_a_doubling_back_off() {
    let mut outbox = Outbox::new(
        0,
        OutboxLimits {
            retry_initial_ms: 100,
            retry_max_ms: 300,
            ..OutboxLimits::default()
        },
    );
    outbox
        .push_request(RequestKind::Status, "status-1", status("status-1"))
        .expect("kept");
    assert!(outbox.next_request(0).is_some());
    outbox.retry_later(RequestKind::Status, "status-1", 1_000);
    assert!(outbox.next_request(1_099).is_none());
    assert!(outbox.next_request(1_100).is_some());
    outbox.retry_later(RequestKind::Status, "status-1", 2_000);
    assert!(outbox.next_request(2_199).is_none());
    assert!(outbox.next_request(2_200).is_some());
    outbox.retry_later(RequestKind::Status, "status-1", 3_000);
    outbox.retry_later(RequestKind::Status, "status-1", 3_000);
    assert!(outbox.next_request(3_299).is_none(), "capped at 300 ms");
    assert!(outbox.next_request(3_300).is_some());
}

#[test]
fn tool_calls_share_the_byte_bound_with_items_and_the_status_is_always_kept() {
    let big = "x".repeat(600);
    let mut outbox = Outbox::new(
        0,
        OutboxLimits {
            capacity_bytes: 1_000,
            ..OutboxLimits::default()
        },
    );
    outbox.push(item(&big)).expect("room");
    let refused = outbox.push_request(RequestKind::ToolCall, "call_1", tool_call("call_1", &big));
    assert_eq!(
        refused,
        Err(OutboxFull {
            capacity_bytes: 1_000
        })
    );
    assert!(
        !outbox.has_request(RequestKind::ToolCall),
        "refused, not queued"
    );
    outbox
        .push_request(RequestKind::Status, "status-1", status("status-1"))
        .expect("the final status never waits for room");
    outbox.on_ack(0);
    outbox.next_batch(0);
    outbox.on_ack(1);
    outbox
        .push_request(RequestKind::ToolCall, "call_1", tool_call("call_1", &big))
        .expect("room once the item is stored");
    let used = outbox.bytes();
    outbox.drop_requests(RequestKind::ToolCall);
    assert!(used > 600 && outbox.bytes() == 0, "{used}");
}
