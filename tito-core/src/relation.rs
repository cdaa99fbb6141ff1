//! Relationship hydration: ids in a source field are replaced by the records they name, with
//! one batched read per relationship for a whole page.
//!
//! A reference to a record that does not exist is skipped: a list holds the records found, a
//! single reference leaves the destination empty. Stale references are common (the referenced
//! record was deleted) and must not make the referencing record unreadable. A list that names
//! one record several times holds it once.
//!
//! Every reference is a copy of the referenced record, so a page's hydrated records are bounded:
//! past [`MAX_HYDRATED_LEN`] bytes, the page fails with [`TitoError::TooLarge`] instead of
//! growing without limit (a few large records referenced by many could otherwise fill memory).
//!
//! When every requested relationship names top-level fields, [`hydrate_top_level`] decodes each
//! record once from its stored JSON with the stored JSON of the referenced records spliced in
//! (`model::splice`), instead of building, filling and converting a `serde_json::Value` tree
//! per record (which cost a third of a hydrated page). Nested paths take the `Value` route.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::{Backend, KeyRange};
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::RecordShape;
use crate::model::TitoEmbeddedRelationshipConfig;
use crate::model::json_path::{for_each_parent, split_parent, values_at};
use crate::model::schema::HasManyDef;
use crate::model::{record, splice};
use crate::query::{MAX_PAGE_LEN, QueryValue, entry_id};
use crate::txn::TitoTransaction;

/// The most bytes of referenced records one page (or one read by id) may hydrate.
pub const MAX_HYDRATED_LEN: usize = 64 * 1024 * 1024;

/// The bytes of referenced records hydrated so far by one read.
#[derive(Default)]
pub(crate) struct Hydrated(usize);

impl Hydrated {
    /// Counts `len` more bytes, or fails once past [`MAX_HYDRATED_LEN`].
    fn add(&mut self, len: usize) -> Result<()> {
        self.0 += len;
        if self.0 > MAX_HYDRATED_LEN {
            return Err(TitoError::TooLarge {
                what: "hydrated page",
                size: self.0,
                limit: MAX_HYDRATED_LEN,
            });
        }
        Ok(())
    }
}

/// The distinct ids of a list of references, in their first order.
fn distinct_ids(refs: &[Value]) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(refs.len());
    refs.iter()
        .filter_map(id_of)
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The stored records of table `model` named by `ids`, in one batched read: id -> (key, stored
/// bytes). Duplicate ids are read once; missing records are left out.
async fn fetch<B: Backend>(
    tx: &TitoTransaction<B>,
    model: &str,
    mut ids: Vec<String>,
) -> Result<HashMap<String, (Vec<u8>, Vec<u8>)>> {
    ids.sort_unstable();
    ids.dedup();
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| keyspace::record_key(model, id))
        .collect();
    let found = tx.batch_get(&keys).await?;
    Ok(ids
        .into_iter()
        .zip(keys)
        .zip(found)
        .filter_map(|((id, key), bytes)| Some((id, (key, bytes?))))
        .collect())
}

/// The records of table `model` named by `ids` as JSON in the shape of its current model, with
/// their stored sizes: id -> (record, bytes).
async fn fetch_values<B: Backend>(
    tx: &TitoTransaction<B>,
    shapes: &[RecordShape],
    model: &str,
    ids: Vec<String>,
) -> Result<HashMap<String, (Value, usize)>> {
    (fetch(tx, model, ids).await?.into_iter())
        .map(|(id, (key, bytes))| {
            let json = record::current_json(shapes, model, &key, &bytes)?;
            Ok((id, (record::decode_json(&key, &json)?, bytes.len())))
        })
        .collect()
}

/// Fills `relation`'s destination field in every record of `records`, counting the bytes it
/// copies in `hydrated`.
pub(crate) async fn hydrate<B: Backend>(
    tx: &TitoTransaction<B>,
    shapes: &[RecordShape],
    relation: &TitoEmbeddedRelationshipConfig,
    records: &mut [Value],
    hydrated: &mut Hydrated,
) -> Result<()> {
    let ids = records
        .iter()
        .flat_map(|r| values_at(r, &relation.source_field_name))
        .filter_map(id_of)
        .collect();
    let by_id = fetch_values(tx, shapes, &relation.model, ids).await?;
    let (parent, source) = split_parent(&relation.source_field_name);
    let (_, destination) = split_parent(&relation.destination_field_name);
    let mut failed = None;
    for value in records.iter_mut() {
        for_each_parent(value, parent, &mut |object| {
            let pick = |id: String| {
                let (value, len) = by_id.get(&id)?;
                match hydrated.add(*len) {
                    Ok(()) => Some(value.clone()),
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                }
            };
            let found = match object.get(source) {
                Some(Value::Array(refs)) => Some(Value::Array(
                    distinct_ids(refs).into_iter().filter_map(pick).collect(),
                )),
                Some(reference) => id_of(reference).and_then(pick),
                None => None,
            };
            match found {
                Some(found) => {
                    object.insert(destination.to_string(), found);
                }
                None => {
                    object.remove(destination);
                }
            }
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    Ok(())
}

/// Fills `has_many`'s destination field in every record of `records`, stored as `rows`, with
/// the records whose index entries start with its id, in index order and at most
/// [`MAX_PAGE_LEN`] each: one scan of every record's entries at once and one batched read.
pub(crate) async fn hydrate_has_many<B: Backend>(
    tx: &TitoTransaction<B>,
    shapes: &[RecordShape],
    has_many: &HasManyDef,
    rows: &[(Vec<u8>, Vec<u8>)],
    records: &mut [Value],
    hydrated: &mut Hydrated,
) -> Result<()> {
    let index = &has_many.index;
    let mut ranges = Vec::with_capacity(rows.len());
    for (key, _) in rows {
        let (_, id) = keyspace::parse_record_key(key)
            .ok_or_else(|| record::decode_error(key, "not a record key".into()))?;
        let mut start = index.prefix.clone();
        QueryValue::Text(id).encode(&mut start, &index.fields[0], &index.name)?;
        ranges.push(KeyRange::prefix(&start));
    }
    let children = (tx.scan_many(&ranges, MAX_PAGE_LEN).await?.iter())
        .map(|entries| {
            (entries.iter())
                .map(|(key, value)| entry_id(index, key, value))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let ids = children.iter().flatten().cloned().collect();
    let found = fetch_values(tx, shapes, &has_many.table, ids).await?;
    for (record, ids) in records.iter_mut().zip(children) {
        let mut list = Vec::with_capacity(ids.len());
        for (child, len) in ids.iter().filter_map(|id| found.get(id)) {
            hydrated.add(*len)?;
            list.push(child.clone());
        }
        if let Value::Object(object) = record {
            object.insert(has_many.destination.clone(), Value::Array(list));
        }
    }
    Ok(())
}

/// Decodes `rows` (record key, stored bytes) into records with `relations` hydrated, if every
/// relationship names a top-level source and destination field distinct from the others, and
/// every row reads as a JSON object whose keys up to its last source field hold no escapes;
/// `None` otherwise (the caller then takes the `Value` route).
/// One batched read per relationship, as [`hydrate`].
pub(crate) async fn hydrate_top_level<T: DeserializeOwned, B: Backend>(
    tx: &TitoTransaction<B>,
    shapes: &[RecordShape],
    table: &str,
    relations: &[&TitoEmbeddedRelationshipConfig],
    rows: &[(Vec<u8>, Vec<u8>)],
) -> Result<Option<Vec<T>>> {
    let sources = relations.iter().map(|r| r.source_field_name.as_str());
    let destinations = relations.iter().map(|r| r.destination_field_name.as_str());
    let mut names: Vec<&str> = sources.chain(destinations).collect();
    if names.iter().any(|n| n.contains('.')) {
        return Ok(None);
    }
    names.sort_unstable();
    names.dedup();
    if names.len() != 2 * relations.len() {
        return Ok(None);
    }
    let bodies = (rows.iter())
        .map(|(key, bytes)| record::current_json(shapes, table, key, bytes))
        .collect::<Result<Vec<_>>>()?;
    let source_names: Vec<&str> = (relations.iter())
        .map(|r| r.source_field_name.as_str())
        .collect();
    let mut sources = Vec::with_capacity(rows.len());
    for body in &bodies {
        match splice::pick(body, &source_names) {
            Some(found) => sources.push(found),
            None => return Ok(None),
        }
    }
    // The references of each relationship in each row, as the `Value` route reads them.
    let mut refs: Vec<Vec<Option<Value>>> = Vec::with_capacity(relations.len());
    let mut found: Vec<HashMap<String, Vec<u8>>> = Vec::with_capacity(relations.len());
    for (at, relation) in relations.iter().enumerate() {
        let per_row = (sources.iter())
            .map(|row| row[at].map(serde_json::from_slice::<Value>).transpose())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| TitoError::Serialize(e.to_string()))?;
        let ids = per_row
            .iter()
            .flatten()
            .flat_map(|value| match value {
                Value::Array(items) => items.iter().filter_map(id_of).collect(),
                other => id_of(other).into_iter().collect::<Vec<_>>(),
            })
            .collect();
        let bodies: HashMap<String, Vec<u8>> = fetch(tx, &relation.model, ids)
            .await?
            .into_iter()
            .map(|(id, (key, bytes))| {
                let json = record::current_json(shapes, &relation.model, &key, &bytes)?;
                Ok((id, json.into_owned()))
            })
            .collect::<Result<_>>()?;
        refs.push(per_row);
        found.push(bodies);
    }
    let destinations: Vec<&str> = (relations.iter())
        .map(|r| r.destination_field_name.as_str())
        .collect();
    let mut hydrated = Hydrated::default();
    let mut records = Vec::with_capacity(rows.len());
    for (row, ((key, _), body)) in rows.iter().zip(&bodies).enumerate() {
        let mut added: Vec<(&str, Cow<'_, [u8]>)> = Vec::with_capacity(relations.len());
        for ((&destination, per_row), bodies) in destinations.iter().zip(&refs).zip(&found) {
            match &per_row[row] {
                Some(Value::Array(items)) => {
                    let mut list = vec![b'['];
                    for body in distinct_ids(items).iter().filter_map(|id| bodies.get(id)) {
                        hydrated.add(body.len())?;
                        if list.len() > 1 {
                            list.push(b',');
                        }
                        list.extend_from_slice(body);
                    }
                    list.push(b']');
                    added.push((destination, Cow::Owned(list)));
                }
                Some(value) => {
                    if let Some(body) = id_of(value).and_then(|id| bodies.get(&id)) {
                        hydrated.add(body.len())?;
                        added.push((destination, Cow::Borrowed(body)));
                    }
                }
                None => {}
            }
        }
        let added = (added.iter())
            .map(|(name, json)| (*name, json.as_ref()))
            .collect();
        records.push(
            splice::decode(body, &destinations, added)
                .map_err(|e| record::decode_error(key, e.to_string()))?,
        );
    }
    Ok(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Embedded;
    use serde_json::json;

    fn relation(source: &str, destination: &str, model: &str) -> TitoEmbeddedRelationshipConfig {
        TitoEmbeddedRelationshipConfig {
            source_field_name: source.into(),
            destination_field_name: destination.into(),
            model: model.into(),
        }
    }

    #[tokio::test]
    async fn splicing_matches_the_value_route() {
        let db = Embedded::temporary().await.unwrap();
        let tx = db.begin().await.unwrap();
        let related = [
            ("author", "a1", json!({"id": "a1", "name": "Ann"})),
            ("author", "7", json!({"id": "7", "name": "Numbered"})),
            ("tag", "t1", json!({"id": "t1"})),
            ("tag", "t2", json!({"id": "t2", "label": "two\n\"quoted\""})),
        ];
        for (table, id, value) in &related {
            let bytes = record::encode(value).unwrap();
            tx.put(keyspace::record_key(table, id), bytes)
                .await
                .unwrap();
        }
        let posts = [
            json!({"id": "p1", "author_id": "a1", "tag_ids": ["t1", "gone", "t2"], "tags": []}),
            json!({"id": "p2", "author_id": "gone", "tag_ids": [], "tags": []}),
            json!({"id": "p3", "author_id": 7, "tag_ids": ["t2", ["t1"]], "we\"ird": "é"}),
            json!({"id": "p4", "author_id": null, "author": {"stale": true}, "tags": []}),
            json!({}),
        ];
        let rows: Vec<(Vec<u8>, Vec<u8>)> = posts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let key = keyspace::record_key("post", &i.to_string());
                (key, record::encode(p).unwrap())
            })
            .collect();
        let relations = [
            relation("author_id", "author", "author"),
            relation("tag_ids", "tags", "tag"),
        ];
        let refs: Vec<&TitoEmbeddedRelationshipConfig> = relations.iter().collect();
        let spliced: Vec<Value> = hydrate_top_level(&tx, &[], "post", &refs, &rows)
            .await
            .unwrap()
            .unwrap();
        let mut values: Vec<Value> = rows
            .iter()
            .map(|(key, bytes)| record::decode_value(key, bytes).unwrap())
            .collect();
        for relation in &relations {
            hydrate(&tx, &[], relation, &mut values, &mut Hydrated::default())
                .await
                .unwrap();
        }
        assert_eq!(spliced, values);
        assert_eq!(spliced[0]["author"]["name"], "Ann");
        assert_eq!(spliced[0]["tags"].as_array().unwrap().len(), 2);
        assert!(spliced[3].get("author").is_none());
        tx.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn nested_or_clashing_paths_take_the_value_route() {
        let db = Embedded::temporary().await.unwrap();
        let tx = db.snapshot().await.unwrap();
        let rows = vec![(b"k".to_vec(), record::encode(&json!({"a": "1"})).unwrap())];
        for relations in [
            vec![relation("blocks.author_id", "blocks.author", "author")],
            vec![relation("a", "b", "t"), relation("b", "c", "t")],
            vec![relation("a", "a", "t")],
        ] {
            let refs: Vec<&TitoEmbeddedRelationshipConfig> = relations.iter().collect();
            let result = hydrate_top_level::<Value, _>(&tx, &[], "t", &refs, &rows).await;
            assert!(result.unwrap().is_none());
        }
        let not_an_object = vec![(b"k".to_vec(), record::encode(&json!([1])).unwrap())];
        let refs = [&relation("a", "b", "t")];
        let result = hydrate_top_level::<Value, _>(&tx, &[], "t", &refs, &not_an_object).await;
        assert!(result.unwrap().is_none());
    }
}
