//! Pure translations between tito's backend contract and tikv-client's shapes: key ranges, scan
//! pages and the order of `batch_get` results.
//!
//! They hold no I/O so that their edge cases (empty ranges, TiKV's "empty end key means
//! unbounded", page arithmetic) are unit tested without a cluster.

use std::collections::HashMap;
use std::ops::Bound;

use tikv_client::BoundRange;

use crate::backend::{KeyRange, KvPair, key_after};

/// The tikv range for `range`, or `None` when no key can fall in it.
///
/// TiKV reads an empty end key as "unbounded", so `Some(vec![])` must not reach it: like every
/// end at or before the start, it is an empty range.
pub(super) fn bound_range(range: &KeyRange) -> Option<BoundRange> {
    if range.is_empty() {
        return None;
    }
    let end = match &range.end {
        Some(end) => Bound::Excluded(end.clone().into()),
        None => Bound::Unbounded,
    };
    Some(BoundRange::new(
        Bound::Included(range.start.clone().into()),
        end,
    ))
}

/// Walks a scan of up to `limit` rows in requests of at most `page` rows.
///
/// TiKV caps each region's reply at 4 MiB and tikv-client materialises every scan, so large
/// scans are split. Each page resumes just past the last row of the previous one.
#[derive(Debug)]
pub(super) struct Pager {
    range: KeyRange,
    remaining: usize,
    page: u32,
    reverse: bool,
    done: bool,
}

impl Pager {
    /// A pager over `range`, descending when `reverse`. A `page` of 0 is read as 1.
    pub(super) fn new(range: KeyRange, limit: usize, page: u32, reverse: bool) -> Self {
        Pager {
            range,
            remaining: limit,
            page: page.max(1),
            reverse,
            done: false,
        }
    }

    /// The next request to send (range and row limit), or `None` when the scan is complete.
    pub(super) fn next_request(&self) -> Option<(BoundRange, u32)> {
        if self.done || self.remaining == 0 {
            return None;
        }
        let bounds = bound_range(&self.range)?;
        let asked = u32::try_from(self.remaining).map_or(self.page, |r| r.min(self.page));
        Some((bounds, asked))
    }

    /// Records the reply to a request that asked for `asked` rows.
    pub(super) fn record(&mut self, rows: &[KvPair], asked: u32) {
        self.remaining = self.remaining.saturating_sub(rows.len());
        match rows.last() {
            // A full page: more rows may follow the last one.
            Some((last, _)) if rows.len() >= asked as usize => {
                if self.reverse {
                    self.range.end = Some(last.clone());
                } else {
                    self.range.start = key_after(last);
                }
            }
            // A short page: the range is exhausted.
            _ => self.done = true,
        }
    }
}

/// The values of `keys` in the order of `keys`, from the unordered `pairs` tikv returns
/// (which leave out missing keys).
pub(super) fn in_key_order(
    keys: &[Vec<u8>],
    pairs: impl IntoIterator<Item = tikv_client::KvPair>,
) -> Vec<Option<Vec<u8>>> {
    let found: HashMap<Vec<u8>, Vec<u8>> = pairs.into_iter().map(into_pair).collect();
    keys.iter().map(|key| found.get(key).cloned()).collect()
}

/// A tikv pair as tito's `(key, value)`.
pub(super) fn into_pair(pair: tikv_client::KvPair) -> KvPair {
    let (key, value) = pair.into();
    (key.into(), value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::RangeBounds;

    use tikv_client::Key;

    use super::*;

    fn bounds(range: &BoundRange) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let own = |b: Bound<&Key>| b.map(|k| Vec::<u8>::from(k.clone()));
        (own(range.start_bound()), own(range.end_bound()))
    }

    #[test]
    fn bounded_range_is_half_open() {
        let range = bound_range(&KeyRange::new(b"a".to_vec(), b"c".to_vec())).unwrap();
        assert_eq!(
            bounds(&range),
            (
                Bound::Included(b"a".to_vec()),
                Bound::Excluded(b"c".to_vec())
            )
        );
    }

    #[test]
    fn missing_end_is_unbounded() {
        let range = bound_range(&KeyRange::from(b"a".to_vec())).unwrap();
        assert_eq!(
            bounds(&range),
            (Bound::Included(b"a".to_vec()), Bound::Unbounded)
        );
        let everything = bound_range(&KeyRange::from(Vec::new())).unwrap();
        assert_eq!(
            bounds(&everything),
            (Bound::Included(Vec::new()), Bound::Unbounded)
        );
    }

    #[test]
    fn empty_ranges_are_never_sent() {
        assert!(bound_range(&KeyRange::new(b"b".to_vec(), b"b".to_vec())).is_none());
        assert!(bound_range(&KeyRange::new(b"c".to_vec(), b"b".to_vec())).is_none());
        // TiKV would read this empty end key as "unbounded" and return every key.
        assert!(bound_range(&KeyRange::new(Vec::new(), Vec::new())).is_none());
        assert!(bound_range(&KeyRange::new(b"a".to_vec(), Vec::new())).is_none());
    }

    /// Runs a pager against an in-memory store the way the backend runs it against TiKV,
    /// returning the rows and the row limit of every request.
    fn run(
        store: &BTreeMap<Key, Vec<u8>>,
        range: KeyRange,
        limit: usize,
        page: u32,
        reverse: bool,
    ) -> (Vec<KvPair>, Vec<u32>) {
        let mut pager = Pager::new(range, limit, page, reverse);
        let (mut rows, mut asks) = (Vec::new(), Vec::new());
        while let Some((bounds, asked)) = pager.next_request() {
            asks.push(asked);
            let hits = store
                .range(bounds)
                .map(|(k, v)| (k.clone().into(), v.clone()));
            let reply: Vec<KvPair> = if reverse {
                hits.rev().take(asked as usize).collect()
            } else {
                hits.take(asked as usize).collect()
            };
            pager.record(&reply, asked);
            rows.extend(reply);
        }
        (rows, asks)
    }

    fn store(n: u32) -> BTreeMap<Key, Vec<u8>> {
        (0..n)
            .map(|i| (Key::from(format!("k{i:05}")), i.to_be_bytes().to_vec()))
            .collect()
    }

    fn names(rows: &[KvPair]) -> Vec<String> {
        rows.iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn pages_ask_for_the_remaining_limit_at_most() {
        let (rows, asks) = run(&store(2500), KeyRange::from(Vec::new()), 2300, 1000, false);
        assert_eq!(asks, vec![1000, 1000, 300]);
        assert_eq!(rows.len(), 2300);
        assert_eq!(names(&rows[..2]), ["k00000", "k00001"]);
        assert_eq!(names(&rows[999..1001]), ["k00999", "k01000"]);
        assert_eq!(names(&rows[2299..]), ["k02299"]);
    }

    #[test]
    fn unlimited_scan_stops_at_the_first_short_page() {
        let (rows, asks) = run(
            &store(2500),
            KeyRange::from(Vec::new()),
            usize::MAX,
            1000,
            false,
        );
        assert_eq!(asks, vec![1000, 1000, 1000]);
        assert_eq!(rows.len(), 2500);
        // A range that ends on a page boundary costs one more, empty, request.
        let (rows, asks) = run(
            &store(2000),
            KeyRange::from(Vec::new()),
            usize::MAX,
            1000,
            false,
        );
        assert_eq!(asks, vec![1000, 1000, 1000]);
        assert_eq!(rows.len(), 2000);
    }

    #[test]
    fn reverse_pages_continue_below_the_last_key() {
        let range = KeyRange::new(b"k00003".to_vec(), b"k00010".to_vec());
        let (rows, asks) = run(&store(20), range, usize::MAX, 3, true);
        assert_eq!(
            names(&rows),
            [
                "k00009", "k00008", "k00007", "k00006", "k00005", "k00004", "k00003"
            ]
        );
        assert_eq!(asks, vec![3, 3, 3]);
    }

    #[test]
    fn forward_pages_skip_nothing_between_pages() {
        // "a2" and "a20": resuming at key_after("a2") still returns "a20".
        let store: BTreeMap<Key, Vec<u8>> = [b"a2".to_vec(), b"a20".to_vec(), b"a3".to_vec()]
            .into_iter()
            .map(|k| (Key::from(k), Vec::new()))
            .collect();
        let (rows, _) = run(&store, KeyRange::from(b"a".to_vec()), usize::MAX, 1, false);
        assert_eq!(names(&rows), ["a2", "a20", "a3"]);
    }

    #[test]
    fn zero_limit_and_empty_range_send_nothing() {
        assert!(
            Pager::new(KeyRange::from(Vec::new()), 0, 10, false)
                .next_request()
                .is_none()
        );
        let empty = KeyRange::new(b"b".to_vec(), b"a".to_vec());
        assert!(Pager::new(empty, 10, 10, true).next_request().is_none());
        let (rows, asks) = run(&store(5), KeyRange::from(Vec::new()), 3, 0, false);
        assert_eq!((rows.len(), asks), (3, vec![1, 1, 1]));
    }

    #[test]
    fn batch_results_follow_the_order_of_the_keys() {
        let pairs = vec![
            tikv_client::KvPair::new(b"c".to_vec(), b"3".to_vec()),
            tikv_client::KvPair::new(b"a".to_vec(), b"1".to_vec()),
        ];
        let keys = [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"a".to_vec()];
        assert_eq!(
            in_key_order(&keys, pairs),
            vec![
                Some(b"1".to_vec()),
                None,
                Some(b"3".to_vec()),
                Some(b"1".to_vec())
            ]
        );
    }
}
