//! The `call_events` document: one event, camelCase, with BSON dates.
//!
//! ```text
//! { _id: "<uuidv7>", callId, agentId, campaignId, time: Date, expireAt: Date,
//!   kind: "status" | "item" | "handoff" | "error",
//!   status: { previous, current, endReason }      when kind is "status"
//!   item: { seq, role, kind, text, providerItemId, payloadJson, createdAt }
//!   handoff: { target, reason }
//!   error: { code, message } }
//! ```
//!
//! Domain enums are stored as the names their serde forms give them (`in-progress`,
//! `assistant`, `function_call`), as the embedded store does.

use chrono::{DateTime, Utc};
use mongodb::bson::{self, DateTime as BsonDateTime, Document};
use serde::{Deserialize, Serialize};

use crate::domain::{
    CallError, CallStatus, ConversationItem, HandoffTarget, ItemKind, Role, Timestamp,
};
use crate::events::{CallEvent, EventKind};

const STATUS: &str = "status";
const ITEM: &str = "item";
const HANDOFF: &str = "handoff";
const ERROR: &str = "error";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventDoc {
    #[serde(rename = "_id")]
    id: String,
    call_id: String,
    #[serde(default)]
    agent_id: String,
    #[serde(default)]
    campaign_id: String,
    time: BsonDateTime,
    expire_at: BsonDateTime,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<StatusDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item: Option<ItemDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handoff: Option<HandoffDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<CallError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusDoc {
    previous: Option<CallStatus>,
    current: CallStatus,
    #[serde(default)]
    end_reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemDoc {
    seq: i64,
    role: Role,
    kind: ItemKind,
    #[serde(default)]
    text: String,
    #[serde(default)]
    provider_item_id: String,
    #[serde(default)]
    payload_json: String,
    created_at: BsonDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HandoffDoc {
    target: Option<HandoffTarget>,
    #[serde(default)]
    reason: String,
}

impl EventDoc {
    /// The document of `event`, stored under `id` and expiring at `expire_at`.
    pub(super) fn from_event(
        id: uuid::Uuid,
        event: &CallEvent,
        expire_at: Timestamp,
    ) -> Result<Document, String> {
        let mut doc = EventDoc {
            id: id.to_string(),
            call_id: event.call_id.clone(),
            agent_id: event.agent_id.clone(),
            campaign_id: event.campaign_id.clone(),
            time: bson_time(event.time),
            expire_at: bson_time(expire_at),
            kind: String::new(),
            status: None,
            item: None,
            handoff: None,
            error: None,
        };
        match &event.kind {
            EventKind::StatusChanged {
                previous,
                current,
                end_reason,
            } => {
                doc.kind = STATUS.into();
                doc.status = Some(StatusDoc {
                    previous: *previous,
                    current: *current,
                    end_reason: end_reason.clone(),
                });
            }
            EventKind::ItemStored(item) => {
                doc.kind = ITEM.into();
                doc.item = Some(ItemDoc {
                    seq: i64::try_from(item.seq)
                        .map_err(|_| format!("item seq {} is too large", item.seq))?,
                    role: item.role,
                    kind: item.kind,
                    text: item.text.clone(),
                    provider_item_id: item.provider_item_id.clone(),
                    payload_json: item.payload_json.clone(),
                    created_at: bson_time(item.created_at),
                });
            }
            EventKind::Handoff { target, reason } => {
                doc.kind = HANDOFF.into();
                doc.handoff = Some(HandoffDoc {
                    target: target.clone(),
                    reason: reason.clone(),
                });
            }
            EventKind::Error(error) => {
                doc.kind = ERROR.into();
                doc.error = Some(error.clone());
            }
        }
        bson::to_document(&doc).map_err(|e| e.to_string())
    }

    /// The event's key (its UUID), its time in milliseconds, and the event.
    pub(super) fn into_event(self) -> Result<(u128, i64, CallEvent), String> {
        let key = uuid::Uuid::parse_str(&self.id)
            .map_err(|_| format!("event {:?}: the id is not a uuid", self.id))?
            .as_u128();
        let missing =
            |part: &str| format!("event {}: kind {:?} without {part}", self.id, self.kind);
        let kind = match self.kind.as_str() {
            STATUS => {
                let status = self.status.ok_or_else(|| missing(STATUS))?;
                EventKind::StatusChanged {
                    previous: status.previous,
                    current: status.current,
                    end_reason: status.end_reason,
                }
            }
            ITEM => {
                let item = self.item.ok_or_else(|| missing(ITEM))?;
                EventKind::ItemStored(ConversationItem {
                    seq: u64::try_from(item.seq)
                        .map_err(|_| format!("event {}: negative seq", self.id))?,
                    role: item.role,
                    kind: item.kind,
                    text: item.text,
                    provider_item_id: item.provider_item_id,
                    payload_json: item.payload_json,
                    created_at: chrono_time(item.created_at),
                })
            }
            HANDOFF => {
                let handoff = self.handoff.ok_or_else(|| missing(HANDOFF))?;
                EventKind::Handoff {
                    target: handoff.target,
                    reason: handoff.reason,
                }
            }
            ERROR => EventKind::Error(self.error.ok_or_else(|| missing(ERROR))?),
            other => return Err(format!("event {}: unknown kind {other:?}", self.id)),
        };
        let event = CallEvent {
            call_id: self.call_id,
            agent_id: self.agent_id,
            campaign_id: self.campaign_id,
            time: chrono_time(self.time),
            kind,
        };
        Ok((key, self.time.timestamp_millis(), event))
    }
}

fn bson_time(t: Timestamp) -> BsonDateTime {
    BsonDateTime::from_millis(t.timestamp_millis())
}

fn chrono_time(t: BsonDateTime) -> Timestamp {
    DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain;

    fn event(kind: EventKind) -> CallEvent {
        CallEvent {
            call_id: "call-1".into(),
            agent_id: "agent-1".into(),
            campaign_id: String::new(),
            time: domain::now(),
            kind,
        }
    }

    #[test]
    fn every_kind_of_event_reads_back_as_written() {
        let kinds = [
            EventKind::StatusChanged {
                previous: None,
                current: CallStatus::Ringing,
                end_reason: String::new(),
            },
            EventKind::StatusChanged {
                previous: Some(CallStatus::InProgress),
                current: CallStatus::Completed,
                end_reason: "caller_hung_up".into(),
            },
            EventKind::ItemStored(ConversationItem {
                seq: 7,
                role: Role::Assistant,
                kind: ItemKind::FunctionCall,
                text: "Let me look.".into(),
                provider_item_id: "item_1".into(),
                payload_json: r#"{"name":"lookup"}"#.into(),
                created_at: domain::now(),
            }),
            EventKind::Handoff {
                target: Some(HandoffTarget::PhoneNumber("+14155550100".into())),
                reason: "caller asked".into(),
            },
            EventKind::Error(CallError {
                code: "openai.refused".into(),
                message: "no".into(),
            }),
        ];
        for kind in kinds {
            let written = event(kind);
            let id = uuid::Uuid::now_v7();
            let document = EventDoc::from_event(id, &written, written.time).unwrap();
            assert_eq!(document.get_str("_id").unwrap(), id.to_string());
            assert!(
                document.get_datetime("expireAt").is_ok(),
                "a BSON date for the TTL"
            );
            let read: EventDoc = bson::from_document(document).unwrap();
            let (key, time_ms, event) = read.into_event().unwrap();
            assert_eq!(key, id.as_u128());
            assert_eq!(time_ms, written.time.timestamp_millis());
            assert_eq!(event, written);
        }
    }

    #[test]
    fn a_document_this_replica_cannot_read_is_an_error_not_a_panic() {
        let id = uuid::Uuid::now_v7();
        let written = event(EventKind::Error(CallError::default()));
        let mut document = EventDoc::from_event(id, &written, written.time).unwrap();
        document.insert("kind", "transcoded");
        let read: EventDoc = bson::from_document(document.clone()).unwrap();
        assert!(read.into_event().unwrap_err().contains("unknown kind"));
        document.insert("kind", "item");
        let read: EventDoc = bson::from_document(document).unwrap();
        assert!(read.into_event().unwrap_err().contains("without item"));
    }
}
