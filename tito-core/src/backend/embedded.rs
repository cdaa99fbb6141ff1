//! The embedded backend: a persistent, transactional store in a local folder, on fjall's
//! optimistic transactions. No server, no setup.
//!
//! fjall validates read sets at commit (serializable snapshot isolation), but a key that is only
//! written is not checked, so two blind writers of one key would both commit. To give the same
//! write-write guarantee as TiKV, every written key is also marked as read (once per transaction).
//! Range reads mark the whole range passed as read, so callers pass tight bounds.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::{
    KeyspaceCreateOptions, OptimisticTxDatabase, OptimisticTxKeyspace,
    OptimisticWriteTx as WriteTransaction, PersistMode, Readable, Snapshot,
};
use tokio::task::coop::consume_budget;

use super::{Backend, BackendTx, KeyRange, KvPair, TxKind};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};

/// How far a commit on the embedded backend is persisted before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The commit is handed to the operating system: it survives a crash of the process, not a
    /// power loss or OS crash. The default; roughly 10x faster than [`Durability::Sync`].
    #[default]
    Buffered,
    /// Every commit is flushed to disk (`fdatasync`) before it returns.
    Sync,
}

/// The embedded storage backend. Open it with [`Embedded::open`] or [`Embedded::temporary`].
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    db: OptimisticTxDatabase,
    data: OptimisticTxKeyspace,
    durability: Durability,
    path: PathBuf,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("path", &self.inner.path)
            .field("durability", &self.inner.durability)
            .finish()
    }
}

/// Options for opening an embedded database.
#[derive(Debug, Clone)]
pub struct EmbeddedBuilder {
    path: PathBuf,
    durability: Durability,
    temporary: bool,
    cache_bytes: Option<u64>,
    create: bool,
}

impl EmbeddedBuilder {
    /// Sets how far commits are persisted before they return.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the block cache size in bytes (fjall's default is 32 MiB).
    pub fn cache_size(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Deletes the folder when the last handle is dropped.
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Whether the folder is deleted when the last handle is dropped.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Whether a missing database is created (the default). Without, opening a folder that
    /// holds no tito database fails with [`TitoError::NotFound`] and creates nothing there.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens (or, unless told otherwise, creates) the database.
    pub async fn open(self) -> Result<TitoEngine<Embedded>> {
        let create = self.create;
        let backend = self.open_backend()?;
        if create {
            TitoEngine::new(backend).await
        } else {
            TitoEngine::existing(backend).await
        }
    }

    /// Opens the bare backend, without the engine's format check; for backend-level tests.
    pub fn open_backend(self) -> Result<Embedded> {
        // fjall creates a missing database; its version file tells one is there.
        if !self.create && !self.path.join("version").is_file() {
            return Err(TitoError::NotFound(format!(
                "no tito database in `{}`",
                self.path.display()
            )));
        }
        let mut builder = OptimisticTxDatabase::builder(&self.path).temporary(self.temporary);
        if let Some(bytes) = self.cache_bytes {
            builder = builder.cache_size(bytes);
        }
        let db = builder.open().map_err(|e| match e {
            fjall::Error::Locked => TitoError::Unavailable(format!(
                "`{}` is open in another process (one process per folder)",
                self.path.display()
            )),
            e => storage_error(e),
        })?;
        let data = db
            .keyspace("tito", KeyspaceCreateOptions::default)
            .map_err(storage_error)?;
        Ok(Embedded {
            inner: Arc::new(Inner {
                db,
                data,
                durability: self.durability,
                path: self.path,
            }),
        })
    }
}

impl Embedded {
    /// Options for opening the database in folder `path`.
    pub fn builder(path: impl AsRef<Path>) -> EmbeddedBuilder {
        EmbeddedBuilder {
            path: path.as_ref().to_path_buf(),
            durability: Durability::default(),
            temporary: false,
            cache_bytes: None,
            create: true,
        }
    }

    /// Opens (or creates) the database in folder `path`, with [`Durability::Buffered`].
    pub async fn open(path: impl AsRef<Path>) -> Result<TitoEngine<Embedded>> {
        Self::builder(path).open().await
    }

    /// Opens a fresh database in a new temporary folder, deleted when the last handle drops.
    pub async fn temporary() -> Result<TitoEngine<Embedded>> {
        Self::temporary_builder().open().await
    }

    /// Options for a fresh database in a new temporary folder, deleted on drop.
    pub fn temporary_builder() -> EmbeddedBuilder {
        let path = std::env::temp_dir().join(format!("tito-{}", uuid::Uuid::new_v4().simple()));
        Self::builder(path).temporary(true)
    }

    /// The folder holding the database.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Flushes everything committed so far to disk.
    pub fn persist(&self) -> Result<()> {
        self.inner
            .db
            .persist(PersistMode::SyncAll)
            .map_err(storage_error)
    }
}

impl Backend for Embedded {
    type Tx = EmbeddedTx;

    async fn begin(&self, kind: TxKind) -> Result<EmbeddedTx> {
        let data = self.inner.data.clone();
        let state = match kind {
            TxKind::ReadOnly => TxState::Read(self.inner.db.read_tx()),
            TxKind::Optimistic | TxKind::Pessimistic => {
                let mut tx = self.inner.db.write_tx().map_err(storage_error)?;
                if self.inner.durability == Durability::Sync {
                    tx = tx.durability(Some(PersistMode::SyncData));
                }
                TxState::Write {
                    tx,
                    seen: HashSet::new(),
                }
            }
        };
        Ok(EmbeddedTx { data, state })
    }

    fn name(&self) -> &'static str {
        "embedded"
    }
}

/// A transaction of the [`Embedded`] backend.
pub struct EmbeddedTx {
    data: OptimisticTxKeyspace,
    state: TxState,
}

enum TxState {
    Read(Snapshot),
    Write {
        tx: WriteTransaction,
        /// Keys already marked as read in this transaction.
        seen: HashSet<Vec<u8>>,
    },
}

/// fjall's key length limit; it panics on longer keys, so they are refused here.
const MAX_KEY: usize = u16::MAX as usize;

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY {
        return Err(TitoError::TooLarge {
            what: "key",
            size: key.len(),
            limit: MAX_KEY,
        });
    }
    Ok(())
}

impl EmbeddedTx {
    fn read_one(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let value = match &mut self.state {
            TxState::Read(snapshot) => snapshot.get(&self.data, key),
            TxState::Write { tx, seen } => {
                let value = tx.get(&self.data, key);
                if !seen.contains(key) {
                    seen.insert(key.to_vec());
                }
                value
            }
        };
        Ok(value.map_err(storage_error)?.map(|v| v.to_vec()))
    }

    fn write(&mut self, key: Vec<u8>, write: Write) -> Result<()> {
        check_key(&key)?;
        let TxState::Write { tx, seen } = &mut self.state else {
            return Err(TitoError::TransactionClosed(
                "the transaction is read-only".into(),
            ));
        };
        // Marks the key read, so a concurrent writer of the same key conflicts. Blind writes
        // (see `BackendTx::put_unique` and `single_delete`) spare that point read.
        if !write.is_blind() && !seen.contains(&key) {
            tx.contains_key(&self.data, &key).map_err(storage_error)?;
            seen.insert(key.clone());
        }
        match write {
            Write::Put(value) | Write::PutUnique(value) => tx.insert(&self.data, key, value),
            Write::Delete => tx.remove(&self.data, key),
            // A weak tombstone: flushes and compactions drop it with the one write it shadows.
            Write::SingleDelete => tx.remove_weak(&self.data, key),
        }
        Ok(())
    }

    fn range(&self, range: &KeyRange, reverse: bool, limit: usize) -> Result<Vec<KvPair>> {
        check_key(&range.start)?;
        check_key(range.end.as_deref().unwrap_or_default())?;
        let start = range.start.as_slice();
        let iter = match (&self.state, range.end.as_deref()) {
            (TxState::Read(s), Some(end)) => s.range(&self.data, start..end),
            (TxState::Read(s), None) => s.range(&self.data, start..),
            (TxState::Write { tx, .. }, Some(end)) => tx.range(&self.data, start..end),
            (TxState::Write { tx, .. }, None) => tx.range(&self.data, start..),
        };
        let collect = |guard: fjall::Guard| {
            guard
                .into_inner()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(storage_error)
        };
        if reverse {
            iter.rev().take(limit).map(collect).collect()
        } else {
            iter.take(limit).map(collect).collect()
        }
    }
}

/// One buffered write of a transaction.
enum Write {
    Put(Vec<u8>),
    PutUnique(Vec<u8>),
    Delete,
    SingleDelete,
}

impl Write {
    /// Whether the write needs no conflict mark: nothing can race it.
    fn is_blind(&self) -> bool {
        matches!(self, Write::PutUnique(_) | Write::SingleDelete)
    }
}

// Reads complete without waiting, so a loop of them would never give its thread back to the
// runtime: each read spends the task's cooperative budget, and a long scan, reindex or verify
// yields now and then instead of starving the tasks beside it (queue heartbeats among them).
impl BackendTx for EmbeddedTx {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        consume_budget().await;
        self.read_one(key)
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        consume_budget().await;
        keys.iter().map(|key| self.read_one(key)).collect()
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.write(key, Write::Put(value))
    }

    async fn put_unique(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.write(key, Write::PutUnique(value))
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.write(key, Write::Delete)
    }

    async fn single_delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.write(key, Write::SingleDelete)
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        consume_budget().await;
        if range.is_empty() {
            return Ok(Vec::new());
        }
        self.range(&range, false, limit)
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        consume_budget().await;
        if range.is_empty() {
            return Ok(Vec::new());
        }
        self.range(&range, true, limit)
    }

    async fn commit(self) -> Result<()> {
        match self.state {
            TxState::Read(_) => Ok(()),
            TxState::Write { tx, .. } => match tx.commit() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(fjall::Conflict)) => Err(TitoError::Conflict(
                    "a concurrent transaction wrote data this transaction read or wrote".into(),
                )),
                Err(e) => Err(TitoError::CommitOutcomeUnknown(e.to_string())),
            },
        }
    }

    async fn rollback(self) -> Result<()> {
        if let TxState::Write { tx, .. } = self.state {
            tx.rollback();
        }
        Ok(())
    }
}

fn storage_error(e: fjall::Error) -> TitoError {
    TitoError::Backend(format!("embedded storage: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_long_loop_of_reads_lets_the_tasks_beside_it_run() {
        let db = Embedded::temporary_builder().open_backend().unwrap();
        let mut tx = db.begin(TxKind::Optimistic).await.unwrap();
        tx.put(b"k".to_vec(), b"v".to_vec()).await.unwrap();
        tx.commit().await.unwrap();

        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        // This runtime has one thread: the ticker runs only when this loop gives it back.
        let mut tx = db.begin(TxKind::ReadOnly).await.unwrap();
        let before = ticks.load(Ordering::Relaxed);
        for _ in 0..10_000 {
            tx.get(b"k").await.unwrap();
            tx.scan(KeyRange::new(b"a".to_vec(), b"z".to_vec()), 10)
                .await
                .unwrap();
        }
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert!(during > 0, "the ticker never ran during 20,000 reads");
    }
}
