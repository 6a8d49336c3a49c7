//! Reading documents as the original Node system (Mongoose) wrote them, beside ours.
//!
//! Its documents differ from ours in ways that must not stop the store from reading
//! them (the mapping is documented in `docs/control-plane.md`):
//! - `_id` (and references such as `agentId`) are ObjectIds, not strings: they are read
//!   as the ObjectId's 24-digit hex string, and a lookup by such a string matches both
//!   forms ([`id_match`]);
//! - fields we always write may be missing (`lastSeq`, `usage`, `version`…): each has a
//!   default in `documents.rs`, and unknown fields (`__v`) are ignored;
//! - Twilio's own words for statuses and directions (`in_progress`, `outbound-api`)
//!   are normalised ([`status_name`], [`direction_name`]).
//!
//! Lists walk our string ids first, then ObjectIds (see `mongo.rs`): the original
//! system's documents predate ours, so newest-first stays roughly true.

use std::fmt;

use mongodb::bson::{doc, oid::ObjectId, Bson};
use serde::de::{self, Deserializer, Visitor};

/// `_id` and references: a string as is, an ObjectId as its hex string.
pub(super) fn id_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Id;
    impl<'de> Visitor<'de> for Id {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an ObjectId")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<String, D2::Error> {
            d.deserialize_any(Id)
        }

        // The bson deserializer hands an ObjectId over as `{"$oid": "<hex>"}`.
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
            let mut hex = None;
            while let Some((key, value)) = map.next_entry::<String, Bson>()? {
                if key == "$oid" {
                    hex = match value {
                        Bson::String(s) => Some(s),
                        Bson::ObjectId(oid) => Some(oid.to_hex()),
                        // The raw deserializer (collection reads) gives the 12 bytes.
                        Bson::Binary(binary) => <[u8; 12]>::try_from(binary.bytes.as_slice())
                            .ok()
                            .map(|bytes| ObjectId::from_bytes(bytes).to_hex()),
                        _ => None,
                    };
                }
            }
            hex.ok_or_else(|| de::Error::custom("expected an ObjectId"))
        }
    }
    deserializer.deserialize_any(Id)
}

/// The value to match an id field with: the string, or when it is an ObjectId's hex
/// form, either the string or the ObjectId.
pub(super) fn id_match(id: &str) -> Bson {
    match object_id(id) {
        Some(oid) => Bson::Document(doc! { "$in": [id, oid] }),
        None => Bson::String(id.to_owned()),
    }
}

/// The condition "not this id", in both forms.
pub(super) fn id_other_than(id: &str) -> Bson {
    match object_id(id) {
        Some(oid) => Bson::Document(doc! { "$nin": [id, oid] }),
        None => Bson::Document(doc! { "$ne": id }),
    }
}

/// `id` as an ObjectId when it is one's 24-digit hex form.
pub(super) fn object_id(id: &str) -> Option<ObjectId> {
    if id.len() != 24 {
        return None;
    }
    ObjectId::parse_str(id).ok()
}

/// Our status name for one of Twilio's or the original system's spellings.
pub(super) fn status_name(stored: &str) -> String {
    let name = stored.trim().to_ascii_lowercase().replace('_', "-");
    match name.as_str() {
        "initiated" => "queued".to_owned(),
        "cancelled" => "canceled".to_owned(),
        _ => name,
    }
}

/// Every stored spelling [`status_name`] reads as `ours`, for a compare-and-set on the
/// status of a document whichever system wrote it.
pub(super) fn status_spellings(ours: &str) -> Vec<String> {
    let mut spellings = vec![ours.to_owned()];
    if ours.contains('-') {
        spellings.push(ours.replace('-', "_"));
    }
    match ours {
        "queued" => spellings.push("initiated".to_owned()),
        "canceled" => spellings.push("cancelled".to_owned()),
        _ => {}
    }
    spellings
}

/// Our direction name: Twilio's `outbound-api` and `outbound-dial` are outbound.
pub(super) fn direction_name(stored: &str) -> &str {
    match stored {
        "outbound-api" | "outbound-dial" => "outbound",
        "" => "inbound",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, doc};
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct WithId {
        #[serde(rename = "_id", deserialize_with = "id_string")]
        id: String,
    }

    #[test]
    fn an_object_id_reads_as_its_hex_string() {
        let oid = ObjectId::parse_str("65a9f001c2b3d4e5f6a7b8c9").unwrap();
        let read: WithId = bson::from_document(doc! { "_id": oid }).unwrap();
        assert_eq!(read.id, "65a9f001c2b3d4e5f6a7b8c9");
        let raw = bson::to_vec(&doc! { "_id": oid, "__v": 0 }).unwrap();
        let read: WithId = bson::from_slice(&raw).unwrap();
        assert_eq!(
            read.id, "65a9f001c2b3d4e5f6a7b8c9",
            "as collection reads decode"
        );
        let read: WithId = bson::from_document(doc! { "_id": "0190-uuid" }).unwrap();
        assert_eq!(read.id, "0190-uuid");
    }

    #[test]
    fn a_hex_id_matches_both_forms_and_others_only_themselves() {
        let oid = ObjectId::parse_str("65a9f001c2b3d4e5f6a7b8c9").unwrap();
        assert_eq!(
            id_match("65a9f001c2b3d4e5f6a7b8c9"),
            Bson::Document(doc! { "$in": ["65a9f001c2b3d4e5f6a7b8c9", oid] })
        );
        let uuid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(id_match(uuid), Bson::String(uuid.into()));
    }

    #[test]
    fn twilio_spellings_become_ours() {
        assert_eq!(status_name("in_progress"), "in-progress");
        assert_eq!(status_name("Initiated"), "queued");
        for ours in ["in-progress", "queued", "canceled", "completed"] {
            for stored in status_spellings(ours) {
                assert_eq!(status_name(&stored), ours, "{stored}");
            }
        }
        assert_eq!(
            status_spellings("in-progress"),
            ["in-progress", "in_progress"]
        );
        assert_eq!(direction_name("outbound-api"), "outbound");
        assert_eq!(direction_name("inbound"), "inbound");
    }
}
