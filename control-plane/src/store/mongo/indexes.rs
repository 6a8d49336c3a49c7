//! The indexes `MongoStore` relies on, reconciled with those a database already holds.
//!
//! A database the original system used already has indexes on the same fields, made by
//! Mongoose under its own names (`phoneNumbers_1`). MongoDB refuses a second index on
//! the same keys under another name, so start-up first lists what exists ([`plan`] is
//! pure and unit-tested) and then:
//! - reuses an index with the same keys whose options do what ours would (a unique one
//!   where we rely on uniqueness, one that skips documents without the field where we
//!   leave it out);
//! - creates ours where nothing covers the keys;
//! - refuses to start, naming the index, the collection and the fix, when an index
//!   would break the store: our name on other keys or options, a non-unique index where
//!   we rely on uniqueness, a unique one that would make documents without the field
//!   collide, or a unique index on a field we never write (every new document would
//!   carry `null` there, and the second would be refused).

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};

use crate::store::{StoreError, StoreResult};

/// MongoDB's code for "no such collection" (listing indexes of a new database).
const NAMESPACE_NOT_FOUND: i32 = 26;
/// IndexOptionsConflict and IndexKeySpecsConflict: an index on these keys or with this
/// name exists with other options.
const INDEX_CONFLICTS: [i32; 2] = [85, 86];

/// An index the store wants.
#[derive(Debug, Clone)]
pub(super) struct WantedIndex {
    pub(super) name: &'static str,
    pub(super) keys: Document,
    pub(super) unique: bool,
    /// Skipping documents without the fields: for unique indexes on fields the store
    /// leaves out while unknown.
    pub(super) sparse: bool,
}

/// An index found in the database: what matters of it here.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExistingIndex {
    pub(super) name: String,
    pub(super) keys: Document,
    pub(super) unique: bool,
    pub(super) sparse: bool,
    pub(super) partial_filter: Option<Document>,
    pub(super) collation: bool,
}

/// What start-up does about one wanted index.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Step {
    /// Ours exists already.
    Present,
    /// Another index with the same keys does the job; its name.
    Reuse(String),
    /// Nothing covers the keys.
    Create,
}

impl WantedIndex {
    /// Unique and sparse: on fields left out of documents while unknown.
    pub(super) fn unique(name: &'static str, keys: Document) -> Self {
        Self {
            name,
            keys,
            unique: true,
            sparse: true,
        }
    }

    /// Unique, on fields every document carries.
    pub(super) fn unique_everywhere(name: &'static str, keys: Document) -> Self {
        Self {
            name,
            keys,
            unique: true,
            sparse: false,
        }
    }

    pub(super) fn plain(name: &'static str, keys: Document) -> Self {
        Self {
            name,
            keys,
            unique: false,
            sparse: false,
        }
    }

    fn model(&self) -> IndexModel {
        // Sparse rather than partial: both skip documents without the field, but
        // SecantusDB (our test server) never plans lookups on a partial index.
        let options = IndexOptions::builder()
            .name(self.name.to_owned())
            .unique(self.unique.then_some(true))
            .sparse(self.sparse.then_some(true))
            .build();
        IndexModel::builder()
            .keys(self.keys.clone())
            .options(options)
            .build()
    }

    fn describe(&self) -> String {
        let kind = match (self.unique, self.sparse) {
            (true, true) => "unique and sparse",
            (true, false) => "unique",
            (false, _) => "not unique",
        };
        format!("{} {kind}", self.keys)
    }

    /// Why `existing` (with the same keys) cannot stand in for this index.
    fn incompatibility(&self, existing: &ExistingIndex) -> Option<String> {
        if self.unique {
            if !existing.unique {
                return Some(
                    "is not unique, and the control plane relies on it refusing duplicates"
                        .to_owned(),
                );
            }
            if self.sparse && !skips_missing(existing) {
                return Some(format!(
                    "is unique but not sparse: documents without {} would collide",
                    field_list(&self.keys)
                ));
            }
            // Our documents always carry these fields, so skipping documents without
            // them is harmless; any other filter would leave some unchecked.
            if !self.sparse && existing.partial_filter.is_some() && !skips_missing(existing) {
                return Some(
                    "is partial, so it lets documents outside its filter repeat".to_owned(),
                );
            }
            if existing.collation {
                return Some(
                    "has a collation, so it judges duplicates differently from the control plane"
                        .to_owned(),
                );
            }
        } else if existing.unique {
            return Some(
                "is unique, and would refuse documents the control plane writes".to_owned(),
            );
        }
        None
    }
}

/// The step for `wanted` given the `existing` indexes of `collection`, or the start-up
/// error saying what to fix.
pub(super) fn plan(
    collection: &str,
    wanted: &WantedIndex,
    existing: &[ExistingIndex],
) -> Result<Step, String> {
    if let Some(same_name) = existing.iter().find(|e| e.name == wanted.name) {
        let reason = if !same_keys(&same_name.keys, &wanted.keys) {
            Some(format!("is on {}", same_name.keys))
        } else {
            wanted.incompatibility(same_name)
        };
        return match reason {
            None => Ok(Step::Present),
            Some(reason) => Err(format!(
                "collection {collection}: index {name} {reason}; the control plane needs \
                 {name} to be {want}. Drop it (db.{collection}.dropIndex(\"{name}\")) and \
                 start again: the control plane creates it",
                name = wanted.name,
                want = wanted.describe(),
            )),
        };
    }
    if let Some(same_keys) = existing.iter().find(|e| same_keys(&e.keys, &wanted.keys)) {
        return match wanted.incompatibility(same_keys) {
            None => Ok(Step::Reuse(same_keys.name.clone())),
            Some(reason) => Err(format!(
                "collection {collection}: index {name} on {keys} {reason}; the control plane \
                 needs an index there that is {want}. Drop index {name} \
                 (db.{collection}.dropIndex(\"{name}\")) and start again: the control plane \
                 creates {ours}; or replace it yourself with one that is {want}",
                name = same_keys.name,
                keys = same_keys.keys,
                want = wanted.describe(),
                ours = wanted.name,
            )),
        };
    }
    Ok(Step::Create)
}

/// A unique index that would refuse our documents although none of ours covers its
/// keys: it indexes fields the store never writes, so each new document carries `null`
/// there and the second one collides.
pub(super) fn foreign_unique(
    collection: &str,
    existing: &ExistingIndex,
    wanted: &[WantedIndex],
    written: &[&str],
) -> Option<String> {
    let ours = wanted.iter().any(|w| same_keys(&w.keys, &existing.keys));
    if existing.name == "_id_" || ours || !existing.unique || skips_missing(existing) {
        return None;
    }
    let unwritten: Vec<&str> = existing
        .keys
        .keys()
        .map(String::as_str)
        .filter(|path| {
            let top = path.split('.').next().unwrap_or(path);
            !written.contains(&top)
        })
        .collect();
    if unwritten.is_empty() {
        return None;
    }
    Some(format!(
        "collection {collection}: unique index {name} on {keys} covers {fields}, which the \
         control plane does not write, so its second document would collide on null. Drop \
         it (db.{collection}.dropIndex(\"{name}\")) or make it sparse",
        name = existing.name,
        keys = existing.keys,
        fields = unwritten.join(", "),
    ))
}

/// Lists the indexes of `collection` and brings them to `wanted`, as the module says.
/// `written` names the top-level fields every document the store writes carries.
pub(super) async fn ensure(
    collection: &Collection<Document>,
    wanted: &[WantedIndex],
    written: &[&str],
) -> StoreResult<()> {
    let name = collection.name().to_owned();
    let existing = list(collection).await?;
    let mut conflicts = Vec::new();
    let mut create = Vec::new();
    for index in &existing {
        conflicts.extend(foreign_unique(&name, index, wanted, written));
    }
    for index in wanted {
        match plan(&name, index, &existing) {
            Ok(Step::Present) => {}
            Ok(Step::Reuse(found)) => {
                tracing::info!(collection = %name, index = %found, instead_of = index.name, "reusing an existing index");
            }
            Ok(Step::Create) => create.push(index.model()),
            Err(conflict) => conflicts.push(conflict),
        }
    }
    if !conflicts.is_empty() {
        return Err(StoreError::Internal(format!(
            "the database's indexes conflict with the control plane's: {}",
            conflicts.join("; ")
        )));
    }
    if create.is_empty() {
        return Ok(());
    }
    collection.create_indexes(create).await.map_err(|e| {
        // Another index appeared in between, or differs in an option not compared
        // above (a collation): the server names it, we name the way out.
        if matches!(e.kind.as_ref(), ErrorKind::Command(c) if INDEX_CONFLICTS.contains(&c.code)) {
            StoreError::Internal(format!(
                "collection {name}: an existing index conflicts with the control plane's: \
                 {e}; drop that index (db.{name}.dropIndex(\"<name>\")) and start again"
            ))
        } else {
            super::driver_error("create indexes of", &name, e)
        }
    })?;
    Ok(())
}

async fn list(collection: &Collection<Document>) -> StoreResult<Vec<ExistingIndex>> {
    let name = collection.name();
    let cursor = match collection.list_indexes().await {
        Ok(cursor) => cursor,
        // A collection not created yet has no indexes.
        Err(e) if matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == NAMESPACE_NOT_FOUND) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(super::driver_error("list the indexes of", name, e)),
    };
    let models: Vec<IndexModel> = cursor
        .try_collect()
        .await
        .map_err(|e| super::driver_error("list the indexes of", name, e))?;
    Ok(models.into_iter().map(ExistingIndex::from).collect())
}

impl From<IndexModel> for ExistingIndex {
    fn from(model: IndexModel) -> Self {
        let options = model.options.unwrap_or_default();
        ExistingIndex {
            name: options.name.unwrap_or_default(),
            keys: model.keys,
            unique: options.unique.unwrap_or(false),
            sparse: options.sparse.unwrap_or(false),
            partial_filter: options.partial_filter_expression,
            collation: options.collation.is_some(),
        }
    }
}

/// Sparse, or partial on `{field: {$exists: true}}` for each of its keys.
fn skips_missing(index: &ExistingIndex) -> bool {
    if index.sparse {
        return true;
    }
    let Some(filter) = &index.partial_filter else {
        return false;
    };
    index.keys.keys().all(|field| {
        filter
            .get_document(field)
            .is_ok_and(|condition| condition.get("$exists") == Some(&Bson::Boolean(true)))
    })
}

/// Same fields in the same order with the same directions; `1`, `1.0` and `1_i64`
/// are one direction, as MongoDB treats them.
fn same_keys(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((fa, va), (fb, vb))| fa == fb && direction(va) == direction(vb))
}

fn direction(value: &Bson) -> Option<String> {
    match value {
        Bson::Int32(n) => Some((f64::from(*n)).to_string()),
        Bson::Int64(n) => Some((*n as f64).to_string()),
        Bson::Double(n) => Some(n.to_string()),
        Bson::String(kind) => Some(kind.clone()),
        _ => None,
    }
}

fn field_list(keys: &Document) -> String {
    keys.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    /// For tests: `{field: 1}` keys with options.
    fn existing(name: &str, keys: Document, unique: bool, sparse: bool) -> ExistingIndex {
        ExistingIndex {
            name: name.to_owned(),
            keys,
            unique,
            sparse,
            partial_filter: None,
            collation: false,
        }
    }

    fn phone_numbers() -> WantedIndex {
        WantedIndex::unique("phoneNumbers_unique", doc! { "phoneNumbers": 1 })
    }

    #[test]
    fn an_equivalent_index_under_another_name_is_reused() {
        let mongoose = existing("phoneNumbers_1", doc! { "phoneNumbers": 1_i64 }, true, true);
        assert_eq!(
            plan("agentsettings", &phone_numbers(), &[mongoose]),
            Ok(Step::Reuse("phoneNumbers_1".into()))
        );
        let mut partial = existing("by_phone", doc! { "phoneNumbers": 1.0 }, true, false);
        partial.partial_filter = Some(doc! { "phoneNumbers": { "$exists": true } });
        assert_eq!(
            plan("agentsettings", &phone_numbers(), &[partial]),
            Ok(Step::Reuse("by_phone".into()))
        );
        let created = existing("createdAt_1", doc! { "createdAt": 1 }, false, false);
        let wanted = WantedIndex::plain("createdAt_1_ours", doc! { "createdAt": 1 });
        assert_eq!(
            plan("callsessions", &wanted, &[created]),
            Ok(Step::Reuse("createdAt_1".into()))
        );
    }

    #[test]
    fn ours_present_or_nothing_there_are_no_conflicts() {
        let ours = existing(
            "phoneNumbers_unique",
            doc! { "phoneNumbers": 1 },
            true,
            true,
        );
        assert_eq!(
            plan("agentsettings", &phone_numbers(), &[ours]),
            Ok(Step::Present)
        );
        let other = existing("name_1", doc! { "name": 1 }, false, false);
        assert_eq!(
            plan("agentsettings", &phone_numbers(), &[other]),
            Ok(Step::Create)
        );
    }

    #[test]
    fn conflicts_name_the_index_the_collection_and_the_fix() {
        let not_unique = existing("phoneNumbers_1", doc! { "phoneNumbers": 1 }, false, false);
        let err = plan("agentsettings", &phone_numbers(), &[not_unique]).unwrap_err();
        assert!(
            err.contains("collection agentsettings")
                && err.contains("index phoneNumbers_1")
                && err.contains("not unique")
                && err.contains("db.agentsettings.dropIndex(\"phoneNumbers_1\")"),
            "{err}"
        );
        let not_sparse = existing("phoneNumbers_1", doc! { "phoneNumbers": 1 }, true, false);
        let err = plan("agentsettings", &phone_numbers(), &[not_sparse]).unwrap_err();
        assert!(err.contains("not sparse"), "{err}");

        let our_name_elsewhere = existing("phoneNumbers_unique", doc! { "name": 1 }, true, true);
        let err = plan("agentsettings", &phone_numbers(), &[our_name_elsewhere]).unwrap_err();
        assert!(err.contains("index phoneNumbers_unique is on"), "{err}");

        let unique_time = existing("createdAt_1", doc! { "createdAt": 1 }, true, false);
        let wanted = WantedIndex::plain("createdAt_1", doc! { "createdAt": 1 });
        let err = plan("callsessions", &wanted, &[unique_time]).unwrap_err();
        assert!(err.contains("is unique"), "{err}");
    }

    #[test]
    fn an_index_unique_everywhere_reuses_any_unique_one_on_its_keys() {
        let wanted =
            WantedIndex::unique_everywhere("callId_1_seq_1", doc! { "callId": 1, "seq": 1 });
        let plain_unique = existing("by_call", doc! { "callId": 1, "seq": 1 }, true, false);
        assert_eq!(
            plan("conversation_items", &wanted, &[plain_unique]),
            Ok(Step::Reuse("by_call".into()))
        );
        let sparse = existing("by_call", doc! { "callId": 1, "seq": 1 }, true, true);
        assert_eq!(
            plan("conversation_items", &wanted, &[sparse]),
            Ok(Step::Reuse("by_call".into()))
        );
        let not_unique = existing("by_call", doc! { "callId": 1, "seq": 1 }, false, false);
        let err = plan("conversation_items", &wanted, &[not_unique]).unwrap_err();
        assert!(
            err.contains("not unique")
                && err.contains("that is { \"callId\": 1, \"seq\": 1 } unique"),
            "{err}"
        );
        let mut partial = existing("by_call", doc! { "callId": 1, "seq": 1 }, true, false);
        partial.partial_filter = Some(doc! { "kind": "message" });
        let err = plan("conversation_items", &wanted, &[partial]).unwrap_err();
        assert!(err.contains("is partial"), "{err}");
    }

    #[test]
    fn a_unique_index_on_a_field_never_written_is_a_conflict() {
        let wanted = [WantedIndex::unique(
            "twilioCallSid_unique",
            doc! { "twilioCallSid": 1 },
        )];
        let written = ["_id", "status"];
        let legacy = existing("callSid_1", doc! { "callSid": 1 }, true, false);
        let err = foreign_unique("callsessions", &legacy, &wanted, &written).unwrap();
        assert!(
            err.contains("callSid_1") && err.contains("covers callSid"),
            "{err}"
        );
        let sparse = existing("callSid_1", doc! { "callSid": 1 }, true, true);
        assert_eq!(
            foreign_unique("callsessions", &sparse, &wanted, &written),
            None
        );
        let on_written = existing("status_1", doc! { "status": 1 }, true, false);
        assert_eq!(
            foreign_unique("callsessions", &on_written, &wanted, &written),
            None
        );
    }
}
