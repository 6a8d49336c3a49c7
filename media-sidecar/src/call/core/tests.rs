//! Tests of the call core, driven with real protocol text: Twilio frames from
//! `twilio-media-stream-session.jsonl` and OpenAI events from
//! `openai-realtime-examples.json` (both in `tests/fixtures/`, whose README says where they
//! come from).
//! This file holds the harness; the tests are in `tests/*.rs`, one file per concern.

use serde_json::Value;
use switchboard_proto::v1::request_answer::Outcome;
use switchboard_proto::v1::{
    connect_request, connect_response, handoff_target, Ack, AgentSettings, CallConfig, CallError,
    CallSession, ConnectRequest, ConnectResponse, ConversationItem, HandoffTarget, RequestAnswer,
    StatusUpdate,
};
use switchboard_realtime::Dialect;

use super::{Actions, CallCore, CallLimits};

mod barge_in;
mod control;
mod drain;
mod lifecycle;
mod link;
mod relay;
mod reuse;
mod timers;
mod tools;

const SESSION_JSONL: &str =
    include_str!("../../../tests/fixtures/twilio-media-stream-session.jsonl");
const EXAMPLES_JSON: &str = include_str!("../../../tests/fixtures/openai-realtime-examples.json");

/// The recorded session's `streamSid`.
const STREAM_SID: &str = "MZ18ad3ab5b1d2c4e7f8091a2b3c4d5e6f";

/// `session.created` (not among the examples; its `session` is not read by the core).
const SESSION_CREATED: &str = r#"{"type":"session.created","event_id":"event_S1","session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime","output_modalities":["audio"],"instructions":"","tools":[],"tool_choice":"auto","max_output_tokens":"inf"}}"#;
const SESSION_UPDATED: &str = r#"{"type":"session.updated","event_id":"event_S2","session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime"}}"#;

/// One line of the recorded session: when, which way, and the frame exactly as recorded.
#[derive(Debug, Clone, Copy)]
struct Recorded {
    t_ms: u64,
    inbound: bool,
    event: &'static str,
    frame: &'static str,
}

/// A core under test with its reusable actions. With `auto_ack` (the default) every batch
/// sent to the control plane is acknowledged at once, and every final status and fallback
/// accepted, as a healthy control plane would (transfers are answered by the tests);
/// `logged` and `sent` collect what reached it, the answers' follow-ups included.
#[derive(Debug)]
struct Call {
    core: CallCore,
    out: Actions,
    auto_ack: bool,
    logged: Vec<ConversationItem>,
    sent: Vec<connect_request::Message>,
}

impl Call {
    /// A call of `agent`, nothing logged yet, the Twilio stream not started.
    fn new(agent: AgentSettings, dialect: Dialect) -> Self {
        Self::with_config(config(agent, 0), dialect, untimed())
    }

    fn with_config(config: CallConfig, dialect: Dialect, limits: CallLimits) -> Self {
        Self {
            core: CallCore::new(config, dialect, limits, 0),
            out: Actions::new(),
            auto_ack: true,
            logged: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// A call whose Twilio stream has started and whose OpenAI session is configured.
    fn started(agent: AgentSettings, dialect: Dialect) -> Self {
        let mut call = Self::new(agent, dialect);
        call.twilio(recorded("start")[0].frame, 2);
        call.openai(SESSION_CREATED, 5);
        call.openai(SESSION_UPDATED, 6);
        call
    }

    fn twilio(&mut self, frame: &str, now_ms: u64) -> &Actions {
        self.out.clear();
        self.core.on_twilio_text(frame, now_ms, &mut self.out);
        self.absorb(now_ms)
    }

    fn openai(&mut self, event: &str, now_ms: u64) -> &Actions {
        self.out.clear();
        self.core.on_openai_text(event, now_ms, &mut self.out);
        self.absorb(now_ms)
    }

    fn control(&mut self, message: connect_response::Message, now_ms: u64) -> &Actions {
        self.out.clear();
        let message = ConnectResponse {
            message: Some(message),
        };
        self.core.on_control(message, now_ms, &mut self.out);
        self.absorb(now_ms)
    }

    fn ack(&mut self, stored_through_seq: u64, now_ms: u64) -> &Actions {
        self.control(
            connect_response::Message::Ack(Ack { stored_through_seq }),
            now_ms,
        )
    }

    fn tick(&mut self, now_ms: u64) -> &Actions {
        self.out.clear();
        self.core.on_tick(now_ms, &mut self.out);
        self.absorb(now_ms)
    }

    fn openai_closed(&mut self, detail: &str, now_ms: u64) -> &Actions {
        self.out.clear();
        self.core.on_openai_closed(detail, now_ms, &mut self.out);
        self.absorb(now_ms)
    }

    /// The control plane's answer to `request_id`; a refusal carries `code`.
    fn answer(&mut self, request_id: &str, outcome: Outcome, code: &str, now_ms: u64) -> &Actions {
        let error = (outcome != Outcome::Accepted).then(|| CallError {
            code: code.into(),
            message: format!("{code} (test)"),
        });
        let answer = RequestAnswer {
            request_id: request_id.into(),
            outcome: outcome.into(),
            error,
        };
        self.control(connect_response::Message::Answer(answer), now_ms)
    }

    /// The control stream broke.
    fn lose_control(&mut self) {
        self.core.on_control_lost();
    }

    /// The control stream is back: its `CallConfig` says `stored_through_seq` is stored.
    fn reconnect(&mut self, stored_through_seq: u64, now_ms: u64) -> &Actions {
        let config = CallConfig {
            answers_requests: true,
            ..config(agent(), stored_through_seq)
        };
        self.control(connect_response::Message::Config(config), now_ms)
    }

    /// Records what `out` sent the control plane and, with `auto_ack`, acknowledges it
    /// (batches) and accepts it (final statuses, fallbacks).
    fn absorb(&mut self, now_ms: u64) -> &Actions {
        let mut pending: Vec<_> = self
            .out
            .to_control
            .iter()
            .filter_map(|r| r.message.clone())
            .collect();
        while !pending.is_empty() {
            let mut last_seq = None;
            let mut accepted = Vec::new();
            for message in pending.drain(..) {
                match &message {
                    connect_request::Message::Items(batch) => {
                        self.logged.extend(batch.items.iter().cloned());
                        last_seq = batch.items.last().map(|item| item.seq);
                    }
                    connect_request::Message::Status(status) => {
                        accepted.push(status.request_id.clone());
                    }
                    connect_request::Message::Fallback(fallback) => {
                        accepted.push(fallback.request_id.clone());
                    }
                    _ => {}
                }
                self.sent.push(message);
            }
            if !self.auto_ack {
                break;
            }
            let mut replies = Vec::new();
            if let Some(seq) = last_seq {
                replies.push(connect_response::Message::Ack(Ack {
                    stored_through_seq: seq,
                }));
            }
            for request_id in accepted {
                replies.push(connect_response::Message::Answer(RequestAnswer {
                    request_id,
                    outcome: Outcome::Accepted.into(),
                    error: None,
                }));
            }
            let mut follow_up = Actions::new();
            for reply in replies {
                let reply = ConnectResponse {
                    message: Some(reply),
                };
                self.core.on_control(reply, now_ms, &mut follow_up);
            }
            pending = follow_up
                .to_control
                .into_iter()
                .filter_map(|r| r.message)
                .collect();
        }
        &self.out
    }

    /// The status updates the control plane received.
    fn statuses(&self) -> Vec<StatusUpdate> {
        self.sent
            .iter()
            .filter_map(|message| match message {
                connect_request::Message::Status(status) => Some(status.clone()),
                _ => None,
            })
            .collect()
    }

    /// The logged items' sequence numbers.
    fn logged_seqs(&self) -> Vec<u64> {
        self.logged.iter().map(|item| item.seq).collect()
    }
}

/// The default limits without the ends that come with time (a quiet Twilio socket, the
/// longest call), which `tests/timers.rs` tests on their own: the other tests tick far
/// ahead without sending frames.
fn untimed() -> CallLimits {
    CallLimits {
        twilio_idle_timeout_ms: 0,
        default_max_call_ms: 0,
        ..CallLimits::default()
    }
}

#[test]
fn the_core_can_move_between_threads() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<CallCore>();
    assert_send::<Actions>();
}

/// A plain agent: no greeting, no tools of its own, a conference to hand off to.
fn agent() -> AgentSettings {
    AgentSettings {
        id: "agent_1".into(),
        name: "Ava".into(),
        model: "gpt-realtime".into(),
        voice: "marin".into(),
        instructions: "You are Ava, a friendly phone agent for Acme.".into(),
        handoff_target: Some(HandoffTarget {
            target: Some(handoff_target::Target::ConferenceName(
                "acme-support".into(),
            )),
        }),
        ..AgentSettings::default()
    }
}

fn config(agent: AgentSettings, stored_through_seq: u64) -> CallConfig {
    CallConfig {
        session: Some(CallSession {
            id: "65a9f001c2b3d4e5f6a7b8c9".into(),
            agent_id: agent.id.clone(),
            ..CallSession::default()
        }),
        agent_settings: Some(agent),
        stored_through_seq,
        answers_requests: true,
    }
}

/// Every request the control plane received, in order, by id (tool calls by
/// `tool_call_id`).
fn request_ids(call: &Call) -> Vec<String> {
    call.sent
        .iter()
        .filter_map(|message| match message {
            connect_request::Message::Transfer(r) => Some(r.request_id.clone()),
            connect_request::Message::Fallback(r) => Some(r.request_id.clone()),
            connect_request::Message::Status(r) => Some(r.request_id.clone()),
            connect_request::Message::ToolCall(r) => Some(r.tool_call_id.clone()),
            _ => None,
        })
        .collect()
}

/// Every line of the recorded session after its `_about` header.
fn recorded_session() -> Vec<Recorded> {
    SESSION_JSONL
        .lines()
        .skip(1)
        .map(|line| {
            let entry: Value = serde_json::from_str(line).expect("jsonl line");
            // The frame is the line's last field: slice it out byte for byte.
            let start = line.find(r#""msg": "#).expect("msg field") + 7;
            let frame = &line[start..line.len() - 1];
            let event_start = frame.find(r#""event": ""#).expect("event field") + 10;
            let event_len = frame[event_start..].find('"').expect("end of event");
            Recorded {
                t_ms: entry["t_ms"].as_u64().expect("t_ms"),
                inbound: entry["dir"] == "in",
                event: &frame[event_start..event_start + event_len],
                frame,
            }
        })
        .collect()
}

/// The inbound recorded frames of one event type.
fn recorded(event: &str) -> Vec<Recorded> {
    recorded_session()
        .into_iter()
        .filter(|r| r.inbound && r.event == event)
        .collect()
}

/// An example event from `openai-realtime-examples.json`, as JSON text.
fn example(section: &str, name: &str) -> String {
    let examples: Value = serde_json::from_str(EXAMPLES_JSON).expect("examples json");
    let event = &examples[section][name];
    assert!(!event.is_null(), "no example {section}/{name}");
    event.to_string()
}

/// An example event, edited.
fn example_with(section: &str, name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut event: Value = serde_json::from_str(&example(section, name)).expect("json");
    edit(&mut event);
    event.to_string()
}

fn json(frame: &str) -> Value {
    serde_json::from_str(frame).expect("frames are json")
}

/// The frames as JSON values.
fn frames(frames: &super::super::Frames) -> Vec<Value> {
    frames.iter().map(json).collect()
}

/// The messages in `out` for the control plane other than log batches and statuses.
fn control_messages(out: &Actions) -> Vec<connect_request::Message> {
    out.to_control
        .iter()
        .filter_map(|ConnectRequest { message }| message.clone())
        .filter(|m| {
            !matches!(
                m,
                connect_request::Message::Items(_) | connect_request::Message::Status(_)
            )
        })
        .collect()
}
