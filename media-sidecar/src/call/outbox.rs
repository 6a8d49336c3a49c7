//! The per-call outbox: everything the sidecar must tell the control plane, kept until
//! the control plane has it, so a control-plane restart mid-call loses nothing and
//! duplicates nothing.
//!
//! **Conversation items** get contiguous sequence numbers starting after the
//! `stored_through_seq` of the call's `CallConfig`, and stay here until the control plane
//! acknowledges them. Acks are cumulative (`Ack{stored_through_seq}`); a
//! `Nack{expected_seq}` rewinds the send cursor to `expected_seq` after a back-off (the
//! control plane refuses batches while its database is down, and an immediate re-send
//! would spin); a reconnect ([`Outbox::reset_after_reconnect`]) drops what the new
//! `CallConfig` says is stored and re-sends the rest. The control plane stores
//! idempotently, so a re-sent item is acknowledged, never stored twice.
//!
//! **Requests** (`outbox/requests.rs`) — tool calls, the model's transfer, the fallback,
//! the final status — stay until the control plane answers them (a `ToolResult`, a
//! `RequestAnswer`), and go again after a reconnect: each carries an id the control
//! plane acts on once, so a copy is harmless. An answer that says "retry" holds the
//! request back for a doubling back-off.
//!
//! **The link.** While the control stream is down ([`Outbox::on_link_lost`]) nothing is
//! handed out: items and requests wait here, and go, in order, once the stream is back
//! and its `CallConfig` has said what is stored.
//!
//! Batching (Nagle-like): when nothing is in flight the pending items go at once (up to
//! [`OutboxLimits::max_batch_items`]); while a batch is in flight new items accumulate and
//! go with the next ack, unless a full batch is ready and the in-flight window
//! ([`OutboxLimits::max_in_flight_items`]) has room. A conversation produces an item every
//! few seconds, so in practice every item goes out on its own, at once; the accumulation
//! only matters while the database is slow.
//!
//! Bounded in bytes: unacknowledged items and unanswered tool calls together hold at
//! most [`OutboxLimits::capacity_bytes`] (1 MiB by default: hours of conversation, or
//! minutes of a very busy one with large tool outputs), each counted as its encoded size
//! plus its fixed size in memory ([`item_bytes`]). Beyond it
//! [`Outbox::push`] and a tool call's [`Outbox::push_request`] are refused with
//! [`OutboxFull`] — an older entry is never dropped to make room, and never silently: the
//! core counts refused items and answers a refused tool call with an error at once. The
//! transfer, the fallback and the final status are at most one each (with their text
//! capped by the core) and are always kept. Pure: no I/O, time comes in as `now_ms`.
//!
//! Read next: `core.rs`, which pushes items and requests and sends what is due.

use std::collections::VecDeque;

use prost::Message as _;
use switchboard_proto::v1::{ConnectRequest, ConversationBatch, ConversationItem};

mod requests;

pub use requests::RequestKind;
use requests::Requests;

/// Limits of one call's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most items in one `ConversationBatch`.
    pub max_batch_items: usize,
    /// Most items sent and not yet acknowledged.
    pub max_in_flight_items: usize,
    /// Most bytes (encoded size) of unacknowledged items and unanswered tool calls kept;
    /// [`Outbox::push`] and [`Outbox::push_request`] of a tool call refuse more.
    pub capacity_bytes: usize,
    /// First wait after a `Nack` before re-sending, in ms; doubles per `Nack` in a row.
    pub retry_initial_ms: u64,
    /// Longest wait after a `Nack`, in ms.
    pub retry_max_ms: u64,
}

/// The outbox is full: the item (or tool call) was not queued (an item got no sequence
/// number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("call outbox full: {capacity_bytes} bytes waiting for the control plane")]
pub struct OutboxFull {
    /// The capacity that was reached, in bytes.
    pub capacity_bytes: usize,
}

/// Default [`OutboxLimits::capacity_bytes`]: 1 MiB.
pub const DEFAULT_CAPACITY_BYTES: usize = 1024 * 1024;

/// Unacknowledged conversation items of one call. See the module docs.
#[derive(Debug)]
pub struct Outbox {
    /// Exactly the items `acked_through + 1 ..= next_seq - 1`, in order.
    items: VecDeque<ConversationItem>,
    next_seq: u64,
    acked_through: u64,
    /// Highest seq sent on the current stream (`>= acked_through`).
    sent_through: u64,
    retry_at: Option<u64>,
    retry_delay_ms: u64,
    overflowed: u64,
    /// Encoded bytes of `items` and of the tool calls among `requests`.
    bytes: usize,
    requests: Requests,
    /// False while the control stream is down: nothing is handed out.
    link_up: bool,
    limits: OutboxLimits,
}

// === impl OutboxLimits ===

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            max_batch_items: 32,
            max_in_flight_items: 128,
            capacity_bytes: DEFAULT_CAPACITY_BYTES,
            retry_initial_ms: 250,
            retry_max_ms: 8_000,
        }
    }
}

// === impl Outbox ===

impl Outbox {
    /// An empty outbox whose first item gets `stored_through_seq + 1`.
    pub fn new(stored_through_seq: u64, limits: OutboxLimits) -> Self {
        Self {
            items: VecDeque::new(),
            next_seq: stored_through_seq + 1,
            acked_through: stored_through_seq,
            sent_through: stored_through_seq,
            retry_at: None,
            retry_delay_ms: limits.retry_initial_ms,
            overflowed: 0,
            bytes: 0,
            requests: Requests::default(),
            link_up: true,
            limits: OutboxLimits {
                max_batch_items: limits.max_batch_items.max(1),
                max_in_flight_items: limits.max_in_flight_items.max(1),
                ..limits
            },
        }
    }

    /// Queues `item` with the next sequence number (its `seq` is overwritten) and returns
    /// that number. Refused, without a number, when it would take the outbox beyond
    /// [`OutboxLimits::capacity_bytes`].
    pub fn push(&mut self, mut item: ConversationItem) -> Result<u64, OutboxFull> {
        let seq = self.next_seq;
        item.seq = seq;
        self.reserve(item_bytes(&item)).inspect_err(|_| {
            self.overflowed += 1;
        })?;
        self.items.push_back(item);
        self.next_seq += 1;
        Ok(seq)
    }

    /// Queues a request until the control plane answers it ([`Outbox::answer`]). A tool
    /// call counts towards [`OutboxLimits::capacity_bytes`] and is refused beyond it; the
    /// other kinds are always kept. A request of the same kind and id replaces nothing:
    /// the first one stays.
    pub fn push_request(
        &mut self,
        kind: RequestKind,
        id: &str,
        message: ConnectRequest,
    ) -> Result<(), OutboxFull> {
        if self.requests.contains(kind, id) {
            return Ok(());
        }
        let bytes = message.encoded_len() + std::mem::size_of::<ConnectRequest>() + id.len();
        if kind == RequestKind::ToolCall {
            self.reserve(bytes)?;
        }
        self.requests
            .push(kind, id, message, bytes, self.limits.retry_initial_ms);
        Ok(())
    }

    /// The control plane answered request `id` of `kind`: it is done and dropped. False
    /// when no such request waits (answered already, or never asked).
    pub fn answer(&mut self, kind: RequestKind, id: &str) -> bool {
        let Some(bytes) = self.requests.remove(kind, id) else {
            return false;
        };
        if kind == RequestKind::ToolCall {
            self.bytes = self.bytes.saturating_sub(bytes);
        }
        true
    }

    /// The control plane could not act on request `id` now: send it again after a
    /// back-off that doubles per retry of that request (up to
    /// [`OutboxLimits::retry_max_ms`]).
    pub fn retry_later(&mut self, kind: RequestKind, id: &str, now_ms: u64) {
        self.requests
            .retry_later(kind, id, now_ms, self.limits.retry_max_ms);
    }

    /// Drops every request of `kind` still waiting (the call ended: nobody waits for
    /// their answers).
    pub fn drop_requests(&mut self, kind: RequestKind) {
        let freed = self.requests.remove_kind(kind);
        if kind == RequestKind::ToolCall {
            self.bytes = self.bytes.saturating_sub(freed);
        }
    }

    /// True while a request of `kind` waits for its answer.
    pub fn has_request(&self, kind: RequestKind) -> bool {
        self.requests.has_kind(kind)
    }

    /// The next request to send at `now_ms`, in the order they were queued (skipping
    /// those held back by a retry); it counts as sent until the link drops. `None` while
    /// the link is down.
    pub fn next_request(&mut self, now_ms: u64) -> Option<ConnectRequest> {
        if !self.link_up {
            return None;
        }
        self.requests.next_due(now_ms)
    }

    /// The control stream broke: nothing is in flight any more, and nothing is handed
    /// out until [`Outbox::reset_after_reconnect`].
    pub fn on_link_lost(&mut self) {
        self.link_up = false;
        self.sent_through = self.acked_through;
        self.retry_at = None;
        self.retry_delay_ms = self.limits.retry_initial_ms;
        self.requests.mark_unsent();
    }

    /// True unless the control stream is down.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Encoded bytes of unacknowledged items and unanswered tool calls.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The next batch to send, if the batching policy (module docs) says one is due at
    /// `now_ms`. Call it until it returns `None`; what it returns counts as in flight.
    /// `None` while the link is down.
    pub fn next_batch(&mut self, now_ms: u64) -> Option<ConversationBatch> {
        if !self.link_up {
            return None;
        }
        if self.retry_at.is_some_and(|at| now_ms < at) {
            return None;
        }
        self.retry_at = None;
        let unsent = self.last_seq() - self.sent_through;
        if unsent == 0 {
            return None;
        }
        let in_flight = self.in_flight();
        let max_batch = self.limits.max_batch_items as u64;
        let due = in_flight == 0
            || (unsent >= max_batch
                && in_flight + max_batch <= self.limits.max_in_flight_items as u64);
        if !due {
            return None;
        }
        let count = unsent.min(max_batch);
        let start = self.index_of(self.sent_through + 1)?;
        let end = start + usize::try_from(count).ok()?;
        let items = self.items.range(start..end).cloned().collect();
        self.sent_through += count;
        Some(ConversationBatch { items })
    }

    /// `Ack{stored_through_seq}`: everything up to it is stored (cumulative). A stale ack
    /// (below an earlier one) changes nothing.
    pub fn on_ack(&mut self, stored_through_seq: u64) {
        self.retry_at = None;
        self.retry_delay_ms = self.limits.retry_initial_ms;
        self.acknowledge(stored_through_seq.min(self.last_seq()));
        self.sent_through = self.sent_through.max(self.acked_through);
    }

    /// `Nack{expected_seq}`: the last batch was refused; the next one must start at
    /// `expected_seq` (or below). Rewinds the send cursor there — never past what is
    /// acknowledged — and holds sending for the back-off.
    pub fn on_nack(&mut self, expected_seq: u64, now_ms: u64) {
        let resume_after = expected_seq.saturating_sub(1);
        self.sent_through = self.sent_through.min(resume_after).max(self.acked_through);
        self.retry_at = Some(now_ms.saturating_add(self.retry_delay_ms));
        self.retry_delay_ms = self
            .retry_delay_ms
            .saturating_mul(2)
            .min(self.limits.retry_max_ms);
    }

    /// The control stream was re-established and its `CallConfig` says everything up to
    /// `stored_through_seq` is stored: drops those items and makes the rest due again, from
    /// the first unstored one, and every unanswered request due again, in order.
    ///
    /// Returns how many items the control plane lacks that this outbox no longer holds
    /// (they were acknowledged before, so only a store that lost data causes it): normally
    /// 0, and worth a warning when not.
    pub fn reset_after_reconnect(&mut self, stored_through_seq: u64) -> u64 {
        let lost = self.acked_through.saturating_sub(stored_through_seq);
        if stored_through_seq >= self.next_seq {
            // The store knows items this outbox never numbered (another writer): continue
            // after them so nothing collides.
            self.acknowledge(self.next_seq - 1);
            self.next_seq = stored_through_seq + 1;
            self.acked_through = stored_through_seq;
        } else {
            self.acknowledge(stored_through_seq);
        }
        self.sent_through = self.acked_through;
        self.retry_at = None;
        self.retry_delay_ms = self.limits.retry_initial_ms;
        self.link_up = true;
        self.requests.mark_unsent();
        lost
    }

    /// Items queued and not acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.items.len()
    }

    /// Items sent on the current stream and not acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.sent_through - self.acked_through
    }

    /// True when every item pushed so far is acknowledged.
    pub fn is_drained(&self) -> bool {
        self.items.is_empty()
    }

    /// Highest acknowledged sequence number.
    pub fn acked_through(&self) -> u64 {
        self.acked_through
    }

    /// The number the next pushed item gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Items refused because the outbox was full, over its life.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Takes `bytes` more, or refuses when that would pass the capacity.
    fn reserve(&mut self, bytes: usize) -> Result<(), OutboxFull> {
        let capacity_bytes = self.limits.capacity_bytes;
        if self.bytes.saturating_add(bytes) > capacity_bytes {
            return Err(OutboxFull { capacity_bytes });
        }
        self.bytes += bytes;
        Ok(())
    }

    fn acknowledge(&mut self, stored_through_seq: u64) {
        while self
            .items
            .front()
            .is_some_and(|item| item.seq <= stored_through_seq)
        {
            if let Some(item) = self.items.pop_front() {
                self.bytes = self.bytes.saturating_sub(item_bytes(&item));
            }
        }
        self.acked_through = self.acked_through.max(stored_through_seq);
    }

    fn index_of(&self, seq: u64) -> Option<usize> {
        let first = self.items.front()?.seq;
        usize::try_from(seq.checked_sub(first)?).ok()
    }
}

/// What an item counts against the bound: its encoded size (every string's bytes, and
/// a little framing) plus its fixed size in memory — a close upper estimate of what it
/// takes, since its strings are allocated to fit.
pub fn item_bytes(item: &ConversationItem) -> usize {
    item.encoded_len() + std::mem::size_of::<ConversationItem>()
}

#[cfg(test)]
mod tests;
