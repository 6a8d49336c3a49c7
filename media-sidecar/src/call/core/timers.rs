//! Ends that come with time: a Twilio socket gone quiet, and the longest call.
//!
//! **Quiet Twilio socket.** Twilio sends a `media` frame every 20 ms for as long as a
//! call lasts, so a socket that sends nothing for `CallLimits::twilio_idle_timeout_ms`
//! is dead even if it never closed (a vanished peer, a half-open TCP connection). The
//! call ends `failed` with end reason `twilio_idle` (error `twilio.idle`): the call did
//! not end the way a caller ends one, and nobody can tell whether the caller heard the
//! end. The driver closes both sockets.
//!
//! **The longest call.** At the agent's `max_call_duration` — or, when it sets none,
//! `CallLimits::default_max_call_ms` (`SWITCHBOARD_MAX_CALL_DURATION`) — the caller
//! hears a goodbye before the call ends: the agent's `goodbye`, else
//! [`DEFAULT_GOODBYE`], spoken by the model through a `response.create` whose
//! instructions say to say exactly that (after cancelling a response in progress). The
//! caller's audio is no longer relayed, so the goodbye is not interrupted. The call ends
//! `completed` (`max_duration`) once the goodbye's response is done and its audio has
//! played (every mark echoed), or when `CallLimits::goodbye_wait_ms` has passed,
//! whichever comes first; at once if the model is not there to speak.

use switchboard_realtime::{ClientEvent, ResponseParams};

use super::{Actions, CallCore, EndKind, Ending};

/// Said at the longest call when the agent has no goodbye of its own.
pub const DEFAULT_GOODBYE: &str =
    "We have reached the time limit for this call. Thank you for calling, goodbye.";
/// `event_id` of the goodbye's `response.create`.
const GOODBYE_EVENT_ID: &str = "sb_goodbye";

/// The clocks of one call.
#[derive(Debug)]
pub(super) struct Timers {
    started_at_ms: u64,
    /// When the last Twilio frame arrived.
    last_twilio_ms: u64,
    goodbye: Option<Goodbye>,
}

/// The goodbye in progress.
#[derive(Debug)]
struct Goodbye {
    /// Hang up by then whatever happens.
    deadline_ms: u64,
    /// Its `response.create` went out (after the response in progress ended).
    requested: bool,
    /// Its response, once `response.created` named it.
    response_id: Option<String>,
    /// Its response is done: the call ends once its audio has played.
    spoken: bool,
}

impl Timers {
    pub(super) fn new(now_ms: u64) -> Self {
        Self {
            started_at_ms: now_ms,
            last_twilio_ms: now_ms,
            goodbye: None,
        }
    }
}

impl CallCore {
    /// A Twilio frame arrived (any frame: the socket is alive).
    pub(super) fn twilio_alive(&mut self, now_ms: u64) {
        self.timers.last_twilio_ms = self.timers.last_twilio_ms.max(now_ms);
    }

    /// True while the goodbye is being said: the caller's audio is not relayed and no
    /// tool runs.
    pub(super) fn saying_goodbye(&self) -> bool {
        self.timers.goodbye.is_some()
    }

    /// The idle timeout, the longest call, and the goodbye's deadline (from `on_tick`).
    pub(super) fn check_timers(&mut self, now_ms: u64, out: &mut Actions) {
        let idle_ms = self.limits.twilio_idle_timeout_ms;
        let quiet_ms = now_ms.saturating_sub(self.timers.last_twilio_ms);
        if idle_ms > 0 && quiet_ms >= idle_ms {
            let ending = Ending::failed(
                EndKind::TwilioIdle,
                "twilio_idle",
                "twilio.idle".to_owned(),
                format!("no frame from twilio for {quiet_ms} ms"),
            );
            return self.end_call(ending, now_ms, out);
        }
        match &self.timers.goodbye {
            Some(goodbye) if now_ms >= goodbye.deadline_ms => self.end_at_max_duration(now_ms, out),
            Some(_) => {}
            None => {
                let max_ms = self.max_call_ms();
                if max_ms > 0 && now_ms >= self.timers.started_at_ms.saturating_add(max_ms) {
                    self.start_goodbye(now_ms, out);
                }
            }
        }
    }

    /// `response.created`: the goodbye's response, if one was just asked for.
    pub(super) fn goodbye_response_created(&mut self, response_id: Option<&str>) {
        if let Some(goodbye) = self.timers.goodbye.as_mut() {
            if goodbye.requested && goodbye.response_id.is_none() {
                goodbye.response_id = response_id.map(str::to_owned);
            }
        }
    }

    /// `response.done` (after its bookkeeping): asks for the goodbye once the response
    /// it waited for ended, notes when the goodbye itself is done, and ends the call
    /// once it has played.
    pub(super) fn goodbye_response_done(
        &mut self,
        response_id: Option<&str>,
        now_ms: u64,
        out: &mut Actions,
    ) {
        let Some(requested) = self.timers.goodbye.as_ref().map(|g| g.requested) else {
            return;
        };
        if !requested {
            if self.realtime.active_response.is_none() {
                self.request_goodbye(out);
            }
            return;
        }
        if let Some(goodbye) = self.timers.goodbye.as_mut() {
            if goodbye.response_id.is_some() && goodbye.response_id.as_deref() == response_id {
                goodbye.spoken = true;
            }
        }
        self.goodbye_played(now_ms, out);
    }

    /// After a mark echo or the goodbye's `response.done`: ends the call once the
    /// goodbye is done and all its audio has played.
    pub(super) fn goodbye_played(&mut self, now_ms: u64, out: &mut Actions) {
        let done = self.timers.goodbye.as_ref().is_some_and(|g| g.spoken);
        if done && self.playback.pending_marks() == 0 {
            self.end_at_max_duration(now_ms, out);
        }
    }

    /// The agent's limit, else the sidecar's default, in ms; 0 for none.
    fn max_call_ms(&self) -> u64 {
        let agent_ms = self.agent.max_call_duration.as_ref().map_or(0, |d| {
            let ms = d
                .seconds
                .saturating_mul(1_000)
                .saturating_add(i64::from(d.nanos / 1_000_000));
            u64::try_from(ms).unwrap_or(0)
        });
        if agent_ms > 0 {
            agent_ms
        } else {
            self.limits.default_max_call_ms
        }
    }

    fn start_goodbye(&mut self, now_ms: u64, out: &mut Actions) {
        if !self.realtime.session_sent {
            // Nobody to say it: end now.
            return self.end_at_max_duration(now_ms, out);
        }
        self.timers.goodbye = Some(Goodbye {
            deadline_ms: now_ms.saturating_add(self.limits.goodbye_wait_ms),
            requested: false,
            response_id: None,
            spoken: false,
        });
        match self.realtime.active_response.clone() {
            Some(response_id) => {
                // Its `response.done` asks for the goodbye.
                ClientEvent::ResponseCancel {
                    event_id: None,
                    response_id: Some(response_id),
                }
                .encode_into(self.dialect, out.to_openai.next_buffer());
            }
            None => self.request_goodbye(out),
        }
    }

    fn request_goodbye(&mut self, out: &mut Actions) {
        let Some(goodbye) = self.timers.goodbye.as_mut() else {
            return;
        };
        goodbye.requested = true;
        let line = match self.agent.goodbye.trim() {
            "" => DEFAULT_GOODBYE,
            line => line,
        };
        let directive = format!(
            "The call has reached its time limit and ends now. Say exactly this goodbye, \
             in its language, and nothing else: {line}"
        );
        let instructions = match self.agent.instructions.trim() {
            "" => directive,
            agent => format!("{agent}\n\n{directive}"),
        };
        let create = ClientEvent::ResponseCreate {
            event_id: Some(GOODBYE_EVENT_ID.to_owned()),
            response: Some(Box::new(ResponseParams {
                instructions: Some(instructions),
                tool_choice: Some("none".to_owned()),
                ..ResponseParams::default()
            })),
        };
        create.encode_into(self.dialect, out.to_openai.next_buffer());
    }

    fn end_at_max_duration(&mut self, now_ms: u64, out: &mut Actions) {
        let ending = Ending::new(EndKind::MaxDuration, "max_duration");
        self.end_call(ending, now_ms, out);
    }
}
