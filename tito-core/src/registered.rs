//! Index maintenance through the schema registry, for tools that know no model types (the
//! `tito` command line): each table's registered indexes, and verifying and rebuilding them
//! from their registered definitions.
//!
//! An index is computed from its registered fields as the serialized-record path computes any
//! index, from the record as stored. What cannot be computed that way stays as it is and is
//! checked for orphans only: entries of an index with a condition or a generator, and every
//! entry of a record another model version wrote than the registry's (its model computes them
//! from the converted record).

use crate::backend::{Backend, key_after};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::record;
use crate::ops::Prepared;
use crate::plan::KeyPlan;
use crate::registry::{RegisteredIndex, TableSchema};
use crate::reindex::{Pass, Planner, Records, ReindexProgress, VerifyReport};

/// Plans records from the registered definitions of their table's indexes.
struct RegistryPlanner {
    table: String,
    model_version: u32,
    /// The indexes computed from their fields.
    computed: Vec<RegisteredIndex>,
    /// Key prefixes of the others, whose entries stay as they are.
    kept: Vec<Vec<u8>>,
}

impl RegistryPlanner {
    fn new(table: &str, schema: &TableSchema) -> Self {
        let (computed, kept): (Vec<_>, Vec<_>) =
            (schema.indexes.iter().cloned()).partition(RegisteredIndex::computable);
        RegistryPlanner {
            table: table.to_string(),
            model_version: schema.model_version.max(1),
            kept: (kept.iter())
                .map(|index| keyspace::index_prefix(table, &index.name, index.unique))
                .collect(),
            computed,
        }
    }
}

impl Planner for RegistryPlanner {
    fn table(&self) -> &str {
        &self.table
    }

    fn plan(&self, key: &[u8], stored: &[u8]) -> Result<Option<Prepared>> {
        let (version, json) = record::stored(key, stored)?;
        if version != self.model_version {
            return Ok(None);
        }
        let (_, id) = keyspace::parse_record_key(key)
            .ok_or_else(|| record::decode_error(key, "not a record key".into()))?;
        let json = record::decode_json(key, json)?;
        let mut plan = KeyPlan::default();
        let computed: Vec<&RegisteredIndex> = self.computed.iter().collect();
        plan.extend_registered(&self.table, &id, &json, &computed)?;
        Ok(Some(Prepared {
            id,
            bytes: stored.to_vec(),
            json: None,
            plan,
        }))
    }

    fn keeps(&self, entry: &[u8]) -> bool {
        self.kept.iter().any(|prefix| entry.starts_with(prefix))
    }
}

impl<B: Backend> TitoEngine<B> {
    /// Every table with a registered schema, by name, from one snapshot.
    pub async fn table_schemas(&self) -> Result<Vec<(String, TableSchema)>> {
        self.read(|tx| async move {
            let mut range = keyspace::schema_range();
            let mut schemas = Vec::new();
            loop {
                let rows = tx.scan(range.clone(), 100).await?;
                let Some((last, _)) = rows.last() else { break };
                range.start = key_after(last);
                for (key, bytes) in rows {
                    let table = keyspace::parse_schema_key(&key)
                        .ok_or_else(|| record::decode_error(&key, "not a schema key".into()))?;
                    schemas.push((table, TableSchema::decode(&key, &bytes)?));
                }
            }
            Ok(schemas)
        })
        .await
    }

    /// The registered schema of `table`; [`TitoError::NotFound`] if it has none.
    pub async fn table_schema(&self, table: &str) -> Result<TableSchema> {
        let key = keyspace::schema_key(table);
        let stored = self.read(|tx| async move { tx.get(&key).await }).await?;
        match stored {
            Some(bytes) => TableSchema::decode(&keyspace::schema_key(table), &bytes),
            None => Err(TitoError::NotFound(format!(
                "table `{table}` has no registered schema"
            ))),
        }
    }

    /// Checks `table`'s index entries against its registered indexes, in one snapshot, as
    /// [`TitoModel::verify`](crate::TitoModel::verify) does against a model (see the module
    /// documentation for what can be recomputed).
    pub async fn verify_table(&self, table: &str) -> Result<VerifyReport> {
        self.verify_table_with(table, |_| {}).await
    }

    /// [`verify_table`](Self::verify_table), calling `progress` with the report so far after
    /// each page of records or entries.
    pub async fn verify_table_with(
        &self,
        table: &str,
        progress: impl FnMut(&VerifyReport),
    ) -> Result<VerifyReport> {
        let schema = self.table_schema(table).await?;
        Records::new(self, RegistryPlanner::new(table, &schema))
            .verify(progress)
            .await
    }

    /// Removes `table`'s orphan entries and rebuilds the entries of its registered indexes
    /// from their definitions, `batch` records per transaction beside live writers, calling
    /// `progress` after each batch; then marks the indexes it computed readable, unless it had
    /// to skip records another model version wrote (their model's `migrate` or `reindex` builds
    /// those). Returns the orphans removed and the rebuild's totals.
    pub async fn reindex_table(
        &self,
        table: &str,
        batch: usize,
        progress: impl FnMut(&ReindexProgress),
    ) -> Result<(u64, ReindexProgress)> {
        let schema = self.table_schema(table).await?;
        let planner = RegistryPlanner::new(table, &schema);
        let computed = planner.computed.clone();
        let records = Records::new(self, planner);
        let orphans = records.remove_orphans(batch).await?;
        let done = records.pass(Pass::Reindex, batch, progress).await?;
        if done.skipped == 0 {
            self.mark_readable(table, &computed).await?;
        }
        Ok((orphans, done))
    }
}
