//! Model operations: build, update, delete and find, each a set of planned mutations applied in
//! the caller's transaction.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::Value;
use tracing::{Instrument, debug_span};

use crate::backend::{Backend, Embedded};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};
use crate::event::{self, TitoOptions};
use crate::foreign;
use crate::keyspace;
use crate::model::schema::{Relationship, Schema};
use crate::model::{TitoModelTrait, json_path, record, storable};
use crate::observe::Operation;
use crate::plan::{self, KeyPlan};
use crate::query::IndexQuery;
use crate::registry::RegisteredIndex;
use crate::relation;
use crate::txn::RetryPolicy;
use crate::txn::TitoTransaction;

/// Typed access to the records of model `T` on backend `B`. Cheap to clone.
pub struct TitoModel<T, B: Backend = Embedded> {
    pub(crate) engine: TitoEngine<B>,
    pub(crate) schema: Arc<Schema>,
    _model: PhantomData<fn() -> T>,
}

impl<T, B: Backend> Clone for TitoModel<T, B> {
    fn clone(&self) -> Self {
        TitoModel {
            engine: self.engine.clone(),
            schema: self.schema.clone(),
            _model: PhantomData,
        }
    }
}

impl<T, B: Backend> std::fmt::Debug for TitoModel<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TitoModel")
            .field("table", &self.schema.table)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> TitoEngine<B> {
    /// Typed access to the records of model `T`.
    pub fn model<T: TitoModelTrait>(self) -> TitoModel<T, B> {
        TitoModel {
            engine: self,
            schema: Arc::new(Schema::of::<T>()),
            _model: PhantomData,
        }
    }
}

/// The stored bytes of a record and its serialized form, stripped of hydrated fields.
pub(crate) struct Prepared {
    pub(crate) id: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) json: Option<Value>,
    pub(crate) plan: KeyPlan,
}

impl Prepared {
    /// The keys of its unique entries, in plan order.
    pub(crate) fn unique_keys(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        (self.plan.entries.iter())
            .filter(|e| e.unique_index.is_some())
            .map(|e| e.key.clone())
    }

    /// Fails with a unique violation if one of its unique entries (whose current holders, in
    /// plan order, are `holders`) belongs to another record of `table`.
    pub(crate) fn check_unique(&self, table: &str, holders: &[Option<Vec<u8>>]) -> Result<()> {
        let unique = (self.plan.entries.iter()).filter(|e| e.unique_index.is_some());
        for (entry, holder) in unique.zip(holders) {
            if let Some(holder) = holder
                && holder.as_slice() != self.id.as_bytes()
            {
                return Err(TitoError::UniqueViolation {
                    table: table.to_string(),
                    index: entry.unique_index.clone().unwrap_or_default(),
                    existing_id: String::from_utf8_lossy(holder).into_owned(),
                });
            }
        }
        Ok(())
    }
}

impl<T: TitoModelTrait, B: Backend> TitoModel<T, B> {
    /// The database this model reads and writes.
    pub fn engine(&self) -> &TitoEngine<B> {
        &self.engine
    }

    /// The model's table name.
    pub fn table(&self) -> &str {
        &self.schema.table
    }

    pub(crate) fn prepare(&self, record: &T, need_json: bool) -> Result<Prepared> {
        self.schema.check()?;
        let id = record.get_id();
        if id.is_empty() {
            return Err(TitoError::Serialize(format!(
                "a `{}` record has an empty id",
                self.schema.table
            )));
        }
        storable::check(record).map_err(|e| {
            TitoError::Serialize(format!("`{}` record `{id}`: {e}", self.schema.table))
        })?;
        let typed = record.typed_index_entries();
        let hydrates = !self.schema.relationships.is_empty() || !self.schema.has_many.is_empty();
        let json = if typed.is_some() && !need_json && !hydrates {
            None
        } else {
            Some(self.record_json(record)?)
        };
        let bytes = match &json {
            Some(json) => record::encode_record(T::MODEL_VERSION, json)?,
            None => record::encode_record(T::MODEL_VERSION, record)?,
        };
        let plan = KeyPlan::of(&self.schema.table, &id, record, json.as_ref(), typed)?;
        Ok(Prepared {
            id,
            bytes,
            json,
            plan,
        })
    }

    /// `record` as stored: serialized, without the fields relationships fill.
    fn record_json(&self, record: &T) -> Result<Value> {
        let mut json =
            serde_json::to_value(record).map_err(|e| TitoError::Serialize(e.to_string()))?;
        let hydrated_fields = (self.schema.relationships.iter())
            .map(|r| r.destination_field_name.as_str())
            .chain(self.schema.has_many.iter().map(|h| h.destination.as_str()));
        for destination in hydrated_fields {
            json_path::clear(&mut json, destination);
        }
        Ok(json)
    }

    /// Keeps, in the record `prepared` replaces (`stored` at `key`), what a newer model wrote:
    /// fails if a newer model version wrote it, and carries over the stored fields the model
    /// does not know (see `foreign`).
    fn keep_newer(
        &self,
        key: &[u8],
        stored: &[u8],
        record: &T,
        prepared: &mut Prepared,
    ) -> Result<()> {
        let (version, _) = record::stored(key, stored)?;
        if version > T::MODEL_VERSION {
            let reason = record::unreadable_version(version, T::MODEL_VERSION);
            return Err(record::decode_error(key, reason.to_string()));
        }
        let Some(known) = T::stored_fields().filter(|_| version == T::MODEL_VERSION) else {
            return Ok(());
        };
        let unknown = foreign::unknown_fields(known, key, stored)?;
        if unknown.is_empty() {
            return Ok(());
        }
        let mut json = match prepared.json.take() {
            Some(json) => json,
            None => self.record_json(record)?,
        };
        if let Value::Object(object) = &mut json {
            object.extend(unknown);
        }
        prepared.bytes = record::encode_record(T::MODEL_VERSION, &json)?;
        prepared.json = Some(json);
        Ok(())
    }

    /// Adds to `prepared` the entries of `indexes`, registered for the table but not declared
    /// by the model, and checks their unique values in `tx`.
    async fn plan_foreign(
        &self,
        record: &T,
        prepared: &mut Prepared,
        indexes: &[&RegisteredIndex],
        tx: &TitoTransaction<B>,
    ) -> Result<()> {
        let json = match &prepared.json {
            Some(json) => std::borrow::Cow::Borrowed(json),
            None => std::borrow::Cow::Owned(self.record_json(record)?),
        };
        let (table, id) = (&self.schema.table, &prepared.id);
        prepared.plan.extend_registered(table, id, &json, indexes)?;
        if indexes.iter().any(|index| index.unique) {
            let unique: Vec<Vec<u8>> = prepared.unique_keys().collect();
            prepared.check_unique(&self.schema.table, &tx.batch_get(&unique).await?)?;
        }
        Ok(())
    }

    /// Writes the index entries `prepared` plans, except those whose keys are in `skip`.
    async fn write_entries(
        &self,
        tx: &TitoTransaction<B>,
        prepared: &mut Prepared,
        skip: &HashSet<&[u8]>,
    ) -> Result<()> {
        for entry in std::mem::take(&mut prepared.plan.entries) {
            if skip.contains(entry.key.as_slice()) {
                continue;
            }
            let value = entry.value(&prepared.id);
            tx.put(entry.key, value).await?;
        }
        Ok(())
    }

    /// Stores a new record with its index entries. Fails with [`TitoError::KeyExists`] if the
    /// id is taken and [`TitoError::UniqueViolation`] if a unique index value is.
    pub async fn build(&self, record: T, tx: &TitoTransaction<B>) -> Result<T> {
        self.build_with_options(record, TitoOptions::default(), tx)
            .await
    }

    /// [`build`](Self::build), publishing the events `options` asks for in the same transaction.
    pub async fn build_with_options(
        &self,
        record: T,
        options: TitoOptions,
        tx: &TitoTransaction<B>,
    ) -> Result<T> {
        let mut built = self
            .build_many_with_options(vec![record], options, tx)
            .await?;
        built
            .pop()
            .ok_or_else(|| TitoError::Custom("build stored no record".into()))
    }

    /// Stores several new records with one batched read for all their existence and unique
    /// checks (one round trip on TiKV, however many records). Fails like [`build`](Self::build),
    /// also when two of the records share an id or a unique value.
    pub async fn build_many(&self, records: Vec<T>, tx: &TitoTransaction<B>) -> Result<Vec<T>> {
        self.build_many_with_options(records, TitoOptions::default(), tx)
            .await
    }

    /// [`build_many`](Self::build_many), publishing the events `options` asks for.
    pub async fn build_many_with_options(
        &self,
        records: Vec<T>,
        options: TitoOptions,
        tx: &TitoTransaction<B>,
    ) -> Result<Vec<T>> {
        let mut records = records;
        if self.schema.version_field.is_some() {
            records.iter_mut().for_each(|record| record.set_version(1));
        }
        let work = async {
            let registry = self.engine.registered(&self.schema).await?;
            let mut prepared = records
                .iter()
                .map(|record| self.prepare(record, options.event.is_some()))
                .collect::<Result<Vec<_>>>()?;
            self.check_batch_duplicates(&prepared)?;
            let mut keys: Vec<Vec<u8>> = prepared
                .iter()
                .map(|p| keyspace::record_key(&self.schema.table, &p.id))
                .collect();
            keys.extend(prepared.iter().flat_map(Prepared::unique_keys));
            let found = tx.batch_get(&keys).await?;
            keys.truncate(prepared.len());
            let (existing, mut holders) = found.split_at(prepared.len());
            for (p, existing) in prepared.iter().zip(existing) {
                if existing.is_some() {
                    return Err(TitoError::KeyExists(format!(
                        "`{}` record `{}`",
                        self.schema.table, p.id
                    )));
                }
                let (mine, rest) = holders.split_at(p.unique_keys().count());
                p.check_unique(&self.schema.table, mine)?;
                holders = rest;
            }
            let foreign = foreign::indexes(&self.schema, &registry)?;
            if !foreign.is_empty() {
                for (record, p) in records.iter().zip(prepared.iter_mut()) {
                    self.plan_foreign(record, p, &foreign, tx).await?;
                }
                self.check_batch_duplicates(&prepared)?;
            }
            for ((record, p), record_key) in records.iter().zip(&mut prepared).zip(keys) {
                tx.put(record_key, std::mem::take(&mut p.bytes)).await?;
                let manifest = p.plan.manifest();
                self.write_entries(tx, p, &HashSet::new()).await?;
                tx.put(keyspace::manifest_key(&self.schema.table, &p.id), manifest)
                    .await?;
                self.publish(tx, record, p, &options).await?;
            }
            Ok(records)
        };
        Operation::new("build", &self.schema)
            .run(self.engine.slow(), work, Vec::len)
            .await
    }

    /// Fails if two records of one batch share an id or a unique index value.
    fn check_batch_duplicates(&self, prepared: &[Prepared]) -> Result<()> {
        let mut ids = HashSet::new();
        let mut unique: HashMap<&[u8], &str> = HashMap::new();
        for p in prepared {
            if !ids.insert(p.id.as_str()) {
                return Err(TitoError::KeyExists(format!(
                    "`{}` record `{}` (twice in one batch)",
                    self.schema.table, p.id
                )));
            }
            for entry in p.plan.entries.iter().filter(|e| e.unique_index.is_some()) {
                if let Some(holder) = unique.insert(&entry.key, &p.id) {
                    return Err(TitoError::UniqueViolation {
                        table: self.schema.table.clone(),
                        index: entry.unique_index.clone().unwrap_or_default(),
                        existing_id: holder.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Replaces a stored record, moving exactly the index entries that changed. Fails with
    /// [`TitoError::NotFound`] if the record does not exist, and for a model with a version field
    /// with [`TitoError::VersionConflict`] if it changed since `record` was read.
    pub async fn update(&self, record: T, tx: &TitoTransaction<B>) -> Result<T> {
        self.update_with_options(record, TitoOptions::default(), tx)
            .await
    }

    /// [`update`](Self::update), publishing the events `options` asks for in the same transaction.
    pub async fn update_with_options(
        &self,
        record: T,
        options: TitoOptions,
        tx: &TitoTransaction<B>,
    ) -> Result<T> {
        self.replace(record, options, tx, false).await
    }

    /// Stores `record` whether or not its id exists: a new record with its index entries, or a
    /// replacement moving exactly the entries that changed. Fails with
    /// [`TitoError::UniqueViolation`] if another record holds one of its unique values, and for
    /// a model with a version field with [`TitoError::VersionConflict`] unless the record is
    /// stored at its version (or not stored, and at version 0).
    pub async fn upsert(&self, record: T, tx: &TitoTransaction<B>) -> Result<T> {
        self.upsert_with_options(record, TitoOptions::default(), tx)
            .await
    }

    /// [`upsert`](Self::upsert), publishing the events `options` asks for.
    pub async fn upsert_with_options(
        &self,
        record: T,
        options: TitoOptions,
        tx: &TitoTransaction<B>,
    ) -> Result<T> {
        self.replace(record, options, tx, true).await
    }

    /// Reads record `id`, applies `change` to it and stores it (moving the index entries that
    /// changed), in its own transaction, retried on conflicts: `change` may run more than once.
    /// Fails with [`TitoError::NotFound`] if the record does not exist, and with
    /// [`TitoError::InvalidQuery`] if `change` changes the id.
    pub async fn update_with(&self, id: &str, change: impl Fn(&mut T)) -> Result<T> {
        let change = &change;
        self.engine
            .transaction_with_retry(RetryPolicy::default(), |tx| async move {
                self.update_with_tx(id, &tx, change).await
            })
            .await
    }

    /// [`update_with`](Self::update_with) inside `tx`.
    pub async fn update_with_tx(
        &self,
        id: &str,
        tx: &TitoTransaction<B>,
        change: impl FnOnce(&mut T),
    ) -> Result<T> {
        let mut record = self.find_by_id_tx(id, Vec::new(), tx).await?;
        change(&mut record);
        let changed = record.get_id();
        if changed != id {
            return Err(TitoError::InvalidQuery(format!(
                "`{}` record `{id}`: an update may not change the id (to `{changed}`)",
                self.schema.table
            )));
        }
        self.update(record, tx).await
    }

    /// Writes `record` over what its id holds; a missing record is an error unless `create`.
    async fn replace(
        &self,
        record: T,
        options: TitoOptions,
        tx: &TitoTransaction<B>,
        create: bool,
    ) -> Result<T> {
        let operation = if create { "upsert" } else { "update" };
        let mut registry = self.engine.registered(&self.schema).await?;
        let mut record = record;
        // The version the write carries, checked against the stored one below; the record is
        // stored with the next.
        let expected = match self.schema.version_field {
            Some(_) => {
                let expected = record.version();
                let next = expected.checked_add(1).ok_or_else(|| {
                    TitoError::InvalidArgument(format!(
                        "`{}` record `{}` is at the last version",
                        self.schema.table,
                        record.get_id()
                    ))
                })?;
                record.set_version(next);
                Some(expected)
            }
            None => None,
        };
        let work = async {
            let mut prepared = self.prepare(&record, options.event.is_some())?;
            let record_key = keyspace::record_key(&self.schema.table, &prepared.id);
            let manifest_key = keyspace::manifest_key(&self.schema.table, &prepared.id);
            let mut keys = vec![record_key.clone(), manifest_key.clone()];
            keys.extend(prepared.unique_keys());
            let found = tx.batch_get(&keys).await?;
            let stored = found.first().and_then(Option::as_ref);
            if !create && stored.is_none() {
                return Err(self.not_found(&prepared.id));
            }
            if let (Some(expected), Some(field)) = (expected, &self.schema.version_field) {
                self.check_version(&record_key, &prepared.id, stored, field, expected)?;
            }
            let stored_manifest = found.get(1).and_then(Option::as_ref);
            let old_keys = match stored_manifest {
                Some(bytes) => plan::decode_manifest(&manifest_key, bytes)?,
                None => Vec::new(),
            };
            prepared.check_unique(&self.schema.table, found.get(2..).unwrap_or_default())?;
            if let Some(stored) = stored {
                self.keep_newer(&record_key, stored, &record, &mut prepared)?;
            }
            if foreign::unknown_entries(&self.schema, &registry, &old_keys) {
                // Another process registered an index since this one cached the registry.
                registry = self.engine.reread_registry(&self.schema.table).await?;
            }
            let foreign = foreign::indexes(&self.schema, &registry)?;
            if !foreign.is_empty() {
                self.plan_foreign(&record, &mut prepared, &foreign, tx)
                    .await?;
            }
            let new_set: HashSet<&[u8]> = (prepared.plan.entries.iter())
                .map(|e| e.key.as_slice())
                .collect();
            let old_set: HashSet<&[u8]> = old_keys.iter().map(Vec::as_slice).collect();
            for old in &old_keys {
                if !new_set.contains(old.as_slice()) {
                    tx.delete(old.clone()).await?;
                }
            }
            tx.put(record_key, std::mem::take(&mut prepared.bytes))
                .await?;
            if old_set != new_set || stored_manifest.is_none() {
                tx.put(manifest_key, prepared.plan.manifest()).await?;
            }
            self.write_entries(tx, &mut prepared, &old_set).await?;
            self.publish(tx, &record, &prepared, &options).await?;
            Ok(record)
        };
        Operation::new(operation, &self.schema)
            .run(self.engine.slow(), work, |_| 1)
            .await
    }

    /// Fails with [`TitoError::VersionConflict`] unless the stored record (`None`: none is) is
    /// at version `expected`; a stored record without the field is at version 0.
    fn check_version(
        &self,
        key: &[u8],
        id: &str,
        stored: Option<&Vec<u8>>,
        field: &str,
        expected: u64,
    ) -> Result<()> {
        let stored = match stored {
            Some(bytes) => Some(record::top_level_u64(key, bytes, field)?.unwrap_or(0)),
            None => None,
        };
        if stored.unwrap_or(0) == expected {
            return Ok(());
        }
        Err(TitoError::VersionConflict {
            table: self.schema.table.clone(),
            id: id.to_string(),
            expected,
            stored,
        })
    }

    /// Removes a record and all its index entries. Fails with [`TitoError::NotFound`] if the
    /// record does not exist.
    pub async fn delete_by_id(&self, id: &str, tx: &TitoTransaction<B>) -> Result<()> {
        self.delete_by_id_with_options(id, TitoOptions::default(), tx)
            .await
    }

    /// [`delete_by_id`](Self::delete_by_id), publishing the events `options` asks for.
    pub async fn delete_by_id_with_options(
        &self,
        id: &str,
        options: TitoOptions,
        tx: &TitoTransaction<B>,
    ) -> Result<()> {
        let work = async {
            self.schema.check()?;
            let record_key = keyspace::record_key(&self.schema.table, id);
            let manifest_key = keyspace::manifest_key(&self.schema.table, id);
            let found = tx
                .batch_get(&[record_key.clone(), manifest_key.clone()])
                .await?;
            let Some(Some(bytes)) = found.first() else {
                return Err(self.not_found(id));
            };
            if let Some(Some(manifest)) = found.get(1) {
                for key in plan::decode_manifest(&manifest_key, manifest)? {
                    tx.delete(key).await?;
                }
            }
            if options.event.is_some() {
                let json = self.current_value(&record_key, bytes)?;
                let old: T = record::from_value(&record_key, json.clone())?;
                event::publish(tx, &old, &self.schema.table, id, &json, &options).await?;
            }
            tx.delete(record_key).await?;
            tx.delete(manifest_key).await?;
            Ok(())
        };
        Operation::new("delete", &self.schema)
            .run(self.engine.slow(), work, |()| 1)
            .await
    }

    async fn publish(
        &self,
        tx: &TitoTransaction<B>,
        record: &T,
        prepared: &Prepared,
        options: &TitoOptions,
    ) -> Result<()> {
        match (&options.event, &prepared.json) {
            (None, _) => Ok(()),
            (Some(_), Some(json)) => {
                event::publish(tx, record, &self.schema.table, &prepared.id, json, options).await
            }
            (Some(_), None) => Err(TitoError::Serialize(
                "events need the serialized record".into(),
            )),
        }
    }

    fn not_found(&self, id: &str) -> TitoError {
        TitoError::NotFound(format!("`{}` record `{id}`", self.schema.table))
    }

    /// Reads a record by id from a consistent snapshot, or `None` if it does not exist.
    pub async fn get(&self, id: &str) -> Result<Option<T>> {
        (self.engine)
            .read(|tx| async move { self.find_optional_tx(id, Vec::new(), &tx).await })
            .await
    }

    /// Reads a record by id from a consistent snapshot, hydrating the named relationships
    /// (destination field names). Fails with [`TitoError::NotFound`] if it does not exist.
    pub async fn find_by_id(&self, id: &str, relationships: Vec<String>) -> Result<T> {
        (self.engine)
            .read(|tx| async move { self.find_by_id_tx(id, relationships, &tx).await })
            .await
    }

    /// [`find_by_id`](Self::find_by_id) inside `tx`, seeing its uncommitted writes.
    pub async fn find_by_id_tx(
        &self,
        id: &str,
        relationships: Vec<String>,
        tx: &TitoTransaction<B>,
    ) -> Result<T> {
        self.find_optional_tx(id, relationships, tx)
            .await?
            .ok_or_else(|| self.not_found(id))
    }

    /// Reads a record by id inside `tx`, or `None` if it does not exist.
    pub async fn find_optional_tx(
        &self,
        id: &str,
        relationships: Vec<String>,
        tx: &TitoTransaction<B>,
    ) -> Result<Option<T>> {
        let work = async {
            self.schema.check()?;
            let key = keyspace::record_key(&self.schema.table, id);
            let Some(bytes) = tx.get(&key).await? else {
                return Ok(None);
            };
            let mut records = self
                .decode_rows(vec![(key, bytes)], &relationships, tx)
                .await?;
            Ok(records.pop())
        };
        Operation::new("get", &self.schema)
            .run(self.engine.slow(), work, |found| {
                usize::from(found.is_some())
            })
            .await
    }

    /// Decodes stored rows into records, hydrating `relationships` with one batched read each.
    pub(crate) async fn decode_rows(
        &self,
        rows: Vec<(Vec<u8>, Vec<u8>)>,
        relationships: &[String],
        tx: &TitoTransaction<B>,
    ) -> Result<Vec<T>> {
        if relationships.is_empty() {
            return rows
                .iter()
                .map(|(key, bytes)| record::decode(key, bytes))
                .collect();
        }
        let span = debug_span!(
            "tito.hydrate",
            db.collection.name = %self.schema.table,
            tito.relationships = %relationships.join(","),
            rows = rows.len(),
        );
        self.hydrate(rows, relationships, tx).instrument(span).await
    }

    /// Decodes `rows` with `relationships` (at least one) hydrated.
    async fn hydrate(
        &self,
        rows: Vec<(Vec<u8>, Vec<u8>)>,
        relationships: &[String],
        tx: &TitoTransaction<B>,
    ) -> Result<Vec<T>> {
        // In request order (a nested path may hydrate inside an earlier destination), once each.
        let mut relations = Vec::with_capacity(relationships.len());
        for name in relationships {
            let relation = self.schema.relationship(name)?;
            if !relations.contains(&relation) {
                relations.push(relation);
            }
        }
        let (shapes, table) = (&self.schema.shapes, &self.schema.table);
        let embedded: Vec<_> = (relations.iter())
            .filter_map(|r| match r {
                Relationship::Embedded(config) => Some(*config),
                Relationship::HasMany(_) => None,
            })
            .collect();
        if embedded.len() == relations.len()
            && let Some(records) =
                relation::hydrate_top_level(tx, shapes, table, &embedded, &rows).await?
        {
            return Ok(records);
        }
        let mut values = rows
            .iter()
            .map(|(key, bytes)| self.current_value(key, bytes))
            .collect::<Result<Vec<_>>>()?;
        let mut hydrated = relation::Hydrated::default();
        for relation in relations {
            match relation {
                Relationship::Embedded(config) => {
                    relation::hydrate(tx, shapes, config, &mut values, &mut hydrated).await?
                }
                Relationship::HasMany(def) => {
                    relation::hydrate_has_many(tx, shapes, def, &rows, &mut values, &mut hydrated)
                        .await?
                }
            }
        }
        rows.iter()
            .zip(values)
            .map(|((key, _), value)| record::from_value(key, value))
            .collect()
    }

    /// A stored record of this table as JSON in the shape of the current model (converted when
    /// an older model version wrote it).
    fn current_value(&self, key: &[u8], bytes: &[u8]) -> Result<serde_json::Value> {
        let json = record::current_json(&self.schema.shapes, &self.schema.table, key, bytes)?;
        record::decode_json(key, &json)
    }

    /// Starts a query on the index `name`; add one `.value(..)` per leading index field.
    pub fn query_by_index(&self, name: impl Into<String>) -> IndexQuery<T, B> {
        IndexQuery::new(self.clone(), name.into())
    }
}
