//! Responses: what to say (from the script and the pending turn), and the
//! event sequence of saying it, one audio chunk per [`SessionCore::step`].
//!
//! GA order for a spoken output: `response.output_item.added`,
//! `conversation.item.added`, `response.content_part.added`, then per chunk
//! `response.output_audio.delta` + `response.output_audio_transcript.delta`,
//! then `response.output_audio.done`, `…_transcript.done`,
//! `response.content_part.done`, `response.output_item.done`,
//! `conversation.item.done`. A function call follows its spoken reply in
//! the same response. `response.done` closes with status and usage. Beta
//! names and shapes come from the codec's encoder.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value};
use switchboard_realtime::response::{
    InputTokenDetails, OutputTokenDetails, RateLimit, StatusDetails,
};
use switchboard_realtime::server_event::{RateLimitsUpdated, ResponseEvent};
use switchboard_realtime::{
    Item, ItemStatus, OutputModality, Response, ResponseParams, ResponseStatus, ServerEvent, Usage,
};

use super::{ApiError, Outbox, Pending, SessionCore};
use crate::openai::script::{FunctionCall, Reply};

mod output;

/// Requests per minute reported in `rate_limits.updated`.
const REQUEST_LIMIT: u64 = 1_000;
/// Tokens per minute reported in `rate_limits.updated`.
const TOKEN_LIMIT: u64 = 40_000;

/// The response being generated.
#[derive(Debug)]
pub(super) struct ActiveResponse {
    pub(super) id: String,
    audio: bool,
    plan: VecDeque<Planned>,
    speaking: Option<Speaking>,
    next_output_index: u32,
    output: Vec<Item>,
    audio_ms: u64,
    text_chars: u64,
    metadata: Option<BTreeMap<String, String>>,
    turn: Option<usize>,
}

#[derive(Debug)]
enum Planned {
    Speech(Reply),
    Call(FunctionCall),
}

/// A spoken (or written) output part-way through.
#[derive(Debug)]
struct Speaking {
    item_id: String,
    output_index: u32,
    pieces: Vec<String>,
    chunk_ms: Vec<u64>,
    next: usize,
    transcript: String,
}

impl SessionCore {
    /// Sends the next piece of the active response: everything up to and
    /// including the next audio chunk, or the closing events. Returns the
    /// ms of audio just sent (0 when the response finished or has no audio),
    /// or `None` when no response is active.
    pub fn step(&mut self, out: &mut Outbox) -> Option<u64> {
        let mut active = self.active.take()?;
        loop {
            let more = active.speaking.as_ref().map(|s| s.next < s.pieces.len());
            match more {
                Some(true) => {
                    let ms = self.send_chunk(&mut active, out);
                    self.active = Some(active);
                    return Some(ms);
                }
                Some(false) => self.finish_speech(&mut active, ItemStatus::Completed, out),
                None => match active.plan.pop_front() {
                    Some(Planned::Speech(reply)) => self.begin_speech(&mut active, &reply, out),
                    Some(Planned::Call(call)) => self.send_call(&mut active, &call, out),
                    None => {
                        self.finish_response(active, ResponseStatus::Completed, None, out);
                        return Some(0);
                    }
                },
            }
        }
    }

    /// `response.create`, or a turn end with `create_response`.
    pub(super) fn create_response(
        &mut self,
        event_id: Option<String>,
        params: Option<&ResponseParams>,
        out: &mut Outbox,
    ) {
        if let Some(active) = &self.active {
            let error = ApiError::active_response(&active.id);
            self.send_error(out, error.for_event(event_id));
            return;
        }
        if self.rate_limited {
            self.send_rate_limits(0, 0, out);
            let error = ApiError::rate_limited(&self.model);
            self.send_error(out, error.for_event(event_id));
            return;
        }
        let (turn, plan) = self.plan();
        let modality = params
            .and_then(|p| p.output_modalities)
            .or(self.config.output_modalities)
            .unwrap_or(OutputModality::Audio);
        let id = self.ids.make("resp");
        let metadata = params.and_then(|p| p.metadata.clone());
        let response = Response {
            id: Some(id.clone()),
            status: Some(ResponseStatus::InProgress),
            output: Some(Vec::new()),
            extra: self.response_extra(metadata.as_ref()),
            ..Response::default()
        };
        let created = ResponseEvent {
            event_id: self.ids.event(),
            response,
        };
        self.emit(out, ServerEvent::ResponseCreated(created));
        self.usage.responses += 1;
        let requests_left = REQUEST_LIMIT.saturating_sub(self.usage.responses);
        let tokens_left = TOKEN_LIMIT.saturating_sub(self.usage.tokens_used);
        self.send_rate_limits(requests_left, tokens_left, out);
        self.recorder
            .update(|r| r.responses_created.push(id.clone()));
        self.active = Some(ActiveResponse {
            id,
            audio: modality == OutputModality::Audio,
            plan,
            speaking: None,
            next_output_index: 0,
            output: Vec::new(),
            audio_ms: 0,
            text_chars: 0,
            metadata,
            turn,
        });
    }

    /// `response.cancel`.
    pub(super) fn on_cancel(
        &mut self,
        event_id: Option<String>,
        response_id: Option<String>,
        out: &mut Outbox,
    ) {
        let matches = match (&self.active, &response_id) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(active), Some(id)) => active.id == *id,
        };
        if matches {
            self.cancel_active("client_cancelled", out);
        } else {
            self.send_error(out, ApiError::cancel_not_active().for_event(event_id));
        }
    }

    /// Ends the active response as cancelled (`turn_detected` or
    /// `client_cancelled`).
    pub(super) fn cancel_active(&mut self, reason: &str, out: &mut Outbox) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        if active.speaking.is_some() {
            self.finish_speech(&mut active, ItemStatus::Incomplete, out);
        }
        let id = active.id.clone();
        self.finish_response(active, ResponseStatus::Cancelled, Some(reason), out);
        self.recorder.update(|r| r.responses_cancelled.push(id));
    }

    /// What the next response says, and the caller turn it answers.
    fn plan(&mut self) -> (Option<usize>, VecDeque<Planned>) {
        let script = Arc::clone(&self.script);
        let fallback = || script.fallback.reply.clone().map(Planned::Speech);
        let pending = std::mem::replace(&mut self.pending, Pending::Nothing);
        let (turn, plan): (Option<usize>, Vec<Planned>) = match pending {
            Pending::Turn(index) => {
                let turn = script.turn(index);
                let reply = turn.reply.clone().map(Planned::Speech);
                let call = turn.function_call.clone().map(Planned::Call);
                (Some(index), reply.into_iter().chain(call).collect())
            }
            Pending::AfterCall {
                turn,
                output_received: true,
                ..
            } => {
                let reply = script.turn(turn).after_call.clone().map(Planned::Speech);
                (None, reply.or_else(fallback).into_iter().collect())
            }
            waiting @ Pending::AfterCall { .. } => {
                // The model would not know the result yet: it stalls.
                self.pending = waiting;
                (None, fallback().into_iter().collect())
            }
            Pending::Nothing if !self.greeted && self.next_turn == 0 => {
                self.greeted = true;
                let greeting = Planned::Speech(script.greeting.clone());
                (None, vec![greeting])
            }
            Pending::Nothing => (None, fallback().into_iter().collect()),
        };
        (turn, plan.into())
    }

    fn finish_response(
        &mut self,
        active: ActiveResponse,
        status: ResponseStatus,
        reason: Option<&str>,
        out: &mut Outbox,
    ) {
        let usage = self.usage_of(&active);
        let status_details = reason.map(|reason| StatusDetails {
            kind: Some(status.as_str().to_owned()),
            reason: Some(reason.to_owned()),
            error: None,
        });
        let response = Response {
            id: Some(active.id),
            status: Some(status),
            status_details,
            output: Some(active.output),
            usage: Some(usage),
            extra: self.response_extra(active.metadata.as_ref()),
        };
        let done = ResponseEvent {
            event_id: self.ids.event(),
            response,
        };
        self.emit(out, ServerEvent::ResponseDone(done));
    }

    fn usage_of(&mut self, active: &ActiveResponse) -> Usage {
        let instructions = self.config.instructions.as_deref().unwrap_or_default();
        let input_text =
            100 + instructions.chars().count() as u64 / 4 + self.usage.history_text_tokens;
        let input_audio = self.audio_position_ms() / 100;
        let output_text = active.text_chars.div_ceil(4);
        let output_audio = active.audio_ms / 50;
        let (input, output) = (input_text + input_audio, output_text + output_audio);
        self.usage.history_text_tokens += output_text;
        self.usage.tokens_used += input + output;
        Usage {
            total_tokens: Some(input + output),
            input_tokens: Some(input),
            output_tokens: Some(output),
            input_token_details: Some(InputTokenDetails {
                text_tokens: Some(input_text),
                audio_tokens: Some(input_audio),
                image_tokens: Some(0),
                cached_tokens: Some(0),
                cached_tokens_details: None,
            }),
            output_token_details: Some(OutputTokenDetails {
                text_tokens: Some(output_text),
                audio_tokens: Some(output_audio),
            }),
        }
    }

    fn send_rate_limits(&mut self, requests_left: u64, tokens_left: u64, out: &mut Outbox) {
        let limit = |name: &str, limit, remaining, reset_seconds| RateLimit {
            name: Some(name.to_owned()),
            limit: Some(limit),
            remaining: Some(remaining),
            reset_seconds: Some(reset_seconds),
        };
        let reset = if tokens_left == 0 { 20.0 } else { 0.06 };
        let updated = RateLimitsUpdated {
            event_id: self.ids.event(),
            rate_limits: vec![
                limit("requests", REQUEST_LIMIT, requests_left, 0.06),
                limit("tokens", TOKEN_LIMIT, tokens_left, reset),
            ],
        };
        self.emit(out, ServerEvent::RateLimitsUpdated(updated));
    }

    fn response_extra(&self, metadata: Option<&BTreeMap<String, String>>) -> Map<String, Value> {
        let mut extra = Map::new();
        extra.insert("object".to_owned(), "realtime.response".into());
        extra.insert(
            "conversation_id".to_owned(),
            format!("conv_{}", self.ids.tag).into(),
        );
        let metadata = metadata.map_or(Value::Null, |m| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.clone().into()))
                    .collect(),
            )
        });
        extra.insert("metadata".to_owned(), metadata);
        extra
    }
}
