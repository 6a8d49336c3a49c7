//! Every metric the sidecar exports, named once.
//!
//! [`Metrics`] owns a prometheus-client registry; the admin listener serves it at
//! `/metrics` (OpenMetrics text). Counters get the `_total` suffix on the wire, so
//! [`CALLS`] is scraped as `switchboard_sidecar_calls_total`.
//!
//! The per-frame metrics cost a relaxed atomic add: counters for known label values are
//! created up front (no family lookup, so no lock, per frame) and durations go into the
//! lock-free [`DurationHistogram`]. Per-call and per-request metrics use label families.
//! `drain.rs` drives the active-calls gauge, which the autoscaler reads.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

mod histogram;

pub use histogram::DurationHistogram;

/// Gauge: calls with an open media socket on this replica (drives autoscaling).
pub const ACTIVE_CALLS: &str = "switchboard_sidecar_active_calls";
/// Counter by `outcome`: calls that ended on this replica.
pub const CALLS: &str = "switchboard_sidecar_calls";
/// Counter by `direction`: media frames relayed.
pub const FRAMES_RELAYED: &str = "switchboard_sidecar_frames_relayed";
/// Counter by `reason`: frames rejected (the call goes on).
pub const FRAMES_REJECTED: &str = "switchboard_sidecar_frames_rejected";
/// Counter by `reason`: Realtime API events the sidecar could not use (skipped).
pub const OPENAI_EVENTS_REJECTED: &str = "switchboard_sidecar_openai_events_rejected";
/// Counter: caller interruptions of the assistant.
pub const BARGE_INS: &str = "switchboard_sidecar_barge_ins";
/// Histogram: time to open the Realtime WebSocket.
pub const OPENAI_CONNECT_SECONDS: &str = "switchboard_sidecar_openai_connect_seconds";
/// Histogram: time from receiving a media frame to writing it to the other side.
pub const RELAY_LATENCY_SECONDS: &str = "switchboard_sidecar_relay_latency_seconds";
/// Counter by `route` and `status`: Twilio requests answered (media upgrades included).
pub const WEBHOOK_REQUESTS: &str = "switchboard_sidecar_webhook_requests";
/// Counter by `reason`: calls answered with the sidecar's own fallback TwiML.
pub const FALLBACK_ANSWERS: &str = "switchboard_sidecar_fallback_answers";
/// Counter by `rpc` and `code`: control-plane calls that failed.
pub const CONTROL_PLANE_ERRORS: &str = "switchboard_sidecar_control_plane_errors";

const OPENAI_CONNECT_BOUNDS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];
const RELAY_LATENCY_BOUNDS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// The sidecar's metrics. Share it behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    active_calls: Gauge,
    calls: Family<OutcomeLabels, Counter>,
    twilio_to_openai: Counter,
    openai_to_twilio: Counter,
    frames_rejected: [Counter; RejectReason::ALL.len()],
    openai_events_rejected: [Counter; RejectReason::ALL.len()],
    barge_ins: Counter,
    openai_connect: DurationHistogram,
    relay_latency: DurationHistogram,
    webhook_requests: Family<WebhookLabels, Counter>,
    fallback_answers: Family<ReasonLabels, Counter>,
    control_plane_errors: Family<RpcLabels, Counter>,
}

/// How a call ended, for [`CALLS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The call ran and ended normally (either side hung up).
    Completed,
    /// The call went to a human.
    HandedOff,
    /// The call ended on an error (OpenAI refused or dropped, control plane gone …).
    Failed,
    /// The media socket was refused before the call started (bad token, unknown call).
    Refused,
}

/// Which way a frame went, for [`FRAMES_RELAYED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Caller audio: Twilio `media` → `input_audio_buffer.append`.
    TwilioToOpenAi,
    /// Assistant audio: audio delta → Twilio `media`.
    OpenAiToTwilio,
}

/// Why a frame was rejected, for [`FRAMES_REJECTED`]. Add a variant (and its label) here
/// rather than passing free text, so the label set stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Not valid JSON or not the message shape.
    Malformed,
    /// Over the size limit.
    Oversized,
    /// A binary WebSocket frame where text is expected.
    Binary,
    /// An event type the codec does not know.
    UnknownEvent,
    /// A known message that is not allowed now (e.g. `media` before `start`).
    Unexpected,
}

/// Why a call got the fallback answer, for [`FALLBACK_ANSWERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackReason {
    /// The sidecar is draining.
    Draining,
    /// `SWITCHBOARD_MAX_CALLS` calls are active.
    AtCapacity,
    /// `OpenInboundCall` failed or timed out.
    ControlPlaneUnavailable,
    /// The control plane answered without a usable route.
    InvalidRoute,
}

/// The Twilio-facing routes, for [`WEBHOOK_REQUESTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookRoute {
    /// `POST /api/twilio/voice`.
    Voice,
    /// `POST /api/twilio/status`.
    CallStatus,
    /// `POST /api/twilio/stream-status`.
    StreamStatus,
    /// `GET /api/twilio/media-stream/{callId}` (the upgrade).
    MediaStream,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
    code: &'static str,
}

// === impl Metrics ===

impl Metrics {
    /// A registry with every metric registered at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let active_calls = Gauge::default();
        registry.register(
            ACTIVE_CALLS,
            "Calls with an open media socket on this replica",
            active_calls.clone(),
        );
        let calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            CALLS,
            "Calls ended on this replica, by outcome",
            calls.clone(),
        );
        let frames = Family::<DirectionLabels, Counter>::default();
        registry.register(
            FRAMES_RELAYED,
            "Media frames relayed, by direction",
            frames.clone(),
        );
        let twilio_to_openai = frames
            .get_or_create(&DirectionLabels {
                direction: Direction::TwilioToOpenAi.as_str(),
            })
            .clone();
        let openai_to_twilio = frames
            .get_or_create(&DirectionLabels {
                direction: Direction::OpenAiToTwilio.as_str(),
            })
            .clone();
        let frames_rejected =
            counters_by_reason(&mut registry, FRAMES_REJECTED, "Frames rejected, by reason");
        let openai_events_rejected = counters_by_reason(
            &mut registry,
            OPENAI_EVENTS_REJECTED,
            "Realtime API events that could not be used (skipped), by reason",
        );
        let barge_ins = Counter::default();
        registry.register(
            BARGE_INS,
            "Caller interruptions of the assistant",
            barge_ins.clone(),
        );
        let openai_connect = DurationHistogram::new(OPENAI_CONNECT_BOUNDS);
        registry.register(
            OPENAI_CONNECT_SECONDS,
            "Time to open the Realtime WebSocket",
            openai_connect.clone(),
        );
        let relay_latency = DurationHistogram::new(RELAY_LATENCY_BOUNDS);
        registry.register(
            RELAY_LATENCY_SECONDS,
            "Time from receiving a media frame to writing it on",
            relay_latency.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            WEBHOOK_REQUESTS,
            "Twilio requests answered, by route and status",
            webhook_requests.clone(),
        );
        let fallback_answers = Family::<ReasonLabels, Counter>::default();
        registry.register(
            FALLBACK_ANSWERS,
            "Calls answered with the sidecar's fallback TwiML, by reason",
            fallback_answers.clone(),
        );
        let control_plane_errors = Family::<RpcLabels, Counter>::default();
        registry.register(
            CONTROL_PLANE_ERRORS,
            "Failed control-plane calls, by rpc and grpc code",
            control_plane_errors.clone(),
        );
        Self {
            registry,
            active_calls,
            calls,
            twilio_to_openai,
            openai_to_twilio,
            frames_rejected,
            openai_events_rejected,
            barge_ins,
            openai_connect,
            relay_latency,
            webhook_requests,
            fallback_answers,
            control_plane_errors,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// The active-calls gauge; `drain.rs` moves it with each call guard.
    pub fn active_calls(&self) -> Gauge {
        self.active_calls.clone()
    }

    /// Counts a call that ended.
    pub fn call_finished(&self, outcome: CallOutcome) {
        self.calls
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts one relayed frame (a relaxed atomic add).
    pub fn frame_relayed(&self, direction: Direction) {
        self.frames_relayed(direction).inc();
    }

    /// The counter behind [`frame_relayed`](Self::frame_relayed), for a driver that keeps
    /// its own handle.
    pub fn frames_relayed(&self, direction: Direction) -> &Counter {
        match direction {
            Direction::TwilioToOpenAi => &self.twilio_to_openai,
            Direction::OpenAiToTwilio => &self.openai_to_twilio,
        }
    }

    /// Counts one rejected frame (a relaxed atomic add).
    pub fn frame_rejected(&self, reason: RejectReason) {
        self.frames_rejected[reason as usize].inc();
    }

    /// The counter of frames rejected for `reason` (to add a call's counts at once).
    pub fn frames_rejected(&self, reason: RejectReason) -> &Counter {
        &self.frames_rejected[reason as usize]
    }

    /// The counter of Realtime events rejected for `reason` (a call's counts at once).
    pub fn openai_events_rejected(&self, reason: RejectReason) -> &Counter {
        &self.openai_events_rejected[reason as usize]
    }

    /// Counts one barge-in.
    pub fn barge_in(&self) {
        self.barge_ins.inc();
    }

    /// Records how long opening the Realtime WebSocket took.
    pub fn observe_openai_connect(&self, elapsed: Duration) {
        self.openai_connect.observe(elapsed);
    }

    /// Records one frame's relay latency (lock-free).
    pub fn observe_relay_latency(&self, elapsed: Duration) {
        self.relay_latency.observe(elapsed);
    }

    /// Counts a Twilio request by route and answered status.
    pub fn webhook_request(&self, route: WebhookRoute, status: u16) {
        self.webhook_requests
            .get_or_create(&WebhookLabels {
                route: route.as_str(),
                status,
            })
            .inc();
    }

    /// Counts a fallback answer.
    pub fn fallback_answer(&self, reason: FallbackReason) {
        self.fallback_answers
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts a failed control-plane call.
    pub fn control_plane_error(&self, rpc: &'static str, code: tonic::Code) {
        self.control_plane_errors
            .get_or_create(&RpcLabels {
                rpc,
                code: code_label(code),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === impl label enums ===

impl CallOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Completed => "completed",
            CallOutcome::HandedOff => "handed_off",
            CallOutcome::Failed => "failed",
            CallOutcome::Refused => "refused",
        }
    }
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::TwilioToOpenAi => "twilio_to_openai",
            Direction::OpenAiToTwilio => "openai_to_twilio",
        }
    }
}

/// A call's finer reasons (`call::RejectReason`) grouped under the exported labels.
/// Registers counter `name` labelled by `reason`, every reason present from the start
/// (at 0), indexed by [`RejectReason`].
fn counters_by_reason(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> [Counter; RejectReason::ALL.len()] {
    let family = Family::<ReasonLabels, Counter>::default();
    registry.register(name, help, family.clone());
    RejectReason::ALL.map(|reason| {
        family
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .clone()
    })
}

impl From<crate::call::RejectReason> for RejectReason {
    fn from(reason: crate::call::RejectReason) -> Self {
        use crate::call::RejectReason as Call;
        match reason {
            Call::TooLarge => RejectReason::Oversized,
            Call::InvalidJson | Call::MissingField | Call::InvalidField => RejectReason::Malformed,
            Call::UnknownEvent => RejectReason::UnknownEvent,
            Call::WrongStream | Call::Unexpected => RejectReason::Unexpected,
        }
    }
}

impl RejectReason {
    /// Every reason, in discriminant order.
    pub const ALL: [RejectReason; 5] = [
        RejectReason::Malformed,
        RejectReason::Oversized,
        RejectReason::Binary,
        RejectReason::UnknownEvent,
        RejectReason::Unexpected,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Oversized => "oversized",
            RejectReason::Binary => "binary",
            RejectReason::UnknownEvent => "unknown_event",
            RejectReason::Unexpected => "unexpected",
        }
    }
}

impl FallbackReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Draining => "draining",
            FallbackReason::AtCapacity => "at_capacity",
            FallbackReason::ControlPlaneUnavailable => "control_plane_unavailable",
            FallbackReason::InvalidRoute => "invalid_route",
        }
    }
}

impl WebhookRoute {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookRoute::Voice => "voice",
            WebhookRoute::CallStatus => "status",
            WebhookRoute::StreamStatus => "stream_status",
            WebhookRoute::MediaStream => "media_stream",
        }
    }
}

/// gRPC code names as the gRPC spec spells them.
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_under_its_name() {
        let metrics = Metrics::new();
        metrics.call_finished(CallOutcome::Completed);
        metrics.frame_relayed(Direction::TwilioToOpenAi);
        metrics.frame_relayed(Direction::TwilioToOpenAi);
        metrics.frame_rejected(RejectReason::UnknownEvent);
        metrics.barge_in();
        metrics.observe_openai_connect(Duration::from_millis(120));
        metrics.observe_relay_latency(Duration::from_micros(300));
        metrics.webhook_request(WebhookRoute::Voice, 200);
        metrics.fallback_answer(FallbackReason::AtCapacity);
        metrics.control_plane_error("open_inbound_call", tonic::Code::Unavailable);
        metrics.active_calls().inc();
        let text = metrics.encode().unwrap();
        for line in [
            "switchboard_sidecar_active_calls 1",
            r#"switchboard_sidecar_calls_total{outcome="completed"} 1"#,
            r#"switchboard_sidecar_frames_relayed_total{direction="twilio_to_openai"} 2"#,
            r#"switchboard_sidecar_frames_relayed_total{direction="openai_to_twilio"} 0"#,
            r#"switchboard_sidecar_frames_rejected_total{reason="unknown_event"} 1"#,
            r#"switchboard_sidecar_frames_rejected_total{reason="binary"} 0"#,
            "switchboard_sidecar_barge_ins_total 1",
            "switchboard_sidecar_openai_connect_seconds_count 1",
            "switchboard_sidecar_relay_latency_seconds_count 1",
            r#"switchboard_sidecar_webhook_requests_total{route="voice",status="200"} 1"#,
            r#"switchboard_sidecar_fallback_answers_total{reason="at_capacity"} 1"#,
            r#"switchboard_sidecar_control_plane_errors_total{rpc="open_inbound_call",code="UNAVAILABLE"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_calls_reject_reasons_are_exported_under_the_metric_labels() {
        use crate::call::RejectReason as Call;
        let metrics = Metrics::new();
        for reason in Call::ALL {
            metrics.frames_rejected(reason.into()).inc();
        }
        let text = metrics.encode().unwrap();
        for (label, count) in [
            ("malformed", 3),
            ("oversized", 1),
            ("binary", 0),
            ("unknown_event", 1),
            ("unexpected", 2),
        ] {
            let line =
                format!(r#"switchboard_sidecar_frames_rejected_total{{reason="{label}"}} {count}"#);
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn unusable_realtime_events_are_exported_apart_from_twilio_frames() {
        use crate::call::RejectReason as Call;
        let metrics = Metrics::new();
        metrics
            .openai_events_rejected(Call::InvalidJson.into())
            .inc_by(2);
        metrics
            .openai_events_rejected(Call::UnknownEvent.into())
            .inc();
        let text = metrics.encode().unwrap();
        for line in [
            r#"switchboard_sidecar_openai_events_rejected_total{reason="malformed"} 2"#,
            r#"switchboard_sidecar_openai_events_rejected_total{reason="unknown_event"} 1"#,
            r#"switchboard_sidecar_frames_rejected_total{reason="malformed"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn reject_reasons_index_their_own_counter() {
        for (index, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index);
        }
    }
}
