//! The byte-level storage contract.
//!
//! Everything above this module speaks to storage through [`Backend`] and [`BackendTx`]: ordered
//! byte keys, byte values, transactions with read-your-writes. Nothing above it knows which engine
//! runs. [`Embedded`] is the zero-setup default; `TiKV` (feature `tikv`) scales out.
//! [`AnyBackend`] is either of them, chosen from the environment when the program starts.

pub mod any;
pub mod counting;
pub mod embedded;
pub mod faults;
pub mod latency;
#[cfg(feature = "tikv")]
pub mod tikv;

use std::future::Future;
use std::ops::Bound;

use crate::error::Result;

pub use any::{AnyBackend, AnyTx};
pub use counting::{CallCounts, Counting};
pub use embedded::{Durability, Embedded, EmbeddedBuilder};
pub use faults::{CallKind, Fault, FaultCounts, FaultPlan, Faulty};
pub use latency::Latency;
#[cfg(feature = "tikv")]
pub use tikv::{GcConfig, TiKV, TiKVConfig, TlsPaths};

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// How a transaction isolates itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxKind {
    /// Reads at a snapshot, writes buffered, conflicts detected at commit.
    #[default]
    Optimistic,
    /// Writes lock their keys as they are made (TiKV); the embedded backend treats it as optimistic.
    Pessimistic,
    /// A consistent read-only snapshot; writes are refused.
    ReadOnly,
}

/// A half-open key range `[start, end)`; `end: None` means unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Inclusive lower bound.
    pub start: Vec<u8>,
    /// Exclusive upper bound, or `None` for "to the end of the keyspace".
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// The range `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// Every key from `start` on.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end: None,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        KeyRange {
            start: prefix.to_vec(),
            end: prefix_end(prefix),
        }
    }

    /// Whether no key can fall in the range.
    pub fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if *end <= self.start)
    }

    /// The range as standard bounds, for ordered maps and engines.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let end = self
            .end
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        (Bound::Included(self.start.as_slice()), end)
    }

    /// Whether `key` falls in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is empty or all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest key greater than `key`: continuing a scan from here never skips a key.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// A storage engine: a handle that begins transactions. Cheap to clone.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The engine's transaction.
    type Tx: BackendTx;

    /// Begins a transaction of the given kind.
    fn begin(&self, kind: TxKind) -> impl Future<Output = Result<Self::Tx>> + Send;

    /// A short name for logs and errors (`"embedded"`, `"tikv"`).
    fn name(&self) -> &'static str;
}

/// A transaction of a [`Backend`].
///
/// Reads see the transaction's own uncommitted writes, scans included. Writes are buffered
/// until [`commit`](BackendTx::commit). Every write conflicts with a concurrent write of the
/// same key: exactly one of the two transactions commits.
pub trait BackendTx: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// The values at `keys`, in the order of `keys`, in as few round trips as the engine allows.
    fn batch_get(
        &mut self,
        keys: &[Vec<u8>],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>>> + Send;

    /// Sets `key` to `value`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> impl Future<Output = Result<()>> + Send;

    /// Sets `key`, which holds an id made for this write (no other transaction writes it), to
    /// `value`. The write may be blind: the embedded backend does not check it against
    /// concurrent writes of `key`, which nothing makes. Defaults to [`put`](Self::put).
    fn put_unique(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<()>> + Send {
        self.put(key, value)
    }

    /// Removes `key`.
    fn delete(&mut self, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send;

    /// Removes `key`, whose every write so far was followed by a removal: a backend may drop
    /// the removal together with the last write when they meet (RocksDB's single delete), so
    /// reads stop stepping over it long before an ordinary removal would be gone. Defaults to
    /// [`delete`](Self::delete).
    ///
    /// The removal may be blind: the embedded backend does not make it conflict with a
    /// concurrent write of `key`. It is for keys that something else gives one remover at a time
    /// (a queue entry: written once by its publish, removed by the holder of its partition's
    /// fenced lease).
    fn single_delete(&mut self, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
        self.delete(key)
    }

    /// Up to `limit` pairs of `range` in ascending key order.
    fn scan(
        &mut self,
        range: KeyRange,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<KvPair>>> + Send;

    /// Up to `limit` pairs of each of `ranges`, ascending, in the order of `ranges`: one round
    /// trip where the engine can read the ranges concurrently.
    fn scan_many(
        &mut self,
        ranges: &[KeyRange],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Vec<KvPair>>>> + Send {
        async move {
            let mut all = Vec::with_capacity(ranges.len());
            for range in ranges {
                all.push(if range.is_empty() {
                    Vec::new()
                } else {
                    self.scan(range.clone(), limit).await?
                });
            }
            Ok(all)
        }
    }

    /// Up to `limit` pairs of `range` in descending key order.
    fn scan_reverse(
        &mut self,
        range: KeyRange,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<KvPair>>> + Send;

    /// Makes the writes durable and visible. A retryable conflict is
    /// [`TitoError::Conflict`](crate::TitoError::Conflict); an error that leaves the outcome in
    /// doubt is [`TitoError::CommitOutcomeUnknown`](crate::TitoError::CommitOutcomeUnknown).
    fn commit(self) -> impl Future<Output = Result<()>> + Send;

    /// Discards the writes.
    fn rollback(self) -> impl Future<Output = Result<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn key_after_is_the_immediate_successor() {
        // "a2" continues at "a2\0", which sorts before "a20": nothing is skipped.
        assert!(key_after(b"a2").as_slice() < b"a20".as_slice());
        assert!(key_after(b"a2").as_slice() > b"a2".as_slice());
    }

    #[test]
    fn range_contains_and_empty() {
        let r = KeyRange::new(b"b".to_vec(), b"d".to_vec());
        assert!(r.contains(b"b") && r.contains(b"c\xff") && !r.contains(b"d"));
        assert!(KeyRange::new(b"d".to_vec(), b"d".to_vec()).is_empty());
        assert!(!KeyRange::from(b"z".to_vec()).is_empty());
        assert!(KeyRange::prefix(b"\xff").contains(b"\xff\xff\xff"));
    }
}
