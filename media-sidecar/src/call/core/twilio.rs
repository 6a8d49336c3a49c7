//! The Twilio side of the core: Media Stream frames in (docs/protocols.md §1.2).
//!
//! `media` is the hot path: parsed with the payload borrowed from the frame, relayed as
//! `input_audio_buffer.append` written straight into a reused buffer — no JSON DOM, no
//! allocation, no logging. Until the OpenAI session is configured, caller frames wait in
//! a small buffer (never appended before `session.update`, docs/protocols.md §3.1). `mark` echoes
//! feed the playback tracker; `dtmf` becomes a NOTE item; `stop` ends the call. Malformed,
//! oversized, unknown and foreign-stream frames are counted by reason and skipped, and so
//! are frames out of the stream's order (anything but `connected` before `start`, a second
//! `connected` or `start`).

use std::collections::BTreeMap;

use switchboard_realtime::{encode_audio_append, MarkEcho};
use switchboard_twilio::media_stream::{
    parse_inbound, payload_byte_len, InboundMessage, ParseError, Start,
};

use super::{log, Actions, CallCore, EndKind, Ending};
use crate::call::counters::RejectReason;

/// What the core knows of the Twilio stream.
#[derive(Debug)]
pub(super) struct StreamState {
    /// `streamSid`; empty until known (from the session, then `start`).
    pub(super) stream_sid: String,
    /// `callSid`; empty until known.
    pub(super) call_sid: String,
    custom_parameters: BTreeMap<String, String>,
    started: bool,
}

impl StreamState {
    pub(super) fn new(stream_sid: String, call_sid: String) -> Self {
        Self {
            stream_sid,
            call_sid,
            custom_parameters: BTreeMap::new(),
            started: false,
        }
    }
}

impl CallCore {
    /// One text frame from Twilio's Media Stream socket.
    ///
    /// `media` → `input_audio_buffer.append` with the payload untouched; `mark` → the
    /// playback tracker; `dtmf` → a NOTE item; `stop` → the end of the call (completed,
    /// `caller_hung_up`; handed off if a transfer is in progress); `start` → the stream's
    /// ids and custom parameters. Anything unreadable, or out of the stream's order, is
    /// counted in `CallCounters::twilio_rejected` and skipped.
    pub fn on_twilio_text(&mut self, text: &str, now_ms: u64, out: &mut Actions) {
        self.twilio_alive(now_ms);
        let message = match parse_inbound(text) {
            Ok(message) => message,
            Err(error) => {
                self.counters.twilio_rejected.record(reject_reason(&error));
                return;
            }
        };
        if let Some(stream_sid) = message.stream_sid() {
            let ours = &self.stream.stream_sid;
            if self.stream.started && !ours.is_empty() && stream_sid != ours {
                self.counters
                    .twilio_rejected
                    .record(RejectReason::WrongStream);
                return;
            }
        }
        let in_order = match message {
            InboundMessage::Connected(_) | InboundMessage::Start(_) => !self.stream.started,
            InboundMessage::Unknown { .. } => true,
            _ => self.stream.started,
        };
        if !in_order {
            self.counters
                .twilio_rejected
                .record(RejectReason::Unexpected);
            return;
        }
        if self.ended.is_some() {
            return;
        }
        match message {
            InboundMessage::Media(media) => self.relay_caller_audio(&media.payload, out),
            InboundMessage::Mark(mark) => {
                self.counters.marks_echoed += 1;
                let echo = self.playback.on_mark(&mark.name, now_ms);
                if matches!(echo, MarkEcho::Played { .. }) && self.playback.pending_marks() == 0 {
                    // Everything sent has played: held transcripts were heard in full.
                    self.release_held_transcripts(now_ms, out);
                    self.goodbye_played(now_ms, out);
                }
            }
            InboundMessage::Start(start) => self.on_stream_start(start),
            InboundMessage::Dtmf(dtmf) => self.log(log::dtmf(&dtmf.digit, now_ms), now_ms, out),
            InboundMessage::Stop(_) => {
                let ending = if self.handoff_requested {
                    Ending::new(EndKind::HandedOff, "handed_off")
                } else {
                    Ending::new(EndKind::CallerHungUp, "caller_hung_up")
                };
                self.end_call(ending, now_ms, out);
            }
            InboundMessage::Connected(_) => {}
            InboundMessage::Unknown { .. } => {
                self.counters
                    .twilio_rejected
                    .record(RejectReason::UnknownEvent);
            }
        }
    }

    /// The Twilio socket closed, or a write to it did not finish in time (`detail` says
    /// which). Without a `stop` before it the call ends failed (`twilio.stream_closed`);
    /// after one (or after any end) nothing happens.
    pub fn on_twilio_closed(&mut self, detail: &str, now_ms: u64, out: &mut Actions) {
        let ending = Ending::failed(
            EndKind::TwilioClosed,
            "twilio_stream_closed",
            "twilio.stream_closed".to_owned(),
            detail.to_owned(),
        );
        self.end_call(ending, now_ms, out);
    }

    /// `streamSid` of the Twilio stream; empty until known.
    pub fn stream_sid(&self) -> &str {
        &self.stream.stream_sid
    }

    /// Twilio `callSid`; empty until known.
    pub fn call_sid(&self) -> &str {
        &self.stream.call_sid
    }

    /// `start.customParameters` (the `<Parameter>`s of the `<Stream>`, e.g. the per-call
    /// token); empty before `start`.
    pub fn custom_parameters(&self) -> &BTreeMap<String, String> {
        &self.stream.custom_parameters
    }

    /// The hot path: one caller frame to OpenAI, or into the start-up buffer; dropped
    /// while the goodbye is said, so nothing interrupts it.
    fn relay_caller_audio(&mut self, payload: &str, out: &mut Actions) {
        if self.saying_goodbye() {
            self.counters.caller_frames_dropped += 1;
            return;
        }
        if self.realtime.session_sent {
            self.usage.caller_bytes += payload_byte_len(payload);
            encode_audio_append(payload, out.to_openai.next_buffer());
            self.counters.caller_frames += 1;
            return;
        }
        let limits = &self.limits;
        if limits.pre_session_frames == 0 || payload.len() > limits.pre_session_bytes {
            self.counters.caller_frames_dropped += 1;
            return;
        }
        let buffer = &mut self.realtime;
        while buffer.pre_session.len() >= limits.pre_session_frames
            || buffer.pre_session_bytes + payload.len() > limits.pre_session_bytes
        {
            let Some(oldest) = buffer.pre_session.pop_front() else {
                break;
            };
            buffer.pre_session_bytes -= oldest.len();
            self.counters.caller_frames_dropped += 1;
        }
        buffer.pre_session_bytes += payload.len();
        buffer.pre_session.push_back(payload.to_owned());
    }

    fn on_stream_start(&mut self, start: Start<'_>) {
        if self.stream.started {
            return;
        }
        self.stream.started = true;
        self.stream.stream_sid = start.stream_sid.into_owned();
        self.stream.call_sid = start.call_sid.into_owned();
        self.stream.custom_parameters = start.custom_parameters;
    }
}

fn reject_reason(error: &ParseError) -> RejectReason {
    match error {
        ParseError::TooLarge { .. } => RejectReason::TooLarge,
        ParseError::Json {
            category: "data", ..
        } => RejectReason::InvalidField,
        ParseError::Json { .. } => RejectReason::InvalidJson,
        ParseError::MissingField(_) => RejectReason::MissingField,
        ParseError::InvalidCounter(_) => RejectReason::InvalidField,
    }
}
