//! The requests waiting in the outbox: messages the control plane must receive and
//! answer. Each is kept, in the order it was queued, until its answer comes; a dropped
//! link makes every one due again, and an answer that says "retry" holds one back for a
//! back-off of its own. Read `outbox.rs` first.

use std::collections::VecDeque;

use switchboard_proto::v1::ConnectRequest;

/// What a request is: its answer is found by kind and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// A `ToolCall`, answered by the `ToolResult` with its `tool_call_id`.
    ToolCall,
    /// The model's `TransferRequest`, answered by a `RequestAnswer`.
    Transfer,
    /// The AI-unavailable `FallbackRequest`, answered by a `RequestAnswer`.
    Fallback,
    /// The final `StatusUpdate`, answered by a `RequestAnswer`.
    Status,
}

/// The unanswered requests, in the order they were queued.
#[derive(Debug, Default)]
pub(super) struct Requests {
    pending: VecDeque<Pending>,
}

#[derive(Debug)]
struct Pending {
    kind: RequestKind,
    id: String,
    message: ConnectRequest,
    bytes: usize,
    /// Sent on the current stream.
    sent: bool,
    /// Held back until then after a "retry" answer.
    retry_at: Option<u64>,
    /// The next back-off after a "retry" answer.
    retry_delay_ms: u64,
}

impl Requests {
    pub(super) fn contains(&self, kind: RequestKind, id: &str) -> bool {
        self.position(kind, id).is_some()
    }

    pub(super) fn push(
        &mut self,
        kind: RequestKind,
        id: &str,
        message: ConnectRequest,
        bytes: usize,
        retry_delay_ms: u64,
    ) {
        self.pending.push_back(Pending {
            kind,
            id: id.to_owned(),
            message,
            bytes,
            sent: false,
            retry_at: None,
            retry_delay_ms,
        });
    }

    /// Removes the request; returns its size, or `None` when it was not there.
    pub(super) fn remove(&mut self, kind: RequestKind, id: &str) -> Option<usize> {
        let index = self.position(kind, id)?;
        self.pending.remove(index).map(|p| p.bytes)
    }

    /// Removes every request of `kind`; returns their total size.
    pub(super) fn remove_kind(&mut self, kind: RequestKind) -> usize {
        let mut freed = 0;
        self.pending.retain(|p| {
            let keep = p.kind != kind;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        freed
    }

    pub(super) fn has_kind(&self, kind: RequestKind) -> bool {
        self.pending.iter().any(|p| p.kind == kind)
    }

    /// Holds the request back until `now_ms` plus its back-off, then sends it again.
    pub(super) fn retry_later(&mut self, kind: RequestKind, id: &str, now_ms: u64, max_ms: u64) {
        let Some(index) = self.position(kind, id) else {
            return;
        };
        let pending = &mut self.pending[index];
        pending.sent = false;
        pending.retry_at = Some(now_ms.saturating_add(pending.retry_delay_ms));
        pending.retry_delay_ms = pending.retry_delay_ms.saturating_mul(2).min(max_ms);
    }

    /// The first request not sent yet and not held back at `now_ms`, marked sent.
    pub(super) fn next_due(&mut self, now_ms: u64) -> Option<ConnectRequest> {
        let pending = self
            .pending
            .iter_mut()
            .find(|p| !p.sent && p.retry_at.is_none_or(|at| now_ms >= at))?;
        pending.sent = true;
        pending.retry_at = None;
        Some(pending.message.clone())
    }

    /// A new stream: every request goes again (a back-off in progress is kept).
    pub(super) fn mark_unsent(&mut self) {
        for pending in &mut self.pending {
            pending.sent = false;
        }
    }

    fn position(&self, kind: RequestKind, id: &str) -> Option<usize> {
        self.pending
            .iter()
            .position(|p| p.kind == kind && p.id == id)
    }
}
