//! Pages of agents and sessions, newest first, across our string ids and the original
//! system's ObjectIds.

use futures::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Document};
use mongodb::Collection;

use super::{driver_error, legacy};
use crate::store::{Page, PageRequest, StoreError, StoreResult, MAX_PAGE_SIZE};

/// Where a page starts: after one of our ids, or after one of the original system's.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PageAfter {
    Ours(String),
    Legacy(ObjectId),
}

/// The id after which a page starts, normalised to the form ids are stored in.
pub(super) fn page_token(page: &PageRequest) -> StoreResult<Option<PageAfter>> {
    if page.token.is_empty() {
        return Ok(None);
    }
    if let Some(oid) = legacy::object_id(&page.token) {
        return Ok(Some(PageAfter::Legacy(oid)));
    }
    let id = uuid::Uuid::parse_str(&page.token)
        .map_err(|_| StoreError::BadPageToken(page.token.clone()))?;
    Ok(Some(PageAfter::Ours(id.hyphenated().to_string())))
}

/// Up to `size + 1` documents matching `query` after `after`, newest first: our string
/// ids (UUIDv7, so in creation order) from the newest down, then the original system's
/// ObjectIds likewise. MongoDB compares values of one type only, so each part is one
/// query on `_id` of its type; a page that spans both takes two.
pub(super) async fn list_newest_first<T>(
    collection: &Collection<T>,
    name: &str,
    query: Document,
    projection: Option<Document>,
    after: Option<PageAfter>,
    size: usize,
) -> StoreResult<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    let wanted = size + 1;
    let mut items = Vec::new();
    let legacy_part = match after {
        Some(PageAfter::Legacy(oid)) => doc! { "$lt": oid },
        ours => {
            let condition = match ours {
                Some(PageAfter::Ours(id)) => doc! { "$type": "string", "$lt": id },
                _ => doc! { "$type": "string" },
            };
            items = find_part(collection, name, &query, &projection, condition, wanted).await?;
            doc! { "$type": "objectId" }
        }
    };
    if items.len() < wanted {
        let rest = wanted - items.len();
        items.extend(find_part(collection, name, &query, &projection, legacy_part, rest).await?);
    }
    Ok(items)
}

/// `query` with `_id` meeting `id_condition`, `_id` descending, at most `limit`.
async fn find_part<T>(
    collection: &Collection<T>,
    name: &str,
    query: &Document,
    projection: &Option<Document>,
    id_condition: Document,
    limit: usize,
) -> StoreResult<Vec<T>>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    let mut filter = query.clone();
    filter.insert("_id", id_condition);
    let mut find = collection
        .find(filter)
        .sort(doc! { "_id": -1 })
        .limit(i64::try_from(limit).unwrap_or(i64::MAX));
    if let Some(projection) = projection {
        find = find.projection(projection.clone());
    }
    find.await
        .map_err(|e| driver_error("list", name, e))?
        .try_collect()
        .await
        .map_err(|e| driver_error("list", name, e))
}

pub(super) fn page_size(page: &PageRequest) -> usize {
    page.size.clamp(1, MAX_PAGE_SIZE)
}

/// Cuts `items` (fetched newest first, up to `size + 1`) to a page whose token is the
/// id of its last item when more follow.
pub(super) fn into_page<T>(
    mut items: Vec<T>,
    size: usize,
    id_of: impl Fn(&T) -> &String,
) -> Page<T> {
    let more = items.len() > size;
    items.truncate(size);
    let next_token = match items.last() {
        Some(last) if more => id_of(last).clone(),
        _ => String::new(),
    };
    Page { items, next_token }
}
