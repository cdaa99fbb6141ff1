//! Commit order and conflict detection for the embedded backend's write transactions.
//!
//! Commits are numbered in the order they apply. A write transaction remembers the number its
//! snapshot saw; at commit, the keys it read or wrote and the ranges it scanned are checked
//! against the keys written by every transaction that committed after that snapshot. Any overlap
//! is a conflict: a commit that changed what this transaction read, or wrote what it writes.
//!
//! The keys of a commit are kept only while a transaction older than it is open, so a lone writer
//! keeps nothing and every check is a lookup in a small ordered map.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use super::super::KeyRange;
use crate::error::{Result, TitoError};

/// The commit sequence of one database, and the keys written by recent commits.
#[derive(Default)]
pub(super) struct Oracle {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Commits applied so far; the number of the latest.
    committed: u64,
    /// Each key written by a commit newer than the oldest open write transaction, with the
    /// number of the last commit that wrote it.
    recent: BTreeMap<Vec<u8>, u64>,
    /// The open write transactions, counted by the commit number their snapshot saw.
    open: BTreeMap<u64, usize>,
    /// The size of `recent` at which it is next trimmed; doubles with the map, so trimming costs
    /// a constant per recorded key.
    trim_at: usize,
}

/// Attempts to take a held lock before sleeping on it: about 30 µs on a 2020s x86 core.
const SPINS: u32 = 1_000;

/// The smallest `trim_at`.
const MIN_TRIM: usize = 1024;

/// What a transaction observed, checked at its commit.
#[derive(Default)]
pub(super) struct ReadSet {
    /// Keys read from the snapshot (not from the transaction's own writes).
    pub keys: Vec<Vec<u8>>,
    /// Ranges scanned, narrowed to the part a limited scan reached.
    pub ranges: Vec<KeyRange>,
}

/// An open write transaction's place in the commit order; dropping it closes the transaction.
pub(super) struct Ticket {
    oracle: Arc<Oracle>,
    start: u64,
    open: bool,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            self.oracle.lock().close(self.start);
        }
    }
}

impl Oracle {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A commit holds the lock for a few microseconds (the check and fjall's batch): a
        // waiter that sleeps and is woken costs more than that, so it spins first.
        for _ in 0..SPINS {
            match self.state.try_lock() {
                Ok(state) => return state,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        // Nothing panics while the lock is held; a poisoned lock still holds a whole state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a write transaction: `snapshot` is taken with no commit applying beside it, so the
    /// snapshot holds exactly the commits numbered up to the ticket's.
    pub fn open<S>(self: &Arc<Self>, snapshot: impl FnOnce() -> S) -> (Ticket, S) {
        let mut state = self.lock();
        let start = state.committed;
        *state.open.entry(start).or_default() += 1;
        let snapshot = snapshot();
        drop(state);
        let ticket = Ticket {
            oracle: self.clone(),
            start,
            open: true,
        };
        (ticket, snapshot)
    }

    /// Whether no write transaction is open and no commit's keys are kept.
    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        let state = self.lock();
        state.open.is_empty() && state.recent.is_empty()
    }

    /// The number of the latest applied commit.
    pub fn committed(&self) -> u64 {
        self.lock().committed
    }

    /// Commits `ticket`'s transaction: checks `written` (each key with whether a concurrent
    /// write of it must conflict) and `reads` against the commits since its snapshot, then runs
    /// `apply` and records the written keys. Returns the commit's number. Nothing commits beside
    /// `apply`, so commits apply in number order.
    pub fn commit(
        &self,
        mut ticket: Ticket,
        written: Vec<(Vec<u8>, bool)>,
        reads: &ReadSet,
        apply: impl FnOnce() -> Result<()>,
    ) -> Result<u64> {
        let mut state = self.lock();
        let start = ticket.start;
        ticket.open = false;
        state.close(start);
        if state.committed > start && state.conflicts(start, &written, reads) {
            return Err(TitoError::Conflict(
                "a concurrent transaction wrote data this transaction read or wrote".into(),
            ));
        }
        apply()?;
        state.committed += 1;
        let number = state.committed;
        state.record(number, written);
        Ok(number)
    }
}

impl State {
    fn close(&mut self, start: u64) {
        if let Some(count) = self.open.get_mut(&start) {
            *count -= 1;
            if *count == 0 {
                self.open.remove(&start);
            }
        }
    }

    /// Whether a commit after `start` wrote a checked key of `written`, a key of `reads`, or a
    /// key inside one of its ranges.
    fn conflicts(&self, start: u64, written: &[(Vec<u8>, bool)], reads: &ReadSet) -> bool {
        let newer = |key: &[u8]| self.recent.get(key).is_some_and(|&n| n > start);
        (written.iter()).any(|(key, checked)| *checked && newer(key))
            || reads.keys.iter().any(|key| newer(key))
            || reads.ranges.iter().any(|range| {
                (self.recent.range::<[u8], _>(range.bounds())).any(|(_, &n)| n > start)
            })
    }

    /// Records the keys of commit `number`, for the transactions still open that predate it.
    fn record(&mut self, number: u64, written: Vec<(Vec<u8>, bool)>) {
        let Some((&oldest, _)) = self.open.first_key_value() else {
            // Every later transaction starts at or after this commit: nothing needs its keys.
            self.recent.clear();
            return;
        };
        for (key, _) in written {
            self.recent.insert(key, number);
        }
        if self.recent.len() >= self.trim_at.max(MIN_TRIM) {
            self.recent.retain(|_, n| *n > oldest);
            self.trim_at = self.recent.len() * 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oracle() -> Arc<Oracle> {
        Arc::new(Oracle::default())
    }

    fn commit(oracle: &Oracle, ticket: Ticket, keys: &[&[u8]], reads: &ReadSet) -> Result<u64> {
        let written = keys.iter().map(|k| (k.to_vec(), true)).collect();
        oracle.commit(ticket, written, reads, || Ok(()))
    }

    #[test]
    fn a_write_after_the_snapshot_conflicts_with_a_read_of_its_key_or_range() {
        let oracle = oracle();
        let (reader, ()) = oracle.open(|| ());
        let (ranger, ()) = oracle.open(|| ());
        let (writer, ()) = oracle.open(|| ());
        commit(&oracle, writer, &[b"k"], &ReadSet::default()).unwrap();

        let read_k = ReadSet {
            keys: vec![b"k".to_vec()],
            ranges: Vec::new(),
        };
        assert!(matches!(
            commit(&oracle, reader, &[b"x"], &read_k),
            Err(TitoError::Conflict(_))
        ));
        let scan_around_k = ReadSet {
            keys: Vec::new(),
            ranges: vec![KeyRange::new(b"a".to_vec(), b"z".to_vec())],
        };
        assert!(commit(&oracle, ranger, &[b"y"], &scan_around_k).is_err());
    }

    #[test]
    fn a_commit_before_the_snapshot_or_outside_the_reads_does_not_conflict() {
        let oracle = oracle();
        let (early, ()) = oracle.open(|| ());
        let (other, ()) = oracle.open(|| ());
        commit(&oracle, early, &[b"k"], &ReadSet::default()).unwrap();
        let (late, ()) = oracle.open(|| ());
        let reads = ReadSet {
            keys: vec![b"k".to_vec()],
            ranges: vec![KeyRange::new(b"a".to_vec(), b"z".to_vec())],
        };
        assert_eq!(commit(&oracle, late, &[b"k"], &reads).unwrap(), 2);
        let elsewhere = ReadSet {
            keys: vec![b"m".to_vec()],
            ranges: vec![KeyRange::from(b"l".to_vec())],
        };
        assert_eq!(commit(&oracle, other, &[b"m"], &elsewhere).unwrap(), 3);
    }

    #[test]
    fn recent_keys_are_kept_only_while_an_older_transaction_is_open() {
        let oracle = oracle();
        let (held, ()) = oracle.open(|| ());
        for i in 0..5_000u32 {
            let (ticket, ()) = oracle.open(|| ());
            commit(&oracle, ticket, &[&i.to_be_bytes()], &ReadSet::default()).unwrap();
        }
        assert_eq!(
            oracle.lock().recent.len(),
            5_000,
            "the held transaction needs them all"
        );
        drop(held);
        let (ticket, ()) = oracle.open(|| ());
        commit(&oracle, ticket, &[b"last"], &ReadSet::default()).unwrap();
        let state = oracle.lock();
        assert!(state.recent.is_empty() && state.open.is_empty());
    }

    #[test]
    fn trimming_drops_only_keys_no_open_transaction_needs() {
        let oracle = oracle();
        let (mut held, ()) = oracle.open(|| ());
        for i in 0..10_000u32 {
            if i % 1_000 == 0 {
                // Hand the "oldest open" role on, so older keys become trimmable.
                let (next, ()) = oracle.open(|| ());
                drop(std::mem::replace(&mut held, next));
            }
            let (ticket, ()) = oracle.open(|| ());
            commit(&oracle, ticket, &[&i.to_be_bytes()], &ReadSet::default()).unwrap();
        }
        let state = oracle.lock();
        assert!(state.recent.len() < 4_000, "kept {}", state.recent.len());
        drop(state);
        // The held transaction opened at commit 9,000: a write of commit 9,001 still conflicts.
        let reads = ReadSet {
            keys: vec![9_000u32.to_be_bytes().to_vec()],
            ranges: Vec::new(),
        };
        assert!(commit(&oracle, held, &[], &reads).is_err());
    }

    #[test]
    fn a_commit_that_fails_to_apply_takes_no_number() {
        let oracle = oracle();
        let (failing, ()) = oracle.open(|| ());
        let written = vec![(b"k".to_vec(), true)];
        let outcome = oracle.commit(failing, written, &ReadSet::default(), || {
            Err(TitoError::Backend("disk".into()))
        });
        assert!(matches!(outcome, Err(TitoError::Backend(_))));
        assert_eq!(oracle.committed(), 0);
        let (next, ()) = oracle.open(|| ());
        assert_eq!(
            commit(&oracle, next, &[b"k"], &ReadSet::default()).unwrap(),
            1
        );
        assert!(oracle.is_idle());
    }
}
