//! A call's conversation log: items with per-call sequence numbers, appended
//! idempotently and in order.
//!
//! The sidecar numbers items from 1 and re-sends whatever was not acknowledged after a
//! reconnect, so the same batch may arrive twice. [`plan_append`] decides, from the
//! highest stored sequence number alone, which items of a batch are new; every store
//! applies that plan atomically.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// Who spoke or acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

/// What an item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Message,
    FunctionCall,
    FunctionCallOutput,
    Handoff,
    Note,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationItem {
    /// Starts at 1 and is contiguous within a call.
    pub seq: u64,
    pub role: Role,
    pub kind: ItemKind,
    pub text: String,
    /// The Realtime API's item id, when there is one.
    pub provider_item_id: String,
    /// Structured detail as JSON text; empty when there is none.
    pub payload_json: String,
    pub created_at: Timestamp,
}

impl ConversationItem {
    /// Roughly what the item costs in a reply or a stored record: its free-text fields
    /// plus a fixed allowance for the rest (seq, role, kind, time, framing). Reads of a
    /// conversation stop at a budget of this, so a page fits one gRPC message.
    pub fn weight(&self) -> usize {
        const FIXED: usize = 64;
        FIXED + self.text.len() + self.provider_item_id.len() + self.payload_json.len()
    }
}

/// What to store of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendPlan {
    /// Index of the first item of the batch that is not stored yet; equal to the batch
    /// length when everything is stored already.
    pub first_new: usize,
    /// The highest stored sequence number once the plan is applied.
    pub last_seq: u64,
}

impl AppendPlan {
    /// True when the batch holds nothing new (a re-send, or an empty batch).
    pub fn is_noop(&self, batch_len: usize) -> bool {
        self.first_new == batch_len
    }
}

/// Why a batch is refused. Nothing of a refused batch is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Storing the batch would leave a hole in the sequence.
    #[error("sequence gap: batch starts at {first}, expected at most {expected}")]
    Gap { first: u64, expected: u64 },
    /// The batch itself is not contiguous (or starts at 0).
    #[error("batch is not contiguous at index {index}: seq {seq} after {previous}")]
    NotContiguous {
        index: usize,
        seq: u64,
        previous: u64,
    },
}

impl AppendError {
    /// The sequence number the sender must continue from.
    pub fn expected_seq(&self, last_seq: u64) -> u64 {
        match self {
            AppendError::Gap { expected, .. } => *expected,
            AppendError::NotContiguous { .. } => last_seq + 1,
        }
    }
}

/// Decides which items of `batch` to store when `last_seq` is the highest stored one.
///
/// Items at or below `last_seq` were stored by an earlier send and are skipped; the
/// batch must be contiguous and must not start beyond `last_seq + 1`.
pub fn plan_append(last_seq: u64, batch: &[ConversationItem]) -> Result<AppendPlan, AppendError> {
    let mut previous = 0;
    for (index, item) in batch.iter().enumerate() {
        let contiguous = if index == 0 {
            item.seq >= 1
        } else {
            item.seq == previous + 1
        };
        if !contiguous {
            return Err(AppendError::NotContiguous {
                index,
                seq: item.seq,
                previous,
            });
        }
        previous = item.seq;
    }
    let Some(first) = batch.first() else {
        return Ok(AppendPlan {
            first_new: 0,
            last_seq,
        });
    };
    if first.seq > last_seq + 1 {
        return Err(AppendError::Gap {
            first: first.seq,
            expected: last_seq + 1,
        });
    }
    let already_stored = last_seq + 1 - first.seq;
    let first_new = usize::try_from(already_stored).map_or(batch.len(), |n| n.min(batch.len()));
    Ok(AppendPlan {
        first_new,
        last_seq: last_seq.max(previous),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn items(seqs: std::ops::RangeInclusive<u64>) -> Vec<ConversationItem> {
        seqs.map(|seq| ConversationItem {
            seq,
            role: Role::User,
            kind: ItemKind::Message,
            text: format!("item {seq}"),
            provider_item_id: String::new(),
            payload_json: String::new(),
            created_at: crate::domain::now(),
        })
        .collect()
    }

    #[test]
    fn a_first_batch_is_stored_whole() {
        let plan = plan_append(0, &items(1..=3)).unwrap();
        assert_eq!(
            plan,
            AppendPlan {
                first_new: 0,
                last_seq: 3
            }
        );
    }

    #[test]
    fn a_resent_batch_stores_nothing_and_acks_the_same_seq() {
        let plan = plan_append(3, &items(1..=3)).unwrap();
        assert!(plan.is_noop(3));
        assert_eq!(plan.last_seq, 3);
    }

    #[test]
    fn an_overlapping_batch_stores_only_its_new_tail() {
        let plan = plan_append(3, &items(2..=6)).unwrap();
        assert_eq!(
            plan,
            AppendPlan {
                first_new: 2,
                last_seq: 6
            }
        );
    }

    #[test]
    fn a_gap_is_refused_with_the_next_expected_seq() {
        let err = plan_append(3, &items(5..=6)).unwrap_err();
        assert_eq!(
            err,
            AppendError::Gap {
                first: 5,
                expected: 4
            }
        );
        assert_eq!(err.expected_seq(3), 4);
    }

    #[test]
    fn a_batch_with_a_hole_or_seq_zero_is_refused() {
        let mut batch = items(1..=3);
        batch[2].seq = 4;
        assert!(matches!(
            plan_append(0, &batch),
            Err(AppendError::NotContiguous {
                index: 2,
                seq: 4,
                previous: 2
            })
        ));
        assert!(matches!(
            plan_append(0, &items(0..=1)),
            Err(AppendError::NotContiguous { index: 0, .. })
        ));
    }

    #[test]
    fn an_empty_batch_is_a_noop() {
        let plan = plan_append(7, &[]).unwrap();
        assert!(plan.is_noop(0));
        assert_eq!(plan.last_seq, 7);
    }
}
