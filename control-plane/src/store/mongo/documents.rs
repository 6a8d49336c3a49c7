//! The documents `MongoStore` reads and writes, and their conversion to and from the
//! domain types. camelCase field names as in the original system's collections; times
//! as BSON dates at millisecond precision. Nothing here leaves the `mongo` module.
//!
//! Reads are lenient so that documents the original system wrote decode too (see
//! `legacy.rs`): every field but `_id` has a default, ids may be ObjectIds, unknown
//! fields are ignored. Writes always carry every field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mongodb::bson::{self, doc, Document};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::legacy::{self, id_string};
use super::{AGENT, SESSION};
use crate::domain::{
    AgentMode, AgentSettings, CallDirection, CallError, CallSession, CallStatus, ConversationItem,
    Customer, Fallback, FallbackAction, HandoffTarget, InputTranscription, ItemKind,
    RealtimeProvider, Role, Timestamp, Tool, TurnDetection, TurnDetectionType, Usage,
};
use crate::store::{StoreError, StoreResult};

pub(super) fn bson_time(t: Timestamp) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

pub(super) fn timestamp(t: bson::DateTime) -> Result<Timestamp, String> {
    DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis())
        .ok_or_else(|| format!("date {t} is out of range"))
}

pub(super) fn direction_name(direction: CallDirection) -> &'static str {
    match direction {
        CallDirection::Inbound => "inbound",
        CallDirection::Outbound => "outbound",
    }
}

pub(super) fn parse_direction(name: &str) -> Result<CallDirection, String> {
    match legacy::direction_name(name) {
        "inbound" => Ok(CallDirection::Inbound),
        "outbound" => Ok(CallDirection::Outbound),
        other => Err(format!("unknown direction {other:?}")),
    }
}

/// The projection of session reads: every field, with the old layout's embedded
/// conversation cut to its first item (see [`SessionDoc::in_old_layout`]).
pub(super) fn probe_conversation() -> Document {
    doc! { "realtimeConversation": { "$slice": 1 } }
}

/// [`probe_conversation`] of `lastSeq` alone, for appends and conversation reads.
pub(super) fn probe_last_seq() -> Document {
    doc! { "lastSeq": 1, "realtimeConversation": { "$slice": 1 } }
}

pub(super) fn invalid_document(kind: &str, id: &str, reason: &str) -> StoreError {
    StoreError::Internal(format!("{kind} {id}: stored document is invalid: {reason}"))
}

// === documents ===
//
// Domain enums (mode, provider, role, …) are stored as the snake_case names their serde
// derive gives; call status and direction as the names Twilio uses.

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AgentDoc {
    #[serde(rename = "_id", deserialize_with = "id_string")]
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    /// Left out when empty: a sparse unique index skips only absent fields, and would
    /// index every empty array under one key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) phone_numbers: Vec<String>,
    #[serde(default = "realtime")]
    pub(super) mode: AgentMode,
    #[serde(default = "openai")]
    pub(super) provider: RealtimeProvider,
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) voice: String,
    #[serde(default)]
    pub(super) instructions: String,
    /// Options are written as null rather than left out, so an update's `$set` clears
    /// them.
    #[serde(default)]
    pub(super) temperature: Option<f64>,
    #[serde(default)]
    pub(super) tools: Vec<ToolDoc>,
    #[serde(default)]
    pub(super) turn_detection: TurnDetectionDoc,
    #[serde(default)]
    pub(super) input_transcription: InputTranscriptionDoc,
    #[serde(default)]
    pub(super) greeting: String,
    #[serde(default)]
    pub(super) goodbye: String,
    #[serde(default)]
    pub(super) max_call_duration_ms: u64,
    #[serde(default)]
    pub(super) handoff_target: Option<HandoffTargetDoc>,
    #[serde(default)]
    pub(super) fallback: FallbackDoc,
    /// 0 in documents written without one (see `MongoStore::update_agent`).
    #[serde(default)]
    pub(super) version: i64,
    /// Always written; either may be missing from the original system's documents.
    #[serde(default)]
    pub(super) created_at: Option<bson::DateTime>,
    #[serde(default)]
    pub(super) updated_at: Option<bson::DateTime>,
}

fn realtime() -> AgentMode {
    AgentMode::Realtime
}

fn openai() -> RealtimeProvider {
    RealtimeProvider::OpenAi
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ToolDoc {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) parameters_json_schema: String,
    pub(super) webhook_url: String,
    pub(super) timeout_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct TurnDetectionDoc {
    #[serde(rename = "type")]
    pub(super) kind: TurnDetectionType,
    pub(super) threshold: Option<f64>,
    pub(super) prefix_padding_ms: Option<u32>,
    pub(super) silence_duration_ms: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct InputTranscriptionDoc {
    pub(super) model: String,
    pub(super) language: String,
    pub(super) prompt: String,
}

/// `{conference: "name"}` or `{phoneNumber: "+81…"}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum HandoffTargetDoc {
    Conference(String),
    PhoneNumber(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct FallbackDoc {
    pub(super) message: String,
    pub(super) action: FallbackAction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct VersionDoc {
    pub(super) version: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct PhoneNumbersDoc {
    pub(super) phone_numbers: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionDoc {
    #[serde(rename = "_id", deserialize_with = "id_string")]
    pub(super) id: String,
    /// An ObjectId in the original system's documents.
    #[serde(default, deserialize_with = "id_string")]
    pub(super) agent_id: String,
    #[serde(default)]
    pub(super) direction: String,
    #[serde(default, alias = "from")]
    pub(super) from_number: String,
    #[serde(default, alias = "to")]
    pub(super) to_number: String,
    #[serde(default)]
    pub(super) customer: CustomerDoc,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) status: String,
    /// Left out while unknown, so the sparse unique index skips it.
    #[serde(default, skip_serializing_if = "String::is_empty", alias = "callSid")]
    pub(super) twilio_call_sid: String,
    #[serde(default, alias = "streamSid")]
    pub(super) twilio_stream_sid: String,
    #[serde(default, deserialize_with = "id_string")]
    pub(super) campaign_id: String,
    /// Left out for calls no campaign placed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) campaign_target_id: String,
    /// The conversation inside the session, as the previous layout (and the original
    /// system) kept it; never written now. Reads project it down to its first item
    /// ([`probe_conversation`]): enough to tell a session whose items have not been
    /// moved to `conversation_items` yet (`mongo/migration.rs`).
    #[serde(default, skip_serializing)]
    pub(super) realtime_conversation: Option<Vec<IgnoredAny>>,
    /// The highest seq of the stored conversation: items 1 to it are all stored, and
    /// appends advance it by compare-and-set once their items are. Missing from the
    /// original system's documents until the migration sets it.
    #[serde(default)]
    pub(super) last_seq: Option<u64>,
    #[serde(default)]
    pub(super) end_reason: String,
    #[serde(default, deserialize_with = "call_error")]
    pub(super) error: Option<CallErrorDoc>,
    /// Always written; may be missing from the original system's documents.
    #[serde(default)]
    pub(super) created_at: Option<bson::DateTime>,
    #[serde(default)]
    pub(super) started_at: Option<bson::DateTime>,
    #[serde(default)]
    pub(super) ended_at: Option<bson::DateTime>,
    #[serde(default)]
    pub(super) updated_at: Option<bson::DateTime>,
    #[serde(default)]
    pub(super) usage: UsageDoc,
    #[serde(default)]
    pub(super) sidecar_id: String,
    /// Left out for calls without a lease (see `CallSession::lease_expires_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) lease_expires_at: Option<bson::DateTime>,
}

/// An error as we write it, or as a bare message.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredError {
    Doc(CallErrorDoc),
    Message(String),
}

fn call_error<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CallErrorDoc>, D::Error> {
    Ok(match Option::<StoredError>::deserialize(d)? {
        None => None,
        Some(StoredError::Doc(doc)) => Some(doc),
        Some(StoredError::Message(message)) => Some(CallErrorDoc {
            code: String::new(),
            message,
        }),
    })
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct CustomerDoc {
    pub(super) phone: String,
    pub(super) name: String,
    pub(super) variables: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct CallErrorDoc {
    pub(super) code: String,
    pub(super) message: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct UsageDoc {
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    pub(super) input_audio_tokens: u64,
    pub(super) output_audio_tokens: u64,
    pub(super) total_tokens: u64,
    pub(super) caller_audio_ms: u64,
    pub(super) assistant_audio_ms: u64,
}

/// An item of a conversation inside its session, as the previous layout and the
/// original system wrote it; read by the migration only.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ItemDoc {
    /// 0 (missing) in the original system's items: they are numbered by position.
    #[serde(default)]
    pub(super) seq: u64,
    pub(super) role: Role,
    #[serde(default = "message")]
    pub(super) kind: ItemKind,
    #[serde(default, alias = "content")]
    pub(super) text: String,
    #[serde(default, alias = "itemId")]
    pub(super) provider_item_id: String,
    #[serde(default)]
    pub(super) payload_json: String,
    /// Missing: the session's creation time.
    #[serde(default, alias = "timestamp")]
    pub(super) created_at: Option<bson::DateTime>,
}

fn message() -> ItemKind {
    ItemKind::Message
}

/// A conversation item in `conversation_items`, one document per item. `_id` is left
/// to the driver; `(callId, seq)` is unique.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredItemDoc {
    pub(super) call_id: String,
    pub(super) seq: u64,
    pub(super) role: Role,
    pub(super) kind: ItemKind,
    pub(super) text: String,
    pub(super) provider_item_id: String,
    pub(super) payload_json: String,
    pub(super) created_at: bson::DateTime,
}

/// A session read through [`probe_last_seq`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct LastSeqDoc {
    pub(super) last_seq: Option<u64>,
    pub(super) realtime_conversation: Option<Vec<IgnoredAny>>,
}

impl LastSeqDoc {
    /// See [`SessionDoc::in_old_layout`].
    pub(super) fn in_old_layout(&self) -> bool {
        in_old_layout(self.last_seq, self.realtime_conversation.as_deref())
    }
}

/// Items still inside the session, or no `lastSeq` yet: the session's conversation has
/// to be moved before its `lastSeq` and `conversation_items` tell the truth.
fn in_old_layout(last_seq: Option<u64>, embedded: Option<&[IgnoredAny]>) -> bool {
    last_seq.is_none() || embedded.is_some_and(|items| !items.is_empty())
}

impl Default for TurnDetectionDoc {
    fn default() -> Self {
        let d = TurnDetection::default();
        TurnDetectionDoc {
            kind: d.kind,
            threshold: d.threshold,
            prefix_padding_ms: d.prefix_padding_ms,
            silence_duration_ms: d.silence_duration_ms,
        }
    }
}

impl Default for FallbackDoc {
    fn default() -> Self {
        let d = Fallback::default();
        FallbackDoc {
            message: d.message,
            action: d.action,
        }
    }
}

/// Creation and update times, each standing in for the other when one is missing
/// (the epoch when both are).
fn times(
    created: Option<bson::DateTime>,
    updated: Option<bson::DateTime>,
) -> Result<(Timestamp, Timestamp), String> {
    let epoch = bson::DateTime::from_millis(0);
    let created_or = created.or(updated).unwrap_or(epoch);
    let updated_or = updated.unwrap_or(created_or);
    Ok((timestamp(created_or)?, timestamp(updated_or)?))
}

// === impl AgentDoc ===

impl From<&AgentSettings> for AgentDoc {
    fn from(a: &AgentSettings) -> Self {
        AgentDoc {
            id: a.id.clone(),
            name: a.name.clone(),
            phone_numbers: a.phone_numbers.clone(),
            mode: a.mode,
            provider: a.provider,
            model: a.model.clone(),
            voice: a.voice.clone(),
            instructions: a.instructions.clone(),
            temperature: a.temperature,
            tools: a
                .tools
                .iter()
                .map(|t| ToolDoc {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters_json_schema: t.parameters_json_schema.clone(),
                    webhook_url: t.webhook_url.clone(),
                    timeout_ms: t.timeout_ms,
                })
                .collect(),
            turn_detection: TurnDetectionDoc {
                kind: a.turn_detection.kind,
                threshold: a.turn_detection.threshold,
                prefix_padding_ms: a.turn_detection.prefix_padding_ms,
                silence_duration_ms: a.turn_detection.silence_duration_ms,
            },
            input_transcription: InputTranscriptionDoc {
                model: a.input_transcription.model.clone(),
                language: a.input_transcription.language.clone(),
                prompt: a.input_transcription.prompt.clone(),
            },
            greeting: a.greeting.clone(),
            goodbye: a.goodbye.clone(),
            max_call_duration_ms: a.max_call_duration_ms,
            handoff_target: a.handoff_target.as_ref().map(|t| match t {
                HandoffTarget::Conference(name) => HandoffTargetDoc::Conference(name.clone()),
                HandoffTarget::PhoneNumber(number) => HandoffTargetDoc::PhoneNumber(number.clone()),
            }),
            fallback: FallbackDoc {
                message: a.fallback.message.clone(),
                action: a.fallback.action,
            },
            version: a.version,
            created_at: Some(bson_time(a.created_at)),
            updated_at: Some(bson_time(a.updated_at)),
        }
    }
}

impl AgentDoc {
    pub(super) fn into_domain(self) -> StoreResult<AgentSettings> {
        let (created_at, updated_at) = times(self.created_at, self.updated_at)
            .map_err(|reason| invalid_document(AGENT, &self.id, &reason))?;
        Ok(AgentSettings {
            id: self.id,
            name: self.name,
            phone_numbers: self.phone_numbers,
            mode: self.mode,
            provider: self.provider,
            model: self.model,
            voice: self.voice,
            instructions: self.instructions,
            temperature: self.temperature,
            tools: self
                .tools
                .into_iter()
                .map(|t| Tool {
                    name: t.name,
                    description: t.description,
                    parameters_json_schema: t.parameters_json_schema,
                    webhook_url: t.webhook_url,
                    timeout_ms: t.timeout_ms,
                })
                .collect(),
            turn_detection: TurnDetection {
                kind: self.turn_detection.kind,
                threshold: self.turn_detection.threshold,
                prefix_padding_ms: self.turn_detection.prefix_padding_ms,
                silence_duration_ms: self.turn_detection.silence_duration_ms,
            },
            input_transcription: InputTranscription {
                model: self.input_transcription.model,
                language: self.input_transcription.language,
                prompt: self.input_transcription.prompt,
            },
            greeting: self.greeting,
            goodbye: self.goodbye,
            max_call_duration_ms: self.max_call_duration_ms,
            handoff_target: self.handoff_target.map(|t| match t {
                HandoffTargetDoc::Conference(name) => HandoffTarget::Conference(name),
                HandoffTargetDoc::PhoneNumber(number) => HandoffTarget::PhoneNumber(number),
            }),
            fallback: Fallback {
                message: self.fallback.message,
                action: self.fallback.action,
            },
            version: self.version,
            created_at,
            updated_at,
        })
    }
}

// === impl SessionDoc ===

impl SessionDoc {
    /// The document of a new session (see `store::check_new_session`).
    pub(super) fn from_domain(s: &CallSession) -> StoreResult<Self> {
        crate::store::check_new_session(s)?;
        Ok(SessionDoc {
            id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            direction: direction_name(s.direction).to_owned(),
            from_number: s.from_number.clone(),
            to_number: s.to_number.clone(),
            customer: CustomerDoc {
                phone: s.customer.phone.clone(),
                name: s.customer.name.clone(),
                variables: s.customer.variables.clone(),
            },
            variables: s.variables.clone(),
            status: s.status.as_str().to_owned(),
            twilio_call_sid: s.twilio_call_sid.clone(),
            twilio_stream_sid: s.twilio_stream_sid.clone(),
            campaign_id: s.campaign_id.clone(),
            campaign_target_id: s.campaign_target_id.clone(),
            realtime_conversation: None,
            last_seq: Some(s.last_seq),
            end_reason: s.end_reason.clone(),
            error: s.error.as_ref().map(CallErrorDoc::from),
            created_at: Some(bson_time(s.created_at)),
            started_at: s.started_at.map(bson_time),
            ended_at: s.ended_at.map(bson_time),
            updated_at: Some(bson_time(s.updated_at)),
            usage: UsageDoc::from(&s.usage),
            sidecar_id: s.sidecar_id.clone(),
            lease_expires_at: s.lease_expires_at.map(bson_time),
        })
    }

    /// True for a session whose conversation is still inside it (see the field):
    /// decoding it as it is would give the wrong `last_seq` and no items.
    pub(super) fn in_old_layout(&self) -> bool {
        in_old_layout(self.last_seq, self.realtime_conversation.as_deref())
    }

    pub(super) fn into_domain(self) -> StoreResult<CallSession> {
        let id = self.id.clone();
        self.decode()
            .map_err(|reason| invalid_document(SESSION, &id, &reason))
    }

    pub(super) fn decode(self) -> Result<CallSession, String> {
        let status = CallStatus::parse(&legacy::status_name(&self.status))
            .ok_or_else(|| format!("unknown status {:?}", self.status))?;
        let (created_at, updated_at) = times(self.created_at, self.updated_at)?;
        Ok(CallSession {
            id: self.id,
            agent_id: self.agent_id,
            direction: parse_direction(&self.direction)?,
            from_number: self.from_number,
            to_number: self.to_number,
            customer: Customer {
                phone: self.customer.phone,
                name: self.customer.name,
                variables: self.customer.variables,
            },
            variables: self.variables,
            status,
            twilio_call_sid: self.twilio_call_sid,
            twilio_stream_sid: self.twilio_stream_sid,
            campaign_id: self.campaign_id,
            campaign_target_id: self.campaign_target_id,
            last_seq: self.last_seq.unwrap_or(0),
            end_reason: self.end_reason,
            error: self.error.map(|e| CallError {
                code: e.code,
                message: e.message,
            }),
            created_at,
            started_at: self.started_at.map(timestamp).transpose()?,
            ended_at: self.ended_at.map(timestamp).transpose()?,
            updated_at,
            usage: Usage {
                input_tokens: self.usage.input_tokens,
                output_tokens: self.usage.output_tokens,
                input_audio_tokens: self.usage.input_audio_tokens,
                output_audio_tokens: self.usage.output_audio_tokens,
                total_tokens: self.usage.total_tokens,
                caller_audio_ms: self.usage.caller_audio_ms,
                assistant_audio_ms: self.usage.assistant_audio_ms,
            },
            sidecar_id: self.sidecar_id,
            lease_expires_at: self.lease_expires_at.map(timestamp).transpose()?,
        })
    }
}

impl From<&CallError> for CallErrorDoc {
    fn from(e: &CallError) -> Self {
        CallErrorDoc {
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }
}

impl From<&Usage> for UsageDoc {
    fn from(u: &Usage) -> Self {
        UsageDoc {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            input_audio_tokens: u.input_audio_tokens,
            output_audio_tokens: u.output_audio_tokens,
            total_tokens: u.total_tokens,
            caller_audio_ms: u.caller_audio_ms,
            assistant_audio_ms: u.assistant_audio_ms,
        }
    }
}

// === impl ItemDoc ===

/// For tests writing the previous layout.
#[cfg(test)]
impl From<&ConversationItem> for ItemDoc {
    fn from(i: &ConversationItem) -> Self {
        ItemDoc {
            seq: i.seq,
            role: i.role,
            kind: i.kind,
            text: i.text.clone(),
            provider_item_id: i.provider_item_id.clone(),
            payload_json: i.payload_json.clone(),
            created_at: Some(bson_time(i.created_at)),
        }
    }
}

// === impl StoredItemDoc ===

impl StoredItemDoc {
    pub(super) fn new(call_id: &str, i: &ConversationItem) -> Self {
        StoredItemDoc {
            call_id: call_id.to_owned(),
            seq: i.seq,
            role: i.role,
            kind: i.kind,
            text: i.text.clone(),
            provider_item_id: i.provider_item_id.clone(),
            payload_json: i.payload_json.clone(),
            created_at: bson_time(i.created_at),
        }
    }

    pub(super) fn into_domain(self) -> StoreResult<ConversationItem> {
        let created_at = timestamp(self.created_at).map_err(|reason| {
            invalid_document("conversation item of call", &self.call_id, &reason)
        })?;
        Ok(ConversationItem {
            seq: self.seq,
            role: self.role,
            kind: self.kind,
            text: self.text,
            provider_item_id: self.provider_item_id,
            payload_json: self.payload_json,
            created_at,
        })
    }
}

impl ItemDoc {
    /// The item as number `seq`, created at `fallback` if it does not say when.
    pub(super) fn decode(self, seq: u64, fallback: Timestamp) -> Result<ConversationItem, String> {
        Ok(ConversationItem {
            seq,
            role: self.role,
            kind: self.kind,
            text: self.text,
            provider_item_id: self.provider_item_id,
            payload_json: self.payload_json,
            created_at: match self.created_at {
                Some(at) => timestamp(at)?,
                None => fallback,
            },
        })
    }
}
