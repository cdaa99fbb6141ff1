//! A backend wrapper that adds a network round trip's latency: the wall time a networked
//! deployment would pay.
//!
//! The embedded backend answers in microseconds, so a benchmark on it hides how many round
//! trips an operation makes. Wrap any backend in [`Latency`] to make every call that crosses the
//! network on TiKV cost `rtt` of async wall time (a Tokio sleep; the thread stays free), and
//! measure the queue and the models as a networked deployment would run them:
//!
//! ```rust,ignore
//! let counting = Counting::new(Embedded::temporary_builder().open_backend()?);
//! let db = TitoEngine::new(Latency::new(counting.clone(), Duration::from_millis(1))).await?;
//! ```
//!
//! Delayed: `begin` (TiKV fetches a timestamp from PD, for snapshots too), `get`, `batch_get`,
//! `scan`, `scan_reverse`, and the `commit` of a read-write transaction. Free: `put` and `delete`
//! (buffered until commit), a read-only transaction's commit (nothing to send) and `rollback`
//! (fire-and-forget). A zero `rtt` adds no sleep at all.

use std::time::Duration;

use super::{Backend, BackendTx, KeyRange, KvPair, TxKind};
use crate::error::Result;

/// Waits `rtt`, or returns at once when it is zero.
async fn round_trip(rtt: Duration) {
    if !rtt.is_zero() {
        tokio::time::sleep(rtt).await;
    }
}

/// Wraps backend `B`, making each network round trip cost `rtt`.
#[derive(Debug, Clone)]
pub struct Latency<B> {
    inner: B,
    rtt: Duration,
}

impl<B: Backend> Latency<B> {
    /// Wraps `inner`, adding `rtt` to every round trip.
    pub fn new(inner: B, rtt: Duration) -> Self {
        Latency { inner, rtt }
    }

    /// The latency added to each round trip.
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> Backend for Latency<B> {
    type Tx = LatencyTx<B::Tx>;

    async fn begin(&self, kind: TxKind) -> Result<Self::Tx> {
        round_trip(self.rtt).await;
        Ok(LatencyTx {
            inner: self.inner.begin(kind).await?,
            rtt: self.rtt,
            kind,
        })
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// A transaction of a [`Latency`] backend.
pub struct LatencyTx<T> {
    inner: T,
    rtt: Duration,
    kind: TxKind,
}

impl<T: BackendTx> BackendTx for LatencyTx<T> {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        round_trip(self.rtt).await;
        self.inner.get(key).await
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        round_trip(self.rtt).await;
        self.inner.batch_get(keys).await
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.inner.put(key, value).await
    }

    async fn put_unique(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.inner.put_unique(key, value).await
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.inner.delete(key).await
    }

    async fn single_delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.inner.single_delete(key).await
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        round_trip(self.rtt).await;
        self.inner.scan(range, limit).await
    }

    async fn scan_many(&mut self, ranges: &[KeyRange], limit: usize) -> Result<Vec<Vec<KvPair>>> {
        // The ranges are read concurrently (TiKV snapshots do): one round trip.
        round_trip(self.rtt).await;
        self.inner.scan_many(ranges, limit).await
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        round_trip(self.rtt).await;
        self.inner.scan_reverse(range, limit).await
    }

    async fn commit(self) -> Result<()> {
        // A read-only snapshot has nothing to send.
        if self.kind != TxKind::ReadOnly {
            round_trip(self.rtt).await;
        }
        self.inner.commit().await
    }

    async fn rollback(self) -> Result<()> {
        self.inner.rollback().await
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::backend::Embedded;

    const RTT: Duration = Duration::from_millis(20);

    fn backend() -> Latency<Embedded> {
        let embedded = Embedded::temporary_builder()
            .open_backend()
            .expect("temporary embedded backend");
        Latency::new(embedded, RTT)
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_begin_cost_one_rtt_each_and_writes_none() {
        let db = backend();
        assert_eq!(db.rtt(), RTT);
        assert_eq!(db.name(), db.inner().name());

        let start = Instant::now();
        let mut tx = db.begin(TxKind::Optimistic).await.expect("begin");
        assert_eq!(start.elapsed(), RTT, "begin");

        let start = Instant::now();
        tx.put(b"k".to_vec(), b"v".to_vec()).await.expect("put");
        tx.delete(b"gone".to_vec()).await.expect("delete");
        assert_eq!(start.elapsed(), Duration::ZERO, "put and delete");

        let start = Instant::now();
        assert_eq!(tx.get(b"k").await.expect("get"), Some(b"v".to_vec()));
        assert_eq!(start.elapsed(), RTT, "get");

        let start = Instant::now();
        tx.batch_get(&[b"k".to_vec()]).await.expect("batch_get");
        tx.scan(KeyRange::prefix(b"k"), 10).await.expect("scan");
        tx.scan_reverse(KeyRange::prefix(b"k"), 10)
            .await
            .expect("scan_reverse");
        assert_eq!(start.elapsed(), RTT * 3, "batch_get, scan, scan_reverse");

        let start = Instant::now();
        tx.rollback().await.expect("rollback");
        assert_eq!(start.elapsed(), Duration::ZERO, "rollback");
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_read_write_commit_costs_a_round_trip() {
        let db = backend();

        let mut tx = db.begin(TxKind::Optimistic).await.expect("begin");
        tx.put(b"k".to_vec(), b"v".to_vec()).await.expect("put");
        let start = Instant::now();
        tx.commit().await.expect("commit");
        assert_eq!(start.elapsed(), RTT, "read-write commit");

        let snapshot = db.begin(TxKind::ReadOnly).await.expect("snapshot");
        let start = Instant::now();
        snapshot.commit().await.expect("read-only commit");
        assert_eq!(start.elapsed(), Duration::ZERO, "read-only commit");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_rtt_adds_nothing() {
        let db = Latency::new(
            Embedded::temporary_builder()
                .open_backend()
                .expect("temporary embedded backend"),
            Duration::ZERO,
        );
        let start = Instant::now();
        let mut tx = db.begin(TxKind::Optimistic).await.expect("begin");
        tx.get(b"k").await.expect("get");
        tx.commit().await.expect("commit");
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
