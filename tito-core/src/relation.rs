//! Relationship hydration: ids in a source field are replaced by the records they name, with
//! one batched read per relationship for a whole page.
//!
//! A reference to a record that does not exist is skipped: a list holds the records found, a
//! single reference leaves the destination empty. Stale references are common (the referenced
//! record was deleted) and must not make the referencing record unreadable.

use std::collections::HashMap;

use serde_json::Value;

use crate::backend::Backend;
use crate::error::Result;
use crate::keyspace;
use crate::model::TitoEmbeddedRelationshipConfig;
use crate::model::json_path::{for_each_parent, split_parent, values_at};
use crate::model::record;
use crate::txn::TitoTransaction;

fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Fills `relation`'s destination field in every record of `records`.
pub(crate) async fn hydrate<B: Backend>(
    tx: &TitoTransaction<B>,
    relation: &TitoEmbeddedRelationshipConfig,
    records: &mut [Value],
) -> Result<()> {
    let mut ids: Vec<String> = records
        .iter()
        .flat_map(|r| values_at(r, &relation.source_field_name))
        .filter_map(id_of)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| keyspace::record_key(&relation.model, id))
        .collect();
    let found = tx.batch_get(&keys).await?;
    let mut by_id: HashMap<String, Value> = HashMap::with_capacity(ids.len());
    for ((id, key), bytes) in ids.into_iter().zip(&keys).zip(found) {
        if let Some(bytes) = bytes {
            by_id.insert(id, record::decode_value(key, &bytes)?);
        }
    }
    let (parent, source) = split_parent(&relation.source_field_name);
    let (_, destination) = split_parent(&relation.destination_field_name);
    for value in records.iter_mut() {
        for_each_parent(value, parent, &mut |object| {
            let hydrated = match object.get(source) {
                Some(Value::Array(refs)) => Some(Value::Array(
                    refs.iter()
                        .filter_map(id_of)
                        .filter_map(|id| by_id.get(&id).cloned())
                        .collect(),
                )),
                Some(reference) => id_of(reference).and_then(|id| by_id.get(&id).cloned()),
                None => None,
            };
            match hydrated {
                Some(hydrated) => {
                    object.insert(destination.to_string(), hydrated);
                }
                None => {
                    object.remove(destination);
                }
            }
        });
    }
    Ok(())
}
