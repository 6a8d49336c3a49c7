//! The sidecar's drain running out of grace: the call ends through the fallback, as for
//! a model outage, with its own end reason.

use switchboard_proto::v1::{
    fallback, CallStatus, ConversationItemKind, Fallback, FallbackRequest,
};
use switchboard_realtime::Dialect;

use super::*;
use crate::call::EndKind;

impl Call {
    fn drained(&mut self, now_ms: u64) -> &Actions {
        self.out.clear();
        self.core.on_drained(now_ms, &mut self.out);
        self.absorb(now_ms)
    }

    /// The fallback requests the control plane received.
    fn fallbacks(&self) -> Vec<FallbackRequest> {
        self.sent
            .iter()
            .filter_map(|message| match message {
                connect_request::Message::Fallback(request) => Some(request.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_drained_call_asks_for_the_fallback_and_ends_failed_sidecar_drained() {
    let mut call = Call::started(agent(), Dialect::Ga);
    let out = call.drained(3_000);
    let end = out.end.clone().expect("ended");
    assert_eq!(end.kind, EndKind::Drained);
    assert_eq!(end.status, CallStatus::Failed);
    assert_eq!(end.end_reason, "sidecar_drained");
    assert!(
        end.needs_fallback(),
        "the caller is redirected, not cut: the driver leaves twilio to the redirect"
    );
    assert!(!out.close_twilio);
    let error = end.error.clone().expect("error");
    assert_eq!(error.code, "sidecar.drained");
    assert!(error.message.contains("drain"), "{}", error.message);

    let note = &call.logged[0];
    assert_eq!(note.kind, ConversationItemKind::Note as i32);
    assert_eq!(note.text, "fallback: sidecar_drained");
    let fallbacks = call.fallbacks();
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0].end_reason, "sidecar_drained");
    assert_eq!(
        fallbacks[0].error.as_ref().map(|e| e.code.as_str()),
        Some("sidecar.drained")
    );
    let status = &call.statuses()[0];
    assert_eq!(
        (status.status, status.end_reason.as_str()),
        (CallStatus::Failed as i32, "sidecar_drained")
    );
    assert!(call.core.is_settled());
}

#[test]
fn the_fallback_of_a_model_outage_leaves_its_end_reason_to_the_control_plane() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.openai_closed("connection reset", 3_000);
    let fallbacks = call.fallbacks();
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(
        fallbacks[0].end_reason, "",
        "the control plane records ai_unavailable"
    );
}

#[test]
fn a_drained_call_whose_fallback_is_refused_hangs_up_failed() {
    let mut transferring = agent();
    transferring.fallback = Some(Fallback {
        message: "One moment, please.".into(),
        action: fallback::Action::Transfer.into(),
    });
    let mut call = Call::started(transferring, Dialect::Ga);
    call.auto_ack = false;
    let end = call.drained(1_000).end.clone().expect("ended");
    assert_eq!(
        end.status,
        CallStatus::HandedOff,
        "a fallback that transfers hands the caller to humans"
    );
    assert_eq!(end.handoff_target, agent().handoff_target);
    call.ack(1, 1_100);
    assert!(
        call.statuses().is_empty(),
        "the status waits for the answer"
    );

    let out = call.answer(
        "fallback-1",
        Outcome::Refused,
        "twilio.not_configured",
        1_200,
    );
    assert!(out.close_twilio, "nobody else will end the call");
    let status = &call.statuses()[0];
    assert_eq!(
        (status.status, status.end_reason.as_str()),
        (CallStatus::Failed as i32, "sidecar_drained"),
        "not handed off after all"
    );
    let status_id = status.request_id.clone();
    call.answer(&status_id, Outcome::Accepted, "", 1_300);
    assert!(call.core.is_settled());
}

#[test]
fn a_drained_call_waits_for_the_control_stream_to_ask_for_the_fallback() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.lose_control();
    let out = call.drained(1_000);
    assert!(out.end.is_some());
    assert!(
        out.to_control.is_empty(),
        "nothing goes while the stream is down"
    );
    assert!(call.fallbacks().is_empty());

    call.reconnect(0, 2_000);
    let fallbacks = call.fallbacks();
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0].end_reason, "sidecar_drained");
    assert!(call.core.is_settled());
}

#[test]
fn a_call_that_has_ended_ignores_the_drain() {
    let mut call = Call::started(agent(), Dialect::Ga);
    call.twilio(recorded("stop")[0].frame, 1_000);
    assert_eq!(call.core.end_kind(), Some(EndKind::CallerHungUp));
    let sent = call.sent.len();

    let out = call.drained(2_000);
    assert!(out.end.is_none() && !out.close_twilio);
    assert_eq!(call.sent.len(), sent, "nothing more for the control plane");
    assert!(call.fallbacks().is_empty());
    assert_eq!(call.core.end_kind(), Some(EndKind::CallerHungUp));
    assert_eq!(call.statuses()[0].end_reason, "caller_hung_up");
}
