//! The life of a call the fake created: queued → ringing → the number's outcome, with the
//! status callbacks the request asked for (docs/protocols.md §2.4), signed (§2.5) and sent one
//! at a time, in order, each with the next `SequenceNumber`.
//!
//! `StatusCallbackEvent`s map to `CallStatus` as Twilio maps them: `initiated` →
//! `initiated`, `ringing` → `ringing`, `answered` → `in-progress`, `completed` → the final
//! status (`completed`, `busy`, `no-answer`, `failed`, `canceled`). With a `StatusCallback`
//! and no events, only `completed` is sent, Twilio's default. The final callback carries
//! `CallDuration`, `Duration` (minutes, rounded up) and `SipResponseCode`.

use std::time::Instant;

use serde::Serialize;
use switchboard_twilio::rest::{CallResource, ParticipantResource};
use switchboard_twilio::vocabulary::{
    CallDirection, CallProgressEvent, CallStatus, HttpMethod, ParticipantStatus,
};
use switchboard_twilio::webhooks::{form_params, CallProgress, CallStatusCallback};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{rfc2822_now, CallEntry, FakeTwilio, Outcome, OutcomeScript};
use crate::twilio::caller::{CallSpec, Caller, TwimlSource, DEFAULT_HTTP_TIMEOUT};
use crate::twilio::script::TalkScript;
use crate::twilio::webhook::{send_signed, voice_webhook};

/// What the REST API asks of a call's lifecycle.
#[derive(Debug)]
pub(super) enum Control {
    /// `Status=canceled`: ends a queued or ringing call.
    Cancel,
    /// `Status=completed`: hangs up (cancels a ringing call).
    Complete,
    /// `Twiml`/`Url`: new instructions (for a ringing call, what runs once answered).
    Redirect(TwimlSource),
}

/// One status callback the fake sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRecord {
    /// The call.
    pub call_sid: String,
    /// Where it went.
    pub url: String,
    /// `POST` or `GET`.
    pub method: String,
    /// The event: `initiated`, `ringing`, `answered` or `completed`.
    pub event: String,
    /// Its `CallStatus`.
    pub call_status: String,
    /// Its `SequenceNumber`.
    pub sequence_number: u64,
    /// Every parameter sent (what the signature covers).
    pub params: Vec<(String, String)>,
    /// The status answered, if any.
    pub response_status: Option<u16>,
    /// Why no answer came, if none did.
    pub error: Option<String>,
}

/// Where a call's status callbacks go.
#[derive(Debug, Clone)]
pub(super) struct Callbacks {
    pub(super) url: String,
    pub(super) method: HttpMethod,
    pub(super) events: Vec<CallProgressEvent>,
}

/// What answering does.
#[derive(Debug)]
pub(super) enum OnAnswer {
    /// Run a simulated caller on this TwiML.
    Run(TwimlSource),
    /// Join this conference (by SID) and stay connected.
    Join(String),
}

/// One created call's task.
pub(super) struct Lifecycle {
    pub(super) fake: FakeTwilio,
    pub(super) call_sid: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) callbacks: Option<Callbacks>,
    pub(super) script: OutcomeScript,
    pub(super) on_answer: OnAnswer,
    pub(super) control: mpsc::Receiver<Control>,
    pub(super) sequence: u64,
    pub(super) answered_at: Option<Instant>,
}

/// Registers a call resource; returns the receiver of its controls.
pub(super) fn register(fake: &FakeTwilio, resource: CallResource) -> mpsc::Receiver<Control> {
    let (control, receiver) = mpsc::channel(16);
    let sid = resource.sid.clone().unwrap_or_default();
    let mut state = fake.lock();
    state.call_order.push(sid.clone());
    state.calls.insert(
        sid,
        CallEntry {
            resource,
            control,
            caller: None,
        },
    );
    receiver
}

/// Places an inbound call and registers it, without status callbacks.
pub(super) fn start_inbound(fake: &FakeTwilio, spec: CallSpec) -> Caller {
    let resource = super::routes::call_resource(
        fake,
        &spec.call_sid,
        &spec.from,
        &spec.to,
        CallDirection::Inbound,
        CallStatus::InProgress,
    );
    let mut control = register(fake, resource);
    // The call's own CA, if it names one; else the fake's (shared) client.
    let client = match &spec.trusted_ca {
        Some(ca) => ca.http_client(),
        None => fake.inner.client.clone(),
    };
    let caller = Caller::start_with_client(spec, client);
    let sid = caller.call_sid().to_owned();
    if let Some(entry) = fake.lock().calls.get_mut(&sid) {
        entry.caller = Some(caller.clone());
    }
    let fake = fake.clone();
    let running = caller.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        follow_caller(&running, &mut control).await;
        fake.update_call(&sid, |call| {
            finish_resource(call, CallStatus::Completed, started)
        });
    });
    caller
}

// === impl Lifecycle ===

impl Lifecycle {
    /// Runs the call's life on its own task, in a span naming the call.
    pub(super) fn spawn(self) {
        let span = tracing::info_span!("sim_rest_call", call_sid = %self.call_sid);
        tokio::spawn(self.run().instrument(span));
    }

    async fn run(mut self) {
        self.emit(CallProgressEvent::Initiated, CallStatus::Initiated, None)
            .await;
        self.set_status(CallStatus::Ringing, ParticipantStatus::Ringing);
        self.emit(CallProgressEvent::Ringing, CallStatus::Ringing, None)
            .await;
        let rung = tokio::time::Instant::now() + self.script.ring;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(rung) => break,
                control = self.control.recv() => match control {
                    Some(Control::Cancel | Control::Complete) => {
                        return self.finish(CallStatus::Canceled).await;
                    }
                    Some(Control::Redirect(source)) => {
                        if let OnAnswer::Run(current) = &mut self.on_answer {
                            *current = source;
                        }
                    }
                    None => break,
                },
            }
        }
        let final_status = match self.script.outcome.clone() {
            Outcome::Busy => CallStatus::Busy,
            Outcome::NoAnswer => CallStatus::NoAnswer,
            Outcome::Fail => CallStatus::Failed,
            Outcome::Cancel => CallStatus::Canceled,
            // Refused at creation, so never reached: a call that exists did not fail so.
            Outcome::Reject { .. } => CallStatus::Failed,
            Outcome::Answer(talk) => {
                self.answer(talk).await;
                CallStatus::Completed
            }
        };
        self.finish(final_status).await;
    }

    async fn answer(&mut self, talk: TalkScript) {
        self.answered_at = Some(Instant::now());
        self.set_status(CallStatus::InProgress, ParticipantStatus::Connected);
        let start_time = rfc2822_now();
        self.fake.update_call(&self.call_sid, |call| {
            call.start_time = Some(start_time);
        });
        self.emit(CallProgressEvent::Answered, CallStatus::InProgress, None)
            .await;
        match &self.on_answer {
            OnAnswer::Run(source) => {
                let config = self.fake.config();
                let spec = CallSpec {
                    account_sid: config.account_sid.clone(),
                    auth_token: config.auth_token.clone(),
                    call_sid: self.call_sid.clone(),
                    from: self.from.clone(),
                    to: self.to.clone(),
                    direction: CallDirection::OutboundApi,
                    twiml: source.clone(),
                    script: talk,
                    keep_audio: config.keep_audio,
                    http_timeout: DEFAULT_HTTP_TIMEOUT,
                    trusted_ca: config.trusted_ca.clone(),
                };
                let caller = Caller::start_with_client(spec, self.fake.inner.client.clone());
                if let Some(entry) = self.fake.lock().calls.get_mut(&self.call_sid) {
                    entry.caller = Some(caller.clone());
                }
                follow_caller(&caller, &mut self.control).await;
            }
            OnAnswer::Join(_) => {
                let hang_up = talk
                    .hang_up_after
                    .map(|after| tokio::time::Instant::now() + after);
                loop {
                    tokio::select! {
                        () = sleep_until_opt(hang_up) => return,
                        control = self.control.recv() => match control {
                            Some(Control::Cancel | Control::Complete) | None => return,
                            Some(Control::Redirect(_)) => {}
                        },
                    }
                }
            }
        }
    }

    /// Ends the call with `status` and sends the `completed` callback.
    async fn finish(mut self, status: CallStatus) {
        let started = self.answered_at;
        let participant = match status {
            CallStatus::Completed => ParticipantStatus::Complete,
            _ => ParticipantStatus::Failed,
        };
        self.set_status(status.clone(), participant);
        let call_duration = started.map_or(0, |at| at.elapsed().as_secs());
        let sip_response_code = match status {
            CallStatus::Completed => 200,
            CallStatus::Busy => 486,
            CallStatus::NoAnswer => 480,
            CallStatus::Canceled => 487,
            _ => 500,
        };
        self.fake.update_call(&self.call_sid, |call| {
            call.end_time = Some(rfc2822_now());
            call.duration = Some(call_duration.to_string());
        });
        let progress = CallProgress {
            call_duration: Some(call_duration),
            duration: Some(call_duration.div_ceil(60)),
            sip_response_code: Some(sip_response_code),
            ..CallProgress::default()
        };
        self.emit(CallProgressEvent::Completed, status, Some(progress))
            .await;
    }

    fn set_status(&self, status: CallStatus, participant: ParticipantStatus) {
        self.fake.update_call(&self.call_sid, |call| {
            call.status = Some(status);
            call.date_updated = Some(rfc2822_now());
        });
        if let OnAnswer::Join(conference_sid) = &self.on_answer {
            self.fake.update_participant(
                conference_sid,
                &self.call_sid,
                |p: &mut ParticipantResource| {
                    p.status = Some(participant);
                },
            );
        }
    }

    /// Sends one status callback if the call asked for `event`, and records it.
    async fn emit(
        &mut self,
        event: CallProgressEvent,
        status: CallStatus,
        last: Option<CallProgress>,
    ) {
        let Some(callbacks) = self.callbacks.clone() else {
            return;
        };
        let wanted = if callbacks.events.is_empty() {
            event == CallProgressEvent::Completed
        } else {
            callbacks.events.contains(&event)
        };
        if !wanted {
            return;
        }
        let config = self.fake.config();
        let call = voice_webhook(
            &self.call_sid,
            &config.account_sid,
            &self.from,
            &self.to,
            status.clone(),
            CallDirection::OutboundApi,
        );
        let progress = CallProgress {
            callback_source: Some("call-progress-events".to_owned()),
            sequence_number: Some(self.sequence),
            timestamp: Some(rfc2822_now()),
            ..last.unwrap_or_default()
        };
        let body = CallStatusCallback { call, progress }.to_form_body();
        let params = form_params(body.as_bytes());
        let answer = send_signed(
            &self.fake.inner.client,
            &self.fake.inner.validator,
            &callbacks.url,
            callbacks.method,
            &params,
            DEFAULT_HTTP_TIMEOUT,
        )
        .await;
        let (response_status, error) = match answer {
            Ok(answer) => (Some(answer.status), None),
            Err(err) => {
                tracing::warn!(error = %err, "status callback not delivered");
                (None, Some(err.to_string()))
            }
        };
        tracing::debug!(
            event = event.as_str(),
            status = status.as_str(),
            "status callback"
        );
        self.fake.lock().callbacks.push(CallbackRecord {
            call_sid: self.call_sid.clone(),
            url: callbacks.url,
            method: callbacks.method.as_str().to_owned(),
            event: event.as_str().to_owned(),
            call_status: status.as_str().to_owned(),
            sequence_number: self.sequence,
            params,
            response_status,
            error,
        });
        self.sequence += 1;
    }
}

/// Passes REST controls to a running caller until its call ends.
async fn follow_caller(caller: &Caller, control: &mut mpsc::Receiver<Control>) {
    let mut open = true;
    loop {
        tokio::select! {
            _ = caller.finished() => return,
            command = control.recv(), if open => match command {
                // A command racing the end of the call finds it ended: nothing to do.
                Some(Control::Cancel | Control::Complete) => { let _ = caller.complete(); }
                Some(Control::Redirect(source)) => { let _ = caller.redirect(source); }
                None => open = false,
            },
        }
    }
}

fn finish_resource(call: &mut CallResource, status: CallStatus, started: Instant) {
    call.status = Some(status);
    call.end_time = Some(rfc2822_now());
    call.duration = Some(started.elapsed().as_secs().to_string());
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
