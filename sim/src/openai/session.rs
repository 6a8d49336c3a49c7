//! [`SessionCore`]: one Realtime session as a sans-I/O state machine.
//! Client frames (and "send the next chunk" steps) go in; server events come
//! out, in the connection's dialect. No sockets, clocks or tasks: the
//! driver in [`server`](super::server) owns those and decides the pace.
//!
//! The rules of the protocol live here and in the child modules:
//! validation and `error` events (`errors`), the effective config
//! (`settings`), input audio and server VAD (this file), conversation items
//! and truncation (`conversation`), and responses (`response`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use switchboard_realtime::server_event::{EventId, SessionEvent, SpeechStarted, SpeechStopped};
use switchboard_realtime::{
    parse_client_event, AudioFormat, ClientEvent, Dialect, ServerEvent, SessionConfig,
    TurnDetection, TurnDetectionMode,
};

use super::audio::{bytes_per_ms, for_each_sample, sample_rate, Tone};
use super::records::{Recorder, SentError};
use super::script::Script;
use super::vad::{Vad, VadEvent, VadSettings};

mod conversation;
mod errors;
mod response;
mod settings;

pub(crate) use errors::ApiError;

use conversation::Conversation;
use response::ActiveResponse;

/// Server events produced by one call into the core, in order.
pub type Outbox = Vec<ServerEvent<'static>>;

/// Shortest buffer `input_audio_buffer.commit` accepts, ms.
const MIN_COMMIT_MS: u64 = 100;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// A new session id, unique in this process (`sess_sim…`).
pub fn new_session_id() -> String {
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed) + 1;
    format!("sess_sim{n:06}")
}

/// Everything a session starts from.
#[derive(Debug, Clone)]
pub struct CoreParams {
    /// From [`new_session_id`].
    pub session_id: String,
    /// The dialect chosen at the handshake.
    pub dialect: Dialect,
    /// The model or deployment from the URL.
    pub model: String,
    /// What the caller says and the assistant answers.
    pub script: Arc<Script>,
    /// Where to note what happens.
    pub recorder: Recorder,
    /// Frequency of the assistant's tone, Hz.
    pub tone_hz: u32,
    /// Length of each audio delta, ms.
    pub chunk_ms: u32,
}

/// One Realtime session. See the module docs.
#[derive(Debug)]
pub struct SessionCore {
    dialect: Dialect,
    session_id: String,
    model: String,
    script: Arc<Script>,
    recorder: Recorder,
    tone_hz: u32,
    chunk_ms: u32,
    tone: Tone,
    config: SessionConfig,
    ids: Ids,
    input: Input,
    conversation: Conversation,
    next_turn: usize,
    pending: Pending,
    greeted: bool,
    active: Option<ActiveResponse>,
    rate_limited: bool,
    assistant_audio_sent: bool,
    usage: UsageTotals,
}

/// Server-side ids: `{kind}_{session tag}{n}`.
#[derive(Debug)]
struct Ids {
    tag: String,
    next: u64,
}

/// The input audio buffer and its VAD.
#[derive(Debug)]
struct Input {
    format: AudioFormat,
    /// Session audio position when `format` took effect, ms.
    base_ms: u64,
    /// Bytes appended since then.
    bytes: u64,
    /// Start of the uncommitted buffer, ms.
    buffer_start_ms: u64,
    vad: Option<Vad>,
    vad_settings: Option<VadSettings>,
    /// The user item announced by `speech_started`.
    speech_item: Option<String>,
}

/// What the next response answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// A committed caller turn (index into the script).
    Turn(usize),
    /// A function call waiting for its output.
    AfterCall {
        turn: usize,
        call_id: String,
        output_received: bool,
    },
}

/// Token counts across the session, for `usage` and `rate_limits.updated`.
#[derive(Debug, Default)]
struct UsageTotals {
    history_text_tokens: u64,
    tokens_used: u64,
    responses: u64,
}

impl SessionCore {
    /// A session that has sent nothing yet; call [`SessionCore::start`].
    pub fn new(params: CoreParams) -> Self {
        let config = settings::initial(params.dialect, &params.model);
        let format = config.input_audio_format.unwrap_or(AudioFormat::Pcm24k);
        let output_format = config.output_audio_format.unwrap_or(AudioFormat::Pcm24k);
        let tag = params
            .session_id
            .trim_start_matches("sess_")
            .chars()
            .take(12)
            .collect();
        let mut core = Self {
            dialect: params.dialect,
            session_id: params.session_id,
            model: params.model,
            script: params.script,
            recorder: params.recorder,
            tone_hz: params.tone_hz,
            chunk_ms: params.chunk_ms.max(1),
            tone: Tone::new(output_format, params.tone_hz, params.chunk_ms),
            config,
            ids: Ids { tag, next: 0 },
            input: Input {
                format,
                base_ms: 0,
                bytes: 0,
                buffer_start_ms: 0,
                vad: None,
                vad_settings: None,
                speech_item: None,
            },
            conversation: Conversation::default(),
            next_turn: 0,
            pending: Pending::Nothing,
            greeted: false,
            active: None,
            rate_limited: false,
            assistant_audio_sent: false,
            usage: UsageTotals::default(),
        };
        core.refresh_input();
        core
    }

    /// The session id sent in `session.created`.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The effective configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether a response is being generated (call [`SessionCore::step`]).
    pub fn response_active(&self) -> bool {
        self.active.is_some()
    }

    /// Session audio appended so far, ms (8 bytes of µ-law per ms).
    pub fn audio_position_ms(&self) -> u64 {
        self.input.base_ms + self.input.bytes / bytes_per_ms(self.input.format)
    }

    /// From now on every response fails with `rate_limit_exceeded`.
    pub fn set_rate_limited(&mut self, rate_limited: bool) {
        self.rate_limited = rate_limited;
    }

    /// `session.created`: the first event of the session.
    pub fn start(&mut self, out: &mut Outbox) {
        self.recorder
            .update(|r| r.session_config = self.config.clone());
        let event = SessionEvent {
            event_id: self.ids.event(),
            session: settings::session_json(&self.config, self.dialect, &self.session_id),
        };
        self.emit(out, ServerEvent::SessionCreated(event));
    }

    /// The `session_expired` error sent before the socket closes.
    pub fn expire(&mut self, out: &mut Outbox) {
        self.send_error(out, ApiError::session_expired());
    }

    /// Handles one text frame from the client.
    pub fn on_text(&mut self, text: &str, out: &mut Outbox) {
        match parse_client_event(text, self.dialect) {
            Ok(event) => self.on_event(event, out),
            Err(err) => {
                self.recorder
                    .update(|r| r.client_events.push("<invalid>".to_owned()));
                let error = ApiError::from_parse(&err).for_event(client_event_id(text));
                self.send_error(out, error);
            }
        }
    }

    /// Handles a binary frame (the API takes text only).
    pub fn on_binary(&mut self, out: &mut Outbox) {
        self.recorder
            .update(|r| r.client_events.push("<binary>".to_owned()));
        self.send_error(out, ApiError::binary_frame());
    }

    /// Handles one decoded client event.
    pub fn on_event(&mut self, event: ClientEvent<'_>, out: &mut Outbox) {
        let event_type = event.event_type().to_owned();
        self.recorder.update(|r| r.client_events.push(event_type));
        match event {
            ClientEvent::SessionUpdate { event_id, session } => {
                self.on_session_update(event_id, *session, out);
            }
            ClientEvent::InputAudioBufferAppend { event_id, audio } => {
                self.on_append(event_id.map(|id| id.into_owned()), &audio, out);
            }
            ClientEvent::InputAudioBufferCommit { event_id } => self.on_commit(event_id, out),
            ClientEvent::InputAudioBufferClear { event_id: _ } => self.on_clear(out),
            ClientEvent::ConversationItemCreate {
                event_id,
                previous_item_id,
                item,
            } => self.on_item_create(event_id, previous_item_id, *item, out),
            ClientEvent::ConversationItemTruncate {
                event_id,
                item_id,
                content_index,
                audio_end_ms,
            } => self.on_truncate(event_id, item_id, content_index, audio_end_ms, out),
            ClientEvent::ConversationItemDelete { event_id, item_id } => {
                self.on_item_delete(event_id, item_id, out);
            }
            ClientEvent::ConversationItemRetrieve { event_id, item_id } => {
                self.on_item_retrieve(event_id, item_id, out);
            }
            ClientEvent::ResponseCreate { event_id, response } => {
                self.create_response(event_id, response.as_deref(), out);
            }
            ClientEvent::ResponseCancel {
                event_id,
                response_id,
            } => self.on_cancel(event_id, response_id, out),
            ClientEvent::OutputAudioBufferClear { event_id } => {
                let error = ApiError::websocket_only("output_audio_buffer.clear");
                self.send_error(out, error.for_event(event_id));
            }
            ClientEvent::Unknown { event_type } => {
                self.send_error(out, ApiError::unknown_type(&event_type));
            }
        }
    }

    fn on_session_update(
        &mut self,
        event_id: Option<String>,
        update: SessionConfig,
        out: &mut Outbox,
    ) {
        // The model is chosen in the URL: the real API refuses the whole update
        // rather than apply its other fields and ignore the model.
        if let Some(requested) = update.model.as_deref().filter(|m| *m != self.model) {
            let error = ApiError::model_locked(&self.model, requested);
            self.send_error(out, error.for_event(event_id));
            return;
        }
        let voice_change = update.voice.is_some() && update.voice != self.config.voice;
        if voice_change && self.assistant_audio_sent {
            self.send_error(out, ApiError::voice_locked().for_event(event_id));
            return;
        }
        settings::merge(&mut self.config, update);
        self.refresh_input();
        let output_format = self.config.output_audio_format.unwrap_or(AudioFormat::Pcmu);
        if self.tone.format() != output_format {
            self.tone = Tone::new(output_format, self.tone_hz, self.chunk_ms);
        }
        let config = self.config.clone();
        self.recorder.update(|r| {
            r.session_updates += 1;
            r.session_config = config;
        });
        let event = SessionEvent {
            event_id: self.ids.event(),
            session: settings::session_json(&self.config, self.dialect, &self.session_id),
        };
        self.emit(out, ServerEvent::SessionUpdated(event));
    }

    /// Re-creates the VAD when the input format or turn detection changed.
    fn refresh_input(&mut self) {
        let format = self
            .config
            .input_audio_format
            .unwrap_or(AudioFormat::Pcm24k);
        let position = self.audio_position_ms();
        let format_changed = format != self.input.format;
        if format_changed {
            self.input.format = format;
            self.input.base_ms = position;
            self.input.bytes = 0;
        }
        let settings = self
            .turn_detection()
            .filter(|td| td.mode != TurnDetectionMode::Disabled)
            .map(VadSettings::from_turn_detection);
        if settings == self.input.vad_settings && !format_changed && self.input.vad.is_some() {
            return;
        }
        self.input.vad_settings = settings;
        self.input.speech_item = None;
        self.input.vad = settings.map(|s| {
            let mut vad = Vad::new(s, sample_rate(format), position);
            vad.set_floor(self.input.buffer_start_ms);
            vad
        });
    }

    fn turn_detection(&self) -> Option<&TurnDetection> {
        self.config.turn_detection.as_ref()
    }

    fn vad_flag(&self, flag: impl Fn(&TurnDetection) -> Option<bool>) -> bool {
        self.turn_detection()
            .filter(|td| td.mode != TurnDetectionMode::Disabled)
            .is_some_and(|td| flag(td).unwrap_or(true))
    }

    fn on_append(&mut self, event_id: Option<String>, audio: &str, out: &mut Outbox) {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(audio) else {
            self.send_error(out, ApiError::bad_audio().for_event(event_id));
            return;
        };
        let len = bytes.len() as u64;
        self.recorder.update(|r| {
            r.appends += 1;
            r.audio_bytes_appended += len;
        });
        self.input.bytes += len;
        if self.input.vad.is_none() {
            return;
        }
        let mut samples = Vec::with_capacity(bytes.len());
        for_each_sample(self.input.format, &bytes, |s| samples.push(s));
        let mut events = Vec::new();
        for sample in samples {
            if let Some(vad) = self.input.vad.as_mut() {
                vad.push(sample, &mut events);
            }
            for event in events.drain(..) {
                self.on_vad(event, out);
            }
        }
    }

    fn on_vad(&mut self, event: VadEvent, out: &mut Outbox) {
        match event {
            VadEvent::SpeechStarted { audio_start_ms } => {
                let item_id = self.ids.make("item");
                self.input.speech_item = Some(item_id.clone());
                let started = SpeechStarted {
                    event_id: self.ids.event(),
                    audio_start_ms,
                    item_id,
                };
                self.emit(out, ServerEvent::InputAudioBufferSpeechStarted(started));
                if self.active.is_some() && self.vad_flag(|td| td.interrupt_response) {
                    self.cancel_active("turn_detected", out);
                }
            }
            VadEvent::SpeechStopped { audio_end_ms } => {
                let item_id = match self.input.speech_item.take() {
                    Some(id) => id,
                    None => self.ids.make("item"),
                };
                let stopped = SpeechStopped {
                    event_id: self.ids.event(),
                    audio_end_ms,
                    item_id: item_id.clone(),
                };
                self.emit(out, ServerEvent::InputAudioBufferSpeechStopped(stopped));
                self.commit(item_id, audio_end_ms, out);
                if self.vad_flag(|td| td.create_response) {
                    self.create_response(None, None, out);
                }
            }
        }
    }

    fn on_commit(&mut self, event_id: Option<String>, out: &mut Outbox) {
        let position = self.audio_position_ms();
        let buffered = position.saturating_sub(self.input.buffer_start_ms);
        if buffered < MIN_COMMIT_MS {
            self.send_error(out, ApiError::commit_empty(buffered).for_event(event_id));
            return;
        }
        let item_id = match self.input.speech_item.take() {
            Some(id) => id,
            None => self.ids.make("item"),
        };
        if let Some(vad) = self.input.vad.as_mut() {
            vad.reset(position);
        }
        self.commit(item_id, position, out);
    }

    fn on_clear(&mut self, out: &mut Outbox) {
        let position = self.audio_position_ms();
        self.input.buffer_start_ms = position;
        self.input.speech_item = None;
        if let Some(vad) = self.input.vad.as_mut() {
            vad.reset(position);
        }
        let cleared = EventId {
            event_id: self.ids.event(),
        };
        self.emit(out, ServerEvent::InputAudioBufferCleared(cleared));
    }

    /// Pushes `event` unless the dialect lacks it (GA-only events on beta).
    fn emit(&self, out: &mut Outbox, event: ServerEvent<'static>) {
        if event.type_in(self.dialect).is_some() {
            out.push(event);
        }
    }

    fn send_error(&mut self, out: &mut Outbox, error: ApiError) {
        let sent = SentError {
            code: error.code.to_owned(),
            message: error.message.clone(),
        };
        self.recorder.update(|r| r.errors_sent.push(sent));
        out.push(error.into_event(self.ids.event()));
    }
}

impl Ids {
    fn make(&mut self, kind: &str) -> String {
        self.next += 1;
        format!("{kind}_{}x{:05}", self.tag, self.next)
    }

    fn event(&mut self) -> String {
        self.make("event")
    }
}

/// The `event_id` of a frame that did not decode, when it has one.
fn client_event_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithId {
        #[serde(default)]
        event_id: Option<String>,
    }
    serde_json::from_str::<WithId>(text).ok()?.event_id
}

#[cfg(test)]
mod tests;
