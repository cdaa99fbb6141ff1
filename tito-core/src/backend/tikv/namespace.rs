//! Where tito's keys live in the cluster: under the configured namespace, inside ranges whose
//! end is always an explicit key.
//!
//! TiKV reads an empty end key as "unbounded" on a forward scan but as the smallest key on a
//! reverse scan, so a reverse scan to the end of the keyspace would return nothing from the last
//! region. Every range sent therefore ends at a real key: the end of the namespace, or a key
//! above every key tito can write.

use crate::backend::{KeyRange, prefix_end};
use crate::txn::MAX_KEY_LEN;

/// The key prefix that holds one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Namespace {
    prefix: Vec<u8>,
    /// The exclusive end of every key under `prefix`.
    end: Vec<u8>,
}

impl Namespace {
    /// The namespace of every key starting with `prefix` (all keys when it is empty).
    pub(super) fn new(prefix: Vec<u8>) -> Self {
        // Keys are at most MAX_KEY_LEN bytes after the prefix, so MAX_KEY_LEN + 1 bytes of 0xFF
        // after it sort above all of them, even when the prefix has no successor of its own.
        let end = prefix_end(&prefix).unwrap_or_else(|| {
            let mut end = prefix.clone();
            end.resize(prefix.len() + MAX_KEY_LEN + 1, 0xFF);
            end
        });
        Namespace { prefix, end }
    }

    /// The cluster key of `key`.
    pub(super) fn key(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// The cluster keys of `keys`, in order.
    pub(super) fn keys(&self, keys: &[Vec<u8>]) -> Vec<Vec<u8>> {
        keys.iter().map(|key| self.key(key)).collect()
    }

    /// The tito key of a cluster key read back from this namespace.
    pub(super) fn strip(&self, mut key: Vec<u8>) -> Vec<u8> {
        debug_assert!(key.starts_with(&self.prefix));
        key.drain(..self.prefix.len().min(key.len()));
        key
    }

    /// The cluster range `[start, end)` of `range`, or `None` when no key can fall in it.
    pub(super) fn range(&self, range: &KeyRange) -> Option<(Vec<u8>, Vec<u8>)> {
        if range.is_empty() {
            return None;
        }
        let start = self.key(&range.start);
        let end = match &range.end {
            Some(end) => self.key(end).min(self.end.clone()),
            None => self.end.clone(),
        };
        (start < end).then_some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_under_the_prefix() {
        let ns = Namespace::new(b"app/".to_vec());
        assert_eq!(ns.key(b"k"), b"app/k".to_vec());
        assert_eq!(ns.strip(b"app/k".to_vec()), b"k".to_vec());
        assert_eq!(
            ns.keys(&[b"a".to_vec(), b"b".to_vec()]),
            [b"app/a".to_vec(), b"app/b".to_vec()]
        );
    }

    #[test]
    fn an_unbounded_end_is_an_explicit_key() {
        // The whole keyspace: the end is a real key above every key tito can write.
        let all = Namespace::new(Vec::new());
        let (start, end) = all.range(&KeyRange::from(Vec::new())).unwrap();
        assert!(start.is_empty());
        assert!(!end.is_empty());
        assert!(end.as_slice() > vec![0xFF; MAX_KEY_LEN].as_slice());
        // A namespace ends where its prefix ends.
        let ns = Namespace::new(b"app/".to_vec());
        let (start, end) = ns.range(&KeyRange::from(b"x".to_vec())).unwrap();
        assert_eq!((start, end), (b"app/x".to_vec(), b"app0".to_vec()));
        // A prefix with no successor ends above every key of the namespace.
        let ns = Namespace::new(vec![0xFF]);
        let (_, end) = ns.range(&KeyRange::from(Vec::new())).unwrap();
        assert!(end.as_slice() > ns.key(&vec![0xFF; MAX_KEY_LEN]).as_slice());
    }

    #[test]
    fn ranges_stay_inside_the_namespace_and_empty_ranges_are_never_sent() {
        let ns = Namespace::new(b"app/".to_vec());
        let (start, end) = ns
            .range(&KeyRange::new(b"a".to_vec(), b"c".to_vec()))
            .unwrap();
        assert_eq!((start, end), (b"app/a".to_vec(), b"app/c".to_vec()));
        assert!(
            ns.range(&KeyRange::new(b"b".to_vec(), b"b".to_vec()))
                .is_none()
        );
        assert!(
            ns.range(&KeyRange::new(b"c".to_vec(), b"b".to_vec()))
                .is_none()
        );
        // An empty end key is an empty range, never "unbounded".
        let all = Namespace::new(Vec::new());
        assert!(all.range(&KeyRange::new(Vec::new(), Vec::new())).is_none());
        assert!(
            all.range(&KeyRange::new(b"a".to_vec(), Vec::new()))
                .is_none()
        );
    }
}
