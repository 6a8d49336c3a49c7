//! Event ids: the opaque `CallEvent.event_id` a watcher hands back as
//! `WatchCallEventsRequest.after_event_id` to resume after that event.
//!
//! An id is URL-safe base64 (no padding) of a small binary record whose first byte is
//! the format version, so later formats can be told apart from this one:
//!
//! | kind | bytes after `[1, kind]` | issued by |
//! |---|---|---|
//! | `L` (local) | feed epoch (u64 BE), sequence number (u64 BE) | a feed of this replica alone (embedded store, or MongoDB without change streams) |
//! | `C` (cluster) | event time (i64 BE, ms since the epoch), event key (16 bytes, the UUID of its `call_events` document), the change stream's resume token (a BSON document, to the end) | the MongoDB feed |
//!
//! A local id names the run that issued it by a random epoch, so an id from another
//! replica or from before a restart is recognised as such rather than misread as a
//! position. A cluster id carries what any replica needs to resume: the resume token
//! to reopen the database's change stream after the event, the key to find the event
//! in a replica's window of recent events, and the time to tell an id older than the
//! retention.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mongodb::bson::RawDocument;

const VERSION: u8 = 1;
const LOCAL: u8 = b'L';
const CLUSTER: u8 = b'C';
const LOCAL_LEN: usize = 2 + 8 + 8;
const CLUSTER_HEADER: usize = 2 + 8 + 16;
/// A resume token is a small document (MongoDB's are ~100-200 bytes); anything
/// larger than this is not one.
const MAX_TOKEN: usize = 4096;

/// A decoded event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventId {
    /// Position `seq` (from 1) in the feed of the run whose random epoch is `epoch`.
    Local { epoch: u64, seq: u64 },
    /// An event of the MongoDB feed.
    Cluster {
        /// When the event was published, in milliseconds since the Unix epoch.
        time_ms: i64,
        /// The UUID of its `call_events` document.
        key: u128,
        /// The change stream's resume token of the event: a BSON document.
        token: Vec<u8>,
    },
}

/// Why a string is not an event id; the message completes "after_event_id: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedId(String);

impl MalformedId {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        MalformedId(reason.into())
    }
}

impl EventId {
    /// The identity of the event within its feed: the sequence number of a local event,
    /// the document UUID of a cluster one.
    pub fn key(&self) -> u128 {
        match self {
            EventId::Local { seq, .. } => u128::from(*seq),
            EventId::Cluster { key, .. } => *key,
        }
    }

    /// The id as sent to watchers.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(LOCAL_LEN);
        bytes.push(VERSION);
        match self {
            EventId::Local { epoch, seq } => {
                bytes.push(LOCAL);
                bytes.extend_from_slice(&epoch.to_be_bytes());
                bytes.extend_from_slice(&seq.to_be_bytes());
            }
            EventId::Cluster {
                time_ms,
                key,
                token,
            } => {
                bytes.push(CLUSTER);
                bytes.extend_from_slice(&time_ms.to_be_bytes());
                bytes.extend_from_slice(&key.to_be_bytes());
                bytes.extend_from_slice(token);
            }
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads an id written by [`EventId::encode`]; anything else is refused with the
    /// reason.
    pub fn decode(text: &str) -> Result<EventId, MalformedId> {
        let malformed =
            |reason: &str| MalformedId(format!("{text:?} is not an event id: {reason}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map_err(|_| malformed("not url-safe base64"))?;
        let (version, kind) = match bytes.as_slice() {
            [version, kind, ..] => (*version, *kind),
            _ => return Err(malformed("too short")),
        };
        if version != VERSION {
            return Err(malformed(&format!("unknown format version {version}")));
        }
        match kind {
            LOCAL => {
                if bytes.len() != LOCAL_LEN {
                    return Err(malformed("wrong length"));
                }
                let seq = be_u64(&bytes[10..18]);
                if seq == 0 {
                    return Err(malformed("sequence number 0"));
                }
                Ok(EventId::Local {
                    epoch: be_u64(&bytes[2..10]),
                    seq,
                })
            }
            CLUSTER => {
                if bytes.len() <= CLUSTER_HEADER || bytes.len() > CLUSTER_HEADER + MAX_TOKEN {
                    return Err(malformed("wrong length"));
                }
                let token = bytes[CLUSTER_HEADER..].to_vec();
                check_document(&token).map_err(|reason| malformed(&reason))?;
                let mut key = [0u8; 16];
                key.copy_from_slice(&bytes[10..26]);
                Ok(EventId::Cluster {
                    time_ms: i64::from_be_bytes(bytes[2..10].try_into().expect("an 8-byte slice")),
                    key: u128::from_be_bytes(key),
                    token,
                })
            }
            other => Err(malformed(&format!("unknown kind {other}"))),
        }
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("an 8-byte slice"))
}

/// A resume token must be a well-formed BSON document: walk every element.
fn check_document(bytes: &[u8]) -> Result<(), String> {
    let document = RawDocument::from_bytes(bytes)
        .map_err(|e| format!("its resume token is not a BSON document ({e})"))?;
    for element in document {
        element.map_err(|e| format!("its resume token is not a BSON document ({e})"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{doc, to_vec};

    use super::*;

    fn token() -> Vec<u8> {
        to_vec(&doc! { "_data": "8263A1F0C2000000012B022C0100296E5A1004" }).unwrap()
    }

    #[test]
    fn local_and_cluster_ids_round_trip() {
        let ids = [
            EventId::Local {
                epoch: 0xDEAD_BEEF_0000_0001,
                seq: 1,
            },
            EventId::Local {
                epoch: 0,
                seq: u64::MAX,
            },
            EventId::Cluster {
                time_ms: 1_764_000_000_123,
                key: uuid::Uuid::now_v7().as_u128(),
                token: token(),
            },
        ];
        for id in ids {
            let text = id.encode();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            assert_eq!(EventId::decode(&text), Ok(id));
        }
    }

    #[test]
    fn the_key_names_the_event_within_its_feed() {
        assert_eq!(EventId::Local { epoch: 7, seq: 42 }.key(), 42);
        let key = uuid::Uuid::now_v7().as_u128();
        let id = EventId::Cluster {
            time_ms: 0,
            key,
            token: token(),
        };
        assert_eq!(id.key(), key);
    }

    #[test]
    fn malformed_ids_are_refused_with_the_reason() {
        let local = EventId::Local { epoch: 1, seq: 2 }.encode();
        let cluster = EventId::Cluster {
            time_ms: 1,
            key: 2,
            token: token(),
        }
        .encode();
        let raw = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut local_bytes = URL_SAFE_NO_PAD.decode(&local).unwrap();
        let mut cluster_bytes = URL_SAFE_NO_PAD.decode(&cluster).unwrap();
        let truncated_token = raw(&cluster_bytes[..cluster_bytes.len() - 3]);
        let short_local = raw(&local_bytes[..10]);
        local_bytes[0] = 2;
        let future_version = raw(&local_bytes);
        local_bytes[0] = VERSION;
        local_bytes[1] = b'X';
        let unknown_kind = raw(&local_bytes);
        let zero_seq = raw(&[&[VERSION, LOCAL][..], &[0; 16]].concat());
        // A length prefix that disagrees with the bytes.
        cluster_bytes[CLUSTER_HEADER] ^= 0x40;
        let bad_document = raw(&cluster_bytes);
        let header_only = raw(&cluster_bytes[..CLUSTER_HEADER]);
        for (text, reason) in [
            ("", "too short"),
            ("not base64!", "base64"),
            ("AQ", "too short"),
            (short_local.as_str(), "wrong length"),
            (future_version.as_str(), "version 2"),
            (unknown_kind.as_str(), "unknown kind"),
            (zero_seq.as_str(), "sequence number 0"),
            (truncated_token.as_str(), "BSON"),
            (bad_document.as_str(), "BSON"),
            (header_only.as_str(), "wrong length"),
        ] {
            let err = EventId::decode(text).unwrap_err();
            assert!(
                err.to_string().contains(reason) && err.to_string().contains("is not an event id"),
                "{text:?}: {err}"
            );
        }
    }
}
