//! Decoding of client events (what the OpenAI simulator reads): one pass
//! for the `type`, one into the payload struct of that type.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ClientEvent, ResponseParams, ResponseParamsWire};
use crate::dialect::{Dialect, RESPONSE_FIELD_RENAMES};
use crate::error::ParseError;
use crate::item::Item;
use crate::session::SessionConfig;
use crate::wire;

/// See [`ClientEvent::parse`].
pub(super) fn parse(text: &str, dialect: Dialect) -> Result<ClientEvent<'_>, ParseError> {
    let event_type = wire::peek_type(text)?;
    let t: &str = &event_type;
    let de_err = |e: serde_json::Error| ParseError::invalid(t, &e);
    let event = match t {
        "input_audio_buffer.append" => {
            let w: AppendWire<'_> = serde_json::from_str(text).map_err(de_err)?;
            ClientEvent::InputAudioBufferAppend {
                event_id: w.event_id,
                audio: w.audio,
            }
        }
        "input_audio_buffer.commit" => ClientEvent::InputAudioBufferCommit {
            event_id: event_id(text, t)?,
        },
        "input_audio_buffer.clear" => ClientEvent::InputAudioBufferClear {
            event_id: event_id(text, t)?,
        },
        "output_audio_buffer.clear" => ClientEvent::OutputAudioBufferClear {
            event_id: event_id(text, t)?,
        },
        "session.update" => {
            let w: SessionUpdateWire = serde_json::from_str(text).map_err(de_err)?;
            ClientEvent::SessionUpdate {
                event_id: w.event_id,
                session: Box::new(SessionConfig::from_map(w.session, dialect, t)?),
            }
        }
        "conversation.item.create" => {
            let w: ItemCreateWire = serde_json::from_str(text).map_err(de_err)?;
            let mut item = w.item;
            item.normalize();
            ClientEvent::ConversationItemCreate {
                event_id: w.event_id,
                previous_item_id: w.previous_item_id,
                item: Box::new(item),
            }
        }
        "conversation.item.truncate" => {
            let w: TruncateWire = serde_json::from_str(text).map_err(de_err)?;
            ClientEvent::ConversationItemTruncate {
                event_id: w.event_id,
                item_id: w.item_id,
                content_index: w.content_index,
                audio_end_ms: w.audio_end_ms,
            }
        }
        "conversation.item.delete" | "conversation.item.retrieve" => {
            let w: ItemIdWire = serde_json::from_str(text).map_err(de_err)?;
            if t == "conversation.item.delete" {
                ClientEvent::ConversationItemDelete {
                    event_id: w.event_id,
                    item_id: w.item_id,
                }
            } else {
                ClientEvent::ConversationItemRetrieve {
                    event_id: w.event_id,
                    item_id: w.item_id,
                }
            }
        }
        "response.create" => {
            let w: ResponseCreateWire = serde_json::from_str(text).map_err(de_err)?;
            let response = match w.response {
                None => None,
                Some(map) => {
                    check_response_fields(&map, dialect, t)?;
                    let wire: ResponseParamsWire =
                        serde_json::from_value(Value::Object(map)).map_err(de_err)?;
                    Some(Box::new(ResponseParams::from_wire(wire)))
                }
            };
            ClientEvent::ResponseCreate {
                event_id: w.event_id,
                response,
            }
        }
        "response.cancel" => {
            let w: CancelWire = serde_json::from_str(text).map_err(de_err)?;
            ClientEvent::ResponseCancel {
                event_id: w.event_id,
                response_id: w.response_id,
            }
        }
        _ => ClientEvent::Unknown { event_type },
    };
    Ok(event)
}

fn event_id(text: &str, event_type: &str) -> Result<Option<String>, ParseError> {
    #[derive(Deserialize)]
    struct EventIdWire {
        #[serde(default)]
        event_id: Option<String>,
    }
    let w: EventIdWire =
        serde_json::from_str(text).map_err(|e| ParseError::invalid(event_type, &e))?;
    Ok(w.event_id)
}

/// Rejects `response.create` overrides that exist only in the other dialect.
fn check_response_fields(
    response: &Map<String, Value>,
    dialect: Dialect,
    event_type: &str,
) -> Result<(), ParseError> {
    let mut fields = RESPONSE_FIELD_RENAMES.iter();
    let foreign = match dialect {
        Dialect::Ga => fields
            .find(|(beta, _)| response.contains_key(*beta))
            .map(|(beta, _)| *beta),
        Dialect::Beta => fields
            .filter_map(|(_, ga)| *ga)
            .map(|ga| ga.split('.').next().unwrap_or(ga))
            .find(|ga| response.contains_key(*ga)),
    };
    match foreign {
        None => Ok(()),
        Some(field) => Err(ParseError::DialectMismatch {
            event_type: event_type.to_owned(),
            field: format!("response.{field}"),
            dialect: match dialect {
                Dialect::Ga => "beta",
                Dialect::Beta => "ga",
            },
        }),
    }
}

#[derive(Deserialize)]
struct AppendWire<'a> {
    #[serde(borrow, default, deserialize_with = "wire::opt_cow")]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    audio: Cow<'a, str>,
}

#[derive(Deserialize)]
struct SessionUpdateWire {
    #[serde(default)]
    event_id: Option<String>,
    session: Map<String, Value>,
}

#[derive(Deserialize)]
struct ItemCreateWire {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    previous_item_id: Option<String>,
    item: Item,
}

#[derive(Deserialize)]
struct TruncateWire {
    #[serde(default)]
    event_id: Option<String>,
    item_id: String,
    content_index: u32,
    audio_end_ms: u64,
}

#[derive(Deserialize)]
struct ItemIdWire {
    #[serde(default)]
    event_id: Option<String>,
    item_id: String,
}

#[derive(Deserialize)]
struct ResponseCreateWire {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    response: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct CancelWire {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
}
