//! Pure translations between tito's backend contract and tikv-client's shapes: scan pages sized
//! by rows and bytes, and the order of `batch_get` results.
//!
//! They hold no I/O so that their edge cases (empty ranges, page arithmetic, replies refused as
//! too large) are unit tested without a cluster.

use std::collections::HashMap;

use tikv_client::BoundRange;

use crate::backend::{KvPair, key_after};

/// How many rows the next request asks for: at most a configured number, and fewer once the
/// rows seen so far show that that many would make a reply larger than the byte target.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageSize {
    rows: u32,
    max_rows: u32,
    target_bytes: usize,
}

impl PageSize {
    /// Pages of at most `max_rows` rows (0 is read as 1), aiming at `target_bytes` per reply.
    pub(super) fn new(max_rows: u32, target_bytes: usize) -> Self {
        let max_rows = max_rows.max(1);
        PageSize {
            rows: max_rows,
            max_rows,
            target_bytes: target_bytes.max(1),
        }
    }

    /// The rows the next request asks for.
    pub(super) fn rows(&self) -> u32 {
        self.rows
    }

    /// Sizes the next pages from a reply of `rows` rows holding `bytes` bytes.
    pub(super) fn observe(&mut self, rows: usize, bytes: usize) {
        if rows == 0 {
            return;
        }
        let per_row = (bytes / rows).max(1);
        let fit = (self.target_bytes / per_row).clamp(1, self.max_rows as usize);
        self.rows = u32::try_from(fit).unwrap_or(self.max_rows);
    }

    /// Halves the page after a reply was refused as too large; `false` when it was one row.
    pub(super) fn shrink(&mut self) -> bool {
        if self.rows <= 1 {
            return false;
        }
        self.rows /= 2;
        true
    }
}

/// The bytes of `rows`, keys and values.
pub(super) fn bytes_of(rows: &[KvPair]) -> usize {
    rows.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Walks a scan of up to `limit` rows of the cluster range `[start, end)` in pages.
///
/// tikv-client materialises every reply and each reply must fit the gRPC size limit, so large
/// scans are split. Each page resumes just past the last row of the previous one.
#[derive(Debug)]
pub(super) struct Pager {
    start: Vec<u8>,
    end: Vec<u8>,
    remaining: usize,
    size: PageSize,
    reverse: bool,
    done: bool,
}

impl Pager {
    /// A pager over `[start, end)`, descending when `reverse`.
    pub(super) fn new(
        (start, end): (Vec<u8>, Vec<u8>),
        limit: usize,
        size: PageSize,
        reverse: bool,
    ) -> Self {
        Pager {
            done: start >= end,
            start,
            end,
            remaining: limit,
            size,
            reverse,
        }
    }

    /// The next request to send (range and row limit), or `None` when the scan is complete.
    pub(super) fn next_request(&self) -> Option<(BoundRange, u32)> {
        if self.done || self.remaining == 0 {
            return None;
        }
        let asked =
            u32::try_from(self.remaining).map_or(self.size.rows(), |r| r.min(self.size.rows()));
        Some((
            BoundRange::from(self.start.clone()..self.end.clone()),
            asked,
        ))
    }

    /// Records the reply to a request that asked for `asked` rows.
    pub(super) fn record(&mut self, rows: &[KvPair], asked: u32) {
        self.remaining = self.remaining.saturating_sub(rows.len());
        self.size.observe(rows.len(), bytes_of(rows));
        match rows.last() {
            // A full page: more rows may follow the last one.
            Some((last, _)) if rows.len() >= asked as usize => {
                if self.reverse {
                    self.end = last.clone();
                } else {
                    self.start = key_after(last);
                }
            }
            // A short page: the range is exhausted.
            _ => self.done = true,
        }
    }

    /// Asks for fewer rows after a reply was refused as too large; `false` when it was one row.
    pub(super) fn shrink(&mut self) -> bool {
        self.size.shrink()
    }
}

/// The values of `keys` in the order of `keys`, from the unordered `pairs` tikv returns
/// (which leave out missing keys).
pub(super) fn in_key_order(keys: &[Vec<u8>], pairs: Vec<KvPair>) -> Vec<Option<Vec<u8>>> {
    let found: HashMap<Vec<u8>, Vec<u8>> = pairs.into_iter().collect();
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

    use tikv_client::Key;

    use super::*;

    /// Runs a pager against an in-memory store the way the backend runs it against TiKV,
    /// returning the rows and the row limit of every request. Replies over `max_reply` bytes
    /// are refused, as gRPC refuses them.
    fn run_limited(
        store: &BTreeMap<Key, Vec<u8>>,
        range: (&[u8], &[u8]),
        limit: usize,
        size: PageSize,
        reverse: bool,
        max_reply: usize,
    ) -> (Vec<KvPair>, Vec<u32>) {
        let mut pager = Pager::new((range.0.to_vec(), range.1.to_vec()), limit, size, reverse);
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
            if bytes_of(&reply) > max_reply {
                assert!(pager.shrink(), "a single row is over the reply limit");
                continue;
            }
            pager.record(&reply, asked);
            rows.extend(reply);
        }
        (rows, asks)
    }

    fn run(
        store: &BTreeMap<Key, Vec<u8>>,
        range: (&[u8], &[u8]),
        limit: usize,
        page: u32,
        reverse: bool,
    ) -> (Vec<KvPair>, Vec<u32>) {
        let size = PageSize::new(page, usize::MAX);
        run_limited(store, range, limit, size, reverse, usize::MAX)
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

    const ALL: (&[u8], &[u8]) = (b"", b"\xff");

    #[test]
    fn pages_ask_for_the_remaining_limit_at_most() {
        let (rows, asks) = run(&store(2500), ALL, 2300, 1000, false);
        assert_eq!(asks, vec![1000, 1000, 300]);
        assert_eq!(rows.len(), 2300);
        assert_eq!(names(&rows[..2]), ["k00000", "k00001"]);
        assert_eq!(names(&rows[999..1001]), ["k00999", "k01000"]);
        assert_eq!(names(&rows[2299..]), ["k02299"]);
    }

    #[test]
    fn unlimited_scan_stops_at_the_first_short_page() {
        let (rows, asks) = run(&store(2500), ALL, usize::MAX, 1000, false);
        assert_eq!(asks, vec![1000, 1000, 1000]);
        assert_eq!(rows.len(), 2500);
        // A range that ends on a page boundary costs one more, empty, request.
        let (rows, asks) = run(&store(2000), ALL, usize::MAX, 1000, false);
        assert_eq!(asks, vec![1000, 1000, 1000]);
        assert_eq!(rows.len(), 2000);
    }

    #[test]
    fn reverse_pages_continue_below_the_last_key() {
        let (rows, asks) = run(&store(20), (b"k00003", b"k00010"), usize::MAX, 3, true);
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
        let (rows, _) = run(&store, (b"a", b"b"), usize::MAX, 1, false);
        assert_eq!(names(&rows), ["a2", "a20", "a3"]);
    }

    #[test]
    fn zero_limit_and_empty_range_send_nothing() {
        let size = PageSize::new(10, usize::MAX);
        assert!(
            Pager::new((Vec::new(), vec![1]), 0, size, false)
                .next_request()
                .is_none()
        );
        let inverted = (b"b".to_vec(), b"a".to_vec());
        assert!(
            Pager::new(inverted, 10, size, true)
                .next_request()
                .is_none()
        );
        let (rows, asks) = run(&store(5), ALL, 3, 0, false);
        assert_eq!((rows.len(), asks), (3, vec![1, 1, 1]));
    }

    #[test]
    fn pages_of_large_rows_shrink_to_the_byte_target() {
        // 8 KiB rows, a 64 KiB target: after the first page, pages hold 8 rows.
        let store: BTreeMap<Key, Vec<u8>> = (0..100u32)
            .map(|i| (Key::from(format!("k{i:05}")), vec![7; 8 << 10]))
            .collect();
        let size = PageSize::new(1000, 64 << 10);
        let (rows, asks) = run_limited(&store, ALL, usize::MAX, size, false, usize::MAX);
        assert_eq!(rows.len(), 100);
        assert_eq!(asks[0], 1000);
        assert!(asks[1..].iter().all(|&asked| asked <= 8), "{asks:?}");
        // Small rows grow the page back to its row limit.
        let mut size = PageSize::new(1000, 64 << 10);
        size.observe(1, 64 << 10);
        assert_eq!(size.rows(), 1);
        size.observe(100, 100);
        assert_eq!(size.rows(), 1000);
    }

    #[test]
    fn a_refused_reply_is_asked_again_in_smaller_pages() {
        // Every row is 100 KiB and a reply may hold 250 KiB: the scan still returns every row.
        let store: BTreeMap<Key, Vec<u8>> = (0..10u32)
            .map(|i| (Key::from(format!("k{i:05}")), vec![1; 100 << 10]))
            .collect();
        let size = PageSize::new(1000, usize::MAX);
        let (rows, asks) = run_limited(&store, ALL, usize::MAX, size, true, 250 << 10);
        assert_eq!(rows.len(), 10);
        assert_eq!(names(&rows[..1]), ["k00009"]);
        assert!(asks.contains(&1) || asks.contains(&2), "{asks:?}");
        let mut one = PageSize::new(1, usize::MAX);
        assert!(!one.shrink(), "a single row cannot shrink");
    }

    #[test]
    fn batch_results_follow_the_order_of_the_keys() {
        let pairs = vec![
            (b"c".to_vec(), b"3".to_vec()),
            (b"a".to_vec(), b"1".to_vec()),
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
