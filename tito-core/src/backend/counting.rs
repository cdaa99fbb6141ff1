//! A backend wrapper that counts calls: the round trips a networked deployment would pay.
//!
//! Wrap any backend to see how many reads, scans and commits an operation costs; tests use it
//! to hold tito to its round-trip budget (one batched read per relationship, one commit per
//! write) and benchmarks print it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, BackendTx, KeyRange, KvPair, TxKind};
use crate::error::Result;

/// Calls made through a [`Counting`] backend since it was created or last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Transactions begun.
    pub begin: u64,
    /// Point reads.
    pub get: u64,
    /// Batched reads.
    pub batch_get: u64,
    /// Writes (puts and deletes); buffered locally by most engines until commit.
    pub write: u64,
    /// Scans, either direction.
    pub scan: u64,
    /// Commits of read-write transactions (a read-only snapshot's commit sends nothing).
    pub commit: u64,
}

impl CallCounts {
    /// Calls that reach the storage engine: reads, scans and commits (writes are buffered).
    pub fn round_trips(&self) -> u64 {
        self.get + self.batch_get + self.scan + self.commit
    }
}

#[derive(Debug, Default)]
struct Counters {
    begin: AtomicU64,
    get: AtomicU64,
    batch_get: AtomicU64,
    write: AtomicU64,
    scan: AtomicU64,
    commit: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Wraps backend `B`, counting every call.
#[derive(Debug, Clone)]
pub struct Counting<B> {
    inner: B,
    counters: Arc<Counters>,
}

impl<B: Backend> Counting<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Counting {
            inner,
            counters: Arc::default(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The calls counted so far.
    pub fn counts(&self) -> CallCounts {
        let c = &self.counters;
        CallCounts {
            begin: c.begin.load(Ordering::Relaxed),
            get: c.get.load(Ordering::Relaxed),
            batch_get: c.batch_get.load(Ordering::Relaxed),
            write: c.write.load(Ordering::Relaxed),
            scan: c.scan.load(Ordering::Relaxed),
            commit: c.commit.load(Ordering::Relaxed),
        }
    }

    /// Returns the calls counted so far and starts again from zero.
    pub fn take(&self) -> CallCounts {
        let c = &self.counters;
        CallCounts {
            begin: c.begin.swap(0, Ordering::Relaxed),
            get: c.get.swap(0, Ordering::Relaxed),
            batch_get: c.batch_get.swap(0, Ordering::Relaxed),
            write: c.write.swap(0, Ordering::Relaxed),
            scan: c.scan.swap(0, Ordering::Relaxed),
            commit: c.commit.swap(0, Ordering::Relaxed),
        }
    }
}

impl<B: Backend> Backend for Counting<B> {
    type Tx = CountingTx<B::Tx>;

    async fn begin(&self, kind: TxKind) -> Result<Self::Tx> {
        bump(&self.counters.begin);
        Ok(CountingTx {
            inner: self.inner.begin(kind).await?,
            counters: self.counters.clone(),
            kind,
        })
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// A transaction of a [`Counting`] backend.
pub struct CountingTx<T> {
    inner: T,
    counters: Arc<Counters>,
    kind: TxKind,
}

impl<T: BackendTx> BackendTx for CountingTx<T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        bump(&self.counters.get);
        self.inner.get(key).await
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        bump(&self.counters.batch_get);
        self.inner.batch_get(keys).await
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        bump(&self.counters.write);
        self.inner.put(key, value).await
    }

    async fn put_unique(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        bump(&self.counters.write);
        self.inner.put_unique(key, value).await
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        bump(&self.counters.write);
        self.inner.delete(key).await
    }

    async fn single_delete(&mut self, key: Vec<u8>) -> Result<()> {
        bump(&self.counters.write);
        self.inner.single_delete(key).await
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        bump(&self.counters.scan);
        self.inner.scan(range, limit).await
    }

    async fn scan_many(&mut self, ranges: &[KeyRange], limit: usize) -> Result<Vec<Vec<KvPair>>> {
        bump(&self.counters.scan);
        self.inner.scan_many(ranges, limit).await
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        bump(&self.counters.scan);
        self.inner.scan_reverse(range, limit).await
    }

    async fn commit(self) -> Result<()> {
        // A read-only snapshot has nothing to send.
        if self.kind != TxKind::ReadOnly {
            bump(&self.counters.commit);
        }
        self.inner.commit().await
    }

    async fn rollback(self) -> Result<()> {
        self.inner.rollback().await
    }
}
