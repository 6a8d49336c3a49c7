//! Running a call's TwiML the way Twilio does: fetch a document, run its verbs in order,
//! follow `<Connect action>`, `<Redirect>` and REST redirects, and end the call when a verb
//! or the caller ends it or the verbs run out.
//!
//! `<Say>`, `<Play>` and `<Pause>` are recorded and take no time. `<Dial>` is recorded and
//! its far leg is not simulated: the caller stays "in the dial" until its script's hang-up
//! time or a command, then the call ends as [`CallEnd::Dialed`]. A stream closed by the
//! application moves on to `action` or the next verb, as on Twilio.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use switchboard_twilio::signature::RequestValidator;
use switchboard_twilio::vocabulary::{CallStatus, HttpMethod};
use switchboard_twilio::webhooks::form_params;
use tokio::sync::{mpsc, watch};

use super::stream::{self, StreamOutcome};
use super::{lock, CallSpec, CallState, Command, TwimlSource};
use crate::twilio::document::{self, Verb};
use crate::twilio::record::{CallEnd, TwimlFetch};
use crate::twilio::script::Timeline;
use crate::twilio::webhook::{resolve, send_signed, voice_webhook};

/// Most TwiML documents one call runs: more is a redirect loop.
const MAX_DOCUMENTS: usize = 20;

/// What the running call carries from verb to verb.
pub(super) struct CallCtx {
    pub(super) spec: CallSpec,
    pub(super) client: reqwest::Client,
    pub(super) validator: RequestValidator,
    pub(super) timeline: Timeline,
    pub(super) state: Arc<Mutex<CallState>>,
    pub(super) commands: mpsc::Receiver<Command>,
    /// When the first stream started: zero of the script's audio clock.
    pub(super) audio_origin: Option<Instant>,
}

/// What runs next.
enum Next {
    Document {
        origin: &'static str,
        source: TwimlSource,
    },
    End(CallEnd),
}

/// The call's task: runs documents until the call ends, then marks it finished.
pub(super) async fn run(
    spec: CallSpec,
    client: reqwest::Client,
    state: Arc<Mutex<CallState>>,
    commands: mpsc::Receiver<Command>,
    done: watch::Sender<bool>,
) {
    let first = match &spec.twiml {
        TwimlSource::Url { .. } => "webhook",
        TwimlSource::Inline(_) => "inline",
    };
    let source = spec.twiml.clone();
    let mut ctx = CallCtx {
        validator: RequestValidator::new(&spec.auth_token),
        timeline: spec.script.timeline(),
        spec,
        client,
        state,
        commands,
        audio_origin: None,
    };
    let mut next = Next::Document {
        origin: first,
        source,
    };
    let mut documents = 0;
    let end = loop {
        match next {
            Next::End(end) => break end,
            Next::Document { .. } if documents == MAX_DOCUMENTS => break CallEnd::TooManyDocuments,
            Next::Document { origin, source } => {
                documents += 1;
                next = run_document(&mut ctx, origin, source).await;
            }
        }
    };
    tracing::debug!(?end, "simulated call ended");
    {
        let mut state = lock(&ctx.state);
        state.record.duration = state.started.elapsed();
        state.record.end = Some(end);
    }
    let _ = done.send(true);
}

async fn run_document(ctx: &mut CallCtx, origin: &'static str, source: TwimlSource) -> Next {
    let (url, twiml) = match fetch(ctx, origin, source).await {
        Ok(fetched) => fetched,
        Err(end) => return Next::End(end),
    };
    let document = match document::parse(&twiml) {
        Ok(document) => document,
        Err(err) => {
            lock(&ctx.state).record.errors.push(err.to_string());
            return Next::End(CallEnd::InvalidTwiml);
        }
    };
    for verb in document.verbs {
        lock(&ctx.state).record.verbs.push(verb.clone());
        if let Ok(command) = ctx.commands.try_recv() {
            return after_command(command);
        }
        match verb {
            Verb::Connect {
                action,
                method,
                stream,
            } => {
                if let Some(noun) = stream {
                    match stream::run(ctx, &noun, url.as_deref()).await {
                        StreamOutcome::Ended(end) => return Next::End(end),
                        StreamOutcome::Redirected(source) => {
                            return Next::Document {
                                origin: "update",
                                source,
                            }
                        }
                        StreamOutcome::Closed => {}
                    }
                }
                if let Some(action) = action.and_then(|a| resolve(&a, url.as_deref())) {
                    return Next::Document {
                        origin: "action",
                        source: TwimlSource::Url {
                            url: action,
                            method: http_method(method.as_deref()),
                        },
                    };
                }
            }
            Verb::Redirect {
                url: target,
                method,
            } => {
                let Some(target) = resolve(&target, url.as_deref()) else {
                    lock(&ctx.state)
                        .record
                        .errors
                        .push(format!("redirect to unresolvable url {target}"));
                    return Next::End(CallEnd::InvalidTwiml);
                };
                return Next::Document {
                    origin: "redirect",
                    source: TwimlSource::Url {
                        url: target,
                        method: http_method(method.as_deref()),
                    },
                };
            }
            Verb::Hangup | Verb::Reject { .. } => return Next::End(CallEnd::Hangup),
            Verb::Dial { .. } => return hold_in_dial(ctx).await,
            Verb::Say { .. } | Verb::Play { .. } | Verb::Pause { .. } | Verb::Other { .. } => {}
        }
    }
    Next::End(CallEnd::NoMoreVerbs)
}

/// Gets a document's text: fetched with a signed request, or inline. Returns the URL it came
/// from (to resolve relative URLs against) and the text.
async fn fetch(
    ctx: &mut CallCtx,
    origin: &'static str,
    source: TwimlSource,
) -> Result<(Option<String>, String), CallEnd> {
    let (url, method) = match source {
        TwimlSource::Inline(twiml) => {
            lock(&ctx.state).record.documents.push(TwimlFetch {
                origin,
                url: None,
                status: None,
                twiml: twiml.clone(),
            });
            return Ok((None, twiml));
        }
        TwimlSource::Url { url, method } => (url, method),
    };
    let status = if origin == "webhook" {
        ctx.spec.first_status()
    } else {
        CallStatus::InProgress
    };
    let params = call_params(&ctx.spec, status);
    let answer = send_signed(
        &ctx.client,
        &ctx.validator,
        &url,
        method,
        &params,
        ctx.spec.http_timeout,
    )
    .await;
    let mut state = lock(&ctx.state);
    match answer {
        Ok(answer) => {
            state.record.documents.push(TwimlFetch {
                origin,
                url: Some(url.clone()),
                status: Some(answer.status),
                twiml: answer.body.clone(),
            });
            if (200..300).contains(&answer.status) {
                Ok((Some(url), answer.body))
            } else {
                state
                    .record
                    .errors
                    .push(format!("{origin} {url} answered http {}", answer.status));
                Err(CallEnd::FetchFailed {
                    url,
                    status: Some(answer.status),
                })
            }
        }
        Err(err) => {
            state.record.errors.push(err.to_string());
            Err(CallEnd::FetchFailed { url, status: None })
        }
    }
}

/// Waits in a `<Dial>` until the script hangs up or a command arrives.
async fn hold_in_dial(ctx: &mut CallCtx) -> Next {
    let Some(after) = ctx.timeline.hang_up_after() else {
        return Next::End(CallEnd::Dialed);
    };
    let origin = *ctx.audio_origin.get_or_insert_with(Instant::now);
    let deadline = tokio::time::Instant::from_std(origin + after);
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => Next::End(CallEnd::Dialed),
        command = ctx.commands.recv() => match command {
            Some(command) => after_command(command),
            None => Next::End(CallEnd::Dialed),
        },
    }
}

fn after_command(command: Command) -> Next {
    match command {
        Command::HangUp { by_api: true } => Next::End(CallEnd::HungUpByApi),
        Command::HangUp { by_api: false } => Next::End(CallEnd::CallerHungUp),
        Command::Redirect(source) => Next::Document {
            origin: "update",
            source,
        },
    }
}

/// The parameters of every TwiML request for this call (docs/protocols.md §2.2).
fn call_params(spec: &CallSpec, status: CallStatus) -> Vec<(String, String)> {
    let webhook = voice_webhook(
        &spec.call_sid,
        &spec.account_sid,
        &spec.from,
        &spec.to,
        status,
        spec.direction.clone(),
    );
    form_params(webhook.to_form_body().as_bytes())
}

fn http_method(method: Option<&str>) -> HttpMethod {
    match method {
        Some(m) if m.eq_ignore_ascii_case("GET") => HttpMethod::Get,
        _ => HttpMethod::Post,
    }
}
