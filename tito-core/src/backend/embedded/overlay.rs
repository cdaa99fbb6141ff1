//! A write transaction's reads: its own buffered writes laid over its snapshot.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::super::KvPair;
use crate::error::Result;

/// A buffered write of one key.
#[derive(Debug)]
pub(super) struct Pending {
    /// What the commit does to the key.
    pub op: Op,
    /// Whether a concurrent write of the key must conflict: false only while every write of the
    /// key in this transaction was blind (`put_unique`, `single_delete`).
    pub checked: bool,
}

/// What a commit does to a key.
#[derive(Debug)]
pub(super) enum Op {
    Put(Vec<u8>),
    Delete,
    /// A weak tombstone: flushes and compactions drop it with the one write it shadows.
    SingleDelete,
}

impl Pending {
    /// The value a read in the transaction sees: `None` once removed.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.op {
            Op::Put(value) => Some(value),
            Op::Delete | Op::SingleDelete => None,
        }
    }
}

/// The buffered writes of a transaction, by key.
pub(super) type Writes = BTreeMap<Vec<u8>, Pending>;

/// Up to `limit` pairs of `stored` (a snapshot's rows) with `pending` laid over them, both
/// iterated in the same direction: ascending, or descending when `reverse`. A pending write
/// replaces or removes the stored row of its key.
pub(super) fn overlay<'a>(
    stored: impl Iterator<Item = Result<KvPair>>,
    pending: impl Iterator<Item = (&'a Vec<u8>, &'a Pending)>,
    reverse: bool,
    limit: usize,
) -> Result<Vec<KvPair>> {
    let mut failure = None;
    let mut rows = Vec::new();
    {
        // A read error ends the stored rows; it is returned once the merge stops.
        let mut stored =
            (stored.map_while(|row| row.map_err(|e| failure = Some(e)).ok())).peekable();
        let mut pending = pending.peekable();
        while rows.len() < limit {
            let order = match (stored.peek(), pending.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((s, _)), Some((p, _))) if reverse => p.cmp(&s),
                (Some((s, _)), Some((p, _))) => s.cmp(p),
            };
            if order == Ordering::Less {
                rows.extend(stored.next());
                continue;
            }
            if order == Ordering::Equal {
                stored.next();
            }
            if let Some((key, write)) = pending.next()
                && let Some(value) = write.value()
            {
                rows.push((key.clone(), value.to_vec()));
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TitoError;

    fn stored(keys: &[&str]) -> Vec<Result<KvPair>> {
        keys.iter()
            .map(|k| Ok((k.as_bytes().to_vec(), b"stored".to_vec())))
            .collect()
    }

    fn writes(ops: &[(&str, Option<&str>)]) -> Writes {
        ops.iter()
            .map(|(k, v)| {
                let op = match v {
                    Some(v) => Op::Put(v.as_bytes().to_vec()),
                    None => Op::Delete,
                };
                (k.as_bytes().to_vec(), Pending { op, checked: true })
            })
            .collect()
    }

    fn show(rows: Vec<KvPair>) -> Vec<String> {
        rows.into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect()
    }

    #[test]
    fn pending_writes_replace_remove_and_add_rows_in_both_directions() {
        let writes = writes(&[("b", Some("new")), ("c", None), ("e", Some("added"))]);
        let forward = overlay(
            stored(&["a", "b", "c", "d"]).into_iter(),
            writes.iter(),
            false,
            10,
        );
        assert_eq!(
            show(forward.unwrap()),
            ["a=stored", "b=new", "d=stored", "e=added"]
        );
        let backward = overlay(
            stored(&["a", "b", "c", "d"]).into_iter().rev(),
            writes.iter().rev(),
            true,
            3,
        );
        assert_eq!(show(backward.unwrap()), ["e=added", "d=stored", "b=new"]);
    }

    #[test]
    fn removed_rows_do_not_count_towards_the_limit() {
        let writes = writes(&[("a", None), ("b", None)]);
        let rows = overlay(
            stored(&["a", "b", "c", "d"]).into_iter(),
            writes.iter(),
            false,
            1,
        );
        assert_eq!(show(rows.unwrap()), ["c=stored"]);
    }

    #[test]
    fn a_stored_read_error_is_returned() {
        let mut rows = stored(&["a"]);
        rows.push(Err(TitoError::Backend("disk".into())));
        let writes = writes(&[("b", Some("x"))]);
        let outcome = overlay(rows.into_iter(), writes.iter(), false, 10);
        assert!(matches!(outcome, Err(TitoError::Backend(_))));
    }
}
