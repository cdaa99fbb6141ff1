//! The stored schema registry: per table, the indexes the database knows and whether each one
//! can answer queries.
//!
//! An index is registered the first time a model declaring it is used. On a table without rows
//! it is complete from the start (every write maintains it) and readable at once. On a table
//! with rows, the rows written before have no entries yet: the index is registered as building,
//! writes maintain it, and a query on it fails with [`TitoError::IndexNotReady`] until
//! [`TitoModel::reindex`](crate::TitoModel::reindex) has built the missing entries and marks it
//! readable. A query is never answered from half an index. An index whose fields or uniqueness
//! change is registered anew the same way. Indexes other models of the table declare are kept,
//! until a reindex through a model that lacks them removes their entries and their registration
//! (a model that still declares one registers it again, as building).
//!
//! The registry of each table is read once per engine and cached; a building index is read
//! again before a query is refused, so a reindex finished by another process is seen. An index
//! another process's reindex dropped is seen by this one after it restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::schema::{IndexDef, Schema};
use crate::model::{TitoIndexBlockType, TitoIndexField, record};
use crate::txn::TitoTransaction;

/// Version byte of a stored table schema.
const SCHEMA_V1: u8 = 1;

/// Whether an index can answer queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexState {
    /// Writes maintain it, but rows written before it was registered may lack entries.
    Building,
    /// Every record's entries are stored.
    Readable,
}

/// One registered index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredIndex {
    /// The index name.
    pub name: String,
    /// Its fields: name (or dotted path) and `"string"` or `"number"`.
    pub fields: Vec<(String, String)>,
    /// Whether it holds one record per value.
    pub unique: bool,
    /// Whether its entries follow from its fields alone, so that a model which does not declare
    /// it can maintain it (see [`TitoError::IndexNotMaintained`]).
    #[serde(default)]
    pub plain: bool,
    /// Whether it can answer queries.
    pub state: IndexState,
}

/// How the registry spells a field type.
fn kind(t: TitoIndexBlockType) -> &'static str {
    match t {
        TitoIndexBlockType::String => "string",
        TitoIndexBlockType::Number => "number",
    }
}

impl RegisteredIndex {
    fn of(index: &IndexDef, state: IndexState) -> Self {
        RegisteredIndex {
            name: index.name.clone(),
            fields: (index.fields.iter())
                .map(|f| (f.name.clone(), kind(f.r#type).to_string()))
                .collect(),
            unique: index.unique,
            plain: index.plain,
            state,
        }
    }

    /// Whether its entries can be computed from its registered definition: it has no
    /// condition or generator, and fields of the types this build knows.
    pub fn computable(&self) -> bool {
        self.plain && (self.fields.iter()).all(|(_, kind)| kind == "string" || kind == "number")
    }

    /// Its fields as an index configuration declares them.
    pub(crate) fn field_defs(&self) -> Vec<TitoIndexField> {
        (self.fields.iter())
            .map(|(name, kind)| TitoIndexField {
                name: name.clone(),
                r#type: match kind.as_str() {
                    "number" => TitoIndexBlockType::Number,
                    _ => TitoIndexBlockType::String,
                },
            })
            .collect()
    }

    /// Whether it is `index` as the model declares it (state aside). Runs before every query,
    /// so it compares in place.
    fn matches(&self, index: &IndexDef) -> bool {
        self.name == index.name
            && self.unique == index.unique
            && self.fields.len() == index.fields.len()
            && (self.fields.iter().zip(&index.fields))
                .all(|((name, t), field)| *name == field.name && t == kind(field.r#type))
    }
}

/// The registered indexes of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Every index registered for the table, by any model of it.
    pub indexes: Vec<RegisteredIndex>,
    /// The highest model version (`#[tito(version = N)]`) registered for the table; 0 before
    /// any model registered one.
    #[serde(default)]
    pub model_version: u32,
}

impl TableSchema {
    /// Whether every index of `schema` is registered as declared, with its model version.
    fn covers(&self, schema: &Schema) -> bool {
        self.model_version >= schema.model_version
            && (schema.indexes.iter())
                .all(|index| self.get(&index.name).is_some_and(|r| r.matches(index)))
    }

    fn get(&self, name: &str) -> Option<&RegisteredIndex> {
        self.indexes.iter().find(|r| r.name == name)
    }

    /// Whether index `name` can answer queries.
    pub fn readable(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|r| r.state == IndexState::Readable)
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        record::encode_versioned(SCHEMA_V1, self)
    }

    pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<Self> {
        record::decode_versioned(key, bytes, SCHEMA_V1, "schema")
    }
}

/// The table schemas an engine has read, by table.
#[derive(Debug, Default)]
pub(crate) struct Registry(Mutex<HashMap<String, Arc<TableSchema>>>);

impl Registry {
    fn cached(&self, table: &str) -> Option<Arc<TableSchema>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(table).cloned()
    }

    fn cache(&self, table: &str, schema: TableSchema) -> Arc<TableSchema> {
        let schema = Arc::new(schema);
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(table.to_string(), schema.clone());
        schema
    }
}

/// The stored schema of `table`, read in `tx`.
async fn read<B: Backend>(tx: &TitoTransaction<B>, table: &str) -> Result<TableSchema> {
    let key = keyspace::schema_key(table);
    match tx.get(&key).await? {
        Some(bytes) => TableSchema::decode(&key, &bytes),
        None => Ok(TableSchema::default()),
    }
}

impl<B: Backend> crate::engine::TitoEngine<B> {
    /// The registered schema of `schema`'s table, registering the model's indexes first if
    /// they are not (in a transaction of its own, once per engine and table).
    pub(crate) async fn registered(&self, schema: &Schema) -> Result<Arc<TableSchema>> {
        schema.check()?;
        if let Some(cached) = self.registry().cached(&schema.table)
            && cached.covers(schema)
        {
            return Ok(cached);
        }
        let stored = self
            .transaction_with_retry(crate::txn::RetryPolicy::default(), |tx| async move {
                register(&tx, schema).await
            })
            .await?;
        Ok(self.registry().cache(&schema.table, stored))
    }

    /// The registered schema of `table`, read again from the store and cached.
    pub(crate) async fn reread_registry(&self, table: &str) -> Result<Arc<TableSchema>> {
        let stored = self
            .read(|tx| async move { read(&tx, table).await })
            .await?;
        Ok(self.registry().cache(table, stored))
    }

    /// Marks the indexes `built` of `table` readable, each if it is still registered as it was
    /// when its entries were built.
    pub(crate) async fn mark_readable(&self, table: &str, built: &[RegisteredIndex]) -> Result<()> {
        let stored = self
            .transaction_with_retry(crate::txn::RetryPolicy::default(), |tx| async move {
                let mut stored = read(&tx, table).await?;
                let mut changed = false;
                for index in &mut stored.indexes {
                    let was_built = built.iter().any(|b| {
                        b.name == index.name && b.fields == index.fields && b.unique == index.unique
                    });
                    if was_built && index.state != IndexState::Readable {
                        index.state = IndexState::Readable;
                        changed = true;
                    }
                }
                if changed {
                    tx.put(keyspace::schema_key(table), stored.encode()?)
                        .await?;
                }
                Ok(stored)
            })
            .await?;
        self.registry().cache(table, stored);
        Ok(())
    }

    /// Fails with [`TitoError::IndexNotReady`] unless index `index` of `schema`'s table can
    /// answer queries; a building index is read again from the store first.
    pub(crate) async fn check_readable(&self, schema: &Schema, index: &str) -> Result<()> {
        if self.registered(schema).await?.readable(index) {
            return Ok(());
        }
        let stored = self
            .read(|tx| async move { read(&tx, &schema.table).await })
            .await?;
        let readable = stored.readable(index);
        self.registry().cache(&schema.table, stored);
        match readable {
            true => Ok(()),
            false => Err(TitoError::IndexNotReady {
                table: schema.table.clone(),
                index: index.to_string(),
            }),
        }
    }

    /// Records a finished reindex through `schema`: its indexes have all their entries and are
    /// readable (one registered with another definition meanwhile is left as it is), and the
    /// indexes it does not declare lost theirs, so they are no longer registered.
    pub(crate) async fn reindexed(&self, schema: &Schema) -> Result<()> {
        let stored = self
            .transaction_with_retry(crate::txn::RetryPolicy::default(), |tx| async move {
                let mut stored = register(&tx, schema).await?;
                let before = stored.indexes.len();
                (stored.indexes).retain(|r| schema.indexes.iter().any(|i| i.name == r.name));
                let mut changed = stored.indexes.len() != before;
                for index in &schema.indexes {
                    let registered = (stored.indexes.iter_mut())
                        .find(|r| r.name == index.name && r.matches(index));
                    if let Some(registered) = registered
                        && registered.state != IndexState::Readable
                    {
                        registered.state = IndexState::Readable;
                        changed = true;
                    }
                }
                if changed {
                    tx.put(keyspace::schema_key(&schema.table), stored.encode()?)
                        .await?;
                }
                Ok(stored)
            })
            .await?;
        self.registry().cache(&schema.table, stored);
        Ok(())
    }
}

/// Registers the indexes of `schema` the stored schema lacks (or holds with another
/// definition): readable if the table has no rows, building otherwise. Returns the schema as
/// stored after it.
async fn register<B: Backend>(tx: &TitoTransaction<B>, schema: &Schema) -> Result<TableSchema> {
    let mut stored = read(tx, &schema.table).await?;
    if stored.covers(schema) {
        return Ok(stored);
    }
    let empty = (tx.scan(keyspace::record_range(&schema.table), 1).await?).is_empty();
    let state = match empty {
        true => IndexState::Readable,
        false => IndexState::Building,
    };
    for index in &schema.indexes {
        let registered = RegisteredIndex::of(index, state);
        match stored.indexes.iter_mut().find(|r| r.name == index.name) {
            Some(existing) if existing.matches(index) => {}
            Some(existing) => *existing = registered,
            None => stored.indexes.push(registered),
        }
    }
    stored.model_version = stored.model_version.max(schema.model_version);
    // By name, whatever order models declare them in.
    stored.indexes.sort_by(|a, b| a.name.cmp(&b.name));
    tx.put(keyspace::schema_key(&schema.table), stored.encode()?)
        .await?;
    Ok(stored)
}
