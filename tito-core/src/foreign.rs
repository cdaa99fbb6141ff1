//! What a write keeps of a newer model it does not know: during a rolling deploy, old and new
//! builds write the same tables, and an old build's update must not erase the new model's data.
//!
//! - **Fields.** Replacing a record keeps the stored top-level fields the writing model does not
//!   have (a newer model's), when the stored record has the writing model's version. Fields the
//!   model has but skipped (`skip_serializing_if`) are not brought back.
//! - **Indexes.** Every write maintains the registered indexes of its table that the model does
//!   not declare, computed from their registered fields as the serialized-record path computes
//!   any index. An index whose entries depend on code (a derived condition, a generator)
//!   cannot be maintained that way: the write fails with [`TitoError::IndexNotMaintained`]
//!   instead of leaving it out of step. The conditions of models written by hand cannot be
//!   seen, so their indexes are maintained as if they had none.
//!
//! Each process caches the registry. An update that meets entries of an index it does not know
//! reads the registry again, so it sees indexes another process registered since; a new record
//! written by a process that has not seen an index yet gets no entries in it.

use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::record;
use crate::model::schema::Schema;
use crate::registry::{RegisteredIndex, TableSchema};

/// The registered indexes of `registry` that `schema` does not declare; fails if one of them
/// cannot be maintained from its definition.
pub(crate) fn indexes<'a>(
    schema: &Schema,
    registry: &'a TableSchema,
) -> Result<Vec<&'a RegisteredIndex>> {
    let foreign: Vec<&RegisteredIndex> = (registry.indexes.iter())
        .filter(|registered| !schema.indexes.iter().any(|i| i.name == registered.name))
        .collect();
    match foreign.iter().find(|index| !index.computable()) {
        Some(index) => Err(TitoError::IndexNotMaintained {
            table: schema.table.clone(),
            index: index.name.clone(),
        }),
        None => Ok(foreign),
    }
}

/// Whether the manifest `listed` (the entries a stored record has) names an index that neither
/// `schema` declares nor `registry` holds.
pub(crate) fn unknown_entries(schema: &Schema, registry: &TableSchema, listed: &[Vec<u8>]) -> bool {
    let declared = |key: &&Vec<u8>| (schema.indexes.iter()).any(|i| key.starts_with(&i.prefix));
    let mut undeclared = listed.iter().filter(|key| !declared(key)).peekable();
    if undeclared.peek().is_none() {
        return false;
    }
    let registered: Vec<Vec<u8>> = (registry.indexes.iter())
        .map(|index| keyspace::index_prefix(&schema.table, &index.name, index.unique))
        .collect();
    undeclared.any(|key| !registered.iter().any(|prefix| key.starts_with(prefix)))
}

/// The top-level fields of the record stored as `stored` at `key` whose names are not in
/// `known`, for the record replacing it to keep.
pub(crate) fn unknown_fields(
    known: &[&str],
    key: &[u8],
    stored: &[u8],
) -> Result<Vec<(String, Value)>> {
    let mut parser = serde_json::Deserializer::from_slice(record::body(key, stored)?);
    let fields = (record::TopLevel.deserialize(&mut parser))
        .map_err(|e| record::decode_error(key, e.to_string()))?;
    (fields.into_iter())
        .filter(|(name, _)| !known.contains(&name.as_ref()))
        .map(|(name, raw)| {
            let value = serde_json::from_str(raw.get())
                .map_err(|e| record::decode_error(key, e.to_string()))?;
            Ok((name.into_owned(), value))
        })
        .collect()
}
