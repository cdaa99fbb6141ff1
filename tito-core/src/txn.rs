//! Transactions as users see them: a cloneable handle over one backend transaction, and the
//! retry policy of the retrying runner.
//!
//! The handle is cloneable because the seed's API moves `tx` into an `async move` block while the
//! runner still has to commit it afterwards; both hold the same transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::{Instrument, Span, debug_span, field};

use crate::backend::{Backend, BackendTx, Embedded, KeyRange, KvPair, TxKind};
use crate::error::{Result, TitoError};
use crate::event::{Published, QueueHub, TitoEvent};

/// The largest key tito writes; TiKV's default limit is 8 KiB.
pub const MAX_KEY_LEN: usize = 4 * 1024;
/// The largest value tito writes; TiKV refuses entries above about 6 MiB.
pub const MAX_VALUE_LEN: usize = 6 * 1024 * 1024 - 64 * 1024;

/// A transaction on a tito database. Cheap to clone; all clones are the same transaction.
pub struct TitoTransaction<B: Backend = Embedded> {
    shared: Arc<Shared<B>>,
}

struct Shared<B: Backend> {
    kind: TxKind,
    state: Mutex<Option<B::Tx>>,
    /// Set when the backend reported a retryable conflict during the transaction, so that the
    /// retrying runner can retry even when the closure mapped the error to its own type.
    saw_conflict: AtomicBool,
    /// The engine's queue state: announcements to workers, groups seen by publishes.
    queue: Arc<QueueHub>,
    /// The events this transaction wrote, per event type, announced once it commits.
    events: std::sync::Mutex<HashMap<String, Vec<Published>>>,
}

impl<B: Backend> Clone for TitoTransaction<B> {
    fn clone(&self) -> Self {
        TitoTransaction {
            shared: self.shared.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for TitoTransaction<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TitoTransaction")
            .field("kind", &self.shared.kind)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> TitoTransaction<B> {
    pub(crate) fn new(tx: B::Tx, kind: TxKind, queue: Arc<QueueHub>) -> Self {
        TitoTransaction {
            shared: Arc::new(Shared {
                kind,
                state: Mutex::new(Some(tx)),
                saw_conflict: AtomicBool::new(false),
                queue,
                events: std::sync::Mutex::default(),
            }),
        }
    }

    /// The engine's queue state.
    pub(crate) fn queue_hub(&self) -> &QueueHub {
        &self.shared.queue
    }

    /// Records that this transaction wrote `event`, due at `due`, after the key's position
    /// `after` (see [`Published::after`]), to announce on commit.
    pub(crate) fn published(&self, event: &TitoEvent, due: u64, after: Option<u64>) {
        let published = Published::of(event, due, after);
        let mut events = (self.shared.events.lock()).unwrap_or_else(PoisonError::into_inner);
        match events.get_mut(&event.event_type) {
            Some(list) => list.push(published),
            None => {
                events.insert(event.event_type.clone(), vec![published]);
            }
        }
    }

    /// The kind this transaction was begun with.
    pub fn kind(&self) -> TxKind {
        self.shared.kind
    }

    /// Whether an operation of this transaction failed with a retryable error (a conflict, or a
    /// backend unavailable for now): running the work again in a new transaction may succeed.
    pub fn saw_conflict(&self) -> bool {
        self.shared.saw_conflict.load(Ordering::Relaxed)
    }

    fn note<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.shared.saw_conflict.store(true, Ordering::Relaxed);
        }
        result
    }

    /// The value stored at `key`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_len("key", key.len(), MAX_KEY_LEN)?;
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = tx.get(key).await;
        self.note(result)
    }

    /// The values stored at `keys`, in order, in one backend call.
    pub async fn batch_get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        for key in keys {
            check_len("key", key.len(), MAX_KEY_LEN)?;
        }
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = tx.batch_get(keys).await.and_then(|values| {
            // Callers pair values with keys by position: a short or long answer is a backend
            // bug, reported as one instead of misreading or panicking.
            if values.len() == keys.len() {
                Ok(values)
            } else {
                Err(TitoError::Backend(format!(
                    "batch_get of {} keys returned {} values",
                    keys.len(),
                    values.len()
                )))
            }
        });
        self.note(result)
    }

    /// Writes `value` at `key`.
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.set(key, value, false).await
    }

    /// Writes `value` at `key`, which holds an id made for this write, possibly without marking
    /// it for conflicts: see [`BackendTx::put_unique`].
    pub async fn put_unique(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.set(key, value, true).await
    }

    async fn set(&self, key: Vec<u8>, value: Vec<u8>, unique: bool) -> Result<()> {
        check_len("key", key.len(), MAX_KEY_LEN)?;
        check_len("value", value.len(), MAX_VALUE_LEN)?;
        self.writable()?;
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = if unique {
            tx.put_unique(key, value).await
        } else {
            tx.put(key, value).await
        };
        self.note(result)
    }

    /// Removes `key`.
    pub async fn delete(&self, key: Vec<u8>) -> Result<()> {
        self.remove(key, false).await
    }

    /// Removes `key`, whose every write so far was followed by a removal (a queue entry written
    /// once), possibly without a conflict with a concurrent writer of `key`: see
    /// [`BackendTx::single_delete`].
    pub async fn single_delete(&self, key: Vec<u8>) -> Result<()> {
        self.remove(key, true).await
    }

    async fn remove(&self, key: Vec<u8>, single: bool) -> Result<()> {
        self.writable()?;
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = if single {
            tx.single_delete(key).await
        } else {
            tx.delete(key).await
        };
        self.note(result)
    }

    /// Up to `limit` pairs of `range`, ascending.
    pub async fn scan(&self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        check_range(&range)?;
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = tx.scan(range, limit).await;
        self.note(result)
    }

    /// Up to `limit` pairs of each of `ranges`, ascending: one round trip where the backend reads
    /// ranges concurrently (TiKV snapshots do).
    pub async fn scan_many(&self, ranges: &[KeyRange], limit: usize) -> Result<Vec<Vec<KvPair>>> {
        if limit == 0 || ranges.iter().all(KeyRange::is_empty) {
            return Ok(vec![Vec::new(); ranges.len()]);
        }
        for range in ranges {
            check_range(range)?;
        }
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = tx.scan_many(ranges, limit).await;
        self.note(result)
    }

    /// Up to `limit` pairs of `range`, descending.
    pub async fn scan_reverse(&self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        check_range(&range)?;
        let mut state = self.shared.state.lock().await;
        let tx = active(&mut state)?;
        let result = tx.scan_reverse(range, limit).await;
        self.note(result)
    }

    /// Commits the transaction. Later calls on any clone fail with
    /// [`TitoError::TransactionClosed`].
    pub async fn commit(&self) -> Result<()> {
        let span = debug_span!("tito.commit", published = field::Empty, error.type = field::Empty);
        let commit = async {
            let tx = self.take().await?;
            let result = tx.commit().await;
            match &result {
                Ok(()) => {
                    let events = std::mem::take(
                        &mut *(self.shared.events.lock()).unwrap_or_else(PoisonError::into_inner),
                    );
                    let published: usize = events.values().map(|keys| keys.len()).sum();
                    Span::current().record("published", published);
                    for (event_type, keys) in events {
                        self.shared.queue.announce(&event_type, keys);
                    }
                }
                Err(e) => {
                    Span::current().record("error.type", e.kind());
                }
            }
            self.note(result)
        };
        commit.instrument(span).await
    }

    /// Rolls the transaction back, discarding its writes.
    pub async fn rollback(&self) -> Result<()> {
        let tx = self.take().await?;
        tx.rollback().await
    }

    /// Commits if `outcome` is `Ok`, rolls back otherwise; returns `outcome`, or the commit's
    /// error.
    pub async fn finish<T, E: From<TitoError>>(
        &self,
        outcome: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match outcome {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                self.rollback_quietly().await;
                Err(e)
            }
        }
    }

    /// Rolls back, logging a failure other than the transaction being over already.
    pub(crate) async fn rollback_quietly(&self) {
        if let Err(e) = self.rollback().await
            && !matches!(e, TitoError::TransactionClosed(_))
        {
            tracing::warn!(error = %e, "rollback failed");
        }
    }

    /// Whether the transaction was neither committed nor rolled back yet.
    pub async fn is_active(&self) -> bool {
        self.shared.state.lock().await.is_some()
    }

    async fn take(&self) -> Result<B::Tx> {
        self.shared
            .state
            .lock()
            .await
            .take()
            .ok_or_else(|| TitoError::TransactionClosed("already committed or rolled back".into()))
    }

    fn writable(&self) -> Result<()> {
        if self.shared.kind == TxKind::ReadOnly {
            return Err(TitoError::TransactionClosed(
                "the transaction is read-only".into(),
            ));
        }
        Ok(())
    }
}

fn active<T>(state: &mut Option<T>) -> Result<&mut T> {
    state
        .as_mut()
        .ok_or_else(|| TitoError::TransactionClosed("already committed or rolled back".into()))
}

pub(crate) fn check_len(what: &'static str, size: usize, limit: usize) -> Result<()> {
    if size > limit {
        return Err(TitoError::TooLarge { what, size, limit });
    }
    Ok(())
}

/// Bounds longer than any key could be are refused (they would only match nothing or everything).
fn check_range(range: &KeyRange) -> Result<()> {
    check_len("key", range.start.len(), MAX_KEY_LEN + 1)?;
    check_len(
        "key",
        range.end.as_ref().map_or(0, Vec::len),
        MAX_KEY_LEN + 1,
    )
}

/// How the retrying runner retries conflicting transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based): exponential, capped, with full jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        // Full jitter: uniform in [cap/2, cap] keeps retries apart without starving them.
        let random = (uuid::Uuid::new_v4().as_u128() as u64) % (nanos / 2 + 1);
        Duration::from_nanos(nanos / 2 + random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        };
        for _ in 0..50 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(5) && d1 <= Duration::from_millis(10));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(20) && d3 <= Duration::from_millis(40));
            assert!(p.delay(30) <= Duration::from_millis(40));
        }
    }
}
