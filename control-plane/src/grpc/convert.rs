//! Proto ⇄ domain conversion at the gRPC edge.
//!
//! Incoming messages become domain values or an [`InvalidField`] naming the request
//! field (`agent_settings.turn_detection.threshold`), which the handlers turn into
//! `INVALID_ARGUMENT`. Outgoing values are plain mappings. Domain types never derive
//! from prost types.

use chrono::{DateTime, Utc};
use switchboard_proto::v1 as pb;

use crate::domain::{
    self, AgentMode, AgentSettings, CallDirection, CallError, CallSession, CallStatus, CallWindow,
    Campaign, CampaignProgress, CampaignState, CampaignTarget, ConversationItem, Customer,
    DoNotCallEntry, Fallback, FallbackAction, HandoffTarget, InputTranscription, InvalidField,
    ItemKind, Pacing, RealtimeProvider, RetryPolicy, Role, TargetState, Timestamp, Tool,
    TurnDetection, TurnDetectionType, Usage,
};

// === enums ===

fn unknown(field: &str, value: i32) -> InvalidField {
    InvalidField::new(field, format!("unknown enum value {value}"))
}

pub(crate) fn call_status_from_pb(
    field: &str,
    value: i32,
) -> Result<Option<CallStatus>, InvalidField> {
    use pb::CallStatus as P;
    let status = match P::try_from(value).map_err(|_| unknown(field, value))? {
        P::Unspecified => return Ok(None),
        P::Queued => CallStatus::Queued,
        P::Ringing => CallStatus::Ringing,
        P::InProgress => CallStatus::InProgress,
        P::Completed => CallStatus::Completed,
        P::Failed => CallStatus::Failed,
        P::Busy => CallStatus::Busy,
        P::NoAnswer => CallStatus::NoAnswer,
        P::Canceled => CallStatus::Canceled,
        P::HandedOff => CallStatus::HandedOff,
    };
    Ok(Some(status))
}

pub(crate) fn call_status_to_pb(status: CallStatus) -> pb::CallStatus {
    use pb::CallStatus as P;
    match status {
        CallStatus::Queued => P::Queued,
        CallStatus::Ringing => P::Ringing,
        CallStatus::InProgress => P::InProgress,
        CallStatus::Completed => P::Completed,
        CallStatus::Failed => P::Failed,
        CallStatus::Busy => P::Busy,
        CallStatus::NoAnswer => P::NoAnswer,
        CallStatus::Canceled => P::Canceled,
        CallStatus::HandedOff => P::HandedOff,
    }
}

pub(crate) fn direction_from_pb(
    field: &str,
    value: i32,
) -> Result<Option<CallDirection>, InvalidField> {
    use pb::CallDirection as P;
    Ok(
        match P::try_from(value).map_err(|_| unknown(field, value))? {
            P::Unspecified => None,
            P::Inbound => Some(CallDirection::Inbound),
            P::Outbound => Some(CallDirection::Outbound),
        },
    )
}

fn direction_to_pb(direction: CallDirection) -> pb::CallDirection {
    match direction {
        CallDirection::Inbound => pb::CallDirection::Inbound,
        CallDirection::Outbound => pb::CallDirection::Outbound,
    }
}

fn role_from_pb(field: &str, value: i32) -> Result<Role, InvalidField> {
    use pb::ConversationRole as P;
    match P::try_from(value).map_err(|_| unknown(field, value))? {
        P::Unspecified => Err(InvalidField::new(field, "must be set")),
        P::User => Ok(Role::User),
        P::Assistant => Ok(Role::Assistant),
        P::System => Ok(Role::System),
        P::Tool => Ok(Role::Tool),
    }
}

fn role_to_pb(role: Role) -> pb::ConversationRole {
    match role {
        Role::User => pb::ConversationRole::User,
        Role::Assistant => pb::ConversationRole::Assistant,
        Role::System => pb::ConversationRole::System,
        Role::Tool => pb::ConversationRole::Tool,
    }
}

fn kind_from_pb(field: &str, value: i32) -> Result<ItemKind, InvalidField> {
    use pb::ConversationItemKind as P;
    match P::try_from(value).map_err(|_| unknown(field, value))? {
        P::Unspecified => Err(InvalidField::new(field, "must be set")),
        P::Message => Ok(ItemKind::Message),
        P::FunctionCall => Ok(ItemKind::FunctionCall),
        P::FunctionCallOutput => Ok(ItemKind::FunctionCallOutput),
        P::Handoff => Ok(ItemKind::Handoff),
        P::Note => Ok(ItemKind::Note),
    }
}

fn kind_to_pb(kind: ItemKind) -> pb::ConversationItemKind {
    match kind {
        ItemKind::Message => pb::ConversationItemKind::Message,
        ItemKind::FunctionCall => pb::ConversationItemKind::FunctionCall,
        ItemKind::FunctionCallOutput => pb::ConversationItemKind::FunctionCallOutput,
        ItemKind::Handoff => pb::ConversationItemKind::Handoff,
        ItemKind::Note => pb::ConversationItemKind::Note,
    }
}

// === times ===

pub(crate) fn timestamp_to_pb(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub(crate) fn timestamp_from_pb(
    field: &str,
    t: &prost_types::Timestamp,
) -> Result<Timestamp, InvalidField> {
    let nanos = u32::try_from(t.nanos).map_err(|_| InvalidField::new(field, "negative nanos"))?;
    DateTime::<Utc>::from_timestamp(t.seconds, nanos)
        .ok_or_else(|| InvalidField::new(field, "out of range"))
}

fn duration_ms_from_pb(
    field: &str,
    d: Option<&prost_types::Duration>,
) -> Result<u64, InvalidField> {
    let Some(d) = d else { return Ok(0) };
    if d.seconds < 0 || d.nanos < 0 {
        return Err(InvalidField::new(field, "must not be negative"));
    }
    let seconds = u64::try_from(d.seconds).unwrap_or(u64::MAX);
    let nanos = u64::try_from(d.nanos).unwrap_or(0);
    Ok(seconds
        .saturating_mul(1000)
        .saturating_add(nanos / 1_000_000))
}

fn duration_ms_to_pb(ms: u64) -> Option<prost_types::Duration> {
    (ms > 0).then(|| prost_types::Duration {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    })
}

// === agent settings ===

/// Reads an agent from a request; `prefix` is its field path (`agent_settings`).
/// Server-owned fields (id, version, times) are copied as given; handlers decide what
/// to do with them.
pub(crate) fn agent_from_pb(
    prefix: &str,
    a: pb::AgentSettings,
) -> Result<AgentSettings, InvalidField> {
    let field = |name: &str| format!("{prefix}.{name}");
    let mode = match pb::AgentMode::try_from(a.mode).map_err(|_| unknown(&field("mode"), a.mode))? {
        pb::AgentMode::Unspecified | pb::AgentMode::Realtime => AgentMode::Realtime,
        pb::AgentMode::Conference => AgentMode::Conference,
    };
    let provider = match pb::RealtimeProvider::try_from(a.provider)
        .map_err(|_| unknown(&field("provider"), a.provider))?
    {
        pb::RealtimeProvider::Unspecified | pb::RealtimeProvider::Openai => {
            RealtimeProvider::OpenAi
        }
        pb::RealtimeProvider::OpenaiBeta => RealtimeProvider::OpenAiBeta,
        pb::RealtimeProvider::AzureOpenai => RealtimeProvider::AzureOpenAi,
    };
    let mut tools = Vec::with_capacity(a.tools.len());
    for (i, t) in a.tools.into_iter().enumerate() {
        tools.push(Tool {
            timeout_ms: duration_ms_from_pb(
                &field(&format!("tools[{i}].timeout")),
                t.timeout.as_ref(),
            )?,
            name: t.name,
            description: t.description,
            parameters_json_schema: t.parameters_json_schema,
            webhook_url: t.webhook_url,
        });
    }
    let turn_detection = match a.turn_detection {
        None => TurnDetection::default(),
        Some(td) => {
            use pb::turn_detection::Type as P;
            let kind = match P::try_from(td.r#type)
                .map_err(|_| unknown(&field("turn_detection.type"), td.r#type))?
            {
                P::Unspecified | P::ServerVad => TurnDetectionType::ServerVad,
                P::SemanticVad => TurnDetectionType::SemanticVad,
                P::None => TurnDetectionType::None,
            };
            TurnDetection {
                kind,
                threshold: td.threshold,
                prefix_padding_ms: td.prefix_padding_ms,
                silence_duration_ms: td.silence_duration_ms,
            }
        }
    };
    let handoff_target = a.handoff_target.and_then(|h| h.target).map(|t| match t {
        pb::handoff_target::Target::ConferenceName(name) => HandoffTarget::Conference(name),
        pb::handoff_target::Target::PhoneNumber(number) => HandoffTarget::PhoneNumber(number),
    });
    let fallback = match a.fallback {
        None => Fallback::default(),
        Some(f) => {
            use pb::fallback::Action as P;
            let action = match P::try_from(f.action)
                .map_err(|_| unknown(&field("fallback.action"), f.action))?
            {
                P::Unspecified | P::HangUp => FallbackAction::HangUp,
                P::Transfer => FallbackAction::Transfer,
            };
            Fallback {
                message: f.message,
                action,
            }
        }
    };
    let created_at = a
        .created_at
        .as_ref()
        .map(|t| timestamp_from_pb(&field("created_at"), t))
        .transpose()?;
    let updated_at = a
        .updated_at
        .as_ref()
        .map(|t| timestamp_from_pb(&field("updated_at"), t))
        .transpose()?;
    let now = domain::now();
    Ok(AgentSettings {
        id: a.id,
        name: a.name,
        phone_numbers: a.phone_numbers,
        mode,
        provider,
        model: a.model,
        voice: a.voice,
        instructions: a.instructions,
        temperature: a.temperature,
        tools,
        turn_detection,
        input_transcription: a
            .input_transcription
            .map(|t| InputTranscription {
                model: t.model,
                language: t.language,
                prompt: t.prompt,
            })
            .unwrap_or_default(),
        greeting: a.greeting,
        goodbye: a.goodbye,
        max_call_duration_ms: duration_ms_from_pb(
            &field("max_call_duration"),
            a.max_call_duration.as_ref(),
        )?,
        handoff_target,
        fallback,
        version: a.version,
        created_at: created_at.unwrap_or(now),
        updated_at: updated_at.unwrap_or(now),
    })
}

/// A handoff target from a request; `None` when unset. Phone numbers must be E.164.
pub(crate) fn handoff_target_from_pb(
    field: &str,
    target: Option<pb::HandoffTarget>,
) -> Result<Option<HandoffTarget>, InvalidField> {
    match target.and_then(|t| t.target) {
        None => Ok(None),
        Some(pb::handoff_target::Target::ConferenceName(name)) if name.trim().is_empty() => Err(
            InvalidField::new(format!("{field}.conference_name"), "must not be empty"),
        ),
        Some(pb::handoff_target::Target::ConferenceName(name)) => {
            Ok(Some(HandoffTarget::Conference(name)))
        }
        Some(pb::handoff_target::Target::PhoneNumber(number)) => {
            domain::validate_e164(&format!("{field}.phone_number"), &number)?;
            Ok(Some(HandoffTarget::PhoneNumber(number)))
        }
    }
}

pub(crate) fn handoff_target_to_pb(target: &HandoffTarget) -> pb::HandoffTarget {
    let target = match target {
        HandoffTarget::Conference(name) => pb::handoff_target::Target::ConferenceName(name.clone()),
        HandoffTarget::PhoneNumber(number) => {
            pb::handoff_target::Target::PhoneNumber(number.clone())
        }
    };
    pb::HandoffTarget {
        target: Some(target),
    }
}

pub(crate) fn agent_to_pb(a: AgentSettings) -> pb::AgentSettings {
    let mode = match a.mode {
        AgentMode::Realtime => pb::AgentMode::Realtime,
        AgentMode::Conference => pb::AgentMode::Conference,
    };
    let provider = match a.provider {
        RealtimeProvider::OpenAi => pb::RealtimeProvider::Openai,
        RealtimeProvider::OpenAiBeta => pb::RealtimeProvider::OpenaiBeta,
        RealtimeProvider::AzureOpenAi => pb::RealtimeProvider::AzureOpenai,
    };
    let td_type = match a.turn_detection.kind {
        TurnDetectionType::ServerVad => pb::turn_detection::Type::ServerVad,
        TurnDetectionType::SemanticVad => pb::turn_detection::Type::SemanticVad,
        TurnDetectionType::None => pb::turn_detection::Type::None,
    };
    let action = match a.fallback.action {
        FallbackAction::HangUp => pb::fallback::Action::HangUp,
        FallbackAction::Transfer => pb::fallback::Action::Transfer,
    };
    pb::AgentSettings {
        id: a.id,
        name: a.name,
        phone_numbers: a.phone_numbers,
        mode: mode.into(),
        provider: provider.into(),
        model: a.model,
        voice: a.voice,
        instructions: a.instructions,
        temperature: a.temperature,
        tools: a
            .tools
            .into_iter()
            .map(|t| pb::Tool {
                name: t.name,
                description: t.description,
                parameters_json_schema: t.parameters_json_schema,
                webhook_url: t.webhook_url,
                timeout: duration_ms_to_pb(t.timeout_ms),
            })
            .collect(),
        turn_detection: Some(pb::TurnDetection {
            r#type: td_type.into(),
            threshold: a.turn_detection.threshold,
            prefix_padding_ms: a.turn_detection.prefix_padding_ms,
            silence_duration_ms: a.turn_detection.silence_duration_ms,
        }),
        input_transcription: Some(pb::InputTranscription {
            model: a.input_transcription.model,
            language: a.input_transcription.language,
            prompt: a.input_transcription.prompt,
        }),
        greeting: a.greeting,
        goodbye: a.goodbye,
        max_call_duration: duration_ms_to_pb(a.max_call_duration_ms),
        handoff_target: a.handoff_target.as_ref().map(handoff_target_to_pb),
        fallback: Some(pb::Fallback {
            message: a.fallback.message,
            action: action.into(),
        }),
        version: a.version,
        created_at: Some(timestamp_to_pb(a.created_at)),
        updated_at: Some(timestamp_to_pb(a.updated_at)),
    }
}

// === call sessions ===

pub(crate) fn customer_from_pb(c: Option<pb::Customer>) -> Customer {
    c.map(|c| Customer {
        phone: c.phone,
        name: c.name,
        variables: c.variables.into_iter().collect(),
    })
    .unwrap_or_default()
}

pub(crate) fn call_error_from_pb(e: Option<pb::CallError>) -> Option<CallError> {
    e.filter(|e| !e.code.is_empty() || !e.message.is_empty())
        .map(|e| CallError {
            code: e.code,
            message: e.message,
        })
}

pub(crate) fn call_error_to_pb(e: CallError) -> pb::CallError {
    pb::CallError {
        code: e.code,
        message: e.message,
    }
}

pub(crate) fn item_from_pb(
    field: &str,
    item: pb::ConversationItem,
) -> Result<ConversationItem, InvalidField> {
    let created_at = match &item.created_at {
        Some(t) => timestamp_from_pb(&format!("{field}.created_at"), t)?,
        None => domain::now(),
    };
    Ok(ConversationItem {
        seq: item.seq,
        role: role_from_pb(&format!("{field}.role"), item.role)?,
        kind: kind_from_pb(&format!("{field}.kind"), item.kind)?,
        text: item.text,
        provider_item_id: item.provider_item_id,
        payload_json: item.payload_json,
        created_at,
    })
}

pub(crate) fn item_to_pb(item: ConversationItem) -> pb::ConversationItem {
    pb::ConversationItem {
        seq: item.seq,
        role: role_to_pb(item.role).into(),
        kind: kind_to_pb(item.kind).into(),
        text: item.text,
        provider_item_id: item.provider_item_id,
        payload_json: item.payload_json,
        created_at: Some(timestamp_to_pb(item.created_at)),
    }
}

pub(crate) fn usage_from_pb(u: Option<pb::Usage>) -> Usage {
    let u = u.unwrap_or_default();
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        input_audio_tokens: u.input_audio_tokens,
        output_audio_tokens: u.output_audio_tokens,
        total_tokens: u.total_tokens,
        caller_audio_ms: u.caller_audio_ms,
        assistant_audio_ms: u.assistant_audio_ms,
    }
}

fn usage_to_pb(u: Usage) -> pb::Usage {
    pb::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        input_audio_tokens: u.input_audio_tokens,
        output_audio_tokens: u.output_audio_tokens,
        total_tokens: u.total_tokens,
        caller_audio_ms: u.caller_audio_ms,
        assistant_audio_ms: u.assistant_audio_ms,
    }
}

pub(crate) fn session_to_pb(s: CallSession) -> pb::CallSession {
    pb::CallSession {
        id: s.id,
        agent_id: s.agent_id,
        direction: direction_to_pb(s.direction).into(),
        from_number: s.from_number,
        to_number: s.to_number,
        customer: Some(pb::Customer {
            phone: s.customer.phone,
            name: s.customer.name,
            variables: s.customer.variables.into_iter().collect(),
        }),
        variables: s.variables.into_iter().collect(),
        status: call_status_to_pb(s.status).into(),
        twilio_call_sid: s.twilio_call_sid,
        twilio_stream_sid: s.twilio_stream_sid,
        campaign_id: s.campaign_id,
        campaign_target_id: s.campaign_target_id,
        // Filled by GetCallSession alone, from its own read of the items.
        conversation: Vec::new(),
        conversation_truncated: false,
        conversation_next_page_token: String::new(),
        last_seq: s.last_seq,
        end_reason: s.end_reason,
        error: s.error.map(call_error_to_pb),
        created_at: Some(timestamp_to_pb(s.created_at)),
        started_at: s.started_at.map(timestamp_to_pb),
        ended_at: s.ended_at.map(timestamp_to_pb),
        updated_at: Some(timestamp_to_pb(s.updated_at)),
        usage: Some(usage_to_pb(s.usage)),
        sidecar_id: s.sidecar_id,
    }
}

// === campaigns ===

pub(crate) fn campaign_state_from_pb(
    field: &str,
    value: i32,
) -> Result<Option<CampaignState>, InvalidField> {
    use pb::CampaignState as P;
    let state = match P::try_from(value).map_err(|_| unknown(field, value))? {
        P::Unspecified => return Ok(None),
        P::Scheduled => CampaignState::Scheduled,
        P::Running => CampaignState::Running,
        P::Paused => CampaignState::Paused,
        P::Completed => CampaignState::Completed,
        P::Canceled => CampaignState::Canceled,
    };
    Ok(Some(state))
}

fn campaign_state_to_pb(state: CampaignState) -> pb::CampaignState {
    use pb::CampaignState as P;
    match state {
        CampaignState::Scheduled => P::Scheduled,
        CampaignState::Running => P::Running,
        CampaignState::Paused => P::Paused,
        CampaignState::Completed => P::Completed,
        CampaignState::Canceled => P::Canceled,
    }
}

pub(crate) fn target_state_from_pb(
    field: &str,
    value: i32,
) -> Result<Option<TargetState>, InvalidField> {
    use pb::TargetState as P;
    let state = match P::try_from(value).map_err(|_| unknown(field, value))? {
        P::Unspecified => return Ok(None),
        P::Pending => TargetState::Pending,
        P::Dialing => TargetState::Dialing,
        P::InCall => TargetState::InCall,
        P::RetryWait => TargetState::RetryWait,
        P::Done => TargetState::Done,
        P::Failed => TargetState::Failed,
        P::Canceled => TargetState::Canceled,
        P::Skipped => TargetState::Skipped,
    };
    Ok(Some(state))
}

fn target_state_to_pb(state: TargetState) -> pb::TargetState {
    use pb::TargetState as P;
    match state {
        TargetState::Pending => P::Pending,
        TargetState::Dialing => P::Dialing,
        TargetState::InCall => P::InCall,
        TargetState::RetryWait => P::RetryWait,
        TargetState::Done => P::Done,
        TargetState::Failed => P::Failed,
        TargetState::Canceled => P::Canceled,
        TargetState::Skipped => P::Skipped,
    }
}

/// Reads a campaign's settings from a request; `prefix` is its field path
/// (`campaign`). Zero pacing and attempt values take the documented defaults;
/// `from_numbers` wins over the legacy `from_number`. Server-owned fields (state,
/// version, times) are left for the handler.
pub(crate) fn campaign_from_pb(prefix: &str, c: pb::Campaign) -> Result<Campaign, InvalidField> {
    let defaults = Pacing::default();
    let pacing = c.pacing.map_or(defaults, |p| Pacing {
        calls_per_second: if p.calls_per_second == 0.0 {
            defaults.calls_per_second
        } else {
            p.calls_per_second
        },
        max_concurrent_calls: if p.max_concurrent_calls == 0 {
            defaults.max_concurrent_calls
        } else {
            p.max_concurrent_calls
        },
    });
    let window = c.window.map(|w| CallWindow {
        time_zone: w.time_zone,
        start_minute: w.start_minute,
        end_minute: w.end_minute,
        weekdays: w.weekdays,
    });
    let retry = match c.retry {
        None => RetryPolicy::default(),
        Some(r) => {
            let mut retry_on = Vec::with_capacity(r.retry_on.len());
            for (i, value) in r.retry_on.into_iter().enumerate() {
                let field = format!("{prefix}.retry.retry_on[{i}]");
                let status = call_status_from_pb(&field, value)?
                    .ok_or_else(|| InvalidField::new(&field, "must name a status"))?;
                retry_on.push(status);
            }
            RetryPolicy {
                max_attempts: r.max_attempts.max(1),
                retry_on,
                backoff_ms: duration_ms_from_pb(
                    &format!("{prefix}.retry.backoff"),
                    r.backoff.as_ref(),
                )?,
            }
        }
    };
    let from_numbers = if !c.from_numbers.is_empty() {
        c.from_numbers
    } else if !c.from_number.is_empty() {
        vec![c.from_number]
    } else {
        Vec::new()
    };
    let start_at = c
        .start_at
        .as_ref()
        .map(|t| timestamp_from_pb(&format!("{prefix}.start_at"), t))
        .transpose()?;
    let now = domain::now();
    Ok(Campaign {
        id: c.id,
        name: c.name,
        agent_id: c.agent_id,
        from_numbers,
        pacing,
        window,
        retry,
        variables: c.variables.into_iter().collect(),
        start_at,
        state: CampaignState::Running,
        version: c.version,
        created_at: now,
        updated_at: now,
    })
}

pub(crate) fn progress_to_pb(p: CampaignProgress) -> pb::CampaignProgress {
    pb::CampaignProgress {
        total: p.total(),
        pending: p.pending,
        dialing: p.dialing,
        done: p.done,
        failed: p.failed,
        canceled: p.canceled,
        in_call: p.in_call,
        retry_wait: p.retry_wait,
        skipped: p.skipped,
    }
}

/// A campaign, with its progress when it was counted.
pub(crate) fn campaign_to_pb(c: Campaign, progress: Option<CampaignProgress>) -> pb::Campaign {
    pb::Campaign {
        id: c.id,
        name: c.name,
        agent_id: c.agent_id,
        from_number: c.from_numbers.first().cloned().unwrap_or_default(),
        from_numbers: c.from_numbers,
        pacing: Some(pb::Pacing {
            calls_per_second: c.pacing.calls_per_second,
            max_concurrent_calls: c.pacing.max_concurrent_calls,
        }),
        window: c.window.map(|w| pb::CallWindow {
            time_zone: w.time_zone,
            start_minute: w.start_minute,
            end_minute: w.end_minute,
            weekdays: w.weekdays,
        }),
        retry: Some(pb::RetryPolicy {
            max_attempts: c.retry.max_attempts,
            retry_on: c
                .retry
                .retry_on
                .into_iter()
                .map(|s| call_status_to_pb(s) as i32)
                .collect(),
            backoff: duration_ms_to_pb(c.retry.backoff_ms),
        }),
        variables: c.variables.into_iter().collect(),
        state: campaign_state_to_pb(c.state) as i32,
        progress: progress.map(progress_to_pb),
        created_at: Some(timestamp_to_pb(c.created_at)),
        updated_at: Some(timestamp_to_pb(c.updated_at)),
        start_at: c.start_at.map(timestamp_to_pb),
        version: c.version,
    }
}

/// Reads an uploaded target of `campaign_id`; what the caller supplies only (the
/// state and attempt fields start afresh).
pub(crate) fn target_from_pb(
    campaign_id: &str,
    t: pb::CampaignTarget,
    now: Timestamp,
) -> CampaignTarget {
    let mut target = CampaignTarget::new(
        domain::new_id(),
        campaign_id.to_owned(),
        t.target_key,
        t.phone,
        now,
    );
    target.name = t.name;
    target.variables = t.variables.into_iter().collect();
    target.time_zone = t.time_zone;
    target
}

pub(crate) fn target_to_pb(t: CampaignTarget) -> pb::CampaignTarget {
    pb::CampaignTarget {
        id: t.id,
        campaign_id: t.campaign_id,
        phone: t.phone,
        name: t.name,
        variables: t.variables.into_iter().collect(),
        state: target_state_to_pb(t.state) as i32,
        attempts: t.attempts,
        last_call_id: t.last_call_id,
        last_call_status: t
            .last_call_status
            .map_or(pb::CallStatus::Unspecified, call_status_to_pb)
            as i32,
        next_attempt_at: t.next_attempt_at.map(timestamp_to_pb),
        target_key: t.target_key,
        time_zone: t.time_zone,
        last_error: t.last_error.map(call_error_to_pb),
        created_at: Some(timestamp_to_pb(t.created_at)),
        updated_at: Some(timestamp_to_pb(t.updated_at)),
    }
}

pub(crate) fn do_not_call_to_pb(e: DoNotCallEntry) -> pb::DoNotCallEntry {
    pb::DoNotCallEntry {
        phone: e.phone,
        reason: e.reason,
        created_at: Some(timestamp_to_pb(e.created_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_survives_the_round_trip_through_proto() {
        let agent = crate::store::conformance::agent("Round trip", &["+815011112222"]);
        let back = agent_from_pb("agent_settings", agent_to_pb(agent.clone())).unwrap();
        assert_eq!(back, agent);
    }

    #[test]
    fn unknown_enum_values_name_their_field() {
        let pb_agent = pb::AgentSettings {
            name: "x".into(),
            mode: 42,
            ..Default::default()
        };
        let err = agent_from_pb("agent_settings", pb_agent).unwrap_err();
        assert_eq!(err.field, "agent_settings.mode");
        let pb_agent = pb::AgentSettings {
            turn_detection: Some(pb::TurnDetection {
                r#type: 9,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            agent_from_pb("agent_settings", pb_agent).unwrap_err().field,
            "agent_settings.turn_detection.type"
        );
        assert_eq!(
            call_status_from_pb("status", 99).unwrap_err().field,
            "status"
        );
    }

    #[test]
    fn durations_and_times_keep_milliseconds() {
        assert_eq!(
            duration_ms_from_pb("d", duration_ms_to_pb(90_250).as_ref()),
            Ok(90_250)
        );
        let now = domain::now();
        assert_eq!(timestamp_from_pb("t", &timestamp_to_pb(now)), Ok(now));
        let negative = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(
            duration_ms_from_pb("d", Some(&negative)).unwrap_err().field,
            "d"
        );
    }
}
