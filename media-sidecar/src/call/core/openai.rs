//! The OpenAI side of the core: Realtime server events in, either dialect (docs/protocols.md
//! §3.3).
//!
//! - `session.created` → `session.update` (the first client event, before any audio),
//!   then the caller frames buffered meanwhile.
//! - `session.updated` → the greeting, once: a `response.create` whose per-response
//!   instructions tell the model to say the agent's greeting. Waiting for `updated`
//!   (not `created`) guarantees the greeting is spoken with the agent's voice in µ-law;
//!   a greeting generated before the update applied would reach the caller as noise.
//!   Per-response instructions are what the API offers for "speak first": the client
//!   cannot create assistant audio items, and a fake user message would pollute the
//!   conversation the model remembers.
//! - audio delta (GA `response.output_audio.delta`, beta `response.audio.delta`) → Twilio
//!   `media` with the payload untouched, then a `mark` named by [`Playback::push_chunk`];
//!   deltas of an interrupted response are dropped. The hot path: no DOM, no allocation.
//! - `input_audio_buffer.speech_started` → barge-in (docs/protocols.md §4.3, [`Playback`]).
//! - transcripts → USER / ASSISTANT items. An assistant transcript is held until its audio
//!   has played (or was cut), so the item says whether the caller heard all of it.
//! - `response.done` → usage, and the response's tool calls (`core/tools.rs`).
//! - `error` → returned for logging; `session_expired` or a refused `session.update` end
//!   the call (the fallback).
//!
//! [`Playback`]: switchboard_realtime::Playback
//! [`Playback::push_chunk`]: switchboard_realtime::Playback::push_chunk

use std::collections::VecDeque;
use std::fmt::Write as _;

use switchboard_realtime::barge_in::base64_decoded_len;
use switchboard_realtime::server_event::ErrorDetails;
use switchboard_realtime::{
    encode_audio_append, parse_server_event, ClientEvent, ParseError, Response, ResponseParams,
    ServerEvent, SessionConfig,
};
use switchboard_twilio::media_stream::{encode_clear, encode_mark, encode_media};

use super::{log, Actions, CallCore, EndKind, Ending};
use crate::call::actions::RealtimeError;
use crate::call::counters::RejectReason;

/// `event_id` of our `session.update`, so an `error` about it can be recognised.
const SESSION_UPDATE_EVENT_ID: &str = "sb_session_update";
/// `event_id` of the greeting's `response.create`.
const GREETING_EVENT_ID: &str = "sb_greeting";
/// Error codes after which the session cannot go on.
const FATAL_CODES: [&str; 2] = ["session_expired", "beta_api_shape_disabled"];
/// The answer to a `response.cancel` the server's own barge-in cancel beat: expected.
const CANCEL_NOT_ACTIVE: &str = "response_cancel_not_active";
/// Interrupted assistant items remembered until their transcript arrives.
const INTERRUPTED_CAP: usize = 16;

/// What the core knows of the OpenAI session.
#[derive(Debug)]
pub(super) struct RealtimeState {
    /// The settings to send; taken when `session.update` goes out.
    session: Option<SessionConfig>,
    pub(super) session_sent: bool,
    greeted: bool,
    /// Caller frames that arrived before `session.update` was sent.
    pub(super) pre_session: VecDeque<String>,
    /// Payload bytes in `pre_session`.
    pub(super) pre_session_bytes: usize,
    /// The response being generated (`response.created` … `response.done`).
    pub(super) active_response: Option<String>,
    /// Assistant transcripts whose audio may still be playing.
    held: VecDeque<HeldTranscript>,
    /// Assistant items cut by a barge-in before their transcript arrived.
    interrupted: VecDeque<(String, u64)>,
}

#[derive(Debug)]
struct HeldTranscript {
    item_id: String,
    transcript: String,
}

impl RealtimeState {
    pub(super) fn new(session: SessionConfig) -> Self {
        Self {
            session: Some(session),
            session_sent: false,
            greeted: false,
            pre_session: VecDeque::new(),
            pre_session_bytes: 0,
            active_response: None,
            held: VecDeque::new(),
            interrupted: VecDeque::new(),
        }
    }
}

impl CallCore {
    /// One text event from the OpenAI Realtime socket (GA or beta names). Unreadable
    /// events are counted in `CallCounters::openai_rejected`, unknown types as
    /// `unknown_event`, and skipped.
    pub fn on_openai_text(&mut self, text: &str, now_ms: u64, out: &mut Actions) {
        let event = match parse_server_event(text) {
            Ok(event) => event,
            Err(error) => {
                self.counters.openai_rejected.record(reject_reason(&error));
                return;
            }
        };
        if self.ended.is_some() {
            return;
        }
        match event {
            ServerEvent::ResponseOutputAudioDelta(delta) => {
                self.relay_assistant_audio(
                    &delta.item_id,
                    &delta.response_id,
                    &delta.delta,
                    now_ms,
                    out,
                );
            }
            ServerEvent::SessionCreated(_) => self.configure_session(out),
            ServerEvent::SessionUpdated(_) => self.greet(out),
            // The goodbye is not to be cut (the caller's audio is not relayed meanwhile).
            ServerEvent::InputAudioBufferSpeechStarted(_) if self.saying_goodbye() => {}
            ServerEvent::InputAudioBufferSpeechStarted(_) => self.barge_in(now_ms, out),
            ServerEvent::ResponseCreated(created) => {
                self.goodbye_response_created(created.response.id.as_deref());
                self.realtime.active_response = created.response.id;
            }
            ServerEvent::ResponseDone(done) => self.on_response_done(done.response, now_ms, out),
            ServerEvent::ResponseOutputAudioTranscriptDone(done) => {
                self.on_assistant_transcript(
                    done.item_id,
                    &done.response_id,
                    done.transcript,
                    now_ms,
                    out,
                );
            }
            ServerEvent::ResponseOutputTextDone(done) => {
                let item = log::assistant_message(&done.text, &done.item_id, None, now_ms);
                self.log(item, now_ms, out);
            }
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                let item = log::user_message(&done.transcript, &done.item_id, now_ms);
                self.log(item, now_ms, out);
            }
            ServerEvent::InputAudioTranscriptionFailed(failed) => {
                let (code, message) = (
                    failed.error.code.as_deref(),
                    failed.error.message.as_deref(),
                );
                let item = log::transcription_failed(&failed.item_id, code, message, now_ms);
                self.log(item, now_ms, out);
            }
            ServerEvent::Error(error) => self.on_openai_error(error.error, now_ms, out),
            ServerEvent::Unknown { .. } => {
                self.counters
                    .openai_rejected
                    .record(RejectReason::UnknownEvent);
            }
            _ => {}
        }
    }

    /// The OpenAI socket was refused or dropped. Unless the call has ended already, it
    /// ends failed with `openai.unavailable` (handed off when the agent's fallback is a
    /// transfer) and the `End` asks for the fallback. `detail` goes into the error message.
    pub fn on_openai_closed(&mut self, detail: &str, now_ms: u64, out: &mut Actions) {
        let ending = Ending::failed(
            EndKind::OpenAiUnavailable,
            "openai_unavailable",
            "openai.unavailable".to_owned(),
            detail.to_owned(),
        );
        self.end_call(ending, now_ms, out);
    }

    /// The hot path: one audio delta to Twilio as `media` + `mark`, or dropped.
    fn relay_assistant_audio(
        &mut self,
        item_id: &str,
        response_id: &str,
        audio: &str,
        now_ms: u64,
        out: &mut Actions,
    ) {
        if audio.is_empty() {
            return;
        }
        if self.stream.stream_sid.is_empty() {
            // Nothing may be sent to Twilio before its `start`.
            self.counters.deltas_dropped += 1;
            return;
        }
        let Some(mark) = self
            .playback
            .push_chunk(item_id, response_id, audio, now_ms)
        else {
            self.counters.deltas_dropped += 1;
            return;
        };
        self.scratch.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.scratch, "{mark}");
        let stream_sid = &self.stream.stream_sid;
        encode_media(stream_sid, audio, out.to_twilio.next_buffer());
        encode_mark(stream_sid, &self.scratch, out.to_twilio.next_buffer());
        self.counters.assistant_frames += 1;
        self.usage.assistant_bytes += base64_decoded_len(audio);
    }

    fn configure_session(&mut self, out: &mut Actions) {
        let Some(session) = self.realtime.session.take() else {
            return;
        };
        let update = ClientEvent::SessionUpdate {
            event_id: Some(SESSION_UPDATE_EVENT_ID.to_owned()),
            session: Box::new(session),
        };
        update.encode_into(self.dialect, out.to_openai.next_buffer());
        self.realtime.session_sent = true;
        self.realtime.pre_session_bytes = 0;
        while let Some(payload) = self.realtime.pre_session.pop_front() {
            self.usage.caller_bytes += base64_decoded_len(&payload);
            encode_audio_append(&payload, out.to_openai.next_buffer());
            self.counters.caller_frames += 1;
        }
    }

    fn greet(&mut self, out: &mut Actions) {
        if std::mem::replace(&mut self.realtime.greeted, true) {
            return;
        }
        let greeting = self.agent.greeting.trim();
        if greeting.is_empty() {
            return;
        }
        let directive = format!(
            "Begin the call now by saying exactly this greeting, in its language, then wait \
             for the caller: {greeting}"
        );
        let instructions = match self.agent.instructions.trim() {
            "" => directive,
            agent => format!("{agent}\n\n{directive}"),
        };
        let create = ClientEvent::ResponseCreate {
            event_id: Some(GREETING_EVENT_ID.to_owned()),
            response: Some(Box::new(ResponseParams {
                instructions: Some(instructions),
                ..ResponseParams::default()
            })),
        };
        create.encode_into(self.dialect, out.to_openai.next_buffer());
    }

    /// The caller started speaking. If assistant audio is audible: Twilio `clear`,
    /// `conversation.item.truncate` at the audio the caller heard, and the cut item is
    /// flagged in the log. A response still generating is cancelled by id (the server
    /// usually beat us to it with `interrupt_response`; naming the id means a newer
    /// response can never be cancelled by mistake), and its late deltas are dropped.
    fn barge_in(&mut self, now_ms: u64, out: &mut Actions) {
        let generating = self.realtime.active_response.clone();
        let interruption = self.playback.barge_in(now_ms, generating.is_some());
        if let Some(response_id) = generating {
            let cancel = ClientEvent::ResponseCancel {
                event_id: None,
                response_id: Some(response_id),
            };
            cancel.encode_into(self.dialect, out.to_openai.next_buffer());
        }
        let Some(cut) = interruption else {
            return;
        };
        encode_clear(&self.stream.stream_sid, out.to_twilio.next_buffer());
        ClientEvent::truncate(cut.item_id.as_str(), cut.audio_end_ms)
            .encode_into(self.dialect, out.to_openai.next_buffer());
        self.counters.barge_ins += 1;
        self.mark_interrupted(cut.item_id, cut.audio_end_ms, now_ms, out);
    }

    /// Logs the held transcripts around the cut item `item_id`: those before it played in
    /// full, it was heard up to `audio_end_ms`, those after it not at all.
    fn mark_interrupted(
        &mut self,
        item_id: String,
        audio_end_ms: u64,
        now_ms: u64,
        out: &mut Actions,
    ) {
        let mut cut_seen = false;
        while let Some(held) = self.realtime.held.pop_front() {
            let interrupted_at = if held.item_id == item_id {
                cut_seen = true;
                Some(audio_end_ms)
            } else {
                cut_seen.then_some(0)
            };
            let item =
                log::assistant_message(&held.transcript, &held.item_id, interrupted_at, now_ms);
            self.log(item, now_ms, out);
        }
        if !cut_seen {
            if self.realtime.interrupted.len() == INTERRUPTED_CAP {
                self.realtime.interrupted.pop_front();
            }
            self.realtime.interrupted.push_back((item_id, audio_end_ms));
        }
    }

    fn on_assistant_transcript(
        &mut self,
        item_id: String,
        response_id: &str,
        transcript: String,
        now_ms: u64,
        out: &mut Actions,
    ) {
        let remembered = self
            .realtime
            .interrupted
            .iter()
            .position(|(id, _)| *id == item_id)
            .and_then(|index| self.realtime.interrupted.remove(index))
            .map(|(_, audio_end_ms)| audio_end_ms);
        // A muted item other than the cut one was cleared before any of it played.
        let interrupted_at =
            remembered.or_else(|| self.playback.is_muted(&item_id, response_id).then_some(0));
        if interrupted_at.is_none() && self.playback.pending_marks() > 0 {
            self.realtime.held.push_back(HeldTranscript {
                item_id,
                transcript,
            });
            return;
        }
        let item = log::assistant_message(&transcript, &item_id, interrupted_at, now_ms);
        self.log(item, now_ms, out);
    }

    /// Logs every held assistant transcript as heard in full (its audio has played, or the
    /// call is ending).
    pub(super) fn release_held_transcripts(&mut self, now_ms: u64, out: &mut Actions) {
        while let Some(held) = self.realtime.held.pop_front() {
            let item = log::assistant_message(&held.transcript, &held.item_id, None, now_ms);
            self.log(item, now_ms, out);
        }
    }

    fn on_response_done(&mut self, response: Response, now_ms: u64, out: &mut Actions) {
        match &response.id {
            Some(id) => {
                self.playback.response_done(id);
                if self.realtime.active_response.as_ref() == Some(id) {
                    self.realtime.active_response = None;
                }
            }
            None => self.realtime.active_response = None,
        }
        if let Some(usage) = &response.usage {
            let tokens = &mut self.usage.tokens;
            tokens.input_tokens += usage.input_tokens.unwrap_or(0);
            tokens.output_tokens += usage.output_tokens.unwrap_or(0);
            tokens.total_tokens += usage.total_tokens.unwrap_or(0);
            let input_audio = usage
                .input_token_details
                .as_ref()
                .and_then(|d| d.audio_tokens);
            let output_audio = usage
                .output_token_details
                .as_ref()
                .and_then(|d| d.audio_tokens);
            tokens.input_audio_tokens += input_audio.unwrap_or(0);
            tokens.output_audio_tokens += output_audio.unwrap_or(0);
            self.usage.dirty = true;
            if self.usage_due(now_ms) {
                self.send_usage(now_ms, out);
            }
        }
        self.on_response_tool_calls(&response, now_ms, out);
        self.goodbye_response_done(response.id.as_deref(), now_ms, out);
    }

    fn on_openai_error(&mut self, error: ErrorDetails, now_ms: u64, out: &mut Actions) {
        if error.code.as_deref() == Some(CANCEL_NOT_ACTIVE) {
            return;
        }
        self.counters.openai_errors += 1;
        let fatal_code = if error.event_id.as_deref() == Some(SESSION_UPDATE_EVENT_ID) {
            Some("openai.session_rejected".to_owned())
        } else {
            error
                .code
                .as_deref()
                .filter(|code| FATAL_CODES.contains(code))
                .map(|code| format!("openai.{code}"))
        };
        out.openai_errors.push(RealtimeError {
            kind: error.kind,
            code: error.code,
            message: error.message.clone(),
            fatal: fatal_code.is_some(),
        });
        if let Some(code) = fatal_code {
            let ending = Ending::failed(EndKind::OpenAiFailed, "openai_error", code, error.message);
            self.end_call(ending, now_ms, out);
        }
    }
}

fn reject_reason(error: &ParseError) -> RejectReason {
    match error {
        ParseError::Json { .. } => RejectReason::InvalidJson,
        ParseError::MissingType => RejectReason::MissingField,
        ParseError::Invalid { .. } | ParseError::DialectMismatch { .. } => {
            RejectReason::InvalidField
        }
    }
}
