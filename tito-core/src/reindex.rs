//! Index maintenance over stored rows: build the entries of an index added after its rows were
//! written, and verify or repair that every index entry matches its record.
//!
//! Reindexing runs online, a batch of records per transaction, so writers keep going: each batch
//! re-reads its records inside the transaction and writes a record whose entries change back
//! (its stored bytes, unchanged), so a concurrent update of the same record conflicts (on every
//! backend) instead of racing.

use std::collections::HashSet;

use crate::backend::{Backend, KeyRange, KvPair, key_after};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::{TitoModelTrait, record};
use crate::ops::{Prepared, TitoModel};
use crate::plan;
use crate::txn::{RetryPolicy, TitoTransaction};

/// How many problem keys a [`VerifyReport`] lists by name.
const SAMPLE_LIMIT: usize = 20;

/// Progress of [`TitoModel::reindex`], reported after every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReindexProgress {
    /// Records examined so far.
    pub records: u64,
    /// Index entries written so far.
    pub added: u64,
    /// Index entries removed so far.
    pub removed: u64,
    /// Records rewritten in the current model version so far (by
    /// [`migrate`](TitoModel::migrate) only).
    pub migrated: u64,
    /// Records left as they were because their entries cannot be recomputed without their
    /// model (by [`TitoEngine::reindex_table`] only: written by another model version than the
    /// registry's).
    pub skipped: u64,
}

/// What [`TitoModel::verify`] found, read from one consistent snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records examined.
    pub records: u64,
    /// Index entries examined.
    pub entries: u64,
    /// Entries a record calls for that are not stored.
    pub missing: u64,
    /// Stored entries that no record owns (e.g. of an index since removed from the model).
    pub orphans: u64,
    /// Records whose manifest does not list exactly the entries they call for.
    pub stale_manifests: u64,
    /// Records whose entries could not be recomputed (by [`TitoEngine::verify_table`]: written
    /// by another model version than the registry's), so only their orphans were checked.
    pub unchecked: u64,
    /// Up to 20 of the problem keys, printed readably.
    pub samples: Vec<String>,
}

impl VerifyReport {
    /// Whether every entry matches its record.
    pub fn is_consistent(&self) -> bool {
        self.missing == 0 && self.orphans == 0 && self.stale_manifests == 0
    }

    fn note(&mut self, key: &[u8]) {
        if self.samples.len() < SAMPLE_LIMIT {
            self.samples.push(keyspace::display_key(key));
        }
    }
}

/// Whether a pass over the records also rewrites those older model versions wrote.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    Reindex,
    Migrate,
}

/// How a pass over a table's records plans each record's index entries: through its model
/// type, or from the schema registry for tools that know none.
pub(crate) trait Planner: Sync {
    /// The table the records are in.
    fn table(&self) -> &str;

    /// The record stored as `stored` at `key`, with the entries it calls for; `None` for a
    /// record the planner cannot plan, whose entries stay as they are.
    fn plan(&self, key: &[u8], stored: &[u8]) -> Result<Option<Prepared>>;

    /// Whether a migration rewrites the record (an older model version wrote it).
    fn outdated(&self, _key: &[u8], _stored: &[u8]) -> Result<bool> {
        Ok(false)
    }

    /// Whether a listed entry stays as it is: one of an index the planner cannot compute.
    fn keeps(&self, _entry: &[u8]) -> bool {
        false
    }
}

/// Plans records through model `T`.
struct ModelPlanner<'a, T, B: Backend>(&'a TitoModel<T, B>);

impl<T: TitoModelTrait, B: Backend> Planner for ModelPlanner<'_, T, B> {
    fn table(&self) -> &str {
        &self.0.schema.table
    }

    fn plan(&self, key: &[u8], stored: &[u8]) -> Result<Option<Prepared>> {
        let record: T = record::decode(key, stored)?;
        self.0.prepare(&record, false).map(Some)
    }

    fn outdated(&self, key: &[u8], stored: &[u8]) -> Result<bool> {
        Ok(record::stored(key, stored)?.0 != T::MODEL_VERSION)
    }
}

impl<T: TitoModelTrait, B: Backend> TitoModel<T, B> {
    /// Brings every record's index entries and manifest in line with the model's current
    /// indexes (writing missing entries, removing ones it no longer calls for), `batch` records
    /// per transaction, calling `progress` after each batch, then marks the model's indexes
    /// readable in the schema registry. Use it after adding an index to a model whose table
    /// already holds rows: until then, queries on the index fail with
    /// [`TitoError::IndexNotReady`]. A unique index whose value two records share fails with
    /// [`TitoError::UniqueViolation`] naming one of them and stays unreadable; batches already
    /// done stay done.
    pub async fn reindex(
        &self,
        batch: usize,
        progress: impl FnMut(&ReindexProgress),
    ) -> Result<ReindexProgress> {
        self.pass(Pass::Reindex, batch, progress).await
    }

    /// Rewrites every record an older version of the model wrote in the current shape (read
    /// through [`from_stored`](TitoModelTrait::from_stored), stored with
    /// [`MODEL_VERSION`](TitoModelTrait::MODEL_VERSION)), and reindexes every record as
    /// [`reindex`](Self::reindex) does, `batch` records per transaction beside live writers,
    /// calling `progress` after each batch. Safe to stop and run again: finished batches stay
    /// finished.
    pub async fn migrate(
        &self,
        batch: usize,
        progress: impl FnMut(&ReindexProgress),
    ) -> Result<ReindexProgress> {
        self.pass(Pass::Migrate, batch, progress).await
    }

    async fn pass(
        &self,
        pass: Pass,
        batch: usize,
        progress: impl FnMut(&ReindexProgress),
    ) -> Result<ReindexProgress> {
        // Registered before the first batch, so that writers through models lacking these
        // indexes maintain the entries a batch writes, instead of dropping them as unknown.
        self.engine.registered(&self.schema).await?;
        let records = Records::new(&self.engine, ModelPlanner(self));
        let done = records.pass(pass, batch, progress).await?;
        // Every record has its entries: the model's indexes can answer queries, and the
        // entries of indexes it lacks are gone.
        self.engine.reindexed(&self.schema).await?;
        Ok(done)
    }

    /// Checks, in one snapshot, that every record's entries are stored and listed in its
    /// manifest, and that every stored entry of the table belongs to a record.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.schema.check()?;
        Records::new(&self.engine, ModelPlanner(self))
            .verify(|_| {})
            .await
    }

    /// Deletes stored entries of the table that no record's manifest lists, then
    /// [`reindex`](Self::reindex)es every record. Returns the number of orphans removed and the
    /// reindex totals.
    pub async fn repair(&self, batch: usize) -> Result<(u64, ReindexProgress)> {
        self.schema.check()?;
        let orphans = Records::new(&self.engine, ModelPlanner(self))
            .remove_orphans(batch)
            .await?;
        let progress = self.reindex(batch, |_| {}).await?;
        Ok((orphans, progress))
    }
}

/// Passes over the records of one table, planned by `P`.
pub(crate) struct Records<'a, B: Backend, P> {
    engine: &'a TitoEngine<B>,
    planner: P,
}

impl<'a, B: Backend, P: Planner> Records<'a, B, P> {
    pub(crate) fn new(engine: &'a TitoEngine<B>, planner: P) -> Self {
        Records { engine, planner }
    }

    fn table(&self) -> &str {
        self.planner.table()
    }

    /// Reindexes (or migrates) every record, `batch` per transaction, calling `progress` after
    /// each batch.
    pub(crate) async fn pass(
        &self,
        pass: Pass,
        batch: usize,
        mut progress: impl FnMut(&ReindexProgress),
    ) -> Result<ReindexProgress> {
        let batch = batch.max(1);
        let mut done = ReindexProgress::default();
        let mut range = keyspace::record_range(self.table());
        loop {
            let keys = self.record_keys(&range, batch).await?;
            let Some(last) = keys.last() else {
                return Ok(done);
            };
            range.start = key_after(last);
            let step = self
                .engine
                .transaction_with_retry(RetryPolicy::default(), |tx| {
                    let keys = &keys;
                    async move { self.reindex_batch(pass, keys, &tx).await }
                })
                .await?;
            done.records += keys.len() as u64;
            done.added += step.added;
            done.removed += step.removed;
            done.migrated += step.migrated;
            done.skipped += step.skipped;
            progress(&done);
        }
    }

    /// The record keys of the next `limit` records in `range`, read from a snapshot so the
    /// write transactions never hold a range read.
    async fn record_keys(&self, range: &KeyRange, limit: usize) -> Result<Vec<Vec<u8>>> {
        let tx = self.engine.snapshot().await?;
        let rows = tx.scan(range.clone(), limit).await;
        let rows = tx.finish(rows).await?;
        Ok(rows.into_iter().map(|(key, _)| key).collect())
    }

    /// The entries a record calls for: those planned, and the listed ones the planner keeps.
    fn called_for(&self, prepared: &Prepared, listed: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut keys = prepared.plan.keys();
        keys.extend(listed.iter().filter(|key| self.planner.keeps(key)).cloned());
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Reindexes the records at `keys` in `tx` (migrating them too in a [`Pass::Migrate`]);
    /// returns the entries added and removed and the records migrated.
    async fn reindex_batch(
        &self,
        pass: Pass,
        keys: &[Vec<u8>],
        tx: &TitoTransaction<B>,
    ) -> Result<ReindexProgress> {
        let (records, skipped) = self.decode_present(keys, tx).await?;
        let mut done = ReindexProgress {
            skipped,
            ..ReindexProgress::default()
        };
        let manifests = self.manifests(&records, tx).await?;
        let planned: Vec<Vec<u8>> = records
            .iter()
            .flat_map(|(_, _, prepared)| prepared.plan.keys())
            .collect();
        let stored: HashSet<&[u8]> = planned
            .iter()
            .zip(tx.batch_get(&planned).await?)
            .filter(|(_, value)| value.is_some())
            .map(|(key, _)| key.as_slice())
            .collect();
        for ((key, stored_bytes, prepared), listed) in records.iter().zip(manifests) {
            let new_keys = self.called_for(prepared, &listed);
            let old: HashSet<&[u8]> = listed.iter().map(Vec::as_slice).collect();
            let new: HashSet<&[u8]> = new_keys.iter().map(Vec::as_slice).collect();
            let absent: Vec<_> = prepared
                .plan
                .entries
                .iter()
                .filter(|entry| !stored.contains(entry.key.as_slice()))
                .collect();
            let migrate = pass == Pass::Migrate && self.planner.outdated(key, stored_bytes)?;
            if old == new && absent.is_empty() && !migrate {
                continue;
            }
            let unique: Vec<Vec<u8>> = prepared.unique_keys().collect();
            prepared.check_unique(self.table(), &tx.batch_get(&unique).await?)?;
            for stale in old.difference(&new) {
                tx.delete(stale.to_vec()).await?;
                done.removed += 1;
            }
            for entry in absent {
                tx.put(entry.key.clone(), entry.value(&prepared.id)).await?;
                done.added += 1;
            }
            let manifest_key = keyspace::manifest_key(self.table(), &prepared.id);
            tx.put(
                manifest_key,
                plan::encode_manifest(new_keys.iter().map(Vec::as_slice)),
            )
            .await?;
            if migrate {
                tx.put(key.clone(), prepared.bytes.clone()).await?;
                done.migrated += 1;
            } else {
                // Writing the record makes a concurrent update of it a write-write conflict. The
                // stored bytes go back as they were: re-serializing them through the running
                // model would drop what it does not know (fields of a newer model, number
                // spellings).
                tx.put(key.clone(), stored_bytes.clone()).await?;
            }
        }
        Ok(done)
    }

    /// The records still stored at `keys` that the planner plans (key, stored bytes, and the
    /// record as planned), and how many stored ones it could not plan.
    async fn decode_present(
        &self,
        keys: &[Vec<u8>],
        tx: &TitoTransaction<B>,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>, Prepared)>, u64)> {
        let mut records = Vec::with_capacity(keys.len());
        let mut skipped = 0;
        for (key, stored) in keys.iter().zip(tx.batch_get(keys).await?) {
            let Some(stored) = stored else { continue };
            match self.planner.plan(key, &stored)? {
                Some(prepared) => records.push((key.clone(), stored, prepared)),
                None => skipped += 1,
            }
        }
        Ok((records, skipped))
    }

    /// The index keys each record's manifest lists, in one batched read.
    async fn manifests(
        &self,
        records: &[(Vec<u8>, Vec<u8>, Prepared)],
        tx: &TitoTransaction<B>,
    ) -> Result<Vec<Vec<Vec<u8>>>> {
        let keys: Vec<Vec<u8>> = records
            .iter()
            .map(|(_, _, prepared)| keyspace::manifest_key(self.table(), &prepared.id))
            .collect();
        let found = tx.batch_get(&keys).await?;
        keys.iter()
            .zip(found)
            .map(|(key, bytes)| match bytes {
                Some(bytes) => plan::decode_manifest(key, &bytes),
                None => Ok(Vec::new()),
            })
            .collect()
    }

    /// Checks, in one snapshot, that every record's entries are stored and listed in its
    /// manifest, and that every stored entry of the table belongs to a record; calls
    /// `progress` with the report so far after each page.
    pub(crate) async fn verify(&self, progress: impl FnMut(&VerifyReport)) -> Result<VerifyReport> {
        let tx = self.engine.snapshot().await?;
        let result = self.verify_in(&tx, progress).await;
        tx.finish(result).await
    }

    async fn verify_in(
        &self,
        tx: &TitoTransaction<B>,
        mut progress: impl FnMut(&VerifyReport),
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let table = self.table();
        let mut range = keyspace::record_range(table);
        loop {
            let rows = tx.scan(range.clone(), PAGE).await?;
            let Some((last, _)) = rows.last() else { break };
            range.start = key_after(last);
            report.records += rows.len() as u64;
            let keys: Vec<Vec<u8>> = rows.into_iter().map(|(key, _)| key).collect();
            let (records, unchecked) = self.decode_present(&keys, tx).await?;
            report.unchecked += unchecked;
            let mut expected = Vec::new();
            for ((_, _, prepared), listed) in
                records.iter().zip(self.manifests(&records, tx).await?)
            {
                let keys = self.called_for(prepared, &listed);
                let listed: HashSet<&Vec<u8>> = listed.iter().collect();
                if listed != keys.iter().collect() {
                    report.stale_manifests += 1;
                    report.note(&keyspace::manifest_key(table, &prepared.id));
                }
                expected.extend(keys);
            }
            for (key, found) in expected.iter().zip(tx.batch_get(&expected).await?) {
                if found.is_none() {
                    report.missing += 1;
                    report.note(key);
                }
            }
            progress(&report);
        }
        for unique in [false, true] {
            let mut range = keyspace::index_range(table, unique);
            loop {
                let rows = tx.scan(range.clone(), PAGE).await?;
                let Some((last, _)) = rows.last() else { break };
                range.start = key_after(last);
                report.entries += rows.len() as u64;
                for orphan in self.orphans_among(&rows, unique, tx).await? {
                    report.orphans += 1;
                    report.note(orphan);
                }
                progress(&report);
            }
        }
        Ok(report)
    }

    /// Deletes the stored entries of the table that no record's manifest lists, `batch` per
    /// transaction; returns how many.
    pub(crate) async fn remove_orphans(&self, batch: usize) -> Result<u64> {
        let batch = batch.max(1);
        let mut orphans = 0;
        for unique in [false, true] {
            let mut range = keyspace::index_range(self.table(), unique);
            loop {
                let tx = self.engine.snapshot().await?;
                let rows = tx.scan(range.clone(), batch).await;
                let rows = tx.finish(rows).await?;
                let Some((last, _)) = rows.last() else { break };
                range.start = key_after(last);
                orphans += self
                    .engine
                    .transaction_with_retry(RetryPolicy::default(), |tx| {
                        let rows = &rows;
                        async move {
                            let orphans = self.orphans_among(rows, unique, &tx).await?;
                            for orphan in &orphans {
                                tx.delete(orphan.to_vec()).await?;
                            }
                            Ok::<_, TitoError>(orphans.len() as u64)
                        }
                    })
                    .await?;
            }
        }
        Ok(orphans)
    }

    /// The entries among `rows` (index entries of this table) that their record's manifest,
    /// read in `tx`, does not list.
    async fn orphans_among<'r>(
        &self,
        rows: &'r [KvPair],
        unique: bool,
        tx: &TitoTransaction<B>,
    ) -> Result<Vec<&'r [u8]>> {
        let manifest_keys: Vec<Vec<u8>> = rows
            .iter()
            .map(|(key, value)| {
                let owner = if unique {
                    String::from_utf8(value.clone()).ok()
                } else {
                    keyspace::id_from_index_key(key, 1)
                };
                keyspace::manifest_key(self.table(), owner.as_deref().unwrap_or_default())
            })
            .collect();
        let manifests = tx.batch_get(&manifest_keys).await?;
        let mut orphans = Vec::new();
        for (((key, _), manifest_key), manifest) in rows.iter().zip(&manifest_keys).zip(manifests) {
            let listed = match manifest {
                Some(bytes) => plan::decode_manifest(manifest_key, &bytes)?.contains(key),
                None => false,
            };
            if !listed {
                orphans.push(key.as_slice());
            }
        }
        Ok(orphans)
    }
}

/// Rows read per scan while verifying.
const PAGE: usize = 1000;
