//! A transaction of the TiKV backend: reads, writes and paged scans on a tikv-client
//! transaction or snapshot, commit with error classification, and cleanup when dropped
//! unfinished.

use std::collections::HashMap;
use std::sync::Arc;

use tikv_client::{BoundRange, Snapshot, Timestamp, TimestampExt, Transaction};
use tracing::{Instrument, debug, debug_span, warn};

use super::Shared;
use super::config::options_for;
use super::convert::{PageSize, Pager, bytes_of, in_key_order, into_pair};
use super::error::{Class, Op, classify, tito_error, to_tito};
use super::locking::Locked;
use crate::backend::{BackendTx, KeyRange, KvPair, TxKind};
use crate::error::{Result, TitoError};

/// A transaction of the [`TiKV`](super::TiKV) backend.
///
/// - Read-only transactions read a snapshot at the timestamp taken at begin, through a fresh
///   tikv-client snapshot per request, so long scans (reindex, verify, queue sweeps) keep no
///   rows in memory.
/// - Optimistic transactions are snapshot isolation: a write-write conflict fails the later
///   commit with [`TitoError::Conflict`].
/// - Pessimistic transactions read each key with a lock and see its latest committed value,
///   and lock their writes in one batch before commit. Scans read the start snapshot, with the
///   transaction's own writes.
///
/// Dropped before it finishes (an early return, a cancelled future), it never panics. A
/// pessimistic transaction's locks, including those of a lock request cut off mid-way, are
/// released by a rollback spawned on the current tokio runtime. A transaction dropped
/// mid-commit is left alone: its outcome is unknown, and rolling back part of a transaction
/// whose primary key may have committed would break its atomicity. TiKV resolves its locks
/// when they expire.
pub struct TiKVTx {
    inner: Inner,
    kind: TxKind,
    shared: Arc<Shared>,
    /// Locked keys of a pessimistic transaction.
    locked: Locked,
    /// Set when `commit` has started talking to the cluster.
    committing: bool,
}

/// The tikv-client side of a transaction.
enum Inner {
    /// A read-write transaction; `None` once it has committed or rolled back.
    ReadWrite(Option<Box<Transaction>>),
    /// The timestamp a read-only transaction reads at; `None` once it has finished.
    ReadOnly(Option<Timestamp>),
}

/// What to do with a transaction that is dropped unfinished.
#[derive(Debug, PartialEq, Eq)]
enum Cleanup {
    /// Nothing is held on the server.
    Nothing,
    /// Locks are held: roll back.
    Rollback,
    /// The commit was cut off; its outcome is unknown, so it must not be rolled back.
    LeaveCommit,
}

fn cleanup_for(kind: TxKind, committing: bool) -> Cleanup {
    match (kind, committing) {
        (_, true) => Cleanup::LeaveCommit,
        (TxKind::Pessimistic, false) => Cleanup::Rollback,
        (TxKind::Optimistic | TxKind::ReadOnly, false) => Cleanup::Nothing,
    }
}

fn finished() -> TitoError {
    TitoError::TransactionClosed("the transaction has finished".into())
}

/// What a transaction reads through.
enum Reader<'a> {
    /// A fresh snapshot at a read-only transaction's timestamp: it caches nothing past the
    /// request.
    Snapshot(Box<Snapshot>),
    /// The read-write transaction, which caches what it reads.
    Transaction(&'a mut Transaction),
}

impl Inner {
    /// What to read through, or an error once the transaction has finished.
    fn reader(&mut self, shared: &Shared) -> Result<Reader<'_>> {
        match self {
            Inner::ReadOnly(Some(ts)) => Ok(Reader::Snapshot(Box::new(
                shared
                    .client
                    .snapshot(ts.clone(), options_for(TxKind::ReadOnly)),
            ))),
            Inner::ReadWrite(Some(tx)) => Ok(Reader::Transaction(tx)),
            Inner::ReadOnly(None) | Inner::ReadWrite(None) => Err(finished()),
        }
    }

    /// The read-write transaction, or an error if it has finished or is read-only.
    fn transaction(&mut self) -> Result<&mut Transaction> {
        match self {
            Inner::ReadWrite(Some(tx)) => Ok(tx),
            Inner::ReadWrite(None) | Inner::ReadOnly(None) => Err(finished()),
            Inner::ReadOnly(Some(_)) => Err(TitoError::TransactionClosed(
                "the transaction is read-only".into(),
            )),
        }
    }
}

impl Reader<'_> {
    async fn get(&mut self, key: Vec<u8>) -> tikv_client::Result<Option<Vec<u8>>> {
        match self {
            Reader::Snapshot(snapshot) => snapshot.get(key).await,
            Reader::Transaction(tx) => tx.get(key).await,
        }
    }

    async fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> tikv_client::Result<Vec<KvPair>> {
        Ok(match self {
            Reader::Snapshot(snapshot) => snapshot.batch_get(keys).await?.map(into_pair).collect(),
            Reader::Transaction(tx) => tx.batch_get(keys).await?.map(into_pair).collect(),
        })
    }

    async fn scan(
        &mut self,
        range: BoundRange,
        limit: u32,
        reverse: bool,
    ) -> tikv_client::Result<Vec<KvPair>> {
        Ok(match (self, reverse) {
            (Reader::Snapshot(s), false) => s.scan(range, limit).await?.map(into_pair).collect(),
            (Reader::Snapshot(s), true) => {
                s.scan_reverse(range, limit).await?.map(into_pair).collect()
            }
            (Reader::Transaction(tx), false) => {
                tx.scan(range, limit).await?.map(into_pair).collect()
            }
            (Reader::Transaction(tx), true) => tx
                .scan_reverse(range, limit)
                .await?
                .map(into_pair)
                .collect(),
        })
    }
}

/// Where a paged read reads from.
enum Source<'a> {
    /// Fresh snapshots at a read-only transaction's timestamp.
    Snapshot(Timestamp),
    /// The read-write transaction.
    Transaction(&'a mut Transaction),
}

impl Source<'_> {
    fn reader(&mut self, shared: &Shared) -> Reader<'_> {
        match self {
            Source::Snapshot(ts) => Reader::Snapshot(Box::new(
                shared
                    .client
                    .snapshot(ts.clone(), options_for(TxKind::ReadOnly)),
            )),
            Source::Transaction(tx) => Reader::Transaction(tx),
        }
    }
}

/// Up to `limit` pairs of `range`, asked for in pages bounded by rows and bytes.
async fn read_pages(
    shared: &Shared,
    mut source: Source<'_>,
    range: &KeyRange,
    limit: usize,
    reverse: bool,
) -> Result<Vec<KvPair>> {
    let Some(bounds) = shared.namespace.range(range) else {
        return Ok(Vec::new());
    };
    let size = PageSize::new(shared.config.scan_page, shared.config.page_bytes);
    let mut pager = Pager::new(bounds, limit, size, reverse);
    let mut rows = Vec::new();
    while let Some((bounds, asked)) = pager.next_request() {
        match source.reader(shared).scan(bounds, asked, reverse).await {
            Ok(page) => {
                pager.record(&page, asked);
                rows.extend(page);
            }
            Err(e) if classify(&e) == Class::ReplyTooLarge && pager.shrink() => {
                debug!(asked, "scan reply too large; asking for fewer rows");
            }
            Err(e) => return Err(to_tito(&e, Op::Access)),
        }
    }
    let namespace = &shared.namespace;
    Ok(rows
        .into_iter()
        .map(|(key, value)| (namespace.strip(key), value))
        .collect())
}

/// Whether the outcome of a lock request is known: it succeeded, or it was refused (a conflict,
/// an existing key). A request that failed otherwise (timed out, lost) may hold its locks.
fn answered<T>(outcome: &tikv_client::Result<T>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(error) => matches!(classify(error), Class::Conflict | Class::KeyExists),
    }
}

impl TiKVTx {
    /// Wraps a read-write transaction begun as `kind`.
    pub(super) fn read_write(tx: Transaction, kind: TxKind, shared: Arc<Shared>) -> Self {
        Self::new(Inner::ReadWrite(Some(Box::new(tx))), kind, shared)
    }

    /// A read-only transaction reading at `ts`.
    pub(super) fn read_only(ts: Timestamp, shared: Arc<Shared>) -> Self {
        Self::new(Inner::ReadOnly(Some(ts)), TxKind::ReadOnly, shared)
    }

    fn new(inner: Inner, kind: TxKind, shared: Arc<Shared>) -> Self {
        TiKVTx {
            inner,
            kind,
            shared,
            locked: Locked::default(),
            committing: false,
        }
    }

    /// Marks the transaction finished: nothing is left to clean up when it is dropped.
    fn finished(&mut self) {
        self.inner = Inner::ReadWrite(None);
    }

    fn pessimistic(&self) -> bool {
        self.kind == TxKind::Pessimistic
    }

    /// Locks the writes made since the last batch, in one request per region.
    async fn send_writes(&mut self) -> Result<()> {
        if !self.locked.has_unsent() {
            return Ok(());
        }
        let tx = self.inner.transaction()?;
        let mutations = self.locked.take_unsent();
        let keys = mutations.iter().map(|m| m.key().clone().into()).collect();
        self.locked.start_locking(keys);
        let outcome = tx.batch_mutate(mutations).await;
        self.locked.done_locking(answered(&outcome));
        outcome.map_err(|e| to_tito(&e, Op::Access))
    }

    /// Reads `keys` (cluster keys), in requests whose replies fit the size limit. A pessimistic
    /// transaction locks them and records their latest values.
    async fn read_chunks(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>> {
        let mut size = PageSize::new(self.shared.config.scan_page, self.shared.config.page_bytes);
        let mut rows = Vec::new();
        let mut rest = keys.as_slice();
        while !rest.is_empty() {
            let chunk = rest[..rest.len().min(size.rows() as usize)].to_vec();
            let taken = chunk.len();
            let reply = if self.pessimistic() {
                self.lock_chunk(chunk).await
            } else {
                self.inner.reader(&self.shared)?.batch_get(chunk).await
            };
            match reply {
                Ok(pairs) => {
                    size.observe(taken, bytes_of(&pairs));
                    rows.extend(pairs);
                    rest = &rest[taken..];
                }
                Err(e) if classify(&e) == Class::ReplyTooLarge && size.shrink() => {
                    debug!(
                        rows = size.rows(),
                        "batched read reply too large; splitting"
                    );
                }
                Err(e) => return Err(to_tito(&e, Op::Access)),
            }
        }
        Ok(rows)
    }

    /// Locks `keys` and records their latest values.
    async fn lock_chunk(&mut self, keys: Vec<Vec<u8>>) -> tikv_client::Result<Vec<KvPair>> {
        let Inner::ReadWrite(Some(tx)) = &mut self.inner else {
            return Err(tikv_client::Error::OperationAfterCommitError);
        };
        self.locked.start_locking(keys.clone());
        let outcome = tx.batch_get_for_update(keys.clone()).await;
        self.locked.done_locking(answered(&outcome));
        let pairs: Vec<KvPair> = outcome?.into_iter().map(into_pair).collect();
        let mut found: HashMap<&[u8], &[u8]> = pairs
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        for key in keys {
            let value = found.remove(key.as_slice()).map(<[u8]>::to_vec);
            self.locked.read(key, value);
        }
        Ok(pairs)
    }

    async fn scan_pages(
        &mut self,
        range: KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KvPair>> {
        self.inner.reader(&self.shared)?;
        // The scan merges the transaction's own writes from tikv-client's buffer.
        self.send_writes().await?;
        let shared = self.shared.clone();
        let source = match &mut self.inner {
            Inner::ReadOnly(Some(ts)) => Source::Snapshot(ts.clone()),
            Inner::ReadWrite(Some(tx)) => Source::Transaction(tx),
            Inner::ReadOnly(None) | Inner::ReadWrite(None) => return Err(finished()),
        };
        read_pages(&shared, source, &range, limit, reverse).await
    }

    /// Reads the ranges of a read-only transaction concurrently, each on snapshots of its own.
    async fn scan_snapshot_ranges(
        &self,
        ts: &Timestamp,
        ranges: &[KeyRange],
        limit: usize,
    ) -> Result<Vec<Vec<KvPair>>> {
        let mut reads = tokio::task::JoinSet::new();
        for (i, range) in ranges.iter().enumerate() {
            let (shared, ts, range) = (self.shared.clone(), ts.clone(), range.clone());
            reads.spawn(async move {
                let rows = read_pages(&shared, Source::Snapshot(ts), &range, limit, false).await;
                (i, rows)
            });
        }
        let mut all = vec![Vec::new(); ranges.len()];
        while let Some(joined) = reads.join_next().await {
            let (i, rows) = joined.map_err(|e| TitoError::Backend(format!("scan task: {e}")))?;
            all[i] = rows?;
        }
        Ok(all)
    }

    /// Finishes the transaction without committing, releasing what it holds on the server.
    async fn rollback_now(&mut self) -> Result<()> {
        let Inner::ReadWrite(tx) = &mut self.inner else {
            self.inner = Inner::ReadOnly(None);
            return Ok(());
        };
        let Some(tx) = tx.take() else {
            return Ok(());
        };
        debug!(kind = ?self.kind, "tikv rollback");
        match cleanup_for(self.kind, self.committing) {
            Cleanup::Rollback => release(tx, self.locked.take_untracked())
                .await
                .map_err(|e| to_tito(&e, Op::Access)),
            Cleanup::Nothing | Cleanup::LeaveCommit => Ok(()),
        }
    }
}

/// Rolls back a pessimistic transaction, first locking again the keys the server may hold
/// without tikv-client knowing, so that the rollback releases them too.
async fn release(mut tx: Box<Transaction>, untracked: Vec<Vec<u8>>) -> tikv_client::Result<()> {
    if !untracked.is_empty()
        && let Err(e) = tx.lock_keys(untracked).await
    {
        debug!(error = %e, "could not lock untracked keys again before rolling back");
    }
    tx.rollback().await
}

impl BackendTx for TiKVTx {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = self.shared.namespace.key(key);
        if !self.pessimistic() {
            let mut reader = self.inner.reader(&self.shared)?;
            return reader.get(key).await.map_err(|e| to_tito(&e, Op::Access));
        }
        self.inner.transaction()?;
        if self.locked.known(&key).is_none() {
            // The same one timestamp and one lock request as `get_for_update`.
            self.lock_chunk(vec![key.clone()])
                .await
                .map_err(|e| to_tito(&e, Op::Access))?;
        }
        Ok(self.locked.known(&key).flatten())
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.inner.reader(&self.shared)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.shared.namespace.keys(keys);
        if self.pessimistic() {
            let unknown = self.locked.unknown(&keys);
            self.read_chunks(unknown).await?;
            return Ok(keys
                .iter()
                .map(|key| self.locked.known(key).flatten())
                .collect());
        }
        let pairs = self.read_chunks(keys.clone()).await?;
        Ok(in_key_order(&keys, pairs))
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let key = self.shared.namespace.key(&key);
        let tx = self.inner.transaction()?;
        if self.kind == TxKind::Pessimistic {
            self.locked.write(key, Some(value));
            return Ok(());
        }
        tx.put(key, value)
            .await
            .map_err(|e| to_tito(&e, Op::Access))
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        let key = self.shared.namespace.key(&key);
        let tx = self.inner.transaction()?;
        if self.kind == TxKind::Pessimistic {
            self.locked.write(key, None);
            return Ok(());
        }
        tx.delete(key).await.map_err(|e| to_tito(&e, Op::Access))
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.scan_pages(range, limit, false).await
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.scan_pages(range, limit, true).await
    }

    async fn scan_many(&mut self, ranges: &[KeyRange], limit: usize) -> Result<Vec<Vec<KvPair>>> {
        if let Inner::ReadOnly(Some(ts)) = &self.inner {
            let ts = ts.clone();
            return self.scan_snapshot_ranges(&ts, ranges, limit).await;
        }
        // A read-write transaction reads through one tikv-client transaction, one range at a time.
        let mut all = Vec::with_capacity(ranges.len());
        for range in ranges {
            all.push(self.scan_pages(range.clone(), limit, false).await?);
        }
        Ok(all)
    }

    async fn commit(mut self) -> Result<()> {
        let kind = self.kind;
        let span = debug_span!("tikv.commit", ?kind);
        async move {
            if let Inner::ReadOnly(ts) = &mut self.inner {
                return ts.take().map(drop).ok_or_else(finished);
            }
            // Locking the writes can fail like any write: nothing is committed yet.
            if let Err(error) = self.prepare_commit().await {
                if let Err(rollback) = self.rollback_now().await {
                    debug!(%rollback, "rollback after a failed lock failed");
                }
                return Err(error);
            }
            self.committing = true;
            let tx = self.inner.transaction()?;
            let result = match tx.commit().await {
                Ok(commit_ts) => {
                    debug!(commit_ts = commit_ts.map(|ts| ts.version()), "committed");
                    Ok(())
                }
                Err(e) => {
                    let class = classify(&e);
                    let error = tito_error(class, Op::Commit, format!("tikv: {e}"));
                    if class.proves_no_commit() {
                        // Nothing committed: release the locks the prewrite took.
                        debug!(%error, "tikv commit failed; rolling back");
                        if let Err(rollback) = tx.rollback().await {
                            debug!(%rollback, "rollback after a failed commit failed");
                        }
                    } else {
                        // A rollback could undo keys of a commit that did happen.
                        warn!(%error, "tikv commit outcome unknown; leaving its locks to TiKV");
                    }
                    Err(error)
                }
            };
            self.finished();
            result
        }
        .instrument(span)
        .await
    }

    async fn rollback(mut self) -> Result<()> {
        self.rollback_now().await
    }
}

impl TiKVTx {
    /// Sends what a pessimistic transaction still holds back before commit: its unsent writes,
    /// and locks the server may hold without tikv-client knowing, so the commit releases them.
    async fn prepare_commit(&mut self) -> Result<()> {
        self.send_writes().await?;
        let untracked = self.locked.take_untracked();
        if untracked.is_empty() {
            return Ok(());
        }
        let tx = self.inner.transaction()?;
        tx.lock_keys(untracked)
            .await
            .map_err(|e| to_tito(&e, Op::Access))
    }
}

impl Drop for TiKVTx {
    fn drop(&mut self) {
        let Inner::ReadWrite(Some(tx)) = std::mem::replace(&mut self.inner, Inner::ReadOnly(None))
        else {
            return;
        };
        match cleanup_for(self.kind, self.committing) {
            Cleanup::Nothing => {}
            Cleanup::LeaveCommit => {
                warn!("tikv transaction dropped during commit; its outcome is unknown");
            }
            Cleanup::Rollback => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    debug!("tikv transaction dropped unfinished; rolling it back");
                    let untracked = self.locked.take_untracked();
                    runtime.spawn(async move {
                        if let Err(e) = release(tx, untracked).await {
                            warn!(error = %e, "rollback of a dropped tikv transaction failed");
                        }
                    });
                }
                Err(_) => warn!(
                    "tikv transaction dropped outside a tokio runtime; its locks stay until \
                     they expire"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_transactions_roll_back_only_what_holds_locks() {
        assert_eq!(cleanup_for(TxKind::Pessimistic, false), Cleanup::Rollback);
        assert_eq!(cleanup_for(TxKind::Optimistic, false), Cleanup::Nothing);
        assert_eq!(cleanup_for(TxKind::ReadOnly, false), Cleanup::Nothing);
        // Never roll back a commit that may have happened.
        assert_eq!(cleanup_for(TxKind::Pessimistic, true), Cleanup::LeaveCommit);
        assert_eq!(cleanup_for(TxKind::Optimistic, true), Cleanup::LeaveCommit);
    }
}
