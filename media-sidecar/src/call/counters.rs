//! What one call counts, for the metrics the driver exports: frames relayed each way,
//! frames rejected by reason, barge-ins, dropped deltas, logged items.
//!
//! Plain integers bumped on the hot path (no atomics, no allocation); the driver reads
//! them through `CallCore::counters` and adds the differences to the process-wide metrics
//! defined in `metrics.rs`. Read next: `core.rs`.

use std::fmt;

/// Why a frame was rejected (counted and skipped; the call goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Larger than the codec accepts.
    TooLarge,
    /// Not JSON, or not a JSON object.
    InvalidJson,
    /// A required field (or the event type) is missing.
    MissingField,
    /// A field of the wrong type or value.
    InvalidField,
    /// An event type the codec does not know.
    UnknownEvent,
    /// A Twilio frame for another stream (`streamSid` differs from `start`'s).
    WrongStream,
    /// A known Twilio message where the stream does not allow it: anything but
    /// `connected` before `start`, or a second `connected` or `start`.
    Unexpected,
}

/// Rejected frames of one peer, per [`RejectReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; RejectReason::ALL.len()]);

/// Counters of one call. All start at zero and only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Twilio `media` frames relayed to OpenAI as `input_audio_buffer.append`.
    pub caller_frames: u64,
    /// Twilio `media` frames dropped because the session was not configured yet and the
    /// start-up buffer was full.
    pub caller_frames_dropped: u64,
    /// OpenAI audio deltas relayed to Twilio (`media` + `mark`).
    pub assistant_frames: u64,
    /// Audio deltas dropped: of an interrupted response, or before Twilio's `start`.
    pub deltas_dropped: u64,
    /// Twilio `mark` echoes received.
    pub marks_echoed: u64,
    /// Barge-ins acted on (`clear` + `truncate` sent).
    pub barge_ins: u64,
    /// Conversation items queued for the control plane.
    pub items_logged: u64,
    /// Conversation items refused by a full outbox (never silent: also in `Actions`).
    pub items_overflowed: u64,
    /// Items the control plane reported missing after a reconnect that were no longer
    /// held (only a store that lost data causes it).
    pub items_lost: u64,
    /// Tool calls forwarded to the control plane.
    pub tool_calls: u64,
    /// Tool calls answered to the model with a timeout error.
    pub tool_timeouts: u64,
    /// OpenAI `error` events.
    pub openai_errors: u64,
    /// Rejected Twilio frames.
    pub twilio_rejected: RejectCounts,
    /// Rejected OpenAI events.
    pub openai_rejected: RejectCounts,
}

// === impl RejectReason ===

impl RejectReason {
    /// Every reason, in a fixed order.
    pub const ALL: [Self; 7] = [
        Self::TooLarge,
        Self::InvalidJson,
        Self::MissingField,
        Self::InvalidField,
        Self::UnknownEvent,
        Self::WrongStream,
        Self::Unexpected,
    ];

    /// The label: `too_large`, `invalid_json`, `missing_field`, `invalid_field`,
    /// `unknown_event`, `wrong_stream`, `unexpected`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::UnknownEvent => "unknown_event",
            Self::WrongStream => "wrong_stream",
            Self::Unexpected => "unexpected",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::TooLarge => 0,
            Self::InvalidJson => 1,
            Self::MissingField => 2,
            Self::InvalidField => 3,
            Self::UnknownEvent => 4,
            Self::WrongStream => 5,
            Self::Unexpected => 6,
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RejectCounts ===

impl RejectCounts {
    /// Frames rejected for `reason`.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason.index()]
    }

    /// Frames rejected for any reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }

    pub(crate) fn record(&mut self, reason: RejectReason) {
        self.0[reason.index()] += 1;
    }
}
