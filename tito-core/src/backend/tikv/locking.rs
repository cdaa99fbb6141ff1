//! What a pessimistic transaction knows about the keys it has locked.
//!
//! TiKV checks a pessimistic lock only against commits newer than the lock's own
//! `for_update_ts`, a fresh timestamp. A value read at the transaction's start and written back
//! under such a lock would silently overwrite every commit in between. So in a pessimistic
//! transaction every point read is a locking read that returns the key's latest committed value,
//! and the transaction remembers that value (and its own writes) here: a second read of the key
//! must not go back to the start snapshot, which tikv-client would do.
//!
//! Writes are kept here until the next scan or the commit and then locked in one batch, instead
//! of costing a timestamp and a lock request each.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use tikv_client::transaction::Mutation;

/// The locked keys of a pessimistic transaction: latest values read, writes not yet sent.
#[derive(Debug, Default)]
pub(super) struct Locked {
    /// Values read with a lock, and values this transaction wrote.
    latest: HashMap<Vec<u8>, Known>,
    /// Keys written since the last batch of locks was sent, in write order, each once.
    unsent: Vec<Vec<u8>>,
    /// Keys of the lock request under way.
    in_flight: Vec<Vec<u8>>,
    /// Keys the server may have locked without tikv-client knowing: those of a lock request
    /// that was abandoned (its future dropped) or failed without an answer. They are locked
    /// again before commit or rollback, so that both release them.
    untracked: Vec<Vec<u8>>,
}

/// A key's value as the transaction knows it.
#[derive(Debug)]
struct Known {
    /// `None`: absent or deleted.
    value: Option<Vec<u8>>,
    /// Written and listed in `unsent`.
    unsent: bool,
}

impl Locked {
    /// What the transaction knows of `key`: `Some(value)` if it was read with a lock or written.
    pub(super) fn known(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.latest.get(key).map(|known| known.value.clone())
    }

    /// The keys among `keys` whose values are not known yet, each once.
    pub(super) fn unknown(&self, keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut seen = HashSet::new();
        keys.iter()
            .filter(|key| !self.latest.contains_key(*key) && seen.insert(*key))
            .cloned()
            .collect()
    }

    /// Records the latest value of `key`, read with a lock.
    pub(super) fn read(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.latest.entry(key).or_insert(Known {
            value,
            unsent: false,
        });
    }

    /// Records a write of `key` (`None`: a delete), to be locked with the next batch.
    pub(super) fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match self.latest.entry(key) {
            Entry::Occupied(mut known) => {
                if !known.get().unsent {
                    self.unsent.push(known.key().clone());
                }
                *known.get_mut() = Known {
                    value,
                    unsent: true,
                };
            }
            Entry::Vacant(new) => {
                self.unsent.push(new.key().clone());
                new.insert(Known {
                    value,
                    unsent: true,
                });
            }
        }
    }

    /// Whether writes wait to be locked.
    pub(super) fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// The writes not yet sent, as mutations, marked as sent.
    pub(super) fn take_unsent(&mut self) -> Vec<Mutation> {
        std::mem::take(&mut self.unsent)
            .into_iter()
            .map(|key| {
                let value = self.latest.get_mut(&key).and_then(|known| {
                    known.unsent = false;
                    known.value.clone()
                });
                match value {
                    Some(value) => Mutation::Put(key.into(), value),
                    None => Mutation::Delete(key.into()),
                }
            })
            .collect()
    }

    /// Marks `keys` as the lock request under way.
    pub(super) fn start_locking(&mut self, keys: Vec<Vec<u8>>) {
        self.in_flight = keys;
    }

    /// Marks the lock request under way as answered; `answered` is false when its outcome on
    /// the server is unknown.
    pub(super) fn done_locking(&mut self, answered: bool) {
        if answered {
            self.in_flight.clear();
        } else {
            self.untracked.append(&mut self.in_flight);
        }
    }

    /// The keys the server may hold locks on without tikv-client knowing, including those of a
    /// lock request still marked under way (abandoned).
    pub(super) fn take_untracked(&mut self) -> Vec<Vec<u8>> {
        let mut keys = std::mem::take(&mut self.untracked);
        keys.append(&mut self.in_flight);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(mutations: &[Mutation]) -> Vec<(Vec<u8>, bool)> {
        mutations
            .iter()
            .map(|m| match m {
                Mutation::Put(key, _) => (Vec::from(key.clone()), true),
                Mutation::Delete(key) => (Vec::from(key.clone()), false),
            })
            .collect()
    }

    #[test]
    fn a_locked_read_is_remembered_and_never_replaced_by_a_later_read() {
        let mut locked = Locked::default();
        assert_eq!(locked.known(b"k"), None);
        locked.read(b"k".to_vec(), Some(b"latest".to_vec()));
        locked.read(b"k".to_vec(), Some(b"other".to_vec()));
        assert_eq!(locked.known(b"k"), Some(Some(b"latest".to_vec())));
        locked.read(b"gone".to_vec(), None);
        assert_eq!(locked.known(b"gone"), Some(None));
        assert_eq!(
            locked.unknown(&[
                b"k".to_vec(),
                b"x".to_vec(),
                b"x".to_vec(),
                b"gone".to_vec()
            ]),
            [b"x".to_vec()]
        );
    }

    #[test]
    fn writes_are_read_back_and_sent_once_as_one_batch() {
        let mut locked = Locked::default();
        locked.read(b"a".to_vec(), Some(b"old".to_vec()));
        locked.write(b"a".to_vec(), Some(b"new".to_vec()));
        locked.write(b"b".to_vec(), Some(b"1".to_vec()));
        locked.write(b"b".to_vec(), None);
        assert_eq!(locked.known(b"a"), Some(Some(b"new".to_vec())));
        assert_eq!(locked.known(b"b"), Some(None));
        assert!(locked.has_unsent());
        let batch = locked.take_unsent();
        assert_eq!(
            keys(&batch),
            [(b"a".to_vec(), true), (b"b".to_vec(), false)]
        );
        assert!(!locked.has_unsent());
        // Written values stay readable after they were sent.
        assert_eq!(locked.known(b"a"), Some(Some(b"new".to_vec())));
        locked.write(b"a".to_vec(), None);
        assert_eq!(keys(&locked.take_unsent()), [(b"a".to_vec(), false)]);
    }

    #[test]
    fn locks_of_abandoned_or_unanswered_requests_are_remembered_until_taken() {
        let mut locked = Locked::default();
        // Abandoned: the future was dropped while the request was under way.
        locked.start_locking(vec![b"a".to_vec()]);
        assert_eq!(locked.take_untracked(), [b"a".to_vec()]);
        assert!(locked.take_untracked().is_empty());
        // Answered, successfully or with a definite refusal: nothing to release.
        locked.start_locking(vec![b"b".to_vec()]);
        locked.done_locking(true);
        assert!(locked.take_untracked().is_empty());
        // Failed without an answer: the lock may be held.
        locked.start_locking(vec![b"c".to_vec()]);
        locked.done_locking(false);
        locked.start_locking(vec![b"d".to_vec()]);
        assert_eq!(locked.take_untracked(), [b"c".to_vec(), b"d".to_vec()]);
    }
}
