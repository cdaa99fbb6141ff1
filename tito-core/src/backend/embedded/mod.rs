//! The embedded backend: a persistent, transactional store in a local folder, on fjall. No
//! server, no setup.
//!
//! fjall stores the data and its journal; tito orders the commits and detects conflicts itself
//! (see [`oracle`]). A write transaction reads a snapshot with its own buffered writes laid over
//! it, and commits as one atomic fjall batch. It conflicts when a transaction that committed
//! after its snapshot wrote a key it wrote (unless both writes were blind), a key it read, or a
//! key inside a range it scanned: transactions are serializable. A limited scan counts as read up
//! to the last row it returned, so paging reads only what it pages.

mod group_sync;
mod oracle;
mod overlay;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Snapshot};
use tokio::task::coop::consume_budget;

use self::group_sync::GroupSync;
use self::oracle::{Oracle, ReadSet, Ticket};
use self::overlay::{Op, Pending, Writes, overlay};
use super::{Backend, BackendTx, KeyRange, KvPair, TxKind, key_after};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};

/// How far a commit on the embedded backend is persisted before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The commit is handed to the operating system: it survives a crash of the process, not a
    /// power loss or OS crash. The default; roughly 10x faster than [`Durability::Sync`].
    #[default]
    Buffered,
    /// Every commit is flushed to disk (`fdatasync`) before it returns. Concurrent commits
    /// share flushes (group commit). A commit is visible to other transactions as soon as it
    /// applies, which may be a flush before it is durable; a commit that depends on it is
    /// flushed with it or after it.
    Sync,
}

/// The embedded storage backend. Open it with [`Embedded::open`] or [`Embedded::temporary`].
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    data: Keyspace,
    oracle: Arc<Oracle>,
    group_sync: GroupSync,
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
        let mut builder = Database::builder(&self.path).temporary(self.temporary);
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
                oracle: Arc::default(),
                group_sync: GroupSync::default(),
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
        let state = match kind {
            TxKind::ReadOnly => TxState::Read(self.inner.db.snapshot()),
            TxKind::Optimistic | TxKind::Pessimistic => {
                let (ticket, snapshot) = self.inner.oracle.open(|| self.inner.db.snapshot());
                TxState::Write(Box::new(WriteState {
                    snapshot,
                    ticket,
                    writes: Writes::new(),
                    reads: ReadSet::default(),
                }))
            }
        };
        Ok(EmbeddedTx {
            inner: self.inner.clone(),
            state,
        })
    }

    fn name(&self) -> &'static str {
        "embedded"
    }
}

/// A transaction of the [`Embedded`] backend.
pub struct EmbeddedTx {
    inner: Arc<Inner>,
    state: TxState,
}

enum TxState {
    Read(Snapshot),
    Write(Box<WriteState>),
}

/// A write transaction: its snapshot, its place in the commit order, what it wrote and read.
struct WriteState {
    snapshot: Snapshot,
    ticket: Ticket,
    writes: Writes,
    reads: ReadSet,
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
            TxState::Read(snapshot) => snapshot.get(&self.inner.data, key),
            TxState::Write(tx) => {
                if let Some(write) = tx.writes.get(key) {
                    return Ok(write.value().map(<[u8]>::to_vec));
                }
                tx.reads.keys.push(key.to_vec());
                tx.snapshot.get(&self.inner.data, key)
            }
        };
        Ok(value.map_err(storage_error)?.map(|v| v.to_vec()))
    }

    fn write(&mut self, key: Vec<u8>, op: Op, blind: bool) -> Result<()> {
        check_key(&key)?;
        let TxState::Write(tx) = &mut self.state else {
            return Err(TitoError::TransactionClosed(
                "the transaction is read-only".into(),
            ));
        };
        let checked = !blind || tx.writes.get(&key).is_some_and(|w| w.checked);
        tx.writes.insert(key, Pending { op, checked });
        Ok(())
    }

    fn range(&mut self, range: &KeyRange, reverse: bool, limit: usize) -> Result<Vec<KvPair>> {
        check_key(&range.start)?;
        check_key(range.end.as_deref().unwrap_or_default())?;
        if range.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (snapshot, tx) = match &mut self.state {
            TxState::Read(snapshot) => (&*snapshot, None),
            TxState::Write(tx) => {
                let WriteState {
                    snapshot,
                    writes,
                    reads,
                    ..
                } = &mut **tx;
                (&*snapshot, Some((&*writes, reads)))
            }
        };
        let stored = snapshot.range::<&[u8], _>(&self.inner.data, range.bounds());
        let stored = stored.map(|guard| {
            (guard.into_inner())
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(storage_error)
        });
        let Some((writes, reads)) = tx else {
            return if reverse {
                stored.rev().take(limit).collect()
            } else {
                stored.take(limit).collect()
            };
        };
        let pending = writes.range::<[u8], _>(range.bounds());
        let rows = if reverse {
            overlay(stored.rev(), pending.rev(), true, limit)?
        } else {
            overlay(stored, pending, false, limit)?
        };
        reads.ranges.push(read_part(range, &rows, reverse, limit));
        Ok(rows)
    }
}

/// The part of `range` a scan that returned `rows` observed: all of it, unless the limit stopped
/// the scan, which then saw up to its last row and nothing past it.
fn read_part(range: &KeyRange, rows: &[KvPair], reverse: bool, limit: usize) -> KeyRange {
    match rows.last() {
        Some((last, _)) if rows.len() == limit && reverse => KeyRange {
            start: last.clone(),
            end: range.end.clone(),
        },
        Some((last, _)) if rows.len() == limit => KeyRange {
            start: range.start.clone(),
            end: Some(key_after(last)),
        },
        _ => range.clone(),
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
        self.write(key, Op::Put(value), false)
    }

    async fn put_unique(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.write(key, Op::Put(value), true)
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.write(key, Op::Delete, false)
    }

    async fn single_delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.write(key, Op::SingleDelete, true)
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        consume_budget().await;
        self.range(&range, false, limit)
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        consume_budget().await;
        self.range(&range, true, limit)
    }

    async fn commit(self) -> Result<()> {
        let TxState::Write(tx) = self.state else {
            return Ok(());
        };
        let WriteState {
            ticket,
            writes,
            reads,
            ..
        } = *tx;
        if writes.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let mut batch = inner.db.batch();
        let mut keys = Vec::with_capacity(writes.len());
        for (key, write) in writes {
            match write.op {
                Op::Put(value) => batch.insert(&inner.data, key.as_slice(), value),
                Op::Delete => batch.remove(&inner.data, key.as_slice()),
                Op::SingleDelete => batch.remove_weak(&inner.data, key.as_slice()),
            }
            keys.push((key, write.checked));
        }
        let number = inner.oracle.commit(ticket, keys, &reads, || {
            batch
                .commit()
                .map_err(|e| TitoError::CommitOutcomeUnknown(format!("embedded storage: {e}")))
        })?;
        if inner.durability == Durability::Sync {
            inner
                .group_sync
                .wait(number, &inner.db, &inner.oracle)
                .await?;
        }
        Ok(())
    }

    async fn rollback(self) -> Result<()> {
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

    async fn committed(db: &Embedded, key: &[u8], value: &[u8]) {
        let mut tx = db.begin(TxKind::Optimistic).await.unwrap();
        tx.put(key.to_vec(), value.to_vec()).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_limited_scan_conflicts_only_with_writes_up_to_its_last_row() {
        let db = Embedded::temporary_builder().open_backend().unwrap();
        for key in [b"a1", b"a2", b"a3", b"a4"] {
            committed(&db, key, b"v").await;
        }
        let all = KeyRange::prefix(b"a");
        let mut first_two = db.begin(TxKind::Optimistic).await.unwrap();
        assert_eq!(first_two.scan(all.clone(), 2).await.unwrap().len(), 2);
        first_two.put(b"x".to_vec(), b"1".to_vec()).await.unwrap();
        let mut last_two = db.begin(TxKind::Optimistic).await.unwrap();
        assert_eq!(
            last_two.scan_reverse(all.clone(), 2).await.unwrap().len(),
            2
        );
        last_two.put(b"y".to_vec(), b"1".to_vec()).await.unwrap();
        let mut whole = db.begin(TxKind::Optimistic).await.unwrap();
        assert_eq!(whole.scan(all, 10).await.unwrap().len(), 4);
        whole.put(b"z".to_vec(), b"1".to_vec()).await.unwrap();

        // Past the forward page and inside the others.
        committed(&db, b"a35", b"new").await;
        first_two.commit().await.unwrap();
        assert!(matches!(
            last_two.commit().await,
            Err(TitoError::Conflict(_))
        ));
        assert!(matches!(whole.commit().await, Err(TitoError::Conflict(_))));
    }

    #[tokio::test]
    async fn an_abandoned_transaction_stops_holding_recent_commits() {
        let db = Embedded::temporary_builder().open_backend().unwrap();
        let mut abandoned = db.begin(TxKind::Optimistic).await.unwrap();
        abandoned.get(b"k").await.unwrap();
        committed(&db, b"k", b"1").await;
        drop(abandoned);
        // With no older transaction open, a commit keeps no keys.
        committed(&db, b"k", b"2").await;
        let mut tx = db.begin(TxKind::Optimistic).await.unwrap();
        tx.get(b"k").await.unwrap();
        tx.put(b"k".to_vec(), b"3".to_vec()).await.unwrap();
        tx.commit().await.unwrap();
        assert!(db.inner.oracle.is_idle());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_synced_commits_share_flushes_on_a_multi_threaded_runtime() {
        concurrent_synced_commits_share_flushes().await;
    }

    #[tokio::test]
    async fn concurrent_synced_commits_share_flushes_on_a_current_thread_runtime() {
        concurrent_synced_commits_share_flushes().await;
    }

    async fn concurrent_synced_commits_share_flushes() {
        let db = Embedded::temporary_builder()
            .durability(Durability::Sync)
            .open_backend()
            .unwrap();
        let writers: Vec<_> = (0..8u8)
            .map(|w| {
                let db = db.clone();
                tokio::spawn(async move {
                    for i in 0..25u8 {
                        committed(&db, &[w, i], b"v").await;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let flushes = db.inner.group_sync.flushes.load(Ordering::Relaxed);
        assert!(flushes < 200, "200 commits took {flushes} flushes");
        let mut tx = db.begin(TxKind::ReadOnly).await.unwrap();
        let rows = tx.scan(KeyRange::from(Vec::new()), 1_000).await.unwrap();
        assert_eq!(rows.len(), 200);
    }

    #[tokio::test]
    async fn a_database_of_fjalls_optimistic_transactions_opens() {
        // tito 0.3 stored through fjall's `OptimisticTxDatabase`; the files are the same.
        let dir = std::env::temp_dir().join(format!("tito-otx-{}", uuid::Uuid::new_v4()));
        {
            let old = fjall::OptimisticTxDatabase::builder(&dir).open().unwrap();
            let data = old
                .keyspace("tito", KeyspaceCreateOptions::default)
                .unwrap();
            let mut tx = old.write_tx().unwrap();
            tx.insert(&data, b"kept".as_slice(), b"value".as_slice());
            tx.commit().unwrap().unwrap();
        }
        let db = Embedded::builder(&dir)
            .temporary(true)
            .create(false)
            .open_backend()
            .unwrap();
        let mut tx = db.begin(TxKind::ReadOnly).await.unwrap();
        assert_eq!(tx.get(b"kept").await.unwrap(), Some(b"value".to_vec()));
    }
}
